package e2e

import (
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// The chaos scenario's shape. The rate and the schedule keep the whole test
// under a minute on a two-core machine running everything with -race.
const (
	chaosDevices       = 100
	chaosDeviceClients = 330 // each in 2 or 3 device rooms
	chaosGlobalClients = 3   // one per edge at the start
	chaosRate          = 250 // readings per second, over all devices
	chaosDrainPeriod   = 2 * time.Second
	chaosWarmup        = "chaos-warmup" // probe device, outside the account
)

// The chaos schedule, from the first reading. NATS restarts while edge 1
// drains, so that clients reconnect to the other edges while those have
// lost NATS: they must wait (or be told `unavailable`), not join live with
// a gap.
const (
	chaosKillAt      = 3 * time.Second  // SIGKILL edge 0, replace it
	chaosDrainAt     = 7 * time.Second  // SIGTERM edge 1 (drains with 1012), replace it once it exits
	chaosNATSAt      = 8 * time.Second  // restart NATS
	chaosPublishStop = 14 * time.Second // then readings flow a while with everything back
)

// TestNothingIsLostWhenPodsAndNATSFail runs the whole system (NATS with
// JetStream on files, Redis, Mosquitto, one ingest, three edges) under
// resuming clients while devices publish numbered readings, and takes it
// apart piece by piece: an edge is SIGKILLed, another SIGTERMed (it drains
// its clients with 1012), and NATS restarts. Each lost edge is replaced on
// its address, as a Deployment behind a Service would. Every client must
// end with every reading of each of its rooms exactly once, in order.
func TestNothingIsLostWhenPodsAndNATSFail(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos scenario runs for about 20 seconds")
	}
	harness.CheckGoroutines(t) // first, so that it checks after every cleanup
	began := time.Now()

	natsServer := harness.StartNATS(t)
	redis := harness.StartRedis(t)
	broker := harness.StartMosquitto(t)
	sensorcast.StartIngest(t, "ingest", harness.Settings{
		"NATS_URL":         natsServer.ClientURL(),
		"MQTT_URL":         broker.URL,
		"MQTT_CLIENT_ID":   "chaos-ingest",
		"MQTT_SHARE_GROUP": "chaos-ingest",
	})
	edgeSettings := func(addr string) harness.Settings {
		return harness.Settings{
			"HTTP_ADDR":      addr, // empty: a free port
			"NATS_URL":       natsServer.ClientURL(),
			"NATS_CONNS":     "2",
			"REDIS_URL":      redis.URL,
			"JWT_SECRET":     jwtSecret,
			"PRESENCE_LEASE": presenceLease.String(),
			"DRAIN_PERIOD":   chaosDrainPeriod.String(),
		}
	}
	edges := make([]*harness.Edge, 3)
	urls := make([]string, len(edges))
	for i := range edges {
		edges[i] = sensorcast.StartEdge(t, fmt.Sprintf("edge-%d", i), edgeSettings(""))
		urls[i] = edges[i].WSURL
	}
	devices := make([]string, chaosDevices)
	for i := range devices {
		devices[i] = fmt.Sprintf("chaos-%03d", i)
	}
	f := newFleet(t, broker, "chaos-devices")
	warmUp(t, f, edges[0], chaosWarmup)
	setUp := time.Since(began)

	// Clients. Client i starts on edge i%3 and joins devices i, i+37 and
	// (every other one) i+71 modulo 100: the clients of device room r
	// include r, r+100 and r+200, which start on three different edges.
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := func(i int, rooms ...string) harness.ResumeOptions {
		return harness.ResumeOptions{
			URLs: urls, First: i % len(urls), Token: token(t, fmt.Sprintf("user%d", i), "global", "device:*"),
			Rooms:       rooms,
			BackoffBase: 50 * time.Millisecond, BackoffCap: time.Second,
			CounterField: counterField, Logger: log,
		}
	}
	var clients []*harness.ResumingClient
	for i := range chaosDeviceClients {
		rooms := []string{"device:" + devices[i%chaosDevices], "device:" + devices[(i+37)%chaosDevices]}
		if i%2 == 0 {
			rooms = append(rooms, "device:"+devices[(i+71)%chaosDevices])
		}
		clients = append(clients, harness.StartResuming(t, fmt.Sprintf("c%03d", i), opts(i, rooms...)))
	}
	for i := range chaosGlobalClients {
		clients = append(clients, harness.StartResuming(t, fmt.Sprintf("g%d", i), opts(i, "global")))
	}
	for _, c := range clients {
		if err := c.WaitSubscribed(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	subscribed := time.Since(began)

	// Devices publish round robin at chaosRate until stopped. A reading is
	// sent whole or the test fails: stopping only ends the loop.
	stop := make(chan struct{})
	stopped := false
	stopPublishing := func() {
		if !stopped {
			stopped = true
			close(stop)
		}
	}
	defer stopPublishing()
	published := make(chan error, 1)
	go func() {
		const tick = 20 * time.Millisecond
		const perTick = chaosRate * int(tick) / int(time.Second)
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		next := 0
		for {
			select {
			case <-stop:
				published <- nil
				return
			case <-ticker.C:
			}
			for range perTick {
				if err := f.publish(t.Context(), devices[next%chaosDevices]); err != nil {
					published <- err
					return
				}
				next++
			}
		}
	}()
	start := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) } // the schedule, not a wait for a result

	at(chaosKillAt)
	edges[0].Kill()
	t.Logf("%s: SIGKILLed %s", time.Since(start).Round(time.Millisecond), edges[0].Name)
	edges[0] = sensorcast.StartEdge(t, "edge-0-replacement", edgeSettings(edges[0].Addr))

	at(chaosDrainAt)
	if err := edges[1].Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", edges[1].Name, err)
	}
	t.Logf("%s: SIGTERMed %s", time.Since(start).Round(time.Millisecond), edges[1].Name)

	at(chaosNATSAt)
	natsServer.Restart(t)
	t.Logf("%s: restarted NATS", time.Since(start).Round(time.Millisecond))

	if code, _, err := edges[1].Wait(chaosDrainPeriod + 10*time.Second); err != nil || code != 0 {
		t.Fatalf("%s after SIGTERM: exit status %d, %v; want 0", edges[1].Name, code, err)
	}
	edges[1] = sensorcast.StartEdge(t, "edge-1-replacement", edgeSettings(edges[1].Addr))

	at(chaosPublishStop)
	stopPublishing()
	if err := <-published; err != nil {
		t.Fatalf("publishing: %v", err)
	}
	if err := f.pub.Wait(30 * time.Second); err != nil {
		t.Fatalf("the broker did not take every reading: %v", err)
	}
	publishing := time.Since(start)
	counts := f.published()
	total := f.total()

	caughtUp := waitCaughtUp(clients, counts, 45*time.Second)
	if caughtUp != nil {
		t.Errorf("clients did not catch up: %v", caughtUp)
	}
	catchUp := time.Since(start) - publishing
	// Duplicates would come after the last reading; give them the time a
	// delivery takes to show up before counting.
	time.Sleep(quiet)
	stopAll(clients)

	d := checkDelivery(clients, counts, chaosWarmup)
	report(t, "published %d readings of %d devices in %s (%.0f/s) to %d clients on 3 edges",
		total, chaosDevices, publishing.Round(time.Millisecond), float64(total)/publishing.Seconds(), len(clients))
	report(t, "%s", d)
	report(t, "%s", reconnectStats(clients))
	report(t, "set-up %s, clients subscribed after %s, catch-up %s, total %s",
		setUp.Round(time.Millisecond), subscribed.Round(time.Millisecond), catchUp.Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond))
	if d.faults() > 0 {
		t.Errorf("delivery faults (first %d):\n\t%s", len(d.examples), strings.Join(d.examples, "\n\t"))
	}
	// The scenario must have done what it claims: clients were cut off
	// without a close frame (the SIGKILL) and drained with 1012.
	codes := closeCodes(clients)
	if codes[harness.CloseAbnormal] == 0 || codes[harness.CloseServiceRestart] == 0 {
		t.Errorf("closes by code %v; want some 1006 (SIGKILL) and some 1012 (drain)", codes)
	}

	// Stop the edges together: each drains (with no clients left) on its own.
	for _, e := range edges {
		if err := e.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM %s: %v", e.Name, err)
		}
	}
	for _, e := range edges {
		if code, _, err := e.Wait(chaosDrainPeriod + 10*time.Second); err != nil || code != 0 {
			t.Errorf("%s after SIGTERM: exit status %d, %v; want 0", e.Name, code, err)
		}
	}
}
