// Command operator runs the Sensorcast operator: it scales Deployments of edge
// pods by the WebSocket connections they report (EdgeAutoscaler resources).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	autoscalingv1alpha1 "github.com/sensorcast/sensorcast/operator/api/v1alpha1"
	"github.com/sensorcast/sensorcast/operator/internal/controller"
	"github.com/sensorcast/sensorcast/operator/internal/edgeload"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "sensorcast-operator:", err)
		os.Exit(1)
	}
}

// config is the operator's settings: flags, else SENSORCAST_* environment
// variables, else defaults that work against a local cluster.
type config struct {
	Kubeconfig       string
	RedisURL         string
	Redis            *redis.Options // RedisURL, parsed
	Interval         time.Duration
	MetricsAddr      string
	ProbeAddr        string
	LeaderElect      bool
	LeaderElectionNS string
	LogLevel         string
	LogFormat        string
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("sensorcast-operator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.Kubeconfig, "kubeconfig", env("KUBECONFIG", ""), "kubeconfig file (KUBECONFIG; empty: in-cluster config)")
	fs.StringVar(&c.RedisURL, "redis-url", env("SENSORCAST_REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis the edge pods report their connections to (SENSORCAST_REDIS_URL)")
	interval := env("SENSORCAST_INTERVAL", "10s")
	fs.StringVar(&interval, "interval", interval, "how often each autoscaler re-reads the connections (SENSORCAST_INTERVAL)")
	fs.StringVar(&c.MetricsAddr, "metrics-bind-address", env("SENSORCAST_METRICS_BIND_ADDRESS", ":8080"), "address of /metrics; 0 turns it off (SENSORCAST_METRICS_BIND_ADDRESS)")
	fs.StringVar(&c.ProbeAddr, "health-probe-bind-address", env("SENSORCAST_HEALTH_PROBE_BIND_ADDRESS", ":8081"), "address of /healthz and /readyz (SENSORCAST_HEALTH_PROBE_BIND_ADDRESS)")
	leaderElect, err := strconv.ParseBool(env("SENSORCAST_LEADER_ELECT", "false"))
	if err != nil {
		return c, fmt.Errorf("SENSORCAST_LEADER_ELECT %q: want true or false", getenv("SENSORCAST_LEADER_ELECT"))
	}
	fs.BoolVar(&c.LeaderElect, "leader-elect", leaderElect, "run leader election, so only one of several replicas acts (SENSORCAST_LEADER_ELECT)")
	fs.StringVar(&c.LeaderElectionNS, "leader-election-namespace", env("SENSORCAST_LEADER_ELECTION_NAMESPACE", ""), "namespace of the leader election Lease (SENSORCAST_LEADER_ELECTION_NAMESPACE; empty: the pod's own)")
	fs.StringVar(&c.LogLevel, "log-level", env("SENSORCAST_LOG_LEVEL", "info"), "log level: debug, info, warn or error (SENSORCAST_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("SENSORCAST_LOG_FORMAT", "json"), "log format: json or text (SENSORCAST_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Interval, err = time.ParseDuration(interval); err != nil || c.Interval < time.Second {
		return c, fmt.Errorf("interval (SENSORCAST_INTERVAL) %q: want a duration of at least 1s", interval)
	}
	if c.Redis, err = redis.ParseURL(c.RedisURL); err != nil {
		return c, fmt.Errorf("redis-url (SENSORCAST_REDIS_URL): %w", err)
	}
	return c, nil
}

func (c config) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("log-level (SENSORCAST_LOG_LEVEL) %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.LogFormat) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)).With("service", "operator", "version", version), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)).With("service", "operator", "version", version), nil
	}
	return nil, fmt.Errorf("log-format (SENSORCAST_LOG_FORMAT) %q: want json or text", c.LogFormat)
}

func (c config) restConfig() (*rest.Config, error) {
	if c.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", c.Kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no kubeconfig given and not in a cluster: %w", err)
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	c, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := c.logger(stderr)
	if err != nil {
		return err
	}
	// controller-runtime and client-go log through logr and klog: both go to slog.
	ctrl.SetLogger(logr.FromSlogHandler(logger.Handler()))
	klog.SetSlogLogger(logger)

	restCfg, err := c.restConfig()
	if err != nil {
		return err
	}
	rdb := redis.NewClient(c.Redis)
	defer rdb.Close()

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("register Kubernetes types: %w", err)
	}
	if err := autoscalingv1alpha1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("register EdgeAutoscaler types: %w", err)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: c.MetricsAddr},
		HealthProbeBindAddress:        c.ProbeAddr,
		LeaderElection:                c.LeaderElect,
		LeaderElectionID:              "sensorcast-operator.autoscaling.sensorcast.io",
		LeaderElectionNamespace:       c.LeaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("redis", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		return rdb.Ping(ctx).Err()
	}); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}

	reconciler := controller.NewEdgeAutoscalerReconciler(mgr.GetClient(), edgeload.NewStore(rdb),
		mgr.GetEventRecorder("sensorcast-operator"), controller.NewMetrics(metrics.Registry),
		controller.Options{Interval: c.Interval})
	if err := reconciler.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("set up controller: %w", err)
	}
	logger.Info("starting operator", "redis", c.Redis.Addr, "interval", c.Interval, "leader_elect", c.LeaderElect)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}
