// Package tracing sets up OpenTelemetry tracing from the standard OTEL_*
// environment and carries W3C trace context across NATS headers and MQTT
// user properties.
//
// Tracing is off unless an OTLP endpoint or exporter is named: the global
// tracer provider then stays OpenTelemetry's no-op one, whose spans cost a
// few nanoseconds and still pass a caller's trace context through, so a
// device's traceparent reaches the browser even with tracing off.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Propagator is the W3C trace context and baggage, the only formats the
// platform speaks (and the ones its contract names).
var Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Service names what the resource says about this process.
type Service struct {
	Name    string // service.name unless OTEL_SERVICE_NAME says otherwise
	Version string
}

// Setup installs the global tracer provider the environment asks for and
// returns its shutdown, which flushes the spans still buffered. With
// tracing off it installs nothing and shutdown does nothing. The
// propagator is installed either way, for libraries (otelgrpc) that use
// the global one.
//
// Beyond what the SDK reads by itself (OTEL_BSP_*, OTEL_EXPORTER_OTLP_*,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME), Setup checks
// OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER (otlp or none),
// OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL (grpc or http/protobuf, the default)
// and the sampler, so that a typo fails at start instead of silently
// tracing nothing.
func Setup(ctx context.Context, getenv func(string) string, svc Service) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(Propagator)
	noop := func(context.Context) error { return nil }
	on, err := enabled(getenv)
	if err != nil || !on {
		return noop, err
	}
	sampler, err := samplerFromEnv(getenv)
	if err != nil {
		return noop, err
	}
	exp, err := exporter(ctx, getenv)
	if err != nil {
		return noop, err
	}
	res, err := newResource(ctx, svc)
	if err != nil {
		return noop, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(sampler))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// enabled says whether the environment asks for traces. Unlike the
// specification's default (otlp to localhost), an unset exporter with no
// endpoint means off: a service nobody pointed at a collector should not
// log export failures forever.
func enabled(getenv func(string) string) (bool, error) {
	if v := getenv("OTEL_SDK_DISABLED"); v != "" {
		disabled, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("OTEL_SDK_DISABLED %q: want true or false", v)
		}
		if disabled {
			return false, nil
		}
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want otlp or none", exp)
	}
}

func exporter(ctx context.Context, getenv func(string) string) (*otlptrace.Exporter, error) {
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp *otlptrace.Exporter
		err error
	)
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	return exp, nil
}

// samplerFromEnv reads OTEL_TRACES_SAMPLER and its argument; the default
// is parentbased_always_on, the specification's.
func samplerFromEnv(getenv func(string) string) (sdktrace.Sampler, error) {
	name, arg := getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG")
	ratio := 1.0
	if strings.HasSuffix(name, "traceidratio") && arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", arg)
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio or their parentbased_ forms", name)
	}
}

// newResource describes this process: the service, its version and
// instance (the pod's hostname), then whatever OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME add (the chart passes the pod and namespace there).
func newResource(ctx context.Context, svc Service) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(svc.Name), semconv.ServiceVersion(svc.Version)),
	}
	if host, err := os.Hostname(); err == nil {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceInstanceID(host)))
	}
	res, err := resource.New(ctx, append(attrs, resource.WithFromEnv())...)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("otel resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	return res, nil
}
