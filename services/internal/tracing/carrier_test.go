package tracing

import (
	"context"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

// Trace context comes from devices and ends up in headers every consumer
// parses, so what is malformed must be dropped, as W3C asks of receivers.

func TestExtractTraceparent(t *testing.T) {
	const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"the W3C example", good, true},
		{"a future version with more fields", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true},
		{"empty", "", false},
		{"upper-case hex", strings.ToUpper(good), false},
		{"version ff", "ff" + good[2:], false},
		{"an all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"an all-zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"version 00 with trailing data", good + "-x", false},
		{"a short trace id", "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := trace.SpanContextFromContext(ExtractTraceparent(context.Background(), tt.in))
			if sc.IsValid() != tt.want {
				t.Errorf("ExtractTraceparent(%q) valid = %v, want %v", tt.in, sc.IsValid(), tt.want)
			}
			if tt.want && !sc.IsRemote() {
				t.Error("the extracted span context is not remote")
			}
		})
	}
}

// With tracing off the device's own context passes from MQTT to NATS.
func TestMQTTToNATS(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	props := func(kv ...string) *paho.PublishProperties {
		p := &paho.PublishProperties{}
		for i := 0; i < len(kv); i += 2 {
			p.User.Add(kv[i], kv[i+1])
		}
		return p
	}
	tests := []struct {
		name           string
		props          *paho.PublishProperties
		wantTP, wantTS string
	}{
		{"no properties", nil, "", ""},
		{"traceparent and tracestate", props("traceparent", tp, "tracestate", "a=b"), tp, "a=b"},
		{"tracestate without traceparent is dropped", props("tracestate", "a=b"), "", ""},
		{"a bad traceparent drops both", props("traceparent", "nope", "tracestate", "a=b"), "", ""},
		{"a CR LF smuggled into a future version stays out", props("traceparent", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-\r\nX: y"), tp, ""},
		{"a tracestate with control characters is dropped", props("traceparent", tp, "tracestate", "a=b\r\nc"), tp, ""},
		{"an overlong tracestate is dropped", props("traceparent", tp, "tracestate", "a="+strings.Repeat("a", 513)), tp, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := &nats.Msg{}
			InjectNATS(ExtractMQTT(context.Background(), tt.props), msg)
			if got := msg.Header.Get("traceparent"); got != tt.wantTP {
				t.Errorf("traceparent = %q, want %q", got, tt.wantTP)
			}
			if got := msg.Header.Get("tracestate"); got != tt.wantTS {
				t.Errorf("tracestate = %q, want %q", got, tt.wantTS)
			}
		})
	}
}

// A command's trace context replaces a traceparent already in the
// properties rather than adding a second one.
func TestInjectMQTTReplaces(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	props := &paho.PublishProperties{}
	props.User.Add("traceparent", "00-11111111111111111111111111111111-1111111111111111-01")
	props.User.Add("other", "kept")
	InjectMQTT(ExtractTraceparent(context.Background(), tp), props)
	var got []string
	for _, u := range props.User {
		got = append(got, u.Key+"="+u.Value)
	}
	if want := "other=kept traceparent=" + tp; strings.Join(got, " ") != want {
		t.Errorf("user properties = %q, want %q", got, want)
	}
}
