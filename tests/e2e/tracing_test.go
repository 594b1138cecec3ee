package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// traceWait bounds the wait for spans: the services export every 100 ms.
const traceWait = 15 * time.Second

// TestTracesFollowReadingsAndCommands runs ingest and two edges as separate
// processes exporting to an OTLP receiver in the test, and checks that one
// MQTT reading is one trace from the device's traceparent through ingest to
// each edge's fan-out, that a resume's replay links to it, and that a
// command is one trace from the dashboard through both services, MQTT and
// the device's acknowledgements back to the dashboard.
func TestTracesFollowReadingsAndCommands(t *testing.T) {
	harness.CheckGoroutines(t)
	receiver := harness.StartOTLPReceiver(t)
	redis := harness.StartRedis(t)
	mqtt := harness.StartMosquitto(t)
	natsURL := harness.StartNATS(t).ClientURL()
	withOTel := func(pod string, s harness.Settings) harness.Settings {
		for k, v := range receiver.Settings() {
			s[k] = v
		}
		s["OTEL_RESOURCE_ATTRIBUTES"] = "k8s.pod.name=" + pod
		return s
	}
	sensorcast.StartIngest(t, "ingest-traces", withOTel("ingest-traces", harness.Settings{
		"NATS_URL": natsURL, "MQTT_URL": mqtt.URL, "MQTT_CLIENT_ID": "e2e-ingest-traces", "MQTT_SHARE_GROUP": "e2e-traces",
	}))
	edge := func(name string) *harness.Edge {
		return sensorcast.StartEdge(t, name, withOTel(name, harness.Settings{"NATS_URL": natsURL, "REDIS_URL": redis.URL, "JWT_SECRET": jwtSecret}))
	}
	edgeA, edgeB := edge("edge-traces-a"), edge("edge-traces-b")

	const device = "trace-mq-001"
	operator := func(edge *harness.Edge, user string) *harness.Client {
		return harness.Dial(t, user+"@"+edge.Name, edge.WSURL,
			harness.CommandToken(t, jwtSecret, user, time.Hour, []string{"device:*", "global"}, []string{"device:trace-*"}), harness.DialOptions{})
	}
	alice, bob := operator(edgeA, "alice"), operator(edgeB, "bob")
	alice.MustSubscribe(t, "device:"+device)
	bob.MustSubscribe(t, "device:"+device, "global")
	topic := "devices/" + device + "/telemetry"
	deviceRoom := "device:" + device
	// reading matches reading n in the device's room.
	reading := func(n int) func(harness.Message) bool {
		return func(m harness.Message) bool {
			var p struct{ Fields map[string]float64 }
			return m.Type == "telemetry" && m.Room == deviceRoom && json.Unmarshal(m.Payload, &p) == nil && p.Fields["n"] == float64(n)
		}
	}
	// Warm up until a reading reaches both: ingest holds its subscription.
	probe := 0
	harness.Eventually(t, 20*time.Second, func() error {
		probe++
		mqtt.Publish(t, topic, fmt.Appendf(nil, `{"fields":{"n":%d}}`, -probe), false)
		for _, c := range []*harness.Client{alice, bob} {
			if _, err := c.Await(time.Second, reading(-probe)); err != nil {
				return fmt.Errorf("probe %d did not reach %s: %w", probe, c.Name, err)
			}
		}
		return nil
	})

	const (
		readingTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		deviceSpan   = "00f067aa0ba902b7"
	)
	var seq uint64
	t.Run("one MQTT reading is one trace from the device to every edge's fan-out", func(t *testing.T) {
		mqtt.PublishWithUserProperties(t, topic, []byte(`{"fields":{"n":1}}`), "traceparent", "00-"+readingTrace+"-"+deviceSpan+"-01")
		for _, c := range []*harness.Client{alice, bob} {
			m, err := c.Await(commandWait, reading(1))
			if err != nil {
				t.Fatalf("%s: the traced reading did not arrive: %v", c.Name, err)
			}
			seq = *m.Seq
		}
		receiver.AwaitTrace(t, readingTrace, traceWait, func(spans []harness.Span) error {
			process, err := one(spans, "sensorcast-ingest", "", "process devices/{device_id}/telemetry")
			if err != nil {
				return err
			}
			if err := want(process, deviceSpan, "SPAN_KIND_CONSUMER", map[string]string{
				"messaging.system": "mqtt", "messaging.destination.name": topic, "sensorcast.device.id": device,
			}); err != nil {
				return err
			}
			enrich, err := one(spans, "sensorcast-ingest", "", "enrich")
			if err != nil {
				return err
			}
			if err := want(enrich, process.SpanID, "SPAN_KIND_INTERNAL", map[string]string{"sensorcast.device.id": device}); err != nil {
				return err
			}
			sends := map[string]harness.Span{}
			for room, name := range map[string]string{
				"device:" + device: "send sensorcast.room.device.{device_id}.telemetry",
				"global":           "send sensorcast.room.global.telemetry",
			} {
				send, err := one(spans, "sensorcast-ingest", "", name)
				if err != nil {
					return err
				}
				if err := want(send, process.SpanID, "SPAN_KIND_PRODUCER", map[string]string{"messaging.system": "nats", "sensorcast.room": room}); err != nil {
					return err
				}
				sends[room] = send
			}
			// One span per pod per room message, with its recipients.
			for _, fanOut := range []struct{ pod, room, name string }{
				{"edge-traces-a", "device:" + device, "process sensorcast.live.device.{device_id}.telemetry"},
				{"edge-traces-b", "device:" + device, "process sensorcast.live.device.{device_id}.telemetry"},
				{"edge-traces-b", "global", "process sensorcast.live.global.telemetry"},
			} {
				span, err := one(spans, "sensorcast-edge", fanOut.pod, fanOut.name)
				if err != nil {
					return err
				}
				attrs := map[string]string{
					"messaging.system": "nats", "sensorcast.room": fanOut.room, "sensorcast.recipients": "1", "sensorcast.queue_drops": "0",
				}
				if fanOut.room != "global" {
					attrs["sensorcast.seq"] = fmt.Sprint(seq) // the global room's copy has a sequence of its own
				}
				if err := want(span, sends[fanOut.room].SpanID, "SPAN_KIND_CONSUMER", attrs); err != nil {
					return err
				}
			}
			return nil
		})
	})

	t.Run("a resume's replay is in the client's trace and links to the reading's", func(t *testing.T) {
		const clientTrace, clientSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
		carol := operator(edgeA, "carol")
		carol.Send(t, map[string]any{
			"type": "subscribe", "request_id": "resume-1", "traceparent": "00-" + clientTrace + "-" + clientSpan + "-01",
			"payload": map[string]any{"rooms": []string{"device:" + device}, "since": map[string]uint64{"device:" + device: seq - 1}},
		})
		if _, err := carol.Await(commandWait, reading(1)); err != nil {
			t.Fatalf("the replay did not bring the traced reading: %v", err)
		}
		receiver.AwaitTrace(t, clientTrace, traceWait, func(spans []harness.Span) error {
			replay, err := one(spans, "sensorcast-edge", "edge-traces-a", "replay device:"+device)
			if err != nil {
				return err
			}
			if err := want(replay, clientSpan, "SPAN_KIND_INTERNAL", map[string]string{"sensorcast.room": "device:" + device}); err != nil {
				return err
			}
			if !slices.Contains(replay.Links, readingTrace) {
				return fmt.Errorf("the replay links to %v, not to the reading's trace %s", replay.Links, readingTrace)
			}
			return nil
		})
	})

	t.Run("a command is one trace from the dashboard to the device and back", func(t *testing.T) {
		sensorcast.StartSimulator(t, "simulator-traces", harness.Settings{"MQTT_URL": mqtt.URL, "DEVICES": "1", "PREFIX": "trace-mq-", "INTERVAL": "500ms"})
		commandTrace, dashboardSpan := "1af7651916cd43dd8448eb211c80319d", "c7ad6b7169203332"
		tracedCommand(t, alice, device, commandTrace, dashboardSpan)
		receiver.AwaitTrace(t, commandTrace, traceWait, func(spans []harness.Span) error {
			relay, err := relayed(spans, device, dashboardSpan)
			if err != nil {
				return err
			}
			publish, err := one(spans, "sensorcast-ingest", "", "send devices/{device_id}/commands")
			if err != nil {
				return err
			}
			if err := want(publish, relay.SpanID, "SPAN_KIND_PRODUCER", map[string]string{"messaging.system": "mqtt"}); err != nil {
				return err
			}
			// The device echoed the command's traceparent on both of its
			// acknowledgements, which come back through ingest to the edge.
			acks := named(spans, "sensorcast-ingest", "process devices/{device_id}/commands/ack")
			results := named(spans, "sensorcast-edge", "process sensorcast.command.result.{edge}")
			if len(acks) != 2 || len(results) != 2 {
				return fmt.Errorf("%d ack spans in ingest and %d result spans in the edge, want 2 and 2", len(acks), len(results))
			}
			statuses := map[string]bool{}
			for i, ack := range acks {
				if err := want(ack, publish.SpanID, "SPAN_KIND_CONSUMER", map[string]string{"sensorcast.device.id": device}); err != nil {
					return err
				}
				statuses[ack.Attributes["sensorcast.command.status"]] = true
				if !slices.ContainsFunc(results, func(r harness.Span) bool { return r.ParentSpanID == acks[i].SpanID }) {
					return fmt.Errorf("no result span in the edge is a child of ack span %s", ack.SpanID)
				}
			}
			if !statuses["delivered"] || !statuses["succeeded"] {
				return fmt.Errorf("the acks carried statuses %v, want delivered and succeeded", statuses)
			}
			return nil
		})
	})

	t.Run("a command to a device on the other edge's WebSocket is one trace too", func(t *testing.T) {
		const wsDevice = "trace-ws-001"
		sensorcast.StartSimulator(t, "simulator-traces-ws", harness.Settings{
			"MQTT_URL": mqtt.URL, "DEVICES": "0", "WS_DEVICES": "1", "PREFIX": "trace-", "INTERVAL": "500ms",
			"WS_URL": "ws://" + edgeB.Addr + "/api/v1/device/ws", "JWT_SECRET": jwtSecret,
		})
		commandTrace, dashboardSpan := "2af7651916cd43dd8448eb211c80319e", "d7ad6b7169203333"
		tracedCommand(t, alice, wsDevice, commandTrace, dashboardSpan)
		receiver.AwaitTrace(t, commandTrace, traceWait, func(spans []harness.Span) error {
			relay, err := relayed(spans, wsDevice, dashboardSpan)
			if err != nil {
				return err
			}
			handOff, err := one(spans, "sensorcast-ingest", "", "send sensorcast.command.device.{device_id}")
			if err != nil {
				return err
			}
			if err := want(handOff, relay.SpanID, "SPAN_KIND_PRODUCER", nil); err != nil {
				return err
			}
			toDevice, err := one(spans, "sensorcast-edge", "edge-traces-b", "process sensorcast.command.device.{device_id}")
			if err != nil {
				return err
			}
			if err := want(toDevice, handOff.SpanID, "SPAN_KIND_CONSUMER", nil); err != nil {
				return err
			}
			// The device echoed the command frame's traceparent on both
			// acknowledgements; its edge relays them to the dashboard's.
			acks := named(spans, "sensorcast-edge", "send sensorcast.command.result.{edge}")
			results := named(spans, "sensorcast-edge", "process sensorcast.command.result.{edge}")
			if len(acks) != 2 || len(results) != 2 {
				return fmt.Errorf("%d relayed acks and %d result spans, want 2 and 2", len(acks), len(results))
			}
			for _, ack := range acks {
				if err := want(ack, toDevice.SpanID, "SPAN_KIND_PRODUCER", nil); err != nil {
					return err
				}
				if !slices.ContainsFunc(results, func(r harness.Span) bool { return r.ParentSpanID == ack.SpanID }) {
					return fmt.Errorf("no result span is a child of relayed ack %s", ack.SpanID)
				}
			}
			return nil
		})
	})
}

// tracedCommand warms up (untraced) until a blink to device goes all the
// way, which shows the simulated device is connected, then sends one with
// the client's traceparent and waits for its three statuses.
func tracedCommand(t *testing.T, c *harness.Client, device, traceID, spanID string) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, func() error {
		id := sendCommand(t, c, device, "blink", nil, 2*time.Second)
		for {
			r, err := nextResult(c, id)
			if err != nil {
				return err
			}
			if r.Status == "succeeded" {
				return nil
			}
			if r.Status != "accepted" && r.Status != "delivered" {
				return fmt.Errorf("warm-up command went %s", r.Status)
			}
		}
	})
	id := c.NextRequestID()
	c.Send(t, map[string]any{
		"type": "command", "request_id": id, "traceparent": "00-" + traceID + "-" + spanID + "-01",
		"payload": map[string]any{"device_id": device, "name": "blink", "params": map[string]any{"times": 2}},
	})
	awaitResults(t, c, id, "accepted", "delivered", "succeeded")
}

// relayed checks the first two spans of a command's trace, the edge's
// command span (a child of the dashboard's) and ingest's relay (its
// child), and returns the relay.
func relayed(spans []harness.Span, device, dashboardSpan string) (harness.Span, error) {
	command, err := one(spans, "sensorcast-edge", "edge-traces-a", "send sensorcast.command.send.{device_id}")
	if err != nil {
		return harness.Span{}, err
	}
	if err := want(command, dashboardSpan, "SPAN_KIND_PRODUCER", map[string]string{
		"sensorcast.device.id": device, "sensorcast.command.status": "succeeded",
	}); err != nil {
		return harness.Span{}, err
	}
	relay, err := one(spans, "sensorcast-ingest", "", "process sensorcast.command.send.{device_id}")
	if err != nil {
		return harness.Span{}, err
	}
	return relay, want(relay, command.SpanID, "SPAN_KIND_CONSUMER", map[string]string{"sensorcast.device.id": device})
}

// one returns the only span of service (and pod, when given) named name.
func one(spans []harness.Span, service, pod, name string) (harness.Span, error) {
	var found []harness.Span
	for _, s := range named(spans, service, name) {
		if pod == "" || s.Resource["k8s.pod.name"] == pod {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return harness.Span{}, fmt.Errorf("%d spans %q from %s %s, want 1", len(found), name, service, pod)
	}
	return found[0], nil
}

func named(spans []harness.Span, service, name string) []harness.Span {
	var found []harness.Span
	for _, s := range spans {
		if s.Service == service && s.Name == name {
			found = append(found, s)
		}
	}
	return found
}

// want checks a span's parent, kind and attributes.
func want(s harness.Span, parent, kind string, attrs map[string]string) error {
	if s.ParentSpanID != parent {
		return fmt.Errorf("span %q of %s has parent %s, want %s", s.Name, s.Service, s.ParentSpanID, parent)
	}
	if s.Kind != kind {
		return fmt.Errorf("span %q of %s is a %s, want %s", s.Name, s.Service, s.Kind, kind)
	}
	for k, v := range attrs {
		if got := s.Attributes[k]; got != v {
			return fmt.Errorf("span %q of %s: %s = %q, want %q", s.Name, s.Service, k, got, v)
		}
	}
	return nil
}

// TestRunExportsTraces checks that `sensorcast run` (what `make run`
// starts) honours the same OTEL_* environment: a simulated device's
// reading is one trace from ingest to the edge's fan-out, all under the
// service name sensorcast.
func TestRunExportsTraces(t *testing.T) {
	harness.CheckGoroutines(t)
	receiver := harness.StartOTLPReceiver(t)
	httpAddr := harness.FreeAddr(t)
	env := []string{"SENSORCAST_JWT_SECRET=" + jwtSecret}
	for k, v := range receiver.Settings() {
		env = append(env, k+"="+v)
	}
	run := harness.StartProcess(t, "run", env, sensorcast.Path, "run",
		"--http-addr", httpAddr, "--mqtt-addr", harness.FreeAddr(t), "--grpc-addr", harness.FreeAddr(t),
		"--devices", "1", "--ws-devices", "0", "--interval", "200ms")
	run.WaitReady(t, 30*time.Second, func() error { return harness.WantStatus("http://"+httpAddr+"/readyz", 200) })
	c := harness.Dial(t, "watcher", "ws://"+httpAddr+"/api/v1/ws", token(t, "watcher", "device:*"), harness.DialOptions{})
	c.MustSubscribe(t, "device:sim-001")
	if _, err := c.Await(commandWait, func(m harness.Message) bool { return m.Type == "telemetry" }); err != nil {
		t.Fatalf("no reading of the simulated device: %v", err)
	}
	// Readings go on arriving, each its own trace (the simulator sends no
	// traceparent): any one from ingest to the fan-out proves the chain.
	harness.Eventually(t, traceWait, func() error {
		for _, s := range receiver.Spans() {
			if s.Name != "process sensorcast.live.device.{device_id}.telemetry" {
				continue
			}
			spans := receiver.Trace(s.TraceID)
			if _, err := one(spans, "sensorcast", "", "process devices/{device_id}/telemetry"); err != nil {
				continue
			}
			if _, err := one(spans, "sensorcast", "", "send sensorcast.room.device.{device_id}.telemetry"); err != nil {
				continue
			}
			return nil
		}
		return fmt.Errorf("no trace from ingest to the edge's fan-out yet among %d spans", len(receiver.Spans()))
	})
}
