package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// What the "nothing lost" scenarios share: devices publishing numbered
// readings over MQTT, and the check that every resuming client received
// each reading of its rooms exactly once and in order.

// counterField is the telemetry field that numbers a device's readings
// from 1.
const counterField = "n"

// fleet publishes numbered readings of its devices over one MQTT
// connection and remembers how many each device published.
type fleet struct {
	pub *harness.MQTTPublisher
	pad string // tags JSON added to every reading (may be empty)

	mu    sync.Mutex
	count map[string]int64 // device -> last counter published
}

func newFleet(t testing.TB, broker *harness.Mosquitto, clientID string) *fleet {
	t.Helper()
	return &fleet{pub: harness.DialMQTT(t, broker.Addr, clientID), count: map[string]int64{}}
}

// withPad makes every reading carry tags tags of size bytes each (the
// contract allows up to 32 tags of 256 bytes in an 8 KB payload).
func (f *fleet) withPad(tags, size int) *fleet {
	var b strings.Builder
	b.WriteString(`,"tags":{`)
	for i := range tags {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"pad%02d":%q`, i, strings.Repeat("x", size))
	}
	b.WriteByte('}')
	f.pad = b.String()
	return f
}

// publish sends device's next reading.
func (f *fleet) publish(ctx context.Context, device string) error {
	f.mu.Lock()
	f.count[device]++
	n := f.count[device]
	f.mu.Unlock()
	payload := fmt.Appendf(nil, `{"fields":{%q:%d}%s}`, counterField, n, f.pad)
	if err := f.pub.Publish(ctx, "devices/"+device+"/telemetry", payload); err != nil {
		return fmt.Errorf("reading %d of %s: %w", n, device, err)
	}
	return nil
}

// published returns how many readings each device published.
func (f *fleet) published() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.count)
}

// total is how many readings were published.
func (f *fleet) total() int64 {
	var n int64
	for _, c := range f.published() {
		n += c
	}
	return n
}

// roomDevices returns the devices whose readings reach room: the device of
// a device room, every device for global.
func roomDevices(room string, published map[string]int64) []string {
	if id, ok := strings.CutPrefix(room, "device:"); ok {
		return []string{id}
	}
	if room == "global" {
		return slices.Sorted(maps.Keys(published))
	}
	return nil
}

// expectedIn is how many readings room should deliver.
func expectedIn(room string, published map[string]int64) int {
	var n int64
	for _, d := range roomDevices(room, published) {
		n += published[d]
	}
	return int(n)
}

// waitCaughtUp waits until every client holds, in every room, as many
// distinct readings as were published to it, and returns an error naming
// the clients still behind when timeout passes first.
func waitCaughtUp(clients []*harness.ResumingClient, published map[string]int64, timeout time.Duration) error {
	return harness.Poll(timeout, func() error {
		var behind []string
		for _, c := range clients {
			for _, room := range c.Rooms() {
				if got, want := c.Distinct(room), expectedIn(room, published); got < want {
					behind = append(behind, fmt.Sprintf("%s %s %d/%d", c.Name, room, got, want))
				}
			}
		}
		if len(behind) > 0 {
			return fmt.Errorf("%d client rooms behind: %s", len(behind), strings.Join(behind[:min(len(behind), 10)], ", "))
		}
		return nil
	})
}

// delivery is the account of what clients received against what was
// published.
type delivery struct {
	clientRooms int   // (client, room) pairs checked
	expected    int64 // readings that should have arrived, over all pairs
	received    int64 // room messages that arrived
	lost        int64 // published readings that never arrived
	duplicated  int64 // readings that arrived more than once (extra copies)
	outOfOrder  int64 // readings older than one already received from the device in the room
	seqOrder    int64 // first copies whose seq was not above the room's previous seq
	foreign     int64 // messages that do not belong: wrong room or device, unknown counter, no seq, not telemetry
	unrecovered int   // rooms an edge could not resume
	problems    int   // other contract breaches the clients saw
	examples    []string
}

func (d *delivery) fault(format string, args ...any) {
	if len(d.examples) < 20 {
		d.examples = append(d.examples, fmt.Sprintf(format, args...))
	}
}

// checkDelivery accounts for every message each client received, room by
// room. Readings of the devices in ignore (warm-up probes) are left out.
func checkDelivery(clients []*harness.ResumingClient, published map[string]int64, ignore ...string) delivery {
	var d delivery
	for _, c := range clients {
		for _, u := range c.Unrecovered() {
			d.unrecovered++
			d.fault("%s: edge could not recover %s", c.Name, u)
		}
		for _, p := range c.Problems() {
			d.problems++
			d.fault("%s: %s", c.Name, p)
		}
		byRoom := map[string][]harness.RoomMessage{}
		for _, m := range c.Received() {
			if slices.Contains(ignore, m.Device) {
				continue
			}
			byRoom[m.Room] = append(byRoom[m.Room], m)
		}
		for room := range byRoom {
			if !slices.Contains(c.Rooms(), room) {
				d.foreign += int64(len(byRoom[room]))
				d.fault("%s: %d messages of room %s, which it never joined", c.Name, len(byRoom[room]), room)
			}
		}
		for _, room := range c.Rooms() {
			d.clientRooms++
			d.checkRoom(c.Name, room, byRoom[room], published)
		}
	}
	return d
}

func (d *delivery) checkRoom(client, room string, msgs []harness.RoomMessage, published map[string]int64) {
	devices := roomDevices(room, published)
	seen := map[string]map[int64]bool{}
	last := map[string]int64{}
	var lastSeq uint64
	for _, m := range msgs {
		d.received++
		switch {
		case m.Type != "telemetry" || !m.HasSeq || m.Counter < 1 ||
			!slices.Contains(devices, m.Device) || m.Counter > published[m.Device]:
			d.foreign++
			d.fault("%s %s: unexpected %s of %q counter %d seq %d (has seq: %t)", client, room, m.Type, m.Device, m.Counter, m.Seq, m.HasSeq)
			continue
		case seen[m.Device][m.Counter]:
			d.duplicated++
			d.fault("%s %s: %s reading %d again (seq %d, connection %d)", client, room, m.Device, m.Counter, m.Seq, m.Conn)
			continue
		case m.Counter < last[m.Device]:
			d.outOfOrder++
			d.fault("%s %s: %s reading %d after %d (seq %d, connection %d)", client, room, m.Device, m.Counter, last[m.Device], m.Seq, m.Conn)
		}
		if m.Seq <= lastSeq {
			d.seqOrder++
			d.fault("%s %s: seq %d after %d (%s reading %d, connection %d)", client, room, m.Seq, lastSeq, m.Device, m.Counter, m.Conn)
		}
		lastSeq = max(lastSeq, m.Seq)
		if seen[m.Device] == nil {
			seen[m.Device] = map[int64]bool{}
		}
		seen[m.Device][m.Counter] = true
		last[m.Device] = max(last[m.Device], m.Counter)
	}
	for _, dev := range devices {
		d.expected += published[dev]
		if missing := published[dev] - int64(len(seen[dev])); missing > 0 {
			d.lost += missing
			var first int64
			for n := int64(1); n <= published[dev]; n++ {
				if !seen[dev][n] {
					first = n
					break
				}
			}
			d.fault("%s %s: %d of %d readings of %s lost, the first is %d", client, room, missing, published[dev], dev, first)
		}
	}
}

func (d delivery) faults() int64 {
	return d.lost + d.duplicated + d.outOfOrder + d.seqOrder + d.foreign + int64(d.unrecovered) + int64(d.problems)
}

func (d delivery) String() string {
	return fmt.Sprintf("%d client rooms, %d readings expected, %d received: lost %d, duplicated %d, out of order %d, seq not increasing %d, foreign %d, unrecovered rooms %d, other problems %d",
		d.clientRooms, d.expected, d.received, d.lost, d.duplicated, d.outOfOrder, d.seqOrder, d.foreign, d.unrecovered, d.problems)
}

// reconnectStats summarizes how long the clients' reconnects took and how
// their connections ended.
func reconnectStats(clients []*harness.ResumingClient) string {
	var all []time.Duration
	codes := map[int]int{}
	dialFailures, unavailable := 0, 0
	for _, c := range clients {
		unavailable += c.Unavailable()
		all = append(all, c.Reconnects()...)
		for code, n := range c.CloseCodes() {
			codes[code] += n
		}
		dialFailures += c.DialFailures()
	}
	var b strings.Builder
	if len(all) == 0 {
		b.WriteString("reconnects: none")
	} else {
		slices.Sort(all)
		pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
		fmt.Fprintf(&b, "reconnects: %d, p50 %s, p90 %s, p99 %s, max %s",
			len(all), pct(0.50).Round(time.Millisecond), pct(0.90).Round(time.Millisecond),
			pct(0.99).Round(time.Millisecond), all[len(all)-1].Round(time.Millisecond))
	}
	b.WriteString("; closes by code:")
	for _, code := range slices.Sorted(maps.Keys(codes)) {
		fmt.Fprintf(&b, " %d×%d", code, codes[code])
	}
	fmt.Fprintf(&b, "; failed dials: %d; rooms asked for again after `unavailable`: %d", dialFailures, unavailable)
	return b.String()
}

// report logs a line and prints it to stdout (shown with -v). go test
// hides a passing package's output otherwise, so it also appends the line
// to the file named by SENSORCAST_TEST_REPORT, which `make test` prints in
// its summary.
func report(t testing.TB, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("%s: %s\n", t.Name(), fmt.Sprintf(format, args...))
	t.Log(line)
	fmt.Fprint(os.Stdout, line)
	if path := os.Getenv("SENSORCAST_TEST_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Errorf("test report: %v", err)
			return
		}
		defer f.Close()
		if _, err := f.WriteString(line); err != nil {
			t.Errorf("test report: %v", err)
		}
	}
}

// closeCodes adds up the clients' closes by code.
func closeCodes(clients []*harness.ResumingClient) map[int]int {
	codes := map[int]int{}
	for _, c := range clients {
		for code, n := range c.CloseCodes() {
			codes[code] += n
		}
	}
	return codes
}

// stopAll stops every client; their recordings stay readable.
func stopAll(clients []*harness.ResumingClient) {
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(c.Stop)
	}
	wg.Wait()
}

// warmUp publishes probe readings of device (not counted as published)
// until one reaches a client on edge, which proves ingest holds its MQTT subscription and the stream is
// in place; readings published before that could be lost at the broker,
// which drops messages nobody subscribes to.
func warmUp(t *testing.T, f *fleet, edge *harness.Edge, device string) {
	t.Helper()
	probe := harness.Dial(t, "probe@"+edge.Name, edge.WSURL, token(t, "probe", "device:"+device), harness.DialOptions{})
	probe.MustSubscribe(t, "device:"+device)
	n := 0
	harness.Eventually(t, 30*time.Second, func() error {
		n++
		if err := f.pub.Publish(t.Context(), "devices/"+device+"/telemetry", fmt.Appendf(nil, `{"fields":{"probe":%d}}`, n)); err != nil {
			t.Fatal(err)
		}
		_, err := probe.Await(time.Second, harness.Message.IsRoomMessage)
		return err
	})
	probe.Close()
}
