package harness

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
)

// OTLPReceiver is an OTLP/gRPC trace receiver in the test process: the
// services under test export their spans to it as they would to an
// OpenTelemetry collector.
type OTLPReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	Addr string // host:port

	mu    sync.Mutex
	spans []Span
}

// Span is one received span, flattened for assertions.
type Span struct {
	Service      string            // the resource's service.name
	Resource     map[string]string // every resource attribute
	Scope        string            // the instrumentation scope
	Name         string
	Kind         string // SPAN_KIND_CONSUMER, ...
	TraceID      string // hex
	SpanID       string
	ParentSpanID string // "" for a root span
	Attributes   map[string]string
	Links        []string // linked trace ids
	Status       string
}

// StartOTLPReceiver serves OTLP/gRPC on a free loopback port until t ends.
func StartOTLPReceiver(t testing.TB) *OTLPReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("otlp receiver: %v", err)
	}
	r := &OTLPReceiver{Addr: ln.Addr().String()}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return r
}

// Settings are the OTEL_* settings that send a process' spans here at
// once: every span sampled, exported within 100 ms.
func (r *OTLPReceiver) Settings() Settings {
	return Settings{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + r.Addr,
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_TRACES_SAMPLER":         "parentbased_always_on",
		"OTEL_BSP_SCHEDULE_DELAY":     "100",
	}
}

// Export takes one batch of spans.
func (r *OTLPReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		resource := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				span := Span{
					Service: resource["service.name"], Resource: resource, Scope: ss.GetScope().GetName(), Name: s.GetName(), Kind: s.GetKind().String(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()), Attributes: attrs(s.GetAttributes()),
					Status: s.GetStatus().GetCode().String(),
				}
				for _, l := range s.GetLinks() {
					span.Links = append(span.Links, hex.EncodeToString(l.GetTraceId()))
				}
				got = append(got, span)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.mu.Unlock()
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// Trace returns the spans received so far of one trace.
func (r *OTLPReceiver) Trace(traceID string) []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var spans []Span
	for _, s := range r.spans {
		if s.TraceID == traceID {
			spans = append(spans, s)
		}
	}
	return spans
}

// Spans returns every span received so far.
func (r *OTLPReceiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// AwaitTrace waits until done accepts the spans of a trace received so
// far, and returns them; on timeout it fails t, listing what came.
func (r *OTLPReceiver) AwaitTrace(t testing.TB, traceID string, timeout time.Duration, done func([]Span) error) []Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		spans := r.Trace(traceID)
		err := done(spans)
		if err == nil {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: %v\nreceived:\n%s", traceID, err, DescribeSpans(spans))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DescribeSpans lists spans one per line, for failure messages.
func DescribeSpans(spans []Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s/%s %q %s span=%s parent=%s %v\n", s.Service, s.Resource["k8s.pod.name"], s.Name, s.Kind, s.SpanID, s.ParentSpanID, s.Attributes)
	}
	return b.String()
}

// attrs flattens OTLP attributes to strings (numbers and booleans as Go
// prints them).
func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(x.DoubleValue)
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}
