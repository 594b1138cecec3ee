package e2e

import (
	"testing"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// TestEndToEnd runs every scenario against one system (see env). They run
// one after another: several watch the global room, which every device
// message reaches.
func TestEndToEnd(t *testing.T) {
	harness.CheckGoroutines(t) // first, so that it checks after every cleanup
	e := startEnv(t)

	t.Run("clients on different edges receive exactly the messages of their rooms", func(t *testing.T) {
		testRoomRouting(t, e)
	})
	t.Run("a device going offline reaches its device room and global", func(t *testing.T) {
		testDeviceOffline(t, e)
	})
	t.Run("bad MQTT payloads never reach dashboards and do not stall ingest", func(t *testing.T) {
		testBadDevicePayloads(t, e)
	})
	t.Run("presence counts members across both edges", func(t *testing.T) {
		testPresence(t, e)
	})
	t.Run("a client that asked for a room's presence is told who joins and leaves it on any edge", func(t *testing.T) {
		testPresenceChanges(t, e)
	})
	t.Run("a SIGKILLed edge drops out of presence within its lease", func(t *testing.T) {
		testKilledEdgePresence(t, e)
	})
	t.Run("bad client messages get the contract's answer while others keep receiving", func(t *testing.T) {
		testBadClientMessages(t, e)
	})
	t.Run("bad tokens and origins are refused before the upgrade while others keep receiving", func(t *testing.T) {
		testRefusedUpgrades(t, e)
	})
	t.Run("a reader that never reads is closed as a slow consumer while others keep receiving", func(t *testing.T) {
		testSlowConsumer(t, e)
	})
	t.Run("a SIGTERMed edge turns not ready, closes every client with 1012 and exits 0", func(t *testing.T) {
		testDrain(t, e)
	})
	t.Run("an edge asked to shed closes that many clients with 1012 and keeps the rest", func(t *testing.T) {
		testShed(t, e)
	})
}
