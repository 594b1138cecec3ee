package ingest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/mqtttest"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
)

func TestIngestConfiguresTheRoomStreamAndStoresEveryRoomMessage(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, _ := mqtttest.Start(t)
	nc := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// A stream left by an earlier configuration: ingest updates it.
	if err := roomstream.Ensure(ctx, nc, roomstream.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(mqttURL, "ingest-a")
	cfg.Retention = roomstream.Retention{MaxAge: 2 * time.Hour, MaxPerRoom: 50, MaxBytes: 1 << 20, Replicas: 1}
	in, _ := startIngestConfig(t, ns.ClientURL(), cfg)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, envelopev1.RoomStream)
	if err != nil {
		t.Fatalf("the room stream: %v", err)
	}
	got := stream.CachedInfo().Config
	if got.MaxAge != 2*time.Hour || got.MaxMsgsPerSubject != 50 || got.MaxBytes != 1<<20 ||
		got.Replicas != 1 || got.Storage != jetstream.FileStorage {
		t.Errorf("stream kept max age %v, %d per subject, %d bytes, %d replicas, storage %v; want the configured retention",
			got.MaxAge, got.MaxMsgsPerSubject, got.MaxBytes, got.Replicas, got.Storage)
	}

	dev, _ := device(t, mqttURL, "sensor-007", nil)
	publish(t, dev, "devices/sensor-007/telemetry", `{"fields": {"t": 1}}`, nil)
	waitFor(t, 5*time.Second, "the reading to be published", func() bool {
		return counter(t, in.reg, "sensorcast_ingest_messages_total", "kind=telemetry") == 1
	})
	// Confirmed means stored: the stream holds it now, once per room.
	msgs, _, err := roomstream.NewReader(nc).After(ctx, envelopev1.RoomSubjectWildcard, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sensorcast.room.device.sensor-007.telemetry", "sensorcast.room.global.telemetry"}
	if len(msgs) != len(want) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if m.Subject != want[i] {
			t.Errorf("stored message %d on %s, want %s", i, m.Subject, want[i])
		}
		if !bytes.Equal(m.Data, msgs[0].Data) {
			t.Errorf("stored message %d differs from the first: one envelope for all rooms", i)
		}
	}
}

func TestIngestConfiguresTheStreamAgainWhenItIsLost(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, broker := mqtttest.Start(t)
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-a")
	sub := subscribe(t, in.nc, deviceSubject("sensor-008"))
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	// As a stream in memory is lost when NATS restarts.
	if err := js.DeleteStream(t.Context(), envelopev1.RoomStream); err != nil {
		t.Fatal(err)
	}

	dev, _ := device(t, mqttURL, "sensor-008", nil)
	publish(t, dev, "devices/sensor-008/telemetry", `{"fields": {"t": 8}}`, nil)
	if env, _ := next(t, sub); env.GetTelemetry().GetDeviceId() != "sensor-008" {
		t.Fatalf("got %v, want the reading of sensor-008", env)
	}
	waitFor(t, 5*time.Second, "the broker to have the message acknowledged", func() bool {
		cl, ok := broker.Clients.Get("ingest-a")
		return ok && cl.State.Inflight.Len() == 0
	})
	if got := counter(t, in.reg, "sensorcast_ingest_publish_errors_total"); got == 0 {
		t.Error("publish_errors_total = 0 although the stream was missing")
	}
	waitFor(t, 5*time.Second, "ingest ready again", func() bool { return in.svc.Ready() == nil })
}

func TestRunWithoutJetStreamIsNotReadyAndStopsCleanly(t *testing.T) {
	checkGoroutineLeaks(t)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	mqttURL, broker := mqtttest.Start(t)
	svc, err := ingest.New(testConfig(mqttURL, "ingest-a"), nc, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	if err := svc.Ready(); err == nil || !strings.Contains(err.Error(), "room stream") {
		t.Errorf("Ready() = %v without JetStream, want an error about the room stream", err)
	}
	if _, ok := broker.Clients.Get("ingest-a"); ok {
		t.Error("ingest connected to MQTT before the room stream existed")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
