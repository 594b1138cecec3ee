package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

func testDrain(t *testing.T, e *env) {
	const drainPeriod = time.Second
	edge := e.startEdge(t, "edge-drain", harness.Settings{"DRAIN_PERIOD": drainPeriod.String()})
	var clients []*harness.Client
	for i := range 5 {
		c := dial(t, edge, fmt.Sprintf("user%d", i))
		c.MustSubscribe(t, "device:drain")
		clients = append(clients, c)
	}

	if err := edge.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	sent := time.Now()

	// Load balancers must stop sending new clients at once, so the edge
	// must say it is not ready while it drains. The closes are checked
	// either way.
	var notReady error
	_ = harness.Poll(2*time.Second, func() error {
		status, err := edge.ReadyStatus()
		switch {
		case err != nil: // the edge stopped listening; it will not answer again
			notReady = fmt.Errorf("/readyz stopped answering after SIGTERM without reporting 503: %w", err)
			return nil
		case status != http.StatusServiceUnavailable:
			notReady = fmt.Errorf("/readyz answered %d after SIGTERM; want 503", status)
			return notReady
		}
		notReady = nil
		return nil
	})
	if notReady != nil {
		t.Error(notReady)
	}

	var closedAt []time.Time
	for _, c := range clients {
		ce, at := c.AwaitClose(t, drainPeriod+5*time.Second)
		if ce.Code != websocket.CloseServiceRestart {
			t.Errorf("%s closed with %d %q; want 1012", c.Name, ce.Code, ce.Text)
		}
		closedAt = append(closedAt, at)
	}
	first, last := slices.MinFunc(closedAt, time.Time.Compare), slices.MaxFunc(closedAt, time.Time.Compare)
	// Five closes spread over 1s are 200ms apart: the last comes at least
	// 800ms after the first. Half of that proves they were spread.
	if spread := last.Sub(first); spread < 4*drainPeriod/10 {
		t.Errorf("clients were closed within %s; want them spread over the drain period (%s)", spread, drainPeriod)
	}

	code, exited, err := edge.Wait(drainPeriod + 5*time.Second)
	if err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	if code != 0 {
		t.Errorf("edge exited with status %d after SIGTERM; want 0", code)
	}
	took := exited.Sub(sent)
	if took > drainPeriod+3*time.Second {
		t.Errorf("edge took %s to exit after SIGTERM; want the drain period (%s) and a little more", took, drainPeriod)
	}
	t.Logf("closed 5 clients over %s; exited %s after SIGTERM", last.Sub(first).Round(time.Millisecond), took.Round(time.Millisecond))
}
