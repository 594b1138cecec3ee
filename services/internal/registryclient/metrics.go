package registryclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics times the calls a service makes to the registry, as the service
// sees them (network and queueing included), beside the registry's own
// server-side histogram.
type metrics struct {
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sensorcast_registry_client_request_duration_seconds",
		Help:    "Duration of calls to the device registry as this service sees them (streams: until they end), by method and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method", "code"})}
	if err := reg.Register(m.duration); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			return nil, fmt.Errorf("registry client metrics: %w", err)
		}
		// A second client of the same process shares the histogram.
		m.duration = already.ExistingCollector.(*prometheus.HistogramVec)
	}
	return m, nil
}

func (m *metrics) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	m.observe(method, start, err)
	return err
}

func (m *metrics) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	start := time.Now()
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		m.observe(method, start, err)
		return nil, err
	}
	return &timedStream{ClientStream: cs, done: func(err error) { m.observe(method, start, err) }}, nil
}

func (m *metrics) observe(method string, start time.Time, err error) {
	m.duration.WithLabelValues(method, status.Code(err).String()).Observe(time.Since(start).Seconds())
}

// timedStream observes a stream once, when it ends (RecvMsg fails: io.EOF
// for a clean end, which counts as OK).
type timedStream struct {
	grpc.ClientStream
	done     func(error)
	observed bool
}

func (s *timedStream) RecvMsg(msg any) error {
	err := s.ClientStream.RecvMsg(msg)
	if err != nil && !s.observed {
		s.observed = true
		if errors.Is(err, io.EOF) {
			s.done(nil)
		} else {
			s.done(err)
		}
	}
	return err
}
