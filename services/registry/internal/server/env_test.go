package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/internal/pgtest"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
	"github.com/sensorcast/sensorcast/services/registry/internal/memstore"
	"github.com/sensorcast/sensorcast/services/registry/internal/postgres"
	"github.com/sensorcast/sensorcast/services/registry/internal/server"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const secret = "test-secret-of-sufficient-length"

// storeKinds are the stores every API test runs against; changeLog is the
// change log capacity (0: the store's default).
var storeKinds = []struct {
	name string
	open func(t *testing.T, changeLog int) device.Store
}{
	{"memstore", func(t *testing.T, changeLog int) device.Store {
		return memstore.New(memstore.Options{ChangeLogCapacity: changeLog})
	}},
	{"postgres", func(t *testing.T, changeLog int) device.Store {
		s, err := postgres.Open(context.Background(), postgres.Options{URL: pgtest.Shared(t).URL(), ChangeLogCapacity: changeLog})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		t.Cleanup(s.Close)
		return s
	}},
}

// env is a registry server on a store, reached over bufconn.
type env struct {
	client registryv1.DeviceRegistryClient
	conn   *grpc.ClientConn
	store  device.Store
}

// forEachStore runs test once per store kind, each with a server of its own.
func forEachStore(t *testing.T, test func(t *testing.T, e *env)) {
	forEachStoreWithLog(t, 0, test)
}

func forEachStoreWithLog(t *testing.T, changeLog int, test func(t *testing.T, e *env)) {
	for _, sk := range storeKinds {
		t.Run("on "+sk.name, func(t *testing.T) {
			test(t, start(t, sk.open(t, changeLog)))
		})
	}
}

// start serves a registry on store over bufconn until t ends.
func start(t *testing.T, store device.Store) *env {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	e := &env{store: store}
	stop := serve(t, store, ln)
	conn, err := grpc.NewClient("passthrough:///registry",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(server.MaxRecvMsgSize), grpc.MaxCallSendMsgSize(server.MaxRecvMsgSize)),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		stop()
	})
	e.conn = conn
	e.client = registryv1.NewDeviceRegistryClient(conn)
	return e
}

// serve runs the registry's gRPC server on ln; the returned func stops it
// and waits until it has.
func serve(t *testing.T, store device.Store, ln net.Listener) func() {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc := server.New(store, server.Options{Logger: logger, PollInterval: 20 * time.Millisecond})
	auth, err := server.NewAuthenticator([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	g, err := server.NewGRPC(svc, server.GRPCConfig{Auth: auth, Logger: logger, StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	var stopped bool
	return func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// tokenFor mints a token with role for subject.
func tokenFor(t testing.TB, key, subject, role string) string {
	t.Helper()
	tok, err := server.MintToken([]byte(key), subject, role, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// admin returns t's context carrying an admin token.
func admin(t *testing.T) context.Context {
	return metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tokenFor(t, secret, "tester", server.AdminRole))
}

// wantCode fails t unless err has code.
func wantCode(t *testing.T, err error, code codes.Code) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	return st
}

// mustCreateGroup creates groups with the given ids.
func mustCreateGroup(t *testing.T, e *env, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := e.client.CreateGroup(admin(t), &registryv1.CreateGroupRequest{Group: &registryv1.Group{Id: id}}); err != nil {
			t.Fatalf("CreateGroup(%s): %v", id, err)
		}
	}
}

func mustCreateDevice(t *testing.T, e *env, d *registryv1.Device) *registryv1.Device {
	t.Helper()
	resp, err := e.client.CreateDevice(admin(t), &registryv1.CreateDeviceRequest{Device: d})
	if err != nil {
		t.Fatalf("CreateDevice(%s): %v", d.GetId(), err)
	}
	return resp.GetDevice()
}

// checkFor polls cond until it returns nil or timeout passes.
func checkFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkNoGoroutineLeak returns a func that fails t if more goroutines run
// than when checkNoGoroutineLeak was called, after allowing them time to
// end (the way grpc-go's leakcheck does, by count).
func checkNoGoroutineLeak(t *testing.T) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		checkFor(t, 10*time.Second, func() error {
			if n := runtime.NumGoroutine(); n > before {
				buf := make([]byte, 1<<20)
				return errors.New("goroutines leaked: " + string(buf[:runtime.Stack(buf, true)]))
			}
			return nil
		})
	}
}
