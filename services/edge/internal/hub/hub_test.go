package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/natsconn"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// recorder is a Subscriber that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (r *recorder) Deliver(f []byte) bool {
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
	return true
}

// Replay makes recorder a Replayer: replayed frames join the same list.
func (r *recorder) Replay(f []byte) error {
	_ = r.Deliver(f)
	return nil
}

// seqs decodes the frames' room sequences (0 for a snapshot).
func (r *recorder) seqs(tb testing.TB) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint64, len(r.frames))
	for i, f := range r.frames {
		out[i] = decode(tb, f).Seq
	}
	return out
}

type roomMessage struct {
	Type    string `json:"type"`
	Room    string `json:"room"`
	Seq     uint64 `json:"seq"`
	Payload struct {
		DeviceID string             `json:"device_id"`
		Fields   map[string]float64 `json:"fields"`
	} `json:"payload"`
}

// decode strips a server text frame's header and decodes the message.
func decode(tb testing.TB, frame []byte) roomMessage {
	tb.Helper()
	n := int(frame[1] & 0x7f)
	body := frame[2:]
	switch n {
	case 126:
		body = frame[4:]
	case 127:
		body = frame[10:]
	}
	var m roomMessage
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("frame is not a room message: %v: %q", err, body)
	}
	return m
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

func envelope(tb testing.TB) []byte { return reading(tb, "d1", 1) }

func reading(tb testing.TB, deviceID string, n float64) []byte {
	data, err := proto.Marshal(&envelopev1.Envelope{IngestedAt: timestamppb.Now(), Body: &envelopev1.Envelope_Telemetry{Telemetry: &envelopev1.Telemetry{
		DeviceId: deviceID, Timestamp: timestamppb.Now(),
		Fields: map[string]*envelopev1.FieldValue{"n": {Kind: &envelopev1.FieldValue_Number{Number: n}}},
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

type fixture struct {
	hub *Hub
	sub *nats.Conn // the hub's connection
	js  jetstream.JetStream
}

func newHub(tb testing.TB) *fixture { return newTracedHub(tb, noop.NewTracerProvider()) }

func newTracedHub(tb testing.TB, tp trace.TracerProvider) *fixture {
	ns := natstest.Start(tb)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sub, err := natsconn.Connect(context.Background(), ns.ClientURL(), "hub-test", logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sub.Close)
	pub := natstest.Connect(tb, ns)
	if err := roomstream.Ensure(context.Background(), pub, roomstream.DefaultRetention); err != nil {
		tb.Fatal(err)
	}
	js, err := jetstream.New(pub)
	if err != nil {
		tb.Fatal(err)
	}
	h := New([]*nats.Conn{sub}, NewMetrics(nil), logger, tp)
	tb.Cleanup(h.Close)
	return &fixture{hub: h, sub: sub, js: js}
}

// store publishes one message to a room's stream and returns its sequence.
func (f *fixture) store(tb testing.TB, room string, data []byte) uint64 {
	tb.Helper()
	ack, err := f.js.Publish(context.Background(), envelopev1.RoomSubject(room, envelopev1.KindTelemetry), data)
	if err != nil {
		tb.Fatal(err)
	}
	return ack.Sequence
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEveryMemberGetsTheSameFrameOnce(t *testing.T) {
	f := newHub(t)
	members := make([]*recorder, 3)
	for i := range members {
		members[i] = &recorder{}
		if err := f.hub.Join("global", members[i]); err != nil {
			t.Fatal(err)
		}
	}
	// A new room reads its position from the stream, briefly with a reply
	// subscription of its own.
	waitFor(t, "one NATS subscription for one room", func() bool { return f.sub.NumSubscriptions() == 1 })
	seq := f.store(t, "global", envelope(t))
	waitFor(t, "the message", func() bool { return members[2].count() >= 1 })
	time.Sleep(20 * time.Millisecond)
	for i, m := range members {
		if m.count() != 1 || &m.frames[0][0] != &members[0].frames[0][0] {
			t.Errorf("member %d got %d frames, or a copy instead of the shared frame", i, m.count())
		}
	}
	if got := decode(t, members[0].frames[0]); got.Seq != seq || got.Room != "global" {
		t.Errorf("frame has room %q seq %d, want global %d", got.Room, got.Seq, seq)
	}
	for _, m := range members {
		f.hub.Leave("global", m)
	}
	if f.sub.NumSubscriptions() != 0 || f.hub.RoomCount() != 0 {
		t.Errorf("after the last leave: %d subscriptions, %d rooms", f.sub.NumSubscriptions(), f.hub.RoomCount())
	}
}

// A session holds a room while it sends its `subscribed` reply and joins
// after: what the room sends in between reaches it on Join, in order, and
// nothing twice. A hold that would keep too much refuses the join instead
// of losing messages.
func TestAHeldJoinGetsWhatCameWhileHeld(t *testing.T) {
	f := newHub(t)
	watcher := &recorder{}
	if err := f.hub.Join("global", watcher); err != nil {
		t.Fatal(err)
	}
	held, err := f.hub.Hold("global")
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for i := range 3 {
		want = append(want, f.store(t, "global", reading(t, "d1", float64(i))))
	}
	waitFor(t, "the watcher's 3 messages", func() bool { return watcher.count() == 3 })
	late := &recorder{}
	if !held.Join(late) {
		t.Fatal("Join refused a hold that kept 3 messages")
	}
	want = append(want, f.store(t, "global", reading(t, "d1", 3)))
	waitFor(t, "the 4th message", func() bool { return late.count() == 4 && watcher.count() == 4 })
	time.Sleep(20 * time.Millisecond)
	if got := late.seqs(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the held member got seqs %v, want %v", got, want)
	}

	t.Run("a hold that overflows refuses the join", func(t *testing.T) {
		held, err := f.hub.Hold("global")
		if err != nil {
			t.Fatal(err)
		}
		before := watcher.count()
		for i := range heldFrames + 1 {
			f.store(t, "global", reading(t, "d1", float64(i)))
		}
		waitFor(t, "the watcher's messages", func() bool { return watcher.count() == before+heldFrames+1 })
		m := &recorder{}
		if held.Join(m) {
			t.Error("Join accepted a hold that lost messages")
		}
		f.store(t, "global", reading(t, "d1", -1))
		waitFor(t, "one more message", func() bool { return watcher.count() == before+heldFrames+2 })
		if m.count() != 0 {
			t.Errorf("a refused member got %d frames", m.count())
		}
	})
}

func TestUndecodableEnvelopesAreDroppedNotFannedOut(t *testing.T) {
	f := newHub(t)
	m := &recorder{}
	if err := f.hub.Join("global", m); err != nil {
		t.Fatal(err)
	}
	f.store(t, "global", []byte("\xff\xff not protobuf"))
	f.store(t, "global", envelope(t))
	waitFor(t, "the good message after a bad one", func() bool { return m.count() >= 1 })
	time.Sleep(20 * time.Millisecond)
	if m.count() != 1 {
		t.Errorf("got %d frames, want only the good one", m.count())
	}
}

// roomSeqs lists the sequences the stream holds for a room after a point.
func roomSeqs(tb testing.TB, f *fixture, room string, after uint64) []uint64 {
	tb.Helper()
	var out []uint64
	r := roomstream.NewReader(f.sub)
	for {
		msgs, pending, err := r.After(context.Background(), envelopev1.RoomFilter(room), after, 1000)
		if err != nil {
			tb.Fatal(err)
		}
		for _, m := range msgs {
			out = append(out, m.Seq)
			after = m.Seq
		}
		if pending == 0 || len(msgs) == 0 {
			return out
		}
	}
}

func TestAResumeHasNoGapAndNoDuplicateAtTheSeam(t *testing.T) {
	f := newHub(t)
	// Another member keeps the room's live subscription busy throughout.
	watcher := &recorder{}
	if err := f.hub.Join("device:d1", watcher); err != nil {
		t.Fatal(err)
	}
	var since uint64
	for i := range 50 {
		seq := f.store(t, "device:d1", reading(t, "d1", float64(i)))
		f.store(t, "device:d2", reading(t, "d2", float64(i))) // another room
		if i == 9 {
			since = seq
		}
	}
	// Readings keep coming while clients resume, so replays race the live path.
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 50; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := f.js.Publish(context.Background(), envelopev1.RoomSubject("device:d1", envelopev1.KindTelemetry), reading(t, "d1", float64(i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	resumed := make([]*recorder, 20)
	for i := range resumed {
		resumed[i] = &recorder{}
		if err := f.hub.Resume(context.Background(), "device:d1", resumed[i], From{Seq: since}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	<-published
	want := roomSeqs(t, f, "device:d1", since)
	for i, r := range resumed {
		waitFor(t, "every message", func() bool { return r.count() >= len(want) })
		if got := r.seqs(t); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("resumed member %d got %d messages %v\nwant %d: %v", i, len(got), got, len(want), want)
		}
	}
	if got, all := watcher.seqs(t), roomSeqs(t, f, "device:d1", 0); fmt.Sprint(got) != fmt.Sprint(all) {
		t.Errorf("the live member got %v, want %v", got, all)
	}
}

func TestMessagesStoredWhileNATSWasAwayAreCaughtUp(t *testing.T) {
	f := newHub(t)
	m := &recorder{}
	if err := f.hub.Join("group:g", m); err != nil {
		t.Fatal(err)
	}
	f.store(t, "group:g", reading(t, "d1", 0))
	waitFor(t, "the first message", func() bool { return m.count() == 1 })

	// The hub's connection drops; the room's messages keep being stored.
	if err := f.sub.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		f.store(t, "group:g", reading(t, "d1", float64(i)))
	}
	want := roomSeqs(t, f, "group:g", 0)
	waitFor(t, "every message after the reconnect", func() bool { return m.count() >= len(want) })
	time.Sleep(50 * time.Millisecond)
	if got := m.seqs(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	t.Logf("%v messages came from the stream, the rest live", testutil.ToFloat64(f.hub.metrics.CaughtUp))
}

func TestALatestSnapshotComesFirstWithoutSequences(t *testing.T) {
	f := newHub(t)
	f.store(t, "device:a", reading(t, "a", 1))
	f.store(t, "device:a", reading(t, "a", 2))
	f.store(t, "device:b", reading(t, "b", 7))
	f.store(t, "group:g", reading(t, "a", 2))
	m := &recorder{}
	pos, err := f.hub.Position(context.Background(), "group:g")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.hub.Resume(context.Background(), "group:g", m, From{Seq: pos, Snapshot: true, Devices: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	seq := f.store(t, "group:g", reading(t, "b", 8))
	waitFor(t, "the snapshot and the live message", func() bool { return m.count() >= 3 })
	var got []string
	for _, fr := range m.frames {
		d := decode(t, fr)
		got = append(got, fmt.Sprintf("%s/%s=%v@%d", d.Room, d.Payload.DeviceID, d.Payload.Fields["n"], d.Seq))
	}
	if want := fmt.Sprintf("[group:g/a=2@0 group:g/b=7@0 group:g/b=8@%d]", seq); fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

type countingSubscriber struct{ id, n int }

func (c *countingSubscriber) Deliver([]byte) bool {
	c.n++
	return true
}

func TestJoinsAndLeavesKeepEveryOtherMember(t *testing.T) {
	r := &room{index: map[Subscriber]int{}}
	subs := make([]*countingSubscriber, 100)
	for i := range subs {
		subs[i] = &countingSubscriber{id: i}
		r.add(member{sub: subs[i]})
	}
	r.add(member{sub: subs[0]}) // joining twice is a no-op
	for i := 0; i < 100; i += 3 {
		r.remove(subs[i])
	}
	r.remove(&countingSubscriber{}) // never joined
	for _, m := range r.members {
		_ = m.sub.Deliver(nil)
	}
	for i, s := range subs {
		want := 1
		if i%3 == 0 {
			want = 0
		}
		if s.n != want {
			t.Errorf("member %d got %d deliveries, want %d", i, s.n, want)
		}
		if idx, ok := r.index[s]; ok && r.members[idx].sub != Subscriber(s) {
			t.Errorf("index of member %d points at another member", i)
		}
	}
}

// BenchmarkJoin20000 fills one room with 20,000 members: joins must stay O(1).
func BenchmarkJoin20000(b *testing.B) {
	for b.Loop() {
		r := &room{index: map[Subscriber]int{}}
		for i := range 20000 {
			r.add(member{sub: &countingSubscriber{id: i}})
		}
	}
}

// BenchmarkFanout measures the hub's per-message cost for one room: take
// the trace context from the headers, decode and render once, then one
// Deliver per member; with tracing off (no SDK, as when no OTLP endpoint
// is set), and with the SDK recording 1% and 100% of the messages (the
// sampled flag of their traceparent, set by ingest's sampler) into a batch
// processor whose exporter discards.
func BenchmarkFanout(b *testing.B) {
	for _, members := range []int{1, 100, 5000} {
		for _, tc := range []struct {
			name    string
			sampled int // per 100 messages
		}{{"tracing=off", 0}, {"tracing=1%", 1}, {"tracing=100%", 100}} {
			b.Run(fmt.Sprintf("members=%d/%s", members, tc.name), func(b *testing.B) {
				var tp trace.TracerProvider = noop.NewTracerProvider()
				if tc.name != "tracing=off" {
					sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
					b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
					tp = sdk
				}
				f := newTracedHub(b, tp)
				r := newRoom(f.hub, "global", f.sub, nil)
				for i := range members {
					r.add(member{sub: &countingSubscriber{id: i}})
				}
				headers := make([]nats.Header, 100)
				for i := range headers {
					flags := "00"
					if i < tc.sampled {
						flags = "01"
					}
					headers[i] = nats.Header{"traceparent": {fmt.Sprintf("00-%032x-%016x-%s", i+1, i+1, flags)}}
				}
				data := envelope(b)
				subject := envelopev1.LiveSubjectPrefix + "global.telemetry"
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					r.fanOut(tracing.ExtractNATS(context.Background(), headers[i%len(headers)]), subject, r.last+1, data, false)
					i++
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				b.ReportMetric(float64(b.N)*float64(members)/b.Elapsed().Seconds(), "deliveries/s")
			})
		}
	}
}

// BenchmarkResume1000 measures a resume that replays 1,000 stored messages
// (four stream reads) and attaches to the live fan-out.
func BenchmarkResume1000(b *testing.B) {
	f := newHub(b)
	for i := range 1000 {
		f.store(b, "device:d1", reading(b, "d1", float64(i)))
	}
	b.ReportAllocs()
	for b.Loop() {
		m := &countingReplayer{}
		if err := f.hub.Resume(context.Background(), "device:d1", m, From{}); err != nil {
			b.Fatal(err)
		}
		if m.n != 1000 {
			b.Fatalf("replayed %d messages, want 1000", m.n)
		}
		f.hub.Leave("device:d1", m)
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "replayed/s")
}

type countingReplayer struct{ n int }

func (c *countingReplayer) Deliver([]byte) bool { return true }
func (c *countingReplayer) Replay([]byte) error {
	c.n++
	return nil
}
