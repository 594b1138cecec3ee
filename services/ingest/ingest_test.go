package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"github.com/sensorcast/sensorcast/services/internal/mqtttest"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/internal/room"
	"google.golang.org/protobuf/proto"
)

const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "congo=t61rcWkgMzE"
)

// Subscribers see room messages once the stream has stored them, on the
// live subjects it republishes them to, as edges do.
var (
	globalSubject = envelopev1.LiveFilter(room.Global)
	deviceSubject = func(id string) string { return envelopev1.LiveFilter(room.Device(id)) }
)

// next returns the next envelope on sub, decoded, with its message.
func next(t *testing.T, sub *nats.Subscription) (*envelopev1.Envelope, *nats.Msg) {
	t.Helper()
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("waiting on %s: %v", sub.Subject, err)
	}
	var env envelopev1.Envelope
	if err := proto.Unmarshal(m.Data, &env); err != nil {
		t.Fatalf("envelope on %s: %v", m.Subject, err)
	}
	return &env, m
}

func expectNothing(t *testing.T, sub *nats.Subscription, within time.Duration) {
	t.Helper()
	if m, err := sub.NextMsg(within); err == nil {
		t.Fatalf("unexpected message on %s: %q", m.Subject, m.Data)
	}
}

func TestTelemetryReachesTheDeviceAndGlobalRooms(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, _ := mqtttest.Start(t)
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-a")
	devSub := subscribe(t, in.nc, deviceSubject("sensor-001"))
	globalSub := subscribe(t, in.nc, globalSubject)

	dev, _ := device(t, mqttURL, "sensor-001", nil)
	publish(t, dev, "devices/sensor-001/telemetry",
		`{"fields": {"temperature": 28.7, "door_open": true, "mode": "eco"}, "tags": {"site": "a"}, "timestamp": "2025-01-02T03:04:05Z"}`,
		&paho.PublishProperties{User: paho.UserProperties{{Key: "traceparent", Value: traceparent}, {Key: "tracestate", Value: tracestate}}})

	devEnv, devMsg := next(t, devSub)
	globalEnv, globalMsg := next(t, globalSub)
	if !bytes.Equal(devMsg.Data, globalMsg.Data) {
		t.Error("the device and global rooms got different bytes; the envelope should be encoded once")
	}
	if !proto.Equal(devEnv, globalEnv) {
		t.Errorf("envelopes differ:\n%v\n%v", devEnv, globalEnv)
	}
	if devEnv.GetId() == "" || devEnv.GetIngestedAt() == nil {
		t.Errorf("envelope lacks id or ingested_at: %v", devEnv)
	}
	want := &envelopev1.Telemetry{
		DeviceId:  "sensor-001",
		Timestamp: devEnv.GetTelemetry().GetTimestamp(),
		Fields: map[string]*envelopev1.FieldValue{
			"temperature": {Kind: &envelopev1.FieldValue_Number{Number: 28.7}},
			"door_open":   {Kind: &envelopev1.FieldValue_Flag{Flag: true}},
			"mode":        {Kind: &envelopev1.FieldValue_Text{Text: "eco"}},
		},
		Tags: map[string]string{"site": "a"},
	}
	if !proto.Equal(devEnv.GetTelemetry(), want) {
		t.Errorf("telemetry = %v, want %v", devEnv.GetTelemetry(), want)
	}
	if got := devEnv.GetTelemetry().GetTimestamp().AsTime(); !got.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("timestamp = %v, want the device's", got)
	}
	for _, c := range []struct {
		m             *nats.Msg
		subject, room string
	}{
		{devMsg, "sensorcast.live.device.sensor-001.telemetry", "device:sensor-001"},
		{globalMsg, "sensorcast.live.global.telemetry", "global"},
	} {
		m := c.m
		if m.Subject != c.subject {
			t.Errorf("got %s, want %s", m.Subject, c.subject)
		}
		if got := m.Header.Get("traceparent"); got != traceparent {
			t.Errorf("%s: traceparent header = %q, want %q", m.Subject, got, traceparent)
		}
		if got := m.Header.Get("tracestate"); got != tracestate {
			t.Errorf("%s: tracestate header = %q, want %q", m.Subject, got, tracestate)
		}
		// One id per envelope and room: the rooms' copies are different
		// messages to JetStream, and a retried one is the same.
		if got, want := m.Header.Get(envelopev1.HeaderMsgID), devEnv.GetId()+":"+c.room; got != want {
			t.Errorf("%s: %s header = %q, want %q", m.Subject, envelopev1.HeaderMsgID, got, want)
		}
		if m.Header.Get(envelopev1.HeaderSequence) == "" {
			t.Errorf("%s: no %s header: not republished by the stream", m.Subject, envelopev1.HeaderSequence)
		}
	}
	waitFor(t, 5*time.Second, "messages_total to count it", func() bool {
		return counter(t, in.reg, "sensorcast_ingest_messages_total", "kind=telemetry") == 1
	})
	if got := counter(t, in.reg, "sensorcast_ingest_mqtt_connected"); got != 1 {
		t.Errorf("mqtt_connected = %v, want 1", got)
	}
}

func TestStatusAndLastWillBecomeDeviceStatus(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, _ := mqtttest.Start(t)
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-a")
	sub := subscribe(t, in.nc, deviceSubject("sensor-002"))

	dev, conn := device(t, mqttURL, "sensor-002", &paho.WillMessage{
		Topic: "devices/sensor-002/status", QoS: 1, Retain: true, Payload: []byte(`{"status": "offline"}`),
	})
	publish(t, dev, "devices/sensor-002/status", `{"status": "online"}`, nil)
	env, m := next(t, sub)
	if got := env.GetDeviceStatus(); got.GetDeviceId() != "sensor-002" || got.GetStatus() != envelopev1.Status_STATUS_ONLINE || got.GetTimestamp() == nil {
		t.Errorf("first status = %v, want sensor-002 online with a timestamp", got)
	}
	if m.Subject != "sensorcast.live.device.sensor-002.device_status" {
		t.Errorf("status on %s, want sensorcast.live.device.sensor-002.device_status", m.Subject)
	}
	if m.Header.Get("traceparent") != "" {
		t.Errorf("traceparent header %q set without one from the device", m.Header.Get("traceparent"))
	}

	conn.Close() // the device vanishes: the broker publishes its will
	env, _ = next(t, sub)
	if got := env.GetDeviceStatus(); got.GetDeviceId() != "sensor-002" || got.GetStatus() != envelopev1.Status_STATUS_OFFLINE {
		t.Errorf("status after the device vanished = %v, want sensor-002 offline", got)
	}
	waitFor(t, 5*time.Second, "messages_total to count both", func() bool {
		return counter(t, in.reg, "sensorcast_ingest_messages_total", "kind=status") == 2
	})
}

func TestBadMessagesAreCountedAcknowledgedAndDoNotStallGoodOnes(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, broker := mqtttest.Start(t)
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-a")
	sub := subscribe(t, in.nc, globalSubject)
	dev, _ := device(t, mqttURL, "sensor-003", nil)

	bad := []struct{ topic, payload string }{
		{"devices/sensor-003/telemetry", `not json`},
		{"devices/sensor-003/telemetry", `{"fields": {"t": [1]}}`},
		{"devices/sensor-003/telemetry", `{"fields": {"t": 1}, "pad": "` + strings.Repeat("x", devicemsg.MaxPayloadBytes) + `"}`},
		{"devices/sensor.003/telemetry", `{"fields": {"t": 1}}`},
		{"devices/sensor-003/status", `{"status": "sleeping"}`},
	}
	for range 20 { // enough to exceed any in-flight window if they were never acknowledged
		for _, b := range bad {
			publish(t, dev, b.topic, b.payload, nil)
		}
	}
	publish(t, dev, "devices/sensor-003/telemetry", `{"fields": {"t": 1}}`, nil)

	env, _ := next(t, sub)
	if got := env.GetTelemetry().GetFields()["t"].GetNumber(); got != 1 {
		t.Fatalf("first envelope = %v, want the good telemetry", env)
	}
	expectNothing(t, sub, 200*time.Millisecond)
	for reason, want := range map[devicemsg.Reason]float64{
		devicemsg.ReasonInvalidJSON:      20,
		devicemsg.ReasonInvalidFieldType: 20,
		devicemsg.ReasonTooLarge:         20,
		devicemsg.ReasonInvalidDeviceID:  20,
		devicemsg.ReasonInvalidStatus:    20,
	} {
		if got := counter(t, in.reg, "sensorcast_ingest_rejected_total", "reason="+string(reason)); got != want {
			t.Errorf("rejected_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	waitFor(t, 5*time.Second, "the broker to have every message acknowledged", func() bool {
		cl, ok := broker.Clients.Get("ingest-a")
		return ok && cl.State.Inflight.Len() == 0
	})
}

func TestMessagesWaitUnacknowledgedWhileNATSIsDown(t *testing.T) {
	checkGoroutineLeaks(t)
	storeDir := t.TempDir()
	ns := natstest.StartOnPort(t, -1, storeDir)
	port := ns.Addr().(*net.TCPAddr).Port
	mqttURL, broker := mqtttest.Start(t)
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-a")
	// Subscribed on ingest's own connection, so the subscription is back
	// on the new server before ingest may publish there.
	sub := subscribe(t, in.nc, deviceSubject("sensor-004"))
	dev, _ := device(t, mqttURL, "sensor-004", nil)

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, 5*time.Second, "ingest to notice NATS is gone", func() bool { return in.svc.Ready() != nil })
	for i := range 3 {
		publish(t, dev, "devices/sensor-004/telemetry", fmt.Sprintf(`{"fields": {"n": %d}}`, i), nil)
	}
	time.Sleep(300 * time.Millisecond) // time in which a wrong implementation would acknowledge
	cl, ok := broker.Clients.Get("ingest-a")
	if !ok {
		t.Fatal("broker does not know ingest-a")
	}
	if got := cl.State.Inflight.Len(); got != 3 {
		t.Fatalf("broker has %d unacknowledged messages for ingest while NATS is down, want 3", got)
	}
	if got := counter(t, in.reg, "sensorcast_ingest_publish_errors_total"); got == 0 {
		t.Error("publish_errors_total = 0 while NATS is down")
	}

	natstest.StartOnPort(t, port, storeDir) // the same storage: the stream survives
	for i := range 3 {
		env, _ := next(t, sub)
		if got := env.GetTelemetry().GetFields()["n"].GetNumber(); got != float64(i) {
			t.Fatalf("message %d after NATS returned has n=%v", i, got)
		}
	}
	waitFor(t, 5*time.Second, "the broker to have the messages acknowledged", func() bool {
		return cl.State.Inflight.Len() == 0
	})
	waitFor(t, 5*time.Second, "ingest ready again", func() bool { return in.svc.Ready() == nil })
}

func TestTwoInstancesShareTheStream(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, _ := mqtttest.Start(t)
	a := startIngest(t, ns.ClientURL(), mqttURL, "ingest-a")
	b := startIngest(t, ns.ClientURL(), mqttURL, "ingest-b")
	sub := subscribe(t, a.nc, globalSubject)
	dev, _ := device(t, mqttURL, "sensor-005", nil)

	const n = 60
	for i := range n {
		publish(t, dev, "devices/sensor-005/telemetry", fmt.Sprintf(`{"fields": {"n": %d}}`, i), nil)
	}
	seen := map[float64]bool{}
	for range n {
		env, _ := next(t, sub)
		v := env.GetTelemetry().GetFields()["n"].GetNumber()
		if seen[v] {
			t.Fatalf("message n=%v delivered twice", v)
		}
		seen[v] = true
	}
	expectNothing(t, sub, 300*time.Millisecond)
	countA := counter(t, a.reg, "sensorcast_ingest_messages_total", "kind=telemetry")
	countB := counter(t, b.reg, "sensorcast_ingest_messages_total", "kind=telemetry")
	if countA+countB != n || countA == 0 || countB == 0 {
		t.Errorf("instances handled %v and %v messages; want a split of %d with both taking part", countA, countB, n)
	}
}

func TestARestartedInstanceGetsBackWhatItHadNotAcknowledged(t *testing.T) {
	checkGoroutineLeaks(t)
	storeDir := t.TempDir()
	ns := natstest.StartOnPort(t, -1, storeDir)
	port := ns.Addr().(*net.TCPAddr).Port
	mqttURL, broker := mqtttest.Start(t)
	dev, _ := device(t, mqttURL, "sensor-006", nil)

	// The first run takes the messages but cannot publish them, and stops.
	first, stopFirst := startIngestStoppable(t, ns.ClientURL(), mqttURL, "ingest-a")
	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, 5*time.Second, "ingest to notice NATS is gone", func() bool { return first.svc.Ready() != nil })
	for i := range 3 {
		publish(t, dev, "devices/sensor-006/telemetry", fmt.Sprintf(`{"fields": {"n": %d}}`, i), nil)
	}
	waitFor(t, 5*time.Second, "the messages to reach ingest", func() bool {
		cl, ok := broker.Clients.Get("ingest-a")
		return ok && cl.State.Inflight.Len() == 3
	})
	stopFirst()

	// The next run, under the same client id, resumes the session.
	natstest.StartOnPort(t, port, storeDir)
	second := startIngest(t, ns.ClientURL(), mqttURL, "ingest-a")
	waitFor(t, 10*time.Second, "the resumed session's messages to be published", func() bool {
		return counter(t, second.reg, "sensorcast_ingest_messages_total", "kind=telemetry") == 3
	})
	waitFor(t, 5*time.Second, "the broker to have them acknowledged", func() bool {
		cl, ok := broker.Clients.Get("ingest-a")
		return ok && cl.State.Inflight.Len() == 0
	})
}

func TestRunWithoutABrokerIsNotReadyAndStopsCleanly(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().String()
	l.Close()

	nc := natstest.Connect(t, ns)
	svc, err := ingest.New(testConfig("mqtt://"+closedPort, "ingest-a"), nc, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	time.Sleep(200 * time.Millisecond)
	if err := svc.Ready(); err == nil {
		t.Error("Ready() = nil without a broker")
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
	if err := svc.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}
