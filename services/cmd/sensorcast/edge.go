package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/sensorcast/sensorcast/services/edge"
	"github.com/sensorcast/sensorcast/services/internal/natsconn"
	"github.com/sensorcast/sensorcast/services/internal/redisconn"
	"github.com/sensorcast/sensorcast/services/internal/registryclient"
)

func runEdge(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var (
		cfg      edge.Config
		registry registryclient.Config
	)
	c, logger, err := setupService(ctx, "edge", args, getenv, stderr, func(fs *flag.FlagSet) {
		cfg.RegisterFlags(fs)
		registry.RegisterFlags(fs)
	},
		func() error { return cfg.Validate() }) // a closure: cfg.Validate would bind a copy of cfg before parsing
	if err != nil {
		return err
	}
	defer c.closeTracing(logger)

	conns, err := connectNATS(ctx, c.NATSURL, "sensorcast-edge-"+cfg.PodName, cfg.NATSConns, logger)
	if err != nil {
		return err
	}
	defer closeAll(conns)

	reg := newRegistry()
	reg.MustRegister(natsconn.NewCollector(conns...))
	var rdb redis.UniversalClient
	if cfg.RedisURL != "" {
		client, err := redisconn.Open(cfg.RedisURL, reg)
		if err != nil {
			return err
		}
		defer client.Close()
		rdb = client
	} else {
		logger.Warn("no redis-url: presence and connection counts stay in this process; run a single edge pod only")
	}

	deps := edge.Deps{NATS: conns, Redis: rdb, Logger: logger, Registry: reg}
	cache, client, closeCache, err := openDeviceCache(registry, logger, reg)
	if err != nil {
		return err
	}
	defer closeCache()
	if cache != nil {
		deps.Catalog = cache
		deps.Directory = cache
		deps.DeviceSecrets = client
	}
	svc, err := edge.New(ctx, cfg, deps)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http-addr (SENSORCAST_HTTP_ADDR): %w", err)
	}
	if cache == nil {
		return svc.Run(ctx, ln)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cache.Run(gctx) })
	g.Go(func() error { return svc.Run(gctx, ln) })
	return g.Wait()
}

// connectNATS opens n connections; the edge spreads room subscriptions over them.
func connectNATS(ctx context.Context, url, name string, n int, logger *slog.Logger, opts ...nats.Option) ([]*nats.Conn, error) {
	conns := make([]*nats.Conn, 0, n)
	for i := range n {
		nc, err := natsconn.Connect(ctx, url, fmt.Sprintf("%s-%d", name, i), logger, opts...)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, nc)
	}
	return conns, nil
}

func closeAll(conns []*nats.Conn) {
	for _, nc := range conns {
		nc.Close()
	}
}
