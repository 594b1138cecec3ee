package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/natsconn"
	"github.com/sensorcast/sensorcast/services/internal/registryclient"
)

func runIngest(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var (
		cfg       ingest.Config
		registry  registryclient.Config
		adminAddr string
	)
	c, logger, err := setupService(ctx, "ingest", args, getenv, stderr, func(fs *flag.FlagSet) {
		cfg.RegisterFlags(fs)
		registry.RegisterFlags(fs)
		fs.StringVar(&adminAddr, "admin-addr", ":9090", "address for /metrics, /healthz and /readyz")
	}, func() error { return cfg.Validate() })
	if err != nil {
		return err
	}
	defer c.closeTracing(logger)
	adminLn, err := net.Listen("tcp", adminAddr)
	if err != nil {
		return fmt.Errorf("admin-addr (SENSORCAST_ADMIN_ADDR): %w", err)
	}
	defer adminLn.Close()

	// Never buffer publishes while reconnecting: ingest retries them itself,
	// in order, and a buffered one would reach the stream ahead of those.
	nc, err := natsconn.Connect(ctx, c.NATSURL, "sensorcast-ingest-"+cfg.MQTTClientID, logger, nats.ReconnectBufSize(-1))
	if err != nil {
		return err
	}
	defer nc.Close()

	reg := newRegistry()
	reg.MustRegister(natsconn.NewCollector(nc))
	var opts []ingest.Option
	cache, _, closeCache, err := openDeviceCache(registry, logger, reg)
	if err != nil {
		return err
	}
	defer closeCache()
	if cache != nil {
		opts = append(opts, ingest.WithDevices(cache))
	} else {
		logger.Warn("no registry-url: every well-formed device is accepted, and no group rooms are published")
	}
	svc, err := ingest.New(cfg, nc, logger, reg, opts...)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeStatus(w, nil) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { writeStatus(w, svc.Ready()) })

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(gctx) })
	if cache != nil {
		g.Go(func() error { return cache.Run(gctx) })
	}
	g.Go(func() error { return serveHTTP(gctx, adminLn, mux, logger) })
	return g.Wait()
}

func writeStatus(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "not ready", "error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
}
