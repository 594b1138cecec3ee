package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
)

// MaxRecvMsgSize is the largest request the registry accepts: a
// BatchUpsertDevices of 50,000 devices exceeds gRPC's default 4 MiB.
const MaxRecvMsgSize = 64 << 20

// DefaultStopTimeout bounds a graceful stop before calls still running are
// cut off.
const DefaultStopTimeout = 10 * time.Second

// GRPCConfig configures NewGRPC.
type GRPCConfig struct {
	// Auth checks callers' bearer tokens. Required.
	Auth *Authenticator
	// Logger gets one line per call and the panics (nil: discard).
	Logger *slog.Logger
	// Metrics records calls (nil: unregistered metrics).
	Metrics *Metrics
	// StopTimeout bounds the graceful stop (0: DefaultStopTimeout).
	StopTimeout time.Duration
}

// GRPC is the registry's grpc.Server: the DeviceRegistry service behind
// OpenTelemetry (otelgrpc stats handler), logging, metrics, panic recovery
// and bearer-token auth, plus the health service and reflection (both
// without auth).
type GRPC struct {
	svc         *Server
	srv         *grpc.Server
	health      *health.Server
	stopTimeout time.Duration
	logger      *slog.Logger
}

// NewGRPC returns the grpc.Server for svc.
func NewGRPC(svc *Server, cfg GRPCConfig) (*GRPC, error) {
	if cfg.Auth == nil {
		return nil, errors.New("server: GRPCConfig.Auth is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	ic := &interceptors{auth: cfg.Auth, logger: cfg.Logger, metrics: cfg.Metrics}
	srv := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.ChainUnaryInterceptor(ic.unary),
		grpc.ChainStreamInterceptor(ic.stream),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
	)
	registryv1.RegisterDeviceRegistryServer(srv, svc)
	hs := health.NewServer()
	hs.SetServingStatus(registryv1.DeviceRegistry_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return &GRPC{svc: svc, srv: srv, health: hs, stopTimeout: cfg.StopTimeout, logger: cfg.Logger}, nil
}

// Serve serves on ln until ctx ends, then stops: health turns NOT_SERVING,
// watch streams end, and calls in progress get StopTimeout to finish
// (GracefulStop raced against a timer that calls Stop). It closes ln.
func (g *GRPC) Serve(ctx context.Context, ln net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- g.srv.Serve(ln) }()
	select {
	case err := <-served:
		g.svc.Close()
		return fmt.Errorf("grpc server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	g.health.Shutdown()
	g.svc.Close()
	stopped := make(chan struct{})
	go func() {
		g.srv.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(g.stopTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		g.logger.Warn("grpc calls still running after the stop timeout; cutting them off", "timeout", g.stopTimeout)
		g.srv.Stop()
		<-stopped
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("grpc server on %s: %w", ln.Addr(), err)
	}
	return nil
}
