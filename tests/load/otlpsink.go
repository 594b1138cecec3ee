package load

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// ServeOTLP runs an OTLP/gRPC trace receiver on addr (loopback only) that
// counts the spans it is sent and drops them, until ctx ends: the
// collector of a benchmark with tracing on, which must cost the edge what
// a real one would (the export) and the machine nothing more.
func ServeOTLP(ctx context.Context, addr string, out io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--serve-otlp %q: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("--serve-otlp %q: loopback addresses only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--serve-otlp: %w", err)
	}
	sink := &spanSink{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, sink)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// run-bench.sh waits for this line.
	fmt.Fprintf(out, "otlp listening on %s\n", ln.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	srv.Stop()
	fmt.Fprintf(out, "otlp received %d spans\n", sink.spans.Load())
	return nil
}

type spanSink struct {
	collectortrace.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (s *spanSink) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	var n int64
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
		}
	}
	s.spans.Add(n)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}
