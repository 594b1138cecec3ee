// Package commandqueue holds commands for devices that are offline and
// have no MQTT session to keep them in: devices that speak WebSocket. A
// held command waits in the JetStream stream Stream, under the device's
// subject, until the device connects or the command's TTL runs out
// (per-message TTL, so JetStream itself drops it).
//
// Ingest holds a command when neither an edge nor the MQTT broker can
// take it; the edge that a device connects to takes the device's held
// commands, and takes them again when Notify says a new one is waiting
// (so a command held while the device was connecting is not stranded).
package commandqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
)

// Names of the stream and its subjects, spelled here and nowhere else.
const (
	Stream        = "SENSORCAST_COMMANDS"
	subjectPrefix = "sensorcast.command.held."
	notifyPrefix  = "sensorcast.command.waiting."
	// maxPerDevice bounds the commands held for one device; the oldest
	// go first.
	maxPerDevice = 100
	// maxAge caps any command's stay, whatever its TTL says.
	maxAge = 24 * time.Hour
)

func subject(deviceID string) string { return subjectPrefix + deviceID }

// NotifySubject is where the edge holding a device hears that a command
// for it is waiting.
func NotifySubject(deviceID string) string { return notifyPrefix + deviceID }

// Ensure creates the stream, or updates it to this configuration.
func Ensure(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              Stream,
		Description:       "Commands waiting for WebSocket devices that are offline.",
		Subjects:          []string{subjectPrefix + "*"},
		Storage:           jetstream.FileStorage,
		MaxAge:            maxAge,
		MaxMsgsPerSubject: maxPerDevice,
		Discard:           jetstream.DiscardOld,
		AllowMsgTTL:       true,
		AllowDirect:       true,
		Duplicates:        2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("command queue stream: %w", err)
	}
	return nil
}

// Hold stores a command (its encoded Command in data) for ttl and tells
// the device's edge, if one has connected meanwhile.
func Hold(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, c *commandv1.Command, data []byte, ttl time.Duration) error {
	// JetStream's TTLs are whole seconds, at least one.
	ttl = max(ttl.Round(time.Second), time.Second)
	msg := &nats.Msg{Subject: subject(c.GetDeviceId()), Data: data, Header: nats.Header{}}
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgTTL(ttl), jetstream.WithMsgID(c.GetCommandId())); err != nil {
		return fmt.Errorf("hold command %s: %w", c.GetCommandId(), err)
	}
	if err := nc.Publish(NotifySubject(c.GetDeviceId()), nil); err != nil {
		return fmt.Errorf("hold command %s: notify: %w", c.GetCommandId(), err)
	}
	return nil
}

// Take hands each command held for a device, oldest first, to deliver,
// and removes those it took. deliver returns false when it cannot take
// one now (the device went away): that command and the rest stay held.
// Commands whose TTL has passed are dropped unseen.
func Take(ctx context.Context, js jetstream.JetStream, deviceID string, now func() time.Time, deliver func(*commandv1.Command, []byte) bool) error {
	s, err := js.Stream(ctx, Stream)
	if err != nil {
		return fmt.Errorf("command queue: %w", err)
	}
	for seq := uint64(1); ; {
		msg, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject(deviceID)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("command queue: read: %w", err)
		}
		seq = msg.Sequence + 1
		var c commandv1.Command
		if err := proto.Unmarshal(msg.Data, &c); err == nil && c.GetDeviceId() == deviceID && !expired(&c, now()) {
			if !deliver(&c, msg.Data) {
				return nil
			}
		}
		if err := s.DeleteMsg(ctx, msg.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("command queue: remove %d: %w", msg.Sequence, err)
		}
	}
}

func expired(c *commandv1.Command, now time.Time) bool {
	return c.GetIssuedAt() != nil && !now.Before(c.GetIssuedAt().AsTime().Add(time.Duration(c.GetTtlMs())*time.Millisecond))
}
