package server_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
	"github.com/sensorcast/sensorcast/services/registry/internal/memstore"
)

func TestOverRealTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, memstore.New(memstore.Options{}), ln)
	defer stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	t.Run("health says SERVING without a token", func(t *testing.T) {
		for _, service := range []string{"", registryv1.DeviceRegistry_ServiceDesc.ServiceName} {
			resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("Check(%q) = %v, %v", service, resp, err)
			}
		}
	})
	t.Run("reflection lists the service without a token", func(t *testing.T) {
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !slices.Contains(names, "sensorcast.registry.v1.DeviceRegistry") {
			t.Errorf("services = %q", names)
		}
		_ = stream.CloseSend()
	})
	t.Run("an authorized call succeeds and an unauthorized one does not", func(t *testing.T) {
		client := registryv1.NewDeviceRegistryClient(conn)
		if _, err := client.CreateGroup(admin(t), &registryv1.CreateGroupRequest{Group: &registryv1.Group{Id: "g"}}); err != nil {
			t.Fatal(err)
		}
		resp, err := client.ListGroups(admin(t), &registryv1.ListGroupsRequest{})
		if err != nil || resp.GetTotalSize() != 1 {
			t.Fatalf("ListGroups = %v, %v", resp, err)
		}
		if _, err := client.ListGroups(t.Context(), &registryv1.ListGroupsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("without a token: %v", err)
		}
	})
}

func TestStoppingEndsWatchStreamsAndLeaksNoGoroutines(t *testing.T) {
	check := checkNoGoroutineLeak(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, memstore.New(memstore.Options{}), ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := registryv1.NewDeviceRegistryClient(conn)
	ctx, cancel := context.WithCancel(admin(t))
	var streams []registryv1.DeviceRegistry_WatchChangesClient
	for range 3 {
		s, err := client.WatchChanges(ctx, &registryv1.WatchChangesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	// One stream ends by the client cancelling it...
	cancelOne, stopOne := context.WithCancel(admin(t))
	s, err := client.WatchChanges(cancelOne, &registryv1.WatchChangesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	stopOne()
	if _, err := s.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v", err)
	}
	// ...the others by the server stopping, which must not wait for them.
	stop()
	for _, s := range streams {
		if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("after stop: %v, want UNAVAILABLE", err)
		}
	}
	cancel()
	conn.Close()
	check()
}

// brokenStore panics on GetDevice and fails ListGroups with an error the
// caller cannot act on.
type brokenStore struct{ device.Store }

func (brokenStore) GetDevice(context.Context, string) (device.Device, error) { panic("boom") }

func (brokenStore) ListGroups(context.Context, device.GroupQuery) (device.GroupPage, error) {
	return device.GroupPage{}, errors.New("connection reset by the database at 10.0.0.7")
}

func TestPanicsAndStoreFailuresAreAGenericInternal(t *testing.T) {
	e := start(t, brokenStore{memstore.New(memstore.Options{})})
	_, err := e.client.GetDevice(admin(t), &registryv1.GetDeviceRequest{Id: "d"})
	if st := wantCode(t, err, codes.Internal); st.Message() != "internal error" {
		t.Errorf("message = %q", st.Message())
	}
	_, err = e.client.ListGroups(admin(t), &registryv1.ListGroupsRequest{})
	if st := wantCode(t, err, codes.Internal); strings.Contains(st.Message(), "10.0.0.7") {
		t.Errorf("message leaks the cause: %q", st.Message())
	}
	if _, err := e.client.CreateGroup(admin(t), &registryv1.CreateGroupRequest{Group: &registryv1.Group{Id: "g"}}); err != nil {
		t.Errorf("the server does not serve after a panic: %v", err)
	}
}
