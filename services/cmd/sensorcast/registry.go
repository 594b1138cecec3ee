package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/internal/natsconn"
	"github.com/sensorcast/sensorcast/services/internal/registryclient"
	"github.com/sensorcast/sensorcast/services/internal/simulator"
	"github.com/sensorcast/sensorcast/services/registry"
)

func runRegistry(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var (
		cfg       registry.Config
		adminAddr string
	)
	c, logger, err := setupService(ctx, "registry", args, getenv, stderr, func(fs *flag.FlagSet) {
		cfg.RegisterFlags(fs)
		fs.StringVar(&adminAddr, "admin-addr", ":9092", "address for /metrics, /healthz and /readyz")
	}, func() error { return cfg.Validate() })
	if err != nil {
		return err
	}
	defer c.closeTracing(logger)
	// Listen first so a port already in use fails before anything starts.
	grpcLn, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc-addr (SENSORCAST_GRPC_ADDR): %w", err)
	}
	defer grpcLn.Close()
	adminLn, err := net.Listen("tcp", adminAddr)
	if err != nil {
		return fmt.Errorf("admin-addr (SENSORCAST_ADMIN_ADDR): %w", err)
	}
	defer adminLn.Close()

	nc, err := natsconn.Connect(ctx, c.NATSURL, "sensorcast-registry", logger)
	if err != nil {
		return err
	}
	defer nc.Close()

	reg := newRegistry()
	reg.MustRegister(natsconn.NewCollector(nc))
	svc, err := registry.New(ctx, cfg, registry.Deps{NATS: nc, Logger: logger, Registry: reg})
	if err != nil {
		return err
	}
	defer svc.Close()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeStatus(w, nil) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { writeStatus(w, svc.Ready(r.Context())) })

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(gctx, grpcLn) })
	g.Go(func() error { return serveHTTP(gctx, adminLn, mux, logger) })
	return g.Wait()
}

// simulatedGroup is the group `sensorcast run` puts the simulated devices in.
const simulatedGroup = "simulated"

// demoDevice is registered by `run` for the README's first mosquitto_pub.
const demoDevice = "my-esp32"

// registerDemoFleet registers, through the API, the simulated devices (in
// group simulatedGroup) and demoDevice: ingest admits only known devices.
func registerDemoFleet(ctx context.Context, addr, token string, sim simulator.Config) error {
	conn, client, err := registryclient.Dial(registryclient.Config{URL: addr, Token: token})
	if err != nil {
		return fmt.Errorf("register the demo devices: %w", err)
	}
	defer conn.Close()

	_, err = client.CreateGroup(ctx, &registryv1.CreateGroupRequest{Group: &registryv1.Group{
		Id:          simulatedGroup,
		DisplayName: "Simulated devices",
		Description: "The devices of sensorcast run's simulator.",
	}}, grpc.WaitForReady(true))
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("register the demo devices: create group %q: %w", simulatedGroup, err)
	}
	var devices []*registryv1.Device
	for _, m := range simulator.Fleet(sim) {
		devices = append(devices, &registryv1.Device{
			Id:          m.ID,
			DisplayName: "Simulated " + m.ID,
			Type:        simulator.Model,
			Groups:      []string{simulatedGroup},
			Labels:      map[string]string{"site": m.Site},
			Enabled:     true,
		})
	}
	// The demo device goes last: `run` waits for it to reach the cache.
	devices = append(devices, &registryv1.Device{Id: demoDevice, DisplayName: "Your first device", Enabled: true})
	if _, err := client.BatchUpsertDevices(ctx, &registryv1.BatchUpsertDevicesRequest{Devices: devices}); err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err()
		}
		return fmt.Errorf("register the demo devices: %w", err)
	}
	// A rule the simulated devices trip now and then, so alerts show up.
	_, err = client.CreateAlertRule(ctx, &registryv1.CreateAlertRuleRequest{AlertRule: &registryv1.AlertRule{
		Id:        demoRule,
		Name:      "door left open",
		Target:    &registryv1.AlertRule_GroupId{GroupId: simulatedGroup},
		Field:     "door_open",
		Operator:  registryv1.Operator_OPERATOR_EQ,
		Threshold: 1,
		Severity:  registryv1.Severity_SEVERITY_WARNING,
		Hold:      durationpb.New(10 * time.Second),
		Enabled:   true,
	}})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("register the demo alert rule: %w", err)
	}
	return nil
}

// demoRule is the id of the demo fleet's alert rule.
const demoRule = "rule-demo-door-open"
