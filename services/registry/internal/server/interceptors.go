package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Metrics are the gRPC server's Prometheus metrics.
type Metrics struct {
	requests     *prometheus.HistogramVec
	watchStreams prometheus.Gauge
}

// NewMetrics registers the server's metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sensorcast_registry_grpc_request_duration_seconds",
			Help:    "Duration of registry gRPC calls (streams: their lifetime), by method and status code; its _count counts calls.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "code"}),
		watchStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sensorcast_registry_watch_streams",
			Help: "Open WatchChanges streams.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.watchStreams)
	}
	return m
}

// exemptFromAuth reports whether a method is served without a token:
// health checks (probes) and reflection (tools such as grpcurl).
func exemptFromAuth(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.v1.ServerReflection/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.v1alpha.ServerReflection/")
}

// interceptors holds what the interceptors need. Each call passes, from
// the outside in: observe (log line and metrics), recovery, auth, handler.
type interceptors struct {
	auth    *Authenticator
	logger  *slog.Logger
	metrics *Metrics
}

// caller is filled in by auth for the log line.
type caller struct{ subject string }

type callerKey struct{}

func (ic *interceptors) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	who := &caller{}
	ctx = context.WithValue(ctx, callerKey{}, who)
	defer func() { ic.observe(ctx, info.FullMethod, start, who, err) }()
	defer ic.recover(ctx, info.FullMethod, &err)
	if err := ic.authorize(ctx, info.FullMethod, who); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (ic *interceptors) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	who := &caller{}
	ctx := ss.Context()
	defer func() { ic.observe(ctx, info.FullMethod, start, who, err) }()
	defer ic.recover(ctx, info.FullMethod, &err)
	if err := ic.authorize(ctx, info.FullMethod, who); err != nil {
		return err
	}
	return handler(srv, ss)
}

func (ic *interceptors) authorize(ctx context.Context, method string, who *caller) error {
	if exemptFromAuth(method) {
		return nil
	}
	sub, err := ic.auth.authenticate(ctx)
	who.subject = sub
	return err
}

// recover turns a panic of the handler into INTERNAL, logging it with its
// stack once.
func (ic *interceptors) recover(ctx context.Context, method string, err *error) {
	if p := recover(); p != nil {
		ic.logger.ErrorContext(ctx, "panic in grpc handler", "method", method, "panic", p, "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, "internal error")
	}
}

// observe logs one line per call and records its metrics. Health checks
// log at debug level (probes call them every few seconds); calls that
// failed on the server's side at warn.
func (ic *interceptors) observe(ctx context.Context, method string, start time.Time, who *caller, err error) {
	d := time.Since(start)
	code := status.Code(err)
	ic.metrics.requests.WithLabelValues(method, code.String()).Observe(d.Seconds())
	level := slog.LevelInfo
	switch {
	case strings.HasPrefix(method, "/grpc.health.v1.Health/") && code == codes.OK:
		level = slog.LevelDebug
	case code == codes.Internal, code == codes.Unknown, code == codes.DataLoss, code == codes.Unimplemented:
		level = slog.LevelWarn
	}
	if !ic.logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Duration("duration", d),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	if who.subject != "" {
		attrs = append(attrs, slog.String("sub", who.subject))
	}
	if code != codes.OK && code != codes.Internal { // INTERNAL's cause was logged where it happened
		attrs = append(attrs, slog.String("message", status.Convert(err).Message()))
	}
	ic.logger.LogAttrs(ctx, level, "grpc call", attrs...)
}
