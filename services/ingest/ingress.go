package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// takeIngress subscribes to the device messages that reach the platform
// by other ways than MQTT (the edge's device WebSocket) until ctx ends.
// They take the MQTT path from parsing on: accept, with the equivalent
// topic. The subscription's goroutine waits in accept as MQTT's does, so a
// slow NATS or registry pushes back on the senders.
func (s *Service) takeIngress(ctx context.Context) error {
	sub, err := s.nc.QueueSubscribe(envelopev1.IngressWildcard, envelopev1.IngressQueue, func(m *nats.Msg) {
		s.ingress(ctx, m)
	})
	if err != nil {
		return fmt.Errorf("subscribe to device ingress: %w", err)
	}
	<-ctx.Done()
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		s.logger.Warn("unsubscribing from device ingress failed", "err", err)
	}
	return nil
}

func (s *Service) ingress(ctx context.Context, m *nats.Msg) {
	deviceID, level, ok := envelopev1.ParseIngressSubject(m.Subject)
	if !ok {
		s.answerIngress(m, devicemsg.Reject(devicemsg.ReasonInvalidTopic, "subject %q names no device message", m.Subject))
		return
	}
	ctx = tracing.ExtractNATS(ctx, m.Header)
	if !s.accept(ctx, ingressSource(m.Subject, deviceID, level), m.Data, func(err error) { s.answerIngress(m, err) }) {
		s.answerIngress(m, errUnavailable)
	}
}

var errUnavailable = errors.New("ingest is stopping; send it again")

// answerIngress tells the sender that its message was stored (err nil) or
// why not.
func (s *Service) answerIngress(m *nats.Msg, err error) {
	var data []byte
	if err != nil {
		reason := string(devicemsg.ReasonOf(err))
		if errors.Is(err, errUnavailable) {
			reason = "unavailable"
		}
		data, _ = json.Marshal(envelopev1.IngressError{Reason: reason, Error: err.Error()})
	}
	if err := m.Respond(data); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		s.logger.Debug("answering a device message failed", "subject", m.Subject, "err", err)
	}
}
