package tracing

import (
	"context"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
)

// NATS headers and MQTT user properties keep their keys as written (W3C's
// lower-case "traceparent"), unlike propagation.HeaderCarrier, which would
// canonicalise them to "Traceparent" as HTTP does.

// NATSHeader carries trace context in a NATS message's headers.
type NATSHeader nats.Header

var _ propagation.TextMapCarrier = NATSHeader{}

func (h NATSHeader) Get(key string) string { return nats.Header(h).Get(key) }
func (h NATSHeader) Set(key, value string) { nats.Header(h).Set(key, value) }
func (h NATSHeader) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// InjectNATS writes ctx's trace context into msg's headers, making them
// when msg has none.
func InjectNATS(ctx context.Context, msg *nats.Msg) {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	Propagator.Inject(ctx, NATSHeader(msg.Header))
}

// ExtractNATS returns ctx with the remote span context of a message's
// headers, if they hold a valid one.
func ExtractNATS(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return Propagator.Extract(ctx, NATSHeader(h))
}

// MQTTProperties carries trace context in MQTT v5 user properties.
type MQTTProperties struct{ Props *paho.PublishProperties }

var _ propagation.TextMapCarrier = MQTTProperties{}

func (p MQTTProperties) Get(key string) string {
	if p.Props == nil {
		return ""
	}
	return p.Props.User.Get(key)
}

// Set replaces key: a device's properties may already hold one.
func (p MQTTProperties) Set(key, value string) {
	user := p.Props.User[:0]
	for _, u := range p.Props.User {
		if u.Key != key {
			user = append(user, u)
		}
	}
	p.Props.User = append(user, paho.UserProperty{Key: key, Value: value})
}

func (p MQTTProperties) Keys() []string {
	if p.Props == nil {
		return nil
	}
	keys := make([]string, 0, len(p.Props.User))
	for _, u := range p.Props.User {
		keys = append(keys, u.Key)
	}
	return keys
}

// ExtractMQTT returns ctx with the remote span context of a PUBLISH's user
// properties (traceparent, tracestate), if they hold a valid one.
func ExtractMQTT(ctx context.Context, props *paho.PublishProperties) context.Context {
	if props == nil || len(props.User) == 0 {
		return ctx
	}
	return Propagator.Extract(ctx, MQTTProperties{props})
}

// InjectMQTT writes ctx's trace context into a PUBLISH's user properties.
func InjectMQTT(ctx context.Context, props *paho.PublishProperties) {
	Propagator.Inject(ctx, MQTTProperties{props})
}

// Traceparent returns ctx's span context as a W3C traceparent ("" when
// it holds none), for messages whose trace context is a field.
func Traceparent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// ExtractTraceparent returns ctx with the span context of a W3C
// traceparent string (as WebSocket clients send it), if it is valid.
func ExtractTraceparent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// Attributes of the platform's own, beside the semantic conventions.

// Room names the contract room a message is for.
func Room(name string) attribute.KeyValue { return attribute.String("sensorcast.room", name) }

// DeviceID names the device a message is from or a command is for.
func DeviceID(id string) attribute.KeyValue { return attribute.String("sensorcast.device.id", id) }
