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
// (user -> connections) or timeout passes.
func waitPresence(t testing.TB, c *harness.Client, room string, want map[string]int, timeout time.Duration) {
	t.Helper()
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
	start := time.Now()
	// wes asked for the room's presence: he is told, without asking again.
	awaitPresenceChange(t, watcher, "presence_leave", room, "kim", 8*time.Second)
	t.Logf("the killed edge's user left presence %s after SIGKILL (lease %s)", time.Since(start).Round(10*time.Millisecond), presenceLease)
	waitPresence(t, watcher, room, map[string]int{"wes": 1}, time.Second)
}

// presenceChange is the payload of presence_join and presence_leave.
type presenceChange struct {
	Room   string `json:"room"`
	UserID string `json:"user_id"`
}

// awaitPresenceChange waits for c to be told that user joined or left room.
func awaitPresenceChange(t testing.TB, c *harness.Client, kind, room, user string, timeout time.Duration) {
	t.Helper()
	_, err := c.Await(timeout, func(m harness.Message) bool {
		if m.Type != kind {
			return false
		}
		var p presenceChange
		m.Decode(t, &p)
		return p.Room == room && p.UserID == user
	})
	if err != nil {
		t.Fatalf("%s was not told %s %s %s: %v", c.Name, kind, user, room, err)
	}
}

func testPresenceChanges(t *testing.T, e *env) {
	const room = "device:presence-changes"
	watcher := dial(t, e.edgeA, "wanda")
	watcher.MustSubscribe(t, room)
	quiet := dial(t, e.edgeA, "quentin") // in the room, never asks for presence
	quiet.MustSubscribe(t, room)
	waitPresence(t, watcher, room, map[string]int{"wanda": 1, "quentin": 1}, presenceTimeout)

	// A user joining on the other edge, then leaving it, is announced.
	olga := dial(t, e.edgeB, "olga")
	olga.MustSubscribe(t, room)
	awaitPresenceChange(t, watcher, "presence_join", room, "olga", presenceTimeout)
	olga.Close()
	awaitPresenceChange(t, watcher, "presence_leave", room, "olga", presenceTimeout)

	// Only to clients that asked for the room's presence.
	if m, err := quiet.Await(300*time.Millisecond, func(m harness.Message) bool {
		return m.Type == "presence_join" || m.Type == "presence_leave"
	}); err == nil {
		t.Errorf("a client that never asked for presence was told %s", m)
	}
	if err := quiet.Ended(); err != nil {
		t.Errorf("the quiet client's connection ended (so it heard nothing): %v", err)
	}
}
