package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sensorcast/sensorcast/proto/edgestats"
	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// testShed writes a shed request where the operator writes it (Redis, the
// edgestats keys) and checks the real edge closes exactly that many clients
// with 1012, at the requested pace, and leaves the rest alone.
func testShed(t *testing.T, e *env) {
	const name = "edge-shed"
	edge := e.startEdge(t, name, nil)
	var clients []*harness.Client
	for i := range 6 {
		c := dial(t, edge, fmt.Sprintf("shed%d", i))
		c.MustSubscribe(t, "device:shed")
		c.Resume()
		clients = append(clients, c)
	}

	out, err := exec.Command("redis-cli", "-u", e.redis.URL, "HSET", edgestats.ShedKey(name),
		edgestats.FieldShedConnections, "4", edgestats.FieldShedPerSecond, "5").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli HSET: %v: %s", err, out)
	}
	requested := time.Now()

	ended := func() (closed []*websocket.CloseError) {
		for _, c := range clients {
			var ce *websocket.CloseError
			if err := c.Ended(); errors.As(err, &ce) {
				closed = append(closed, ce)
			} else if err != nil {
				t.Fatalf("%s ended without a close frame: %v", c.Name, err)
			}
		}
		return closed
	}
	// The edge takes the request with its next heartbeat (every lease/3),
	// then closes one every 200ms.
	if err := harness.Poll(presenceLease+5*time.Second, func() error {
		if n := len(ended()); n < 4 {
			return fmt.Errorf("%d of 6 clients closed, want 4", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(requested)
	for _, ce := range ended() {
		if ce.Code != websocket.CloseServiceRestart || ce.Text != "server rebalancing, reconnect" {
			t.Errorf("closed with %d %q; want 1012 \"server rebalancing, reconnect\"", ce.Code, ce.Text)
		}
	}
	// The rest stay: the request was for four.
	time.Sleep(time.Second)
	if n := len(ended()); n != 4 {
		t.Errorf("%d clients closed; the request was for 4", n)
	}
	t.Logf("4 of 6 clients shed %s after the request", took.Round(10*time.Millisecond))
}
