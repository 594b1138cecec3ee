package e2e

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// presenceTimeout bounds how long presence may take to reflect a change
// made on another edge (edges mirror their state every ~100ms).
const presenceTimeout = 3 * time.Second

// waitPresence asks c for room's presence until it lists exactly want
// (user -> connections) or timeout passes, and returns how long it took.
func waitPresence(t testing.TB, c *harness.Client, room string, want map[string]int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	harness.Eventually(t, timeout, func() error {
		p := c.Presence(t, room)
		got := map[string]int{}
		for _, m := range p.Members {
			got[m.UserID] += m.Connections
		}
		if p.Room != room || p.Count != len(want) || len(p.Members) != len(want) || !maps.Equal(got, want) {
			return fmt.Errorf("%s sees presence of %s as %+v; want count %d, members %v", c.Name, room, p, len(want), want)
		}
		return nil
	})
	return time.Since(start)
}

func testPresence(t *testing.T, e *env) {
	const room = "device:presence-1"
	aliceA := dial(t, e.edgeA, "alice")
	aliceB := dial(t, e.edgeB, "alice")
	bobB := dial(t, e.edgeB, "bob")
	for _, c := range []*harness.Client{aliceA, aliceB, bobB} {
		c.MustSubscribe(t, room)
	}

	// The same user on both edges counts once, with two connections.
	waitPresence(t, aliceA, room, map[string]int{"alice": 2, "bob": 1}, presenceTimeout)
	waitPresence(t, bobB, room, map[string]int{"alice": 2, "bob": 1}, presenceTimeout)

	// Unsubscribing leaves the room.
	if rest := aliceB.Unsubscribe(t, room); len(rest) != 0 {
		t.Errorf("after unsubscribing its only room, %s is still in %v", aliceB.Name, rest)
	}
	waitPresence(t, aliceA, room, map[string]int{"alice": 1, "bob": 1}, presenceTimeout)

	// Closing the connection leaves every room.
	bobB.Close()
	waitPresence(t, aliceA, room, map[string]int{"alice": 1}, presenceTimeout)
	waitPresence(t, aliceB, room, map[string]int{"alice": 1}, presenceTimeout)
}

func testKilledEdgePresence(t *testing.T, e *env) {
	const room = "device:presence-kill"
	doomed := e.startEdge(t, "edge-doomed", nil)
	victim := dial(t, doomed, "kim")
	victim.MustSubscribe(t, room)
	watcher := dial(t, e.edgeA, "wes")
	watcher.MustSubscribe(t, room)
	waitPresence(t, watcher, room, map[string]int{"kim": 1, "wes": 1}, presenceTimeout)

	doomed.Kill()
	// The lease may have been renewed just before the kill; allow a lease
	// and a half plus the time a busy machine needs.
	took := waitPresence(t, watcher, room, map[string]int{"wes": 1}, 8*time.Second)
	t.Logf("the killed edge's user left presence %s after SIGKILL (lease %s)", took.Round(10*time.Millisecond), presenceLease)
}
