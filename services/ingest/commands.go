package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
	"github.com/sensorcast/sensorcast/services/internal/commandqueue"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"github.com/sensorcast/sensorcast/services/internal/room"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// Commands: an edge sends a dashboard's command as a NATS request on
// sensorcast.command.send.<device>; the ingest replicas answer in one queue
// group, so exactly one of them hands it on and answers accepted or
// rejected. It goes to the edge holding the device's WebSocket if there is
// one, else to devices/<id>/commands at QoS 1: the broker keeps it for an
// offline device with a persistent session until the command's TTL, as
// MQTT message expiry, runs out. When the broker says no session takes it,
// the command waits in the command queue for a WebSocket device to connect. The
// device's acknowledgements (devices/<id>/commands/ack) reach any replica
// through the shared subscription, which relays them to the edge named in
// the command id; that edge alone decides which statuses its client sees.
const (
	// commandWorkers publish commands concurrently: each waits one broker
	// round trip for its PUBACK.
	commandWorkers = 16
	// commandQueue bounds the commands waiting for a worker; when it is
	// full, a command is rejected as busy at once rather than left to
	// time out.
	commandQueue = 256
	// commandPublishTimeout bounds the PUBACK wait; it is shorter than the
	// edge's request timeout so the edge hears why.
	commandPublishTimeout = 4 * time.Second
	// pubackNoMatchingSubscribers is the MQTT v5 reason code of a PUBACK
	// for a message no session subscribes to: the broker dropped it.
	pubackNoMatchingSubscribers = 0x10
)

// mqttPublisher is what the relay needs of the MQTT connection.
type mqttPublisher interface {
	Publish(ctx context.Context, p *paho.Publish) (*paho.PublishResponse, error)
}

// commandRelay carries commands to devices. It answers commands only while
// the MQTT connection is up and subscribed: its NATS queue subscription
// follows the connection, so while this replica cannot reach the broker
// the others take its share.
type commandRelay struct {
	nc      *nats.Conn
	js      jetstream.JetStream // holds commands for offline WebSocket devices
	devices Devices             // nil: every well-formed device id is admitted
	logger  *slog.Logger
	metrics *metrics
	tracer  trace.Tracer
	jobs    chan *nats.Msg

	mu     sync.Mutex
	pub    mqttPublisher // nil while MQTT is down
	sub    *nats.Subscription
	closed bool
}

func newCommandRelay(nc *nats.Conn, js jetstream.JetStream, devices Devices, logger *slog.Logger, m *metrics, tracer trace.Tracer) *commandRelay {
	return &commandRelay{nc: nc, js: js, devices: devices, logger: logger, metrics: m, tracer: tracer, jobs: make(chan *nats.Msg, commandQueue)}
}

// run serves commands until ctx ends, then stops taking them and answers
// those still queued as rejected, so that no requester waits in vain.
func (r *commandRelay) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range commandWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-r.jobs:
					r.serve(ctx, m)
				}
			}
		})
	}
	<-ctx.Done()
	r.mu.Lock()
	r.closed = true
	r.unsubscribeLocked()
	r.mu.Unlock()
	wg.Wait()
	for {
		select {
		case m := <-r.jobs:
			r.respond(context.Background(), m, rejectedCommand(m, "ingest is shutting down; try again"))
		default:
			return
		}
	}
}

// up starts taking commands for the connection of connCtx, unless it has
// already gone down again.
func (r *commandRelay) up(connCtx context.Context, pub mqttPublisher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || connCtx.Err() != nil {
		return
	}
	r.pub = pub
	if r.sub != nil {
		return
	}
	sub, err := r.nc.QueueSubscribe(commandv1.SendWildcard, commandv1.SendQueue, r.enqueue)
	if err != nil {
		// Only a closed NATS connection refuses, and then nothing works.
		r.logger.Error("cannot take commands", "err", err)
		return
	}
	r.sub = sub
}

// down stops taking commands: the MQTT connection is gone.
func (r *commandRelay) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pub = nil
	r.unsubscribeLocked()
}

func (r *commandRelay) unsubscribeLocked() {
	if r.sub == nil {
		return
	}
	if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.logger.Warn("unsubscribing from commands failed", "err", err)
	}
	r.sub = nil
}

// enqueue runs on the subscription's goroutine, so it never blocks.
func (r *commandRelay) enqueue(m *nats.Msg) {
	select {
	case r.jobs <- m:
	default:
		r.respond(context.Background(), m, rejectedCommand(m, "ingest is busy; try again"))
	}
}

func (r *commandRelay) publisher() mqttPublisher {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pub
}

// serve publishes one command to its device and answers the request.
// Its span continues the edge's, from the request's headers.
func (r *commandRelay) serve(ctx context.Context, m *nats.Msg) {
	ctx, span := tracing.StartMessaging(tracing.ExtractNATS(ctx, m.Header), r.tracer, tracing.Process,
		tracing.Destination{System: "nats", Name: m.Subject, Template: commandv1.SendSubject("{device_id}")})
	defer span.End()
	var c commandv1.Command
	if err := proto.Unmarshal(m.Data, &c); err != nil || c.GetCommandId() == "" {
		r.respond(ctx, m, rejectedCommand(m, "the command could not be read"))
		return
	}
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageID(c.GetCommandId()), tracing.DeviceID(c.GetDeviceId()))
	}
	res := r.send(ctx, m, &c)
	if res.GetStatus() != commandv1.Status_STATUS_ACCEPTED && span.IsRecording() {
		span.SetStatus(codes.Error, res.GetResult().GetFields()["reason"].GetStringValue())
	}
	r.respond(ctx, m, res)
}

func (r *commandRelay) send(ctx context.Context, m *nats.Msg, c *commandv1.Command) *commandv1.Result {
	reject := func(why string) *commandv1.Result { return rejection(c.GetCommandId(), c.GetDeviceId(), why) }
	if room.CheckID(c.GetDeviceId()) != nil || m.Subject != commandv1.SendSubject(c.GetDeviceId()) {
		return reject("the command names no valid device")
	}
	if why := r.refuse(c.GetDeviceId()); why != "" {
		return reject(why)
	}
	deadline := time.Now().Add(time.Duration(c.GetTtlMs()) * time.Millisecond)
	if c.GetIssuedAt() != nil {
		deadline = c.GetIssuedAt().AsTime().Add(time.Duration(c.GetTtlMs()) * time.Millisecond)
	}
	left := time.Until(deadline)
	if left <= 0 {
		return reject("the command expired before it could be sent")
	}
	if res, ok := r.sendOverWebSocket(ctx, m, c); ok {
		return res
	}
	payload, err := devicemsg.EncodeCommand(c)
	if err != nil {
		return reject("the command could not be encoded")
	}
	pub := r.publisher()
	if pub == nil {
		return reject("not connected to the MQTT broker; try again")
	}
	// The broker drops the command once its TTL has passed, so a device
	// that comes back later never runs a command its requester gave up on.
	expiry := uint32(min(math.Ceil(left.Seconds()), math.MaxUint32))
	props := &paho.PublishProperties{MessageExpiry: &expiry, ContentType: "application/json"}
	topic := devicemsg.CommandTopic(c.GetDeviceId())
	ctx, span := tracing.StartMessaging(ctx, r.tracer, tracing.Send, mqttDestination(topic))
	defer span.End()
	// The device may echo the traceparent on its acknowledgements, which
	// then join this trace.
	tracing.InjectMQTT(ctx, props)
	// A publish under way finishes even at shutdown: abandoning it would
	// answer rejected for a command the broker may already hold.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commandPublishTimeout)
	defer cancel()
	resp, err := pub.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload, Properties: props})
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		r.logger.WarnContext(ctx, "command not published", "command_id", c.GetCommandId(), "device_id", c.GetDeviceId(), "err", err)
		return reject("the MQTT broker did not take the command; try again")
	}
	if resp != nil && resp.ReasonCode == pubackNoMatchingSubscribers {
		// No MQTT session keeps it: the device may speak WebSocket and be
		// away, so the command waits for it in the command queue.
		if err := commandqueue.Hold(pctx, r.js, r.nc, c, m.Data, left); err != nil {
			r.logger.WarnContext(ctx, "command not held", "command_id", c.GetCommandId(), "device_id", c.GetDeviceId(), "err", err)
			return reject("the device is offline and its command could not be held; try again")
		}
	}
	return &commandv1.Result{CommandId: c.GetCommandId(), DeviceId: c.GetDeviceId(), Status: commandv1.Status_STATUS_ACCEPTED}
}

// sendOverWebSocket hands the command to the edge that holds the device's
// WebSocket, if one does, and returns its answer; false means no edge
// holds the device, which is then commanded over MQTT.
func (r *commandRelay) sendOverWebSocket(ctx context.Context, m *nats.Msg, c *commandv1.Command) (*commandv1.Result, bool) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commandPublishTimeout)
	defer cancel()
	req := nats.NewMsg(commandv1.DeviceSubject(c.GetDeviceId()))
	req.Data = m.Data
	rctx, span := tracing.StartMessaging(rctx, r.tracer, tracing.Send,
		tracing.Destination{System: "nats", Name: req.Subject, Template: commandv1.DeviceSubject("{device_id}")})
	defer span.End()
	tracing.InjectNATS(rctx, req)
	reply, err := r.nc.RequestMsgWithContext(rctx, req)
	if errors.Is(err, nats.ErrNoResponders) {
		if span.IsRecording() {
			span.SetAttributes(attribute.Bool("sensorcast.device_on_websocket", false))
		}
		return nil, false
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		r.logger.WarnContext(ctx, "the device's edge did not take the command", "command_id", c.GetCommandId(), "device_id", c.GetDeviceId(), "err", err)
		return rejection(c.GetCommandId(), c.GetDeviceId(), "the device's WebSocket did not take the command; try again"), true
	}
	var res commandv1.Result
	if err := proto.Unmarshal(reply.Data, &res); err != nil || res.GetCommandId() != c.GetCommandId() {
		return rejection(c.GetCommandId(), c.GetDeviceId(), "the device's edge answered something unreadable"), true
	}
	return &res, true
}

// refuse says why a device may not be commanded, or "" if it may.
func (r *commandRelay) refuse(deviceID string) string {
	if r.devices == nil {
		return ""
	}
	select {
	case <-r.devices.Loaded():
	default:
		return "the device registry is not loaded yet; try again"
	}
	d, ok := r.devices.Lookup(deviceID)
	switch {
	case !ok:
		return fmt.Sprintf("no such device %q", deviceID)
	case !d.Enabled:
		return fmt.Sprintf("device %q is disabled", deviceID)
	}
	return ""
}

func (r *commandRelay) respond(ctx context.Context, m *nats.Msg, res *commandv1.Result) {
	outcome := "accepted"
	if res.GetStatus() != commandv1.Status_STATUS_ACCEPTED {
		outcome = "rejected"
	}
	r.metrics.commands.WithLabelValues(outcome).Inc()
	data, err := proto.Marshal(res)
	if err == nil {
		err = m.Respond(data)
	}
	if err != nil {
		r.logger.WarnContext(ctx, "answering a command failed", "command_id", res.GetCommandId(), "err", err)
	}
}

// rejectedCommand answers a request whose command may not even be readable.
func rejectedCommand(m *nats.Msg, why string) *commandv1.Result {
	var c commandv1.Command
	_ = proto.Unmarshal(m.Data, &c) // best effort: the ids, if any
	return rejection(c.GetCommandId(), c.GetDeviceId(), why)
}

func rejection(commandID, deviceID, why string) *commandv1.Result {
	reason, _ := structpb.NewStruct(map[string]any{"reason": why})
	return &commandv1.Result{CommandId: commandID, DeviceId: deviceID, Status: commandv1.Status_STATUS_REJECTED, Result: reason}
}

// relayAck passes a device's acknowledgement to the edge that sent the
// command. Bad acknowledgements are counted and dropped like any bad
// device message; the MQTT message is acknowledged either way, since
// results are not retained and a redelivery would come too late to help.
//
// Its span continues the trace of the command when the device echoed the
// command's traceparent user property, and the result carries it on.
func (s *Service) relayAck(ctx context.Context, pr paho.PublishReceived) {
	p := pr.Packet
	defer s.ack(pr)
	ctx, span := tracing.StartMessaging(tracing.ExtractMQTT(ctx, p.Properties), s.tracer, tracing.Process, mqttDestination(p.Topic))
	defer span.End()
	refuse := func(deviceID string, err error) {
		rejected(span, err)
		s.reject(ctx, deviceID, p.Topic, err)
	}
	deviceID, err := devicemsg.ParseAckTopic(p.Topic)
	if err != nil {
		refuse("", err)
		return
	}
	if _, err := s.admit(ctx, deviceID); err != nil {
		if ctx.Err() == nil {
			refuse(deviceID, err)
		}
		return
	}
	res, err := devicemsg.ParseCommandAck(deviceID, p.Payload)
	if err != nil {
		refuse(deviceID, err)
		return
	}
	if span.IsRecording() {
		span.SetAttributes(tracing.DeviceID(deviceID), semconv.MessagingMessageID(res.GetCommandId()), attribute.String("sensorcast.command.status", ackStatusLabel(res.GetStatus())))
	}
	subject, ok := commandv1.ResultSubjectOf(res.GetCommandId())
	if !ok {
		refuse(deviceID, devicemsg.Reject(devicemsg.ReasonInvalidAck, "command id %q was not issued by the platform", res.GetCommandId()))
		return
	}
	data, err := proto.Marshal(res)
	if err == nil {
		msg := &nats.Msg{Subject: subject, Data: data}
		tracing.InjectNATS(ctx, msg)
		err = s.nc.PublishMsg(msg)
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		s.publishLog.warn(ctx, "command acknowledgement not relayed", "device_id", deviceID, "command_id", res.GetCommandId(), "err", err)
		return
	}
	s.metrics.commandAcks.WithLabelValues(ackStatusLabel(res.GetStatus())).Inc()
}

// ackStatusLabel names a device's acknowledgement status as the contract
// does ("delivered", "succeeded", "failed").
func ackStatusLabel(s commandv1.Status) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STATUS_"))
}
