package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	mqttauth "github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/sensorcast/sensorcast/services/edge"
	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/envflag"
	"github.com/sensorcast/sensorcast/services/internal/natsconn"
	"github.com/sensorcast/sensorcast/services/internal/registryclient"
	"github.com/sensorcast/sensorcast/services/internal/simulator"
	"github.com/sensorcast/sensorcast/services/registry"
)

// runStandalone runs the whole system in one process with embedded NATS and
// MQTT servers, so a newcomer needs nothing but this binary.
func runStandalone(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	var c common
	c.registerLog(fs, "text")
	var edgeCfg edge.Config
	edgeCfg.RegisterFlags(fs)
	setDefault(fs, "http-addr", "127.0.0.1:8080")
	setDefault(fs, "pod-name", "standalone")
	setDefault(fs, "nats-conns", "1")
	var (
		mqttAddr string
		grpcAddr string
		dataDir  string
		sim      simulator.Config
	)
	fs.StringVar(&mqttAddr, "mqtt-addr", "127.0.0.1:1883", "address of the embedded MQTT broker")
	fs.StringVar(&grpcAddr, "grpc-addr", "127.0.0.1:9090", "address of the device registry's gRPC API")
	fs.StringVar(&dataDir, "data-dir", "", "where the embedded NATS keeps retained room messages, so clients resume across restarts (empty: a temporary directory, removed at exit)")
	fs.IntVar(&sim.Devices, "devices", 20, "simulated devices (0 disables the simulator)")
	fs.DurationVar(&sim.Interval, "interval", time.Second, "telemetry interval of each simulated device")
	fs.IntVar(&sim.WebSocketDevices, "ws-devices", 2, "simulated devices that speak WebSocket to the edge instead of MQTT")
	if err := envflag.Parse(fs, args, getenv); err != nil {
		return err
	}
	logger, err := c.logger(stderr, "standalone")
	if err != nil {
		return err
	}
	if err := c.startTracing(ctx, getenv, "sensorcast"); err != nil {
		return err
	}
	defer c.closeTracing(logger)
	if edgeCfg.JWTSecret == "" && edgeCfg.JWTPublicKeys == "" && edgeCfg.JWKSURL == "" {
		edgeCfg.JWTSecret = edge.DevSecret
		logger.Warn("SENSORCAST_JWT_SECRET is not set: using the public development secret; never expose this server")
	}
	if err := edgeCfg.Validate(); err != nil {
		return err
	}

	// Listen first so a port already in use fails before anything starts.
	httpLn, err := net.Listen("tcp", edgeCfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http-addr (SENSORCAST_HTTP_ADDR): %w", err)
	}
	defer httpLn.Close() // closing twice after the edge closed it is harmless
	grpcLn, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return fmt.Errorf("grpc-addr (SENSORCAST_GRPC_ADDR): %w", err)
	}
	defer grpcLn.Close()
	broker, err := startBroker(mqttAddr, logger)
	if err != nil {
		return err
	}
	defer broker.Close()
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "sensorcast-run-"); err != nil {
			return fmt.Errorf("data-dir: %w", err)
		}
		defer os.RemoveAll(dataDir)
	}
	ns, err := startNATS(dataDir)
	if err != nil {
		return err
	}
	defer ns.Shutdown()

	inProcess := nats.InProcessServer(ns)
	ingestNC, err := natsconn.Connect(ctx, "", "sensorcast-ingest", logger, inProcess)
	if err != nil {
		return err
	}
	defer ingestNC.Close()
	edgeConns, err := connectNATS(ctx, "", "sensorcast-edge", edgeCfg.NATSConns, logger, inProcess)
	if err != nil {
		return err
	}
	defer closeAll(edgeConns)
	registryNC, err := natsconn.Connect(ctx, "", "sensorcast-registry", logger, inProcess)
	if err != nil {
		return err
	}
	defer registryNC.Close()

	reg := newRegistry()
	reg.MustRegister(natsconn.NewCollector(append([]*nats.Conn{ingestNC, registryNC}, edgeConns...)...))
	regCfg, err := standaloneRegistryConfig(grpcAddr, edgeCfg.JWTSecret)
	if err != nil {
		return err
	}
	registrySvc, err := registry.New(ctx, regCfg, registry.Deps{NATS: registryNC, Logger: logger.With("component", "registry"), Registry: reg})
	if err != nil {
		return err
	}
	defer registrySvc.Close()
	adminToken, err := registry.MintToken(regCfg.JWTSecret, "admin", registry.AdminRole, 24*time.Hour)
	if err != nil {
		return err
	}
	// ingest and edge follow the registry over its real gRPC listener, as
	// they would in a cluster: one cache serves both.
	cache, registryAPI, closeCache, err := openDeviceCache(registryclient.Config{URL: grpcLn.Addr().String(), Token: adminToken}, logger, reg)
	if err != nil {
		return err
	}
	defer closeCache()

	var ingestCfg ingest.Config
	ingestFlags := newFlagSet("ingest", stderr)
	ingestCfg.RegisterFlags(ingestFlags)
	ingestCfg.MQTTURL = "mqtt://" + mqttAddr
	ingestCfg.MQTTClientID = "sensorcast-ingest-standalone"
	ingestSvc, err := ingest.New(ingestCfg, ingestNC, logger.With("component", "ingest"), reg, ingest.WithDevices(cache), ingest.WithSubscriptionQoS(0))
	if err != nil {
		return err
	}
	edgeSvc, err := edge.New(ctx, edgeCfg, edge.Deps{NATS: edgeConns, Catalog: cache, Directory: cache, DeviceSecrets: registryAPI, Logger: logger.With("component", "edge"), Registry: reg})
	if err != nil {
		return err
	}

	token, err := edge.MintToken(edgeCfg.JWTSecret, "dev", []string{"global", "device:*", "group:*"}, []string{"device:*", "group:*"}, 24*time.Hour)
	if err != nil {
		return err
	}
	printBanner(stdout, httpLn.Addr().String(), mqttAddr, token, edgeCfg.JWTSecret == edge.DevSecret)
	printRegistryBanner(stdout, grpcLn.Addr().String(), adminToken)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return registrySvc.Run(gctx, grpcLn) })
	g.Go(func() error { return cache.Run(gctx) })
	sim.BrokerURL = "mqtt://" + mqttAddr
	sim.Prefix = "sim-"
	sim.WebSocketURL = "ws://" + httpLn.Addr().String() + edge.DeviceWSPath
	sim.Token = deviceTokens(edgeCfg.JWTSecret)
	if edgeCfg.JWTSecret == "" && sim.WebSocketDevices > 0 {
		logger.Warn("no jwt-secret to mint device tokens with: the simulator's WebSocket devices are off")
		sim.WebSocketDevices = 0
	}
	g.Go(func() error {
		// The registry keeps devices in memory: the demo fleet is
		// registered at every start, and reaches the cache before the edge
		// serves. Otherwise dashboards reconnecting at once after a restart
		// would be told their devices do not exist, and give those rooms
		// up. (Connections made meanwhile wait in the listener's backlog.)
		if err := registerDemoFleet(gctx, grpcLn.Addr().String(), adminToken, sim); err != nil {
			if gctx.Err() != nil {
				return gctx.Err() // stopping, or another goroutine's failure says why
			}
			return err
		}
		for {
			if _, known := cache.Lookup(demoDevice); known {
				break
			}
			select {
			case <-gctx.Done():
				return gctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		g.Go(func() error { return edgeSvc.Run(gctx, httpLn) })
		g.Go(func() error { return ingestSvc.Run(gctx) })
		// Start the devices once ingest holds its subscriptions: a broker
		// does not hand retained messages to a new shared subscription, so
		// a device's first status would be lost.
		for gctx.Err() == nil && ingestSvc.Ready() != nil {
			time.Sleep(20 * time.Millisecond)
		}
		if sim.Devices == 0 && sim.WebSocketDevices == 0 {
			return nil
		}
		return simulator.Run(gctx, sim, logger.With("component", "simulator"))
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// standaloneRegistryConfig returns the in-process registry's settings: the
// embedded store, and the dashboards' HS256 secret for its tokens, or a
// random one of this process when dashboards use public keys only.
func standaloneRegistryConfig(grpcAddr, jwtSecret string) (registry.Config, error) {
	if jwtSecret == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return registry.Config{}, err
		}
		jwtSecret = hex.EncodeToString(b)
	}
	return registry.Config{
		GRPCAddr:     grpcAddr,
		JWTSecret:    jwtSecret,
		PollInterval: registry.DefaultPollInterval,
		StopTimeout:  registry.DefaultStopTimeout,
	}, nil
}

func printRegistryBanner(w io.Writer, grpcAddr, adminToken string) {
	fmt.Fprintf(w, `Device registry (gRPC, in memory; the simulated devices are in group %[3]q):
  grpcurl -plaintext -H 'authorization: Bearer %[2]s' %[1]s sensorcast.registry.v1.DeviceRegistry/ListDevices
  grpcurl -plaintext %[1]s list        (reflection and health need no token)
  (that token: sub "admin", role "admin", valid 24h; mint more with: sensorcast token --sub me --role admin)

`, grpcAddr, adminToken, simulatedGroup)
}

// startNATS runs the embedded NATS server with JetStream storing in dir.
func startNATS(dir string) (*natsserver.Server, error) {
	ns, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "sensorcast-standalone",
		DontListen: true, // in-process connections only
		NoSigs:     true,
		NoLog:      true,
		JetStream:  true,
		StoreDir:   dir,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats did not start within 10s")
	}
	return ns, nil
}

func startBroker(addr string, logger *slog.Logger) (*mqtt.Server, error) {
	broker := mqtt.New(&mqtt.Options{
		InlineClient: false,
		Logger:       slog.New(levelFilter{logger.With("component", "mqtt-broker").Handler(), slog.LevelWarn}),
	})
	if err := broker.AddHook(new(mqttauth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedded mqtt broker: %w", err)
	}
	if err := broker.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, fmt.Errorf("mqtt-addr (SENSORCAST_MQTT_ADDR) %s: %w", addr, err)
	}
	if err := broker.Serve(); err != nil {
		return nil, fmt.Errorf("embedded mqtt broker: %w", err)
	}
	return broker, nil
}

// levelFilter keeps a chatty library's logs at or above a level.
type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func printBanner(w io.Writer, httpAddr, mqttAddr, token string, devSecret bool) {
	ws := fmt.Sprintf("ws://%s/api/v1/ws?token=%s", httpAddr, token)
	fmt.Fprintf(w, `
Sensorcast is running (standalone: embedded NATS and MQTT broker, simulated devices).

  Dashboard:  http://%[1]s/#token=%[2]s
  WebSocket:  %[3]s
  MQTT:       mqtt://%[4]s
  Dev token:  %[2]s
              (user "dev", may watch global, device:*, group:* and command device:*, group:*; valid 24h)

Try it:
  websocat '%[3]s'
    then send: {"type":"subscribe","payload":{"rooms":["global"]}}
    or:        {"type":"command","request_id":"c1","payload":{"device_id":"sim-001","name":"blink","params":{"times":3}}}
  mosquitto_pub -h %[5]s -p %[6]s -t devices/my-esp32/telemetry -m '{"fields":{"temperature":21.5}}'
  sensorcast token --sub alice --rooms 'global,device:*'   (mint more tokens)

Devices over WebSocket (sim-ws-001 and sim-ws-002 are simulated that way):
  websocat "ws://%[1]s/api/v1/device/ws?token=$(sensorcast token --device-id my-esp32)"
    then send: {"type":"telemetry","payload":{"fields":{"temperature":21.5}}}

`, httpAddr, token, ws, mqttAddr, host(mqttAddr), port(mqttAddr))
	if devSecret {
		fmt.Fprintln(w, "  Tokens are signed with the public development secret: set SENSORCAST_JWT_SECRET for anything real.")
		fmt.Fprintln(w)
	}
}

func host(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil || h == "" {
		return "127.0.0.1"
	}
	return h
}

func port(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}
