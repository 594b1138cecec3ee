package tracing

import (
	"context"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Operation is a messaging operation, as the semantic conventions name
// them: a producer's send or a consumer's process.
type Operation int

const (
	Send Operation = iota
	Process
)

// Destination is where a message goes: a messaging system ("mqtt",
// "nats"), the topic or subject, and its template (the same with ids as
// {device_id} and the like), which names the span: span names must not
// carry unbounded values.
type Destination struct {
	System, Name, Template string
}

// StartMessaging starts the span of one message sent or processed, named
// and attributed after the OpenTelemetry messaging conventions
// ("send sensorcast.room.global.telemetry"). Attributes are only built for
// a span that records, so a span costs next to nothing with tracing off.
func StartMessaging(ctx context.Context, tracer trace.Tracer, op Operation, d Destination) (context.Context, trace.Span) {
	name, kind, opType := "send", trace.SpanKindProducer, semconv.MessagingOperationTypeSend
	if op == Process {
		name, kind, opType = "process", trace.SpanKindConsumer, semconv.MessagingOperationTypeProcess
	}
	ctx, span := tracer.Start(ctx, name+" "+d.Template, trace.WithSpanKind(kind))
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingSystemKey.String(d.System), opType, semconv.MessagingOperationName(name),
			semconv.MessagingDestinationName(d.Name), semconv.MessagingDestinationTemplate(d.Template))
	}
	return ctx, span
}
