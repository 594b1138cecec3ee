// Package registry wires the device registry service: its store (PostgreSQL,
// or the embedded memstore), the gRPC server (package server), the change
// announcer on NATS (package announce), and the NATS subscription that
// wakes WatchChanges streams when another replica commits a change.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/registry/internal/announce"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
	"github.com/sensorcast/sensorcast/services/registry/internal/memstore"
	"github.com/sensorcast/sensorcast/services/registry/internal/postgres"
	"github.com/sensorcast/sensorcast/services/registry/internal/server"
)

// AdminRole is the role claim callers' tokens need.
const AdminRole = server.AdminRole

// Deps are what the registry uses but does not own.
type Deps struct {
	// NATS carries change announcements. Required.
	NATS *nats.Conn
	// Logger (nil: discard).
	Logger *slog.Logger
	// Registry receives the registry's metrics (nil: unregistered).
	Registry prometheus.Registerer
}

// Service is a running registry's parts.
type Service struct {
	cfg       Config
	nc        *nats.Conn
	logger    *slog.Logger
	store     device.Store
	close     func()
	announcer *announce.Announcer
	server    *server.Server
	grpc      *server.GRPC
}

// New opens the store (migrating PostgreSQL's schema) and builds the
// service. Close releases the store.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.NATS == nil {
		return nil, errors.New("registry: a NATS connection is required")
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, nc: deps.NATS, logger: logger}
	if cfg.DatabaseURL == "" {
		logger.Warn("no database-url: devices are kept in memory and lost on exit; run a single registry replica only")
		s.store, s.close = memstore.New(memstore.Options{}), func() {}
	} else {
		pg, err := postgres.Open(ctx, postgres.Options{URL: cfg.DatabaseURL, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("database-url (SENSORCAST_DATABASE_URL): %w", err)
		}
		s.store, s.close = pg, pg.Close
	}
	s.announcer = announce.New(s.store, deps.NATS, announce.Options{
		Interval: cfg.PollInterval,
		Logger:   logger.With("component", "announcer"),
		Registry: deps.Registry,
	})
	metrics := server.NewMetrics(deps.Registry)
	s.server = server.New(s.store, server.Options{
		Logger:       logger,
		PollInterval: cfg.PollInterval,
		AfterWrite:   s.announcer.Notify,
		Metrics:      metrics,
	})
	auth, err := server.NewAuthenticator([]byte(cfg.JWTSecret))
	if err != nil {
		s.close()
		return nil, err
	}
	s.grpc, err = server.NewGRPC(s.server, server.GRPCConfig{Auth: auth, Logger: logger, Metrics: metrics, StopTimeout: cfg.StopTimeout})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// Run serves the gRPC API on ln and announces changes until ctx ends, then
// stops gracefully (bounded by Config.StopTimeout). It closes ln.
func (s *Service) Run(ctx context.Context, ln net.Listener) error {
	// Another replica's announcement means the shared change log moved:
	// wake this replica's watch streams instead of waiting for their poll.
	sub, err := s.nc.Subscribe(registryv1.ChangesSubject, func(*nats.Msg) { s.server.Notify() })
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("registry: subscribe to %s: %w", registryv1.ChangesSubject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	s.logger.Info("registry serving gRPC", "addr", ln.Addr().String())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.grpc.Serve(gctx, ln) })
	g.Go(func() error { return s.announcer.Run(gctx) })
	return g.Wait()
}

// Ready reports whether the store answers.
func (s *Service) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.store.LatestSeq(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Close releases the store. Call it after Run returned.
func (s *Service) Close() { s.close() }

// MintToken signs an HS256 bearer token for the registry's API: subject,
// role (AdminRole to be let in), valid for ttl.
func MintToken(secret, subject, role string, ttl time.Duration) (string, error) {
	return server.MintToken([]byte(secret), subject, role, ttl, time.Now())
}
