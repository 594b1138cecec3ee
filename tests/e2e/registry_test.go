package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// TestTheRegistryDrivesAdmissionAndGroupRooms runs its own system: a
// registry process (embedded store), Mosquitto, NATS, and one ingest and
// one edge that follow the registry.
func TestTheRegistryDrivesAdmissionAndGroupRooms(t *testing.T) {
	mqtt := harness.StartMosquitto(t)
	natsURL := harness.StartNATS(t).ClientURL()
	reg := sensorcast.StartRegistry(t, "registry", harness.Settings{"NATS_URL": natsURL, "JWT_SECRET": jwtSecret})
	admin := harness.AdminToken(t, jwtSecret)
	api := registryClient(t, reg.GRPCAddr, admin)

	ctx := t.Context()
	must(t, call(api.CreateGroup(ctx, &registryv1.CreateGroupRequest{Group: &registryv1.Group{Id: "g1"}})))
	for _, id := range []string{"d1", "d2"} {
		must(t, call(api.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{Id: id, Enabled: true}})))
	}

	follow := harness.Settings{"NATS_URL": natsURL, "REGISTRY_URL": reg.GRPCAddr, "REGISTRY_TOKEN": admin}
	ingest := sensorcast.StartIngest(t, "ingest-registry", withSettings(follow, harness.Settings{
		"MQTT_URL": mqtt.URL, "MQTT_CLIENT_ID": "e2e-ingest-registry", "MQTT_SHARE_GROUP": "e2e-registry",
	}))
	edge := sensorcast.StartEdge(t, "edge-registry", withSettings(follow, harness.Settings{"JWT_SECRET": jwtSecret}))

	dash := harness.Dial(t, "dashboard", edge.WSURL, harness.Token(t, jwtSecret, "alice", time.Hour, "*"), harness.DialOptions{})
	got := dash.Subscribe(t, "group:g1", "device:d2", "device:ghost", "group:ghost")
	if len(got.Rooms) != 2 || len(got.Rejected) != 2 || got.Rejected[0].Code != "invalid_room" || got.Rejected[1].Code != "invalid_room" {
		t.Fatalf("subscribe: %+v, want group:g1 and device:d2 joined, both ghosts invalid_room", got)
	}

	reading := 0
	publish := func(device string) string {
		reading++
		mark := fmt.Sprintf("r%d", reading)
		mqtt.Publish(t, "devices/"+device+"/telemetry", fmt.Appendf(nil, `{"fields":{"t":1},"tags":{"mark":%q}}`, mark), false)
		return mark
	}
	// awaitMark waits for a room message carrying mark in room.
	awaitMark := func(room, mark string, timeout time.Duration) error {
		_, err := dash.Await(timeout, func(m harness.Message) bool {
			var p struct{ Tags map[string]string }
			_ = json.Unmarshal(m.Payload, &p)
			return m.Room == room && p.Tags["mark"] == mark
		})
		return err
	}

	t.Run("a device added to a group reaches the group's room within a second", func(t *testing.T) {
		must(t, call(api.UpdateDevice(ctx, &registryv1.UpdateDeviceRequest{
			Device:     &registryv1.Device{Id: "d1", Groups: []string{"g1"}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"groups"}},
		})))
		start := time.Now()
		harness.Eventually(t, 5*time.Second, func() error { return awaitMark("group:g1", publish("d1"), 300*time.Millisecond) })
		t.Logf("membership took effect within %s", time.Since(start).Round(10*time.Millisecond))
	})

	t.Run("a disabled device's readings stop reaching dashboards", func(t *testing.T) {
		must(t, call(api.UpdateDevice(ctx, &registryv1.UpdateDeviceRequest{
			Device:     &registryv1.Device{Id: "d2", Enabled: false},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"enabled"}},
		})))
		// Wait until ingest refuses d2, then check that nothing of d2 gets
		// through while d1 still does.
		harness.Eventually(t, 5*time.Second, func() error {
			publish("d2")
			if n := harness.Scrape(t, ingest.AdminURL+"/metrics").Value("sensorcast_ingest_rejected_total", "reason", "disabled_device"); n < 1 {
				return errors.New("ingest has not refused d2 yet")
			}
			return nil
		})
		dash.TakeAll()
		blocked, allowed := publish("d2"), publish("d1")
		if err := awaitMark("group:g1", allowed, 5*time.Second); err != nil {
			t.Fatalf("d1's reading did not arrive: %v", err)
		}
		for _, m := range dash.TakeAll() {
			if m.Room == "device:d2" {
				t.Errorf("a reading of disabled d2 arrived: %s (blocked mark %s)", m.Payload, blocked)
			}
		}
	})

	t.Run("an unknown device is counted and dropped", func(t *testing.T) {
		publish("stranger")
		harness.Eventually(t, 5*time.Second, func() error {
			if harness.Scrape(t, ingest.AdminURL+"/metrics").Value("sensorcast_ingest_rejected_total", "reason", "unknown_device") < 1 {
				return errors.New("not counted yet")
			}
			return nil
		})
	})
}

func registryClient(t *testing.T, addr, token string) registryv1.DeviceRegistryClient {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return registryv1.NewDeviceRegistryClient(conn)
}

// call drops an RPC's response, keeping its error.
func call[T any](_ T, err error) error { return err }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func withSettings(base, more harness.Settings) harness.Settings {
	out := maps.Clone(base)
	maps.Copy(out, more)
	return out
}
