package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	"github.com/sensorcast/sensorcast/services/ingest/internal/natspub"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
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
	trace := nats.Header{}
	copyTraceContext(trace, p.Properties)
	s.accept(ctx, p.Topic, p.Payload, trace, func(error) { s.ack(pr) })
}

// accept validates a device message that arrived on topic (MQTT, or the
// equivalent topic of a message from elsewhere), publishes it to its rooms
// and evaluates the alert rules on it. done is called once the message is
// settled: with nil once JetStream has stored it, or with the rejection.
// It is not called when the service stops first, and accept returns false:
// the message is left for its sender to deliver again.
func (s *Service) accept(ctx context.Context, topic string, payload []byte, trace nats.Header, done func(error)) bool {
	msg, err := parse(topic, payload, time.Now())
	if err != nil {
		s.reject(msg.deviceID, topic, err)
		done(err)
		return true
	}
	groups, err := s.admit(ctx, msg.deviceID)
	if err != nil {
		if ctx.Err() != nil {
			return false // shutting down before the registry was loaded: redeliver later
		}
		s.reject(msg.deviceID, topic, err)
		done(err)
		return true
	}
	msgs, err := msg.natsMsgs(trace, groups)
	if err != nil {
		// Validated envelopes always encode; should one not, dropping it
		// beats stalling every message behind it.
		s.reject(msg.deviceID, topic, err)
		done(err)
		return true
	}
	kind := msg.kind.String()
	err = s.pub.Publish(ctx, msgs, func() {
		s.metrics.messages.WithLabelValues(kind).Inc()
		done(nil)
	})
	if err != nil {
		// Shutting down: leave it unacknowledged for redelivery.
		s.logger.Debug("message left for redelivery", "topic", topic, "err", err)
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
	s.alerts.submit(ctx, alertJob{deviceID: msg.deviceID, groups: groups, rules: rules, reading: msg.envelope.GetTelemetry()})
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
func (s *Service) reject(deviceID, topic string, err error) {
	reason := devicemsg.ReasonOf(err)
	s.metrics.rejected.WithLabelValues(string(reason)).Inc()
	s.rejectLog.warn("device message rejected",
		"device_id", deviceID, "topic", truncate(topic), "reason", string(reason), "err", err)
}

// publishFailed is told of each failed NATS attempt, which natspub retries.
func (s *Service) publishFailed(err error) {
	s.metrics.publishErrors.Inc()
	s.publishLog.warn("nats publish failed; retrying", "err", err)
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
