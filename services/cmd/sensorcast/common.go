package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
	"github.com/sensorcast/sensorcast/services/internal/envflag"
	"github.com/sensorcast/sensorcast/services/internal/registryclient"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// common holds the settings every service command shares.
type common struct {
	NATSURL   string
	LogLevel  string
	LogFormat string
	DebugAddr string

	// stopTracing flushes the spans still buffered; closeTracing calls it.
	stopTracing func(context.Context) error
}

func (c *common) register(fs *flag.FlagSet, defaultFormat string) {
	fs.StringVar(&c.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	c.registerLog(fs, defaultFormat)
}

func (c *common) registerLog(fs *flag.FlagSet, defaultFormat string) {
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "address for /debug/pprof (empty: off); keep it private")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", defaultFormat, "log format: json or text")
}

func (c *common) logger(w io.Writer, service string) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("log-level (SENSORCAST_LOG_LEVEL) %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(c.LogFormat) {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log-format (SENSORCAST_LOG_FORMAT) %q: want json or text", c.LogFormat)
	}
	return slog.New(tracing.LogHandler(h)).With("service", service, "version", version), nil
}

// startTracing sets up OpenTelemetry from the OTEL_* environment.
func (c *common) startTracing(ctx context.Context, getenv func(string) string, service string) error {
	stop, err := tracing.Setup(ctx, getenv, tracing.Service{Name: service, Version: version})
	if err != nil {
		return err
	}
	c.stopTracing = stop
	return nil
}

// closeTracing flushes the last spans, within a bound: a collector that
// is away must not hold up the exit.
func (c *common) closeTracing(logger *slog.Logger) {
	if c.stopTracing == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.stopTracing(ctx); err != nil {
		logger.Warn("flushing traces failed", "err", err)
	}
}

// setupService parses the flags of a service command: the common ones plus
// those register declares. It validates them (validate runs after parsing),
// builds the logger and starts tracing and the optional profiler. The
// caller defers closeTracing.
func setupService(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer,
	register func(*flag.FlagSet), validate func() error) (common, *slog.Logger, error) {
	fs := newFlagSet(name, stderr)
	var c common
	c.register(fs, "json")
	register(fs)
	if err := envflag.Parse(fs, args, getenv); err != nil {
		return c, nil, err
	}
	logger, err := c.logger(stderr, name)
	if err != nil {
		return c, nil, err
	}
	if err := validate(); err != nil {
		return c, nil, err
	}
	if err := c.startTracing(ctx, getenv, "sensorcast-"+name); err != nil {
		return c, nil, err
	}
	if err := c.serveDebug(ctx, logger); err != nil {
		c.closeTracing(logger)
		return c, nil, err
	}
	return c, logger, nil
}

// openDeviceCache connects to the registry when cfg names one; the cache is
// nil (and close a no-op) when it does not. The caller runs the cache. The
// client's call latency is registered with reg.
func openDeviceCache(cfg registryclient.Config, logger *slog.Logger, reg prometheus.Registerer) (cache *devicecache.Cache, client registryv1.DeviceRegistryClient, close func(), err error) {
	if cfg.URL == "" {
		return nil, nil, func() {}, nil
	}
	cfg.Metrics = reg
	conn, client, err := registryclient.Dial(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return devicecache.New(client, logger.With("component", "devicecache")), client, func() { _ = conn.Close() }, nil
}

// newFlagSet returns a flag set whose -h lists each flag's variable.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sensorcast "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = envflag.Usage(fs)
	return fs
}

// serveDebug serves the Go profiler on addr until ctx ends, when addr is set.
func (c *common) serveDebug(ctx context.Context, logger *slog.Logger) error {
	if c.DebugAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", c.DebugAddr)
	if err != nil {
		return fmt.Errorf("debug-addr (SENSORCAST_DEBUG_ADDR): %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		if err := serveHTTP(ctx, ln, mux, logger); err != nil {
			logger.Warn("debug server stopped", "err", err)
		}
	}()
	return nil
}

// setDefault changes a registered flag's default without marking it set,
// so its environment variable can still override it.
func setDefault(fs *flag.FlagSet, name, value string) {
	f := fs.Lookup(name)
	f.DefValue = value
	_ = f.Value.Set(value)
}

// newRegistry returns a Prometheus registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveHTTP serves h on ln until ctx ends, then shuts down within a bound.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("http server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
