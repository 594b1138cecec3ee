package ingest

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// One reading is one trace: the device's traceparent (an MQTT v5 user
// property, or the field of a WebSocket device's message) is the parent of
// ingest's "process" span; enrichment is its child, and so is one "send"
// span per room message, whose context travels in that message's NATS
// headers to every edge pod that fans it out.

const instrumentationName = "github.com/sensorcast/sensorcast/services/ingest"

// defaultTracer is the global provider's (tracing.Setup's).
func defaultTracer() trace.Tracer { return otel.GetTracerProvider().Tracer(instrumentationName) }

// source is where a device message came in: an MQTT topic or the NATS
// ingress subject of a device on the edge's WebSocket.
type source struct {
	tracing.Destination
	topic string // the MQTT topic (or its equivalent) that parse reads
}

func mqttSource(topic string) source { return source{mqttDestination(topic), topic} }

func ingressSource(subject, deviceID, level string) source {
	return source{
		tracing.Destination{System: "nats", Name: subject, Template: envelopev1.IngressSubject("{device_id}", level)},
		"devices/" + deviceID + "/" + level,
	}
}

// mqttDestination is a device topic as a span destination.
func mqttDestination(topic string) tracing.Destination {
	return tracing.Destination{System: "mqtt", Name: topic, Template: topicTemplate(topic)}
}

// topicTemplate names a device topic without its device id, as span names
// must not carry unbounded values.
func topicTemplate(topic string) string {
	levels := strings.Split(topic, "/")
	if len(levels) >= 3 && levels[0] == "devices" {
		levels[1] = "{device_id}"
		return strings.Join(levels, "/")
	}
	return "devices/+"
}

// startProcess starts the span of one device message.
func (s *Service) startProcess(ctx context.Context, src source, size int) (context.Context, trace.Span) {
	ctx, span := tracing.StartMessaging(ctx, s.tracer, tracing.Process, src.Destination)
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageBodySize(size))
	}
	return ctx, span
}

// rejected records a refused message on its span.
func rejected(span trace.Span, err error) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String("sensorcast.reject_reason", string(devicemsg.ReasonOf(err))))
		span.SetStatus(codes.Error, err.Error())
	}
}

// startSends starts one "send" span per room message, children of ctx, and
// writes each one's context into its message's headers; end ends them.
func startSends(ctx context.Context, tracer trace.Tracer, msgs []*nats.Msg, rooms []string) (end func()) {
	var spans []trace.Span
	for i, m := range msgs {
		sctx, span := tracing.StartMessaging(ctx, tracer, tracing.Send, natsDestination(m.Subject))
		if span.IsRecording() {
			span.SetAttributes(
				semconv.MessagingMessageID(m.Header.Get(envelopev1.HeaderMsgID)),
				semconv.MessagingMessageBodySize(len(m.Data)),
				tracing.Room(rooms[i]),
			)
			spans = append(spans, span)
		}
		tracing.InjectNATS(sctx, m)
	}
	return func() {
		for _, span := range spans {
			span.End()
		}
	}
}

// natsDestination is a room subject as a span destination.
func natsDestination(subject string) tracing.Destination {
	return tracing.Destination{System: "nats", Name: subject, Template: envelopev1.SubjectTemplate(subject)}
}
