package e2e

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// resumeQueue is the send queue of the edge in the slow consumer scenario:
// small, so that a client that stops reading overflows it soon.
const resumeQueue = 8

// TestASlowConsumerResumesWithNothingLost has a dashboard stop reading
// during a burst of large readings. The edge closes it with 1013 "slow
// consumer"; the client reconnects at once, resumes from the last seq it
// read, and ends with every reading exactly once and in order, as does an
// observer of the same room on the same edge that kept reading and was
// never disconnected.
func TestASlowConsumerResumesWithNothingLost(t *testing.T) {
	harness.CheckGoroutines(t) // first, so that it checks after every cleanup
	began := time.Now()
	natsServer := harness.StartNATS(t)
	broker := harness.StartMosquitto(t)
	sensorcast.StartIngest(t, "ingest", harness.Settings{
		"NATS_URL":         natsServer.ClientURL(),
		"MQTT_URL":         broker.URL,
		"MQTT_CLIENT_ID":   "slow-ingest",
		"MQTT_SHARE_GROUP": "slow-ingest",
	})
	edge := sensorcast.StartEdge(t, "edge-slow", harness.Settings{
		"NATS_URL":   natsServer.ClientURL(),
		"JWT_SECRET": jwtSecret,
		"SEND_QUEUE": strconv.Itoa(resumeQueue),
		// The edge's write to the paused client blocks; it must wait for
		// the client to read again, so that the client sees its 1013.
		"WRITE_TIMEOUT": "30s",
		"DRAIN_PERIOD":  "1s",
	})
	const padTags, padSize = 24, 240 // ~6 KB per reading
	f := newFleet(t, broker, "slow-devices").withPad(padTags, padSize)
	warmUp(t, f, edge, "slow-warmup")

	const device = "slow-1"
	room := "device:" + device
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := func(user string, receiveBuffer int) harness.ResumeOptions {
		return harness.ResumeOptions{
			URLs: []string{edge.WSURL}, Token: token(t, user, "device:*"), Rooms: []string{room},
			BackoffBase: 50 * time.Millisecond, BackoffCap: time.Second,
			CounterField: counterField, ReceiveBuffer: receiveBuffer, Logger: log,
		}
	}
	// A tiny receive buffer: the kernel holds little for the slow client.
	slow := harness.StartResuming(t, "sloth", opts("sloth", 4096))
	observer := harness.StartResuming(t, "olive", opts("olive", 0))
	clients := []*harness.ResumingClient{slow, observer}
	for _, c := range clients {
		if err := c.WaitSubscribed(harness.AwaitTimeout); err != nil {
			t.Fatal(err)
		}
	}
	// publish publishes n readings and waits until c has all of them.
	// Batches below the queue size never overflow a client that reads.
	publish := func(n int, c *harness.ResumingClient) {
		t.Helper()
		for range n {
			if err := f.publish(t.Context(), device); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.AwaitDistinct(room, int(f.total()), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// Both read the first readings live.
	publish(resumeQueue/2, slow)

	// The slow client stops reading. Until its queue overflows, the edge can
	// park its messages in the kernel: the socket's send buffer (at most
	// tcp_wmem's maximum) and the client's small receive buffer. Publish
	// well past that, in batches the observer must each receive in full,
	// so that every reading has reached the edge's fan-out (and the slow
	// client's queue) before the client reads again.
	slow.PauseReading()
	burst := time.Now()
	budget := (maxSendBuffer() + 1<<20) / (padTags * padSize)
	for range budget / (resumeQueue / 2) {
		publish(resumeQueue/2, observer)
	}
	t.Logf("published a burst of %d readings of ~6 KB in %s while the slow client did not read",
		budget, time.Since(burst).Round(time.Millisecond))
	before := slow.Distinct(room)
	slow.ResumeReading()

	// It reads what the kernel held, then its 1013, reconnects and
	// resumes; more readings then arrive live.
	harness.Eventually(t, 10*time.Second, func() error {
		if len(slow.Reconnects()) == 0 {
			return fmt.Errorf("%s has not resumed; closes %v, %d readings", slow.Name, slow.CloseCodes(), slow.Distinct(room))
		}
		return nil
	})
	publish(resumeQueue/2, slow)
	for _, c := range clients {
		if err := c.AwaitDistinct(room, int(f.total()), 30*time.Second); err != nil {
			t.Error(err)
		}
	}
	time.Sleep(quiet) // duplicates would come after the last reading
	stopAll(clients)

	d := checkDelivery(clients, f.published(), "slow-warmup")
	report(t, "published %d readings of ~6 KB; the slow client had read %d when it read again; %s", f.total(), before, d)
	report(t, "%s", reconnectStats(clients))
	report(t, "slow client closes %v, observer closes %v; total %s", slow.CloseCodes(), observer.CloseCodes(), time.Since(began).Round(time.Millisecond))
	if d.faults() > 0 {
		t.Errorf("delivery faults (first %d):\n\t%s", len(d.examples), strings.Join(d.examples, "\n\t"))
	}
	if codes := slow.CloseCodes(); codes[harness.CloseTryAgainLater] != 1 || len(codes) != 1 {
		t.Errorf("slow client closes by code %v; want exactly one, 1013", codes)
	}
	if codes := observer.CloseCodes(); len(codes) > 0 {
		t.Errorf("observer closes by code %v; want none", codes)
	}
}
