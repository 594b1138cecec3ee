package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// TestRunKeepsUpWithAThousandDevices runs `sensorcast run` (what `make
// run` starts) with 1,000 simulated MQTT devices, each publishing every
// second, and checks that ingest goes on storing their readings. The
// embedded broker used to deadlock within seconds of such a start (QoS 1
// deliveries to ingest hit a lock bug in mochi-mqtt), leaving ingest
// stuck at the first hundred readings.
func TestRunKeepsUpWithAThousandDevices(t *testing.T) {
	httpAddr := harness.FreeAddr(t)
	run := harness.StartProcess(t, "run", []string{"SENSORCAST_JWT_SECRET=" + jwtSecret}, sensorcast.Path, "run",
		"--http-addr", httpAddr, "--mqtt-addr", harness.FreeAddr(t), "--grpc-addr", harness.FreeAddr(t),
		"--devices", "1000", "--ws-devices", "0", "--interval", "1s")
	metrics := "http://" + httpAddr + "/metrics"
	run.WaitReady(t, 30*time.Second, func() error { return harness.WantStatus("http://"+httpAddr+"/readyz", 200) })
	readings := func() float64 {
		return harness.Scrape(t, metrics).Value("sensorcast_ingest_messages_total", "kind", "telemetry")
	}
	// Every device publishing: about 1,000 readings a second.
	harness.Eventually(t, 60*time.Second, func() error {
		if n := readings(); n < 2000 {
			return fmt.Errorf("%v readings stored so far", n)
		}
		return nil
	})
	// And still, a while later. This checks that nothing stalls, not a
	// rate: about 5,000 are sent meanwhile, on a machine busy with other
	// tests; the deadlock stopped ingest for good.
	const window = 5 * time.Second
	before := readings()
	time.Sleep(window)
	if got := readings() - before; got < 1000 {
		t.Fatalf("%v readings stored in %s from 1,000 devices publishing every second: ingest stalled", got, window)
	}
}

// TestRunKnowsItsDevicesBeforeDashboardsConnect connects a dashboard the
// moment `sensorcast run` accepts WebSockets, at its first start and
// after a restart on the same data dir and ports, and subscribes to the
// demo device and the simulated group. Its registry keeps devices in
// memory and registers the demo fleet at every start; an edge serving
// before that told a dashboard reconnecting at once "no such device",
// which a client takes as final (an SDK test lost a room that way).
func TestRunKnowsItsDevicesBeforeDashboardsConnect(t *testing.T) {
	httpAddr := harness.FreeAddr(t)
	args := []string{"run", "--http-addr", httpAddr, "--mqtt-addr", harness.FreeAddr(t), "--grpc-addr", harness.FreeAddr(t),
		"--data-dir", t.TempDir(), "--drain-period", "1s"}
	wsURL := "ws://" + httpAddr + "/api/v1/ws?token=" + url.QueryEscape(token(t, "alice", "device:*", "group:*"))
	for start := 1; start <= 2; start++ {
		run := harness.StartProcess(t, fmt.Sprintf("run-%d", start), []string{"SENSORCAST_JWT_SECRET=" + jwtSecret}, sensorcast.Path, args...)
		ws := dialAtOnce(t, wsURL, 30*time.Second)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","request_id":"s","payload":{"rooms":["device:my-esp32","group:simulated"]}}`)); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			var m struct {
				Type    string          `json:"type"`
				Payload json.RawMessage `json:"payload"`
			}
			if err := ws.ReadJSON(&m); err != nil {
				t.Fatalf("start %d: waiting for subscribed: %v", start, err)
			}
			if m.Type != "subscribed" {
				continue
			}
			var p harness.Subscribed
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatalf("start %d: subscribed %s: %v", start, m.Payload, err)
			}
			if len(p.Rooms) != 2 || len(p.Rejected) != 0 {
				t.Errorf("start %d: the first dashboard got %s; want both rooms joined", start, m.Payload)
			}
			break
		}
		_ = ws.Close()
		if code, err := run.Stop(); err != nil || code != 0 {
			t.Fatalf("start %d: stop: status %d, %v", start, code, err)
		}
	}
}

// dialAtOnce dials url again and again until a WebSocket opens.
func dialAtOnce(t *testing.T, url string, within time.Duration) *websocket.Conn {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil {
			return ws
		}
		if time.Now().After(deadline) {
			t.Fatalf("no WebSocket within %s: %v", within, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
