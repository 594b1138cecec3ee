package load

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

// roomStreamConfig is the room stream as ingest configures it by default.
// It mirrors roomstream.StreamConfig(roomstream.DefaultRetention) in the
// services module, which Go's internal-package rule keeps this module from
// importing: keep the two in step. What matters to the edge under load is
// the subjects and the republishing to live subjects; the limits only
// bound what the server keeps during a run.
func roomStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              envelopev1.RoomStream,
		Description:       "Sensorcast room messages, retained for clients that resume",
		Subjects:          []string{envelopev1.RoomSubjectWildcard},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            time.Hour,
		MaxMsgsPerSubject: 10_000,
		MaxBytes:          -1,
		Storage:           jetstream.FileStorage,
		Replicas:          1,
		Duplicates:        2 * time.Minute,
		AllowDirect:       true,
		RePublish: &jetstream.RePublish{
			Source:      envelopev1.RoomSubjectWildcard,
			Destination: envelopev1.LiveSubjectWildcard,
		},
	}
}

// ensureRoomStream creates the room stream, or updates it to
// roomStreamConfig, on the server nc is connected to.
func ensureRoomStream(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, roomStreamConfig()); err != nil {
		return fmt.Errorf("configure stream %s: %w", envelopev1.RoomStream, err)
	}
	return nil
}

// checkRoomStream fails clearly when the server has no room stream: the
// publisher's messages would reach no edge, and the run would report them
// all lost.
func checkRoomStream(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = js.Stream(ctx, envelopev1.RoomStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return fmt.Errorf("--nats has no stream %s, so edges would get nothing: serve NATS with --serve-nats, or run ingest once against it: %w",
			envelopev1.RoomStream, err)
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", envelopev1.RoomStream, err)
	}
	return nil
}
