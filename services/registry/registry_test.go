package registry_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/internal/registryclient"
	"github.com/sensorcast/sensorcast/services/registry"
)

func TestAChangeMadeThroughTheAPIIsAnnouncedOnNATS(t *testing.T) {
	ns := natstest.Start(t)
	sub, err := natstest.Connect(t, ns).SubscribeSync(registryv1.ChangesSubject)
	if err != nil {
		t.Fatal(err)
	}
	cfg, addr, stop := startRegistry(t, ns)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	token, err := registry.MintToken(cfg.JWTSecret, "admin", registry.AdminRole, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	callCtx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
	_, err = registryv1.NewDeviceRegistryClient(conn).CreateDevice(callCtx,
		&registryv1.CreateDeviceRequest{Device: &registryv1.Device{Id: "d1", Enabled: true}}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var c registryv1.Change
	if err := proto.Unmarshal(msg.Data, &c); err != nil || c.GetId() != "d1" || c.GetSequence() != 1 {
		t.Fatalf("announced %v, %v", &c, err)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	err := registry.Config{GRPCAddr: ":0", JWTSecret: "short", PollInterval: time.Hour}.Validate()
	for _, want := range []string{"SENSORCAST_JWT_SECRET", "SENSORCAST_POLL_INTERVAL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
}

func TestAServiceWithTheTokenSecretMintsItsOwnTokens(t *testing.T) {
	cfg, addr, stop := startRegistry(t, natstest.Start(t))
	defer stop()

	for _, tc := range []struct {
		name   string
		secret string
		ok     bool
	}{
		{"the registry's secret", cfg.JWTSecret, true},
		{"another secret", "fedcba9876543210", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, client, err := registryclient.Dial(registryclient.Config{URL: addr, TokenSecret: tc.secret})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = client.ListDevices(t.Context(), &registryv1.ListDevicesRequest{}, grpc.WaitForReady(true))
			if tc.ok && err != nil {
				t.Fatalf("ListDevices: %v", err)
			}
			if !tc.ok && status.Code(err) != codes.Unauthenticated {
				t.Fatalf("ListDevices with a wrong secret: %v, want Unauthenticated", err)
			}
		})
	}
}

// startRegistry serves a registry (embedded store) on a free port until stop,
// which returns what Run returned.
func startRegistry(t *testing.T, ns *server.Server) (cfg registry.Config, addr string, stop func() error) {
	t.Helper()
	cfg = registry.Config{GRPCAddr: "127.0.0.1:0", JWTSecret: "0123456789abcdef", PollInterval: 50 * time.Millisecond}
	svc, err := registry.New(t.Context(), cfg, registry.Deps{NATS: natstest.Connect(t, ns)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	ln, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, ln) }()
	if err := svc.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return cfg, ln.Addr().String(), stop
}
