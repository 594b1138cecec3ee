package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// commandResult is the contract's `command_result` payload.
type commandResult struct {
	CommandID string         `json:"command_id"`
	DeviceID  string         `json:"device_id"`
	Status    string         `json:"status"`
	Result    map[string]any `json:"result"`
}

func (r commandResult) reason() string { s, _ := r.Result["reason"].(string); return s }

// commandWait bounds each status of a command: a round trip through two
// NATS hops and the broker takes milliseconds.
const commandWait = 10 * time.Second

// sendCommand sends a `command` and returns its request id.
func sendCommand(t *testing.T, c *harness.Client, device, name string, params map[string]any, timeout time.Duration) string {
	t.Helper()
	id := c.NextRequestID()
	payload := map[string]any{"device_id": device, "name": name}
	if params != nil {
		payload["params"] = params
	}
	if timeout > 0 {
		payload["timeout_ms"] = timeout.Milliseconds()
	}
	c.Send(t, map[string]any{"type": "command", "request_id": id, "payload": payload})
	return id
}

// nextResult waits for the next command_result of request id.
func nextResult(c *harness.Client, id string) (commandResult, error) {
	m, err := c.Await(commandWait, func(m harness.Message) bool { return m.Type == "command_result" && m.RequestID == id })
	if err != nil {
		return commandResult{}, err
	}
	var r commandResult
	err = json.Unmarshal(m.Payload, &r)
	return r, err
}

// awaitResults waits for the command_result statuses of request id, in
// order, and returns them. A status that comes out of order, or twice,
// fails the test.
func awaitResults(t *testing.T, c *harness.Client, id string, want ...string) []commandResult {
	t.Helper()
	var got []commandResult
	var statuses []string
	for range want {
		r, err := nextResult(c, id)
		if err != nil {
			t.Fatalf("%s: after %v, no further command_result for %s (want %v): %v", c.Name, statuses, id, want, err)
		}
		got = append(got, r)
		statuses = append(statuses, r.Status)
	}
	if !slices.Equal(statuses, want) {
		t.Fatalf("%s: command %s went %v, want %v (%+v)", c.Name, id, statuses, want, got)
	}
	// A command the edge refuses at once has no id; every other result
	// names its command.
	for _, r := range got {
		if r.CommandID == "" && len(got) > 1 || r.CommandID != got[0].CommandID {
			t.Fatalf("%s: command %s results carry command ids %+v", c.Name, id, got)
		}
	}
	return got
}

// expectNoMoreResults fails t if request id gets another command_result.
func expectNoMoreResults(t *testing.T, c *harness.Client, id string) {
	t.Helper()
	if m, err := c.Await(quiet, func(m harness.Message) bool { return m.Type == "command_result" && m.RequestID == id }); err == nil {
		t.Fatalf("%s: command %s got another result after its final one: %s", c.Name, id, m)
	}
}

// TestCommandsReachDevicesAcrossReplicas runs two ingest replicas on one
// shared subscription and two edges, with a device simulated by `sensorcast
// simulate` over MQTT (Mosquitto). Dashboards on either edge command it;
// whichever replica takes the command and whichever receives the device's
// acknowledgements, every status reaches the requesting connection once,
// in order.
func TestCommandsReachDevicesAcrossReplicas(t *testing.T) {
	harness.CheckGoroutines(t)
	redis := harness.StartRedis(t)
	mqtt := harness.StartMosquitto(t)
	natsURL := harness.StartNATS(t).ClientURL()
	var ingests []*harness.Ingest
	for i := 1; i <= 2; i++ {
		ingests = append(ingests, sensorcast.StartIngest(t, fmt.Sprintf("ingest-commands-%d", i), harness.Settings{
			"NATS_URL": natsURL, "MQTT_URL": mqtt.URL,
			"MQTT_CLIENT_ID": fmt.Sprintf("e2e-ingest-commands-%d", i), "MQTT_SHARE_GROUP": "e2e-commands",
		}))
	}
	edgeSettings := harness.Settings{"NATS_URL": natsURL, "REDIS_URL": redis.URL, "JWT_SECRET": jwtSecret}
	edgeA := sensorcast.StartEdge(t, "edge-commands-a", edgeSettings)
	edgeB := sensorcast.StartEdge(t, "edge-commands-b", edgeSettings)

	const device = "cmd-mq-001"
	simSettings := harness.Settings{"MQTT_URL": mqtt.URL, "DEVICES": "1", "PREFIX": "cmd-mq-", "INTERVAL": "200ms"}
	sim := sensorcast.StartSimulator(t, "simulator", simSettings)

	operator := func(edge *harness.Edge, user string, commands ...string) *harness.Client {
		return harness.Dial(t, user+"@"+edge.Name, edge.WSURL,
			harness.CommandToken(t, jwtSecret, user, time.Hour, []string{"device:*"}, commands), harness.DialOptions{})
	}
	alice := operator(edgeA, "alice", "device:cmd-*")
	bob := operator(edgeB, "bob", "device:cmd-mq-001")
	watcher := operator(edgeA, "watcher") // may watch, may not command
	alice.MustSubscribe(t, "device:"+device)
	awaitStatus := func(status string) {
		t.Helper()
		if _, err := alice.Await(20*time.Second, func(m harness.Message) bool {
			var p harness.DeviceStatus
			return m.Type == "device_status" && json.Unmarshal(m.Payload, &p) == nil && p.Status == status
		}); err != nil {
			t.Fatalf("%s did not go %s: %v", device, status, err)
		}
	}
	awaitStatus("online")
	// The simulator subscribes to its commands before it says online, but
	// a retained online from an earlier session may come first: warm up
	// until one command goes all the way.
	harness.Eventually(t, 20*time.Second, func() error {
		id := sendCommand(t, alice, device, "blink", nil, 2*time.Second)
		var statuses []string
		for {
			r, err := nextResult(alice, id)
			if err != nil {
				return fmt.Errorf("warm-up command after %v: %w", statuses, err)
			}
			statuses = append(statuses, r.Status)
			switch r.Status {
			case "accepted", "delivered":
				continue
			case "succeeded":
				if !slices.Equal(statuses, []string{"accepted", "delivered", "succeeded"}) {
					t.Fatalf("warm-up command went %v", statuses)
				}
				return nil
			}
			return fmt.Errorf("warm-up command went %v", statuses)
		}
	})

	t.Run("succeeded and failed, from either edge", func(t *testing.T) {
		for i, c := range []*harness.Client{alice, bob, alice, bob} {
			id := sendCommand(t, c, device, "blink", map[string]any{"times": i + 1}, 0)
			rs := awaitResults(t, c, id, "accepted", "delivered", "succeeded")
			if rs[2].DeviceID != device || rs[2].Result["blinked"] != float64(i+1) {
				t.Errorf("blink %d: final result %+v", i+1, rs[2])
			}
			expectNoMoreResults(t, c, id)
		}
		id := sendCommand(t, bob, device, "dance", nil, 0)
		rs := awaitResults(t, bob, id, "accepted", "delivered", "failed")
		if !strings.Contains(rs[2].reason(), "unknown command") {
			t.Errorf("an unknown command failed with %+v", rs[2])
		}
	})

	t.Run("a device on a WebSocket of the other edge", func(t *testing.T) {
		const wsDevice = "cmd-ws-001"
		wsSim := sensorcast.StartSimulator(t, "simulator-ws", harness.Settings{
			"MQTT_URL": mqtt.URL, "DEVICES": "0", "WS_DEVICES": "1", "PREFIX": "cmd-", "INTERVAL": "200ms",
			"WS_URL": "ws://" + edgeB.Addr + "/api/v1/device/ws", "JWT_SECRET": jwtSecret,
		})
		alice.MustSubscribe(t, "device:"+wsDevice)
		awaitWS := func(what string, match func(harness.Message) bool) {
			t.Helper()
			if _, err := alice.Await(20*time.Second, func(m harness.Message) bool { return m.Room == "device:"+wsDevice && match(m) }); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		isStatus := func(status string) func(harness.Message) bool {
			return func(m harness.Message) bool {
				var p harness.DeviceStatus
				return m.Type == "device_status" && json.Unmarshal(m.Payload, &p) == nil && p.Status == status
			}
		}
		awaitWS("the WebSocket device online", isStatus("online"))
		awaitWS("a reading of the WebSocket device", func(m harness.Message) bool { return m.Type == "telemetry" })
		for i, c := range []*harness.Client{alice, bob} {
			if c == bob {
				continue // bob's grant is cmd-mq-001 only
			}
			id := sendCommand(t, c, wsDevice, "blink", map[string]any{"times": i + 4}, 0)
			rs := awaitResults(t, c, id, "accepted", "delivered", "succeeded")
			if rs[2].DeviceID != wsDevice || rs[2].Result["blinked"] != float64(i+4) {
				t.Errorf("blink over WebSocket: final result %+v", rs[2])
			}
			expectNoMoreResults(t, c, id)
		}
		id := sendCommand(t, alice, wsDevice, "dance", nil, 0)
		awaitResults(t, alice, id, "accepted", "delivered", "failed")

		// Away, and never on MQTT: its commands wait for it in the queue,
		// until their timeout.
		wsSettings := harness.Settings{
			"MQTT_URL": mqtt.URL, "DEVICES": "0", "WS_DEVICES": "1", "PREFIX": "cmd-", "INTERVAL": "200ms",
			"WS_URL": "ws://" + edgeB.Addr + "/api/v1/device/ws", "JWT_SECRET": jwtSecret,
		}
		if _, err := wsSim.Stop(); err != nil {
			t.Fatal(err)
		}
		awaitWS("the WebSocket device offline", isStatus("offline"))
		waited := sendCommand(t, alice, wsDevice, "blink", map[string]any{"times": 9}, 30*time.Second)
		gaveUp := sendCommand(t, alice, wsDevice, "blink", nil, 1500*time.Millisecond)
		awaitResults(t, alice, waited, "accepted")
		awaitResults(t, alice, gaveUp, "accepted", "timeout")
		wsSim = sensorcast.StartSimulator(t, "simulator-ws-back", wsSettings)
		if rs := awaitResults(t, alice, waited, "delivered", "succeeded"); rs[1].Result["blinked"] != 9.0 {
			t.Errorf("the command that waited: %+v", rs[1])
		}
		awaitWS("the WebSocket device back online", isStatus("online"))
		expectNoMoreResults(t, alice, gaveUp)
		if _, err := wsSim.Stop(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("forbidden, or no such device", func(t *testing.T) {
		before := commandsAnswered(t, ingests)
		id := sendCommand(t, watcher, device, "blink", nil, 0)
		if r := awaitResults(t, watcher, id, "rejected")[0]; r.reason() == "" {
			t.Errorf("a command without the grant: %+v", r)
		}
		id = sendCommand(t, bob, "cmd-mq-002", "blink", nil, 0)
		if r := awaitResults(t, bob, id, "rejected")[0]; r.reason() == "" {
			t.Errorf("a command outside bob's grant: %+v", r)
		}
		if after := commandsAnswered(t, ingests); after != before {
			t.Errorf("refused commands reached ingest (%v commands answered before, %v after)", before, after)
		}
		// No device has ever connected as cmd-mq-009: its command waits in
		// the queue (it might speak WebSocket) and times out.
		id = sendCommand(t, alice, "cmd-mq-009", "blink", nil, time.Second)
		awaitResults(t, alice, id, "accepted", "timeout")
	})

	t.Run("an offline device gets its command when it comes back within the TTL", func(t *testing.T) {
		if _, err := sim.Stop(); err != nil {
			t.Fatal(err)
		}
		awaitStatus("offline")
		id := sendCommand(t, alice, device, "blink", map[string]any{"times": 7}, 30*time.Second)
		awaitResults(t, alice, id, "accepted")
		expectNoMoreResults(t, alice, id)
		sim = sensorcast.StartSimulator(t, "simulator-back", simSettings)
		rs := awaitResults(t, alice, id, "delivered", "succeeded")
		if rs[1].Result["blinked"] != 7.0 {
			t.Errorf("final result %+v", rs[1])
		}
		awaitStatus("online")
	})

	t.Run("a device away for longer than the TTL times out, once, and never runs it", func(t *testing.T) {
		if _, err := sim.Stop(); err != nil {
			t.Fatal(err)
		}
		awaitStatus("offline")
		id := sendCommand(t, alice, device, "blink", nil, 1500*time.Millisecond)
		awaitResults(t, alice, id, "accepted", "timeout")
		// The broker dropped the expired command, so the device that comes
		// back does not run it, and nothing after timeout reaches alice.
		time.Sleep(time.Second)
		sensorcast.StartSimulator(t, "simulator-late", simSettings)
		awaitStatus("online")
		expectNoMoreResults(t, alice, id)
		acks := 0.0
		for _, in := range ingests {
			acks += harness.Scrape(t, in.AdminURL+"/metrics").Value("sensorcast_ingest_command_acks_total", "status", "succeeded")
		}
		// Every blink so far: warm-up (at least one), four, and the one
		// that waited for the device; not the expired one.
		if acks < 6 || acks > 8 {
			t.Errorf("%v succeeded acknowledgements relayed, want the warm-up's, 4 and 1", acks)
		}
	})
}

// commandsAnswered sums the commands the ingest replicas answered.
func commandsAnswered(t *testing.T, ingests []*harness.Ingest) float64 {
	t.Helper()
	n := 0.0
	for _, in := range ingests {
		m := harness.Scrape(t, in.AdminURL+"/metrics")
		n += m.Value("sensorcast_ingest_commands_total", "outcome", "accepted") + m.Value("sensorcast_ingest_commands_total", "outcome", "rejected")
	}
	return n
}
