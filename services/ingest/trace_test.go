package ingest

import (
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
)

func TestValidTraceparent(t *testing.T) {
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
		{"a CR LF smuggled in", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-\r\nX: y", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validTraceparent(tt.in); got != tt.want {
				t.Errorf("validTraceparent(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestCopyTraceContext(t *testing.T) {
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
		{"a tracestate with control characters is dropped", props("traceparent", tp, "tracestate", "a=b\r\nc"), tp, ""},
		{"an overlong tracestate is dropped", props("traceparent", tp, "tracestate", strings.Repeat("a", 513)), tp, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			copyTraceContext(h, tt.props)
			if got := h.Get("traceparent"); got != tt.wantTP {
				t.Errorf("traceparent = %q, want %q", got, tt.wantTP)
			}
			if got := h.Get("tracestate"); got != tt.wantTS {
				t.Errorf("tracestate = %q, want %q", got, tt.wantTS)
			}
		})
	}
}
