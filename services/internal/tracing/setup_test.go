package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestSetupRefusesTypos(t *testing.T) {
	endpoint := "http://127.0.0.1:4318"
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_SDK_DISABLED": "yes please"}, "OTEL_SDK_DISABLED"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
	} {
		_, err := Setup(context.Background(), env(tc.env), Service{Name: "test"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Setup(%v) = %v, want an error naming %s", tc.env, err, tc.want)
		}
	}
}

func TestSetupIsOffWithoutAnEndpoint(t *testing.T) {
	for _, e := range []map[string]string{
		{},
		{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
	} {
		before := otel.GetTracerProvider()
		if _, err := Setup(context.Background(), env(e), Service{Name: "test"}); err != nil {
			t.Fatalf("Setup(%v): %v", e, err)
		}
		if otel.GetTracerProvider() != before {
			t.Errorf("Setup(%v) installed a tracer provider", e)
		}
	}
}

func TestSetupInstallsTheSDK(t *testing.T) {
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		stop, err := Setup(context.Background(), env(map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01",
		}), Service{Name: "test", Version: "v1"})
		if err != nil {
			t.Fatalf("%s: %v", protocol, err)
		}
		if _, isSDK := otel.GetTracerProvider().(*sdktrace.TracerProvider); !isSDK {
			t.Errorf("%s: the SDK is not the global provider", protocol)
		}
		// Nothing listens on port 1: shutdown gives up within its context.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_ = stop(ctx)
		cancel()
	}
}

func TestLogHandlerAddsTraceAndSpanIDs(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "test")
	ctx := ExtractTraceparent(context.Background(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if !trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("no span context")
	}
	logger.InfoContext(ctx, "traced")
	logger.Info("untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var traced, untraced map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &traced); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &untraced); err != nil {
		t.Fatal(err)
	}
	if traced["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || traced["span_id"] != "00f067aa0ba902b7" || traced["service"] != "test" {
		t.Errorf("traced line %s", lines[0])
	}
	if _, ok := untraced["trace_id"]; ok {
		t.Errorf("untraced line %s has a trace id", lines[1])
	}
}
