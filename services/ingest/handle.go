package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sensorcast/sensorcast/services/ingest/internal/natspub"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// handle processes one PUBLISH from the broker. paho calls it on one
// goroutine per connection, in arrival order, so it must not block for
// long except on purpose: while NATS is away it waits in Publish, which is
// the back-pressure that stops intake.
//
// A good message is acknowledged when NATS confirms its envelopes; a bad
// one at once, since redelivering it would only fail again.
func (s *Service) handle(ctx context.Context, pr paho.PublishReceived) {
	if ctx.Err() != nil {
		return // shutting down: leave it for redelivery
	}
	p := pr.Packet
	if devicemsg.IsAckTopic(p.Topic) {
		s.relayAck(ctx, pr)
		return
	}
	ctx = tracing.ExtractMQTT(ctx, p.Properties)
	s.accept(ctx, mqttSource(p.Topic), p.Payload, func(error) { s.ack(pr) })
}

// accept validates a device message that arrived from src, publishes it
// to its rooms
// and evaluates the alert rules on it. done is called once the message is
// settled: with nil once JetStream has stored it, or with the rejection.
// It is not called when the service stops first, and accept returns false:
// the message is left for its sender to deliver again. ctx carries the
// sender's trace context, if it sent one.
func (s *Service) accept(ctx context.Context, src source, payload []byte, done func(error)) bool {
	ctx, span := s.startProcess(ctx, src, len(payload))
	defer span.End()
	topic := src.topic
	refuse := func(deviceID string, err error) bool {
		rejected(span, err)
		s.reject(ctx, deviceID, topic, err)
		done(err)
		return true
	}
	msg, err := parse(topic, payload, time.Now())
	if span.IsRecording() && msg.deviceID != "" {
		span.SetAttributes(tracing.DeviceID(msg.deviceID))
	}
	if err != nil {
		return refuse(msg.deviceID, err)
	}
	groups, err := s.enrich(ctx, msg.deviceID)
	if err != nil {
		if ctx.Err() != nil {
			return false // shutting down before the registry was loaded: redeliver later
		}
		return refuse(msg.deviceID, err)
	}
	msgs, rooms, err := msg.natsMsgs(groups)
	if err != nil {
		// Validated envelopes always encode; should one not, dropping it
		// beats stalling every message behind it.
		return refuse(msg.deviceID, err)
	}
	kind := msg.kind.String()
	endSends := startSends(ctx, s.tracer, msgs, rooms)
	err = s.pub.Publish(ctx, msgs, func() {
		endSends()
		s.metrics.messages.WithLabelValues(kind).Inc()
		done(nil)
	})
	if err != nil {
		// Shutting down: leave it unacknowledged for redelivery.
		s.logger.DebugContext(ctx, "message left for redelivery", "topic", topic, "err", err)
		return false
	}
	s.evaluateRules(ctx, msg, groups)
	return true
}

// evaluateRules hands a reading of a device that alert rules watch to the
// evaluator. The MQTT acknowledgement does not wait for it: a reading whose
// evaluation is lost to a crash is only one of a series, and the next one
// is evaluated against the same shared state.
func (s *Service) evaluateRules(ctx context.Context, msg deviceMessage, groups []string) {
	if s.alerts == nil || msg.kind != devicemsg.KindTelemetry {
		return
	}
	rules := s.devices.RulesFor(msg.deviceID, groups)
	if len(rules) == 0 {
		return
	}
	s.alerts.submit(ctx, alertJob{deviceID: msg.deviceID, groups: groups, rules: rules, reading: msg.envelope.GetTelemetry(), trace: trace.SpanContextFromContext(ctx)})
}

// enrich admits a device and looks up its groups, in a span of its own:
// the registry lookup is where a reading waits when the cache is cold.
func (s *Service) enrich(ctx context.Context, deviceID string) ([]string, error) {
	ctx, span := s.tracer.Start(ctx, "enrich")
	defer span.End()
	groups, err := s.admit(ctx, deviceID)
	if span.IsRecording() {
		span.SetAttributes(tracing.DeviceID(deviceID), attribute.Int("sensorcast.groups", len(groups)))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	return groups, err
}

// admit checks a device against the registry and returns its groups. With
// no registry configured every well-formed device is admitted, in no group.
// Until the registry has been loaded once it waits (back-pressure on MQTT)
// rather than reject devices it has not seen yet.
func (s *Service) admit(ctx context.Context, deviceID string) ([]string, error) {
	if s.devices == nil {
		return nil, nil
	}
	select {
	case <-s.devices.Loaded():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	d, ok := s.devices.Lookup(deviceID)
	switch {
	case !ok:
		return nil, devicemsg.Reject(devicemsg.ReasonUnknownDevice, "device %q is not in the registry", deviceID)
	case !d.Enabled:
		return nil, devicemsg.Reject(devicemsg.ReasonDisabledDevice, "device %q is disabled", deviceID)
	}
	return d.Groups, nil
}

// ack acknowledges a message. It fails only when the connection the
// message came on has gone, and then the broker delivers it again anyway.
func (s *Service) ack(pr paho.PublishReceived) {
	if err := pr.Client.Ack(pr.Packet); err != nil {
		s.logger.Debug("mqtt ack after connection loss", "topic", pr.Packet.Topic, "err", err)
	}
}

// reject counts a bad message and logs it (throttled).
func (s *Service) reject(ctx context.Context, deviceID, topic string, err error) {
	reason := devicemsg.ReasonOf(err)
	s.metrics.rejected.WithLabelValues(string(reason)).Inc()
	s.rejectLog.warn(ctx, "device message rejected",
		"device_id", deviceID, "topic", truncate(topic), "reason", string(reason), "err", err)
}

// publishFailed is told of each failed NATS attempt, which natspub retries.
func (s *Service) publishFailed(err error) {
	s.metrics.publishErrors.Inc()
	s.publishLog.warn(context.Background(), "nats publish failed; retrying", "err", err)
	if errors.Is(err, natspub.ErrNoStream) {
		select {
		case s.streamLost <- struct{}{}:
		default: // already asked
		}
	}
}

// truncate keeps a hostile topic from making log lines huge.
func truncate(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
