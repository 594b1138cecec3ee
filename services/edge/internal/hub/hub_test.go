package hub

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
)

// recorder is a Subscriber that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (r *recorder) Deliver(f []byte) {
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

func envelope(tb testing.TB) []byte {
	data, err := proto.Marshal(&envelopev1.Envelope{IngestedAt: timestamppb.Now(), Body: &envelopev1.Envelope_Telemetry{Telemetry: &envelopev1.Telemetry{
		DeviceId: "d1", Timestamp: timestamppb.Now(),
		Fields: map[string]*envelopev1.FieldValue{"t": {Kind: &envelopev1.FieldValue_Number{Number: 1}}},
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func newHub(tb testing.TB) (*Hub, *nats.Conn, *nats.Conn) {
	ns := natstest.Start(tb)
	sub, pub := natstest.Connect(tb, ns), natstest.Connect(tb, ns)
	return New([]*nats.Conn{sub}, NewMetrics(nil), slog.New(slog.NewTextHandler(io.Discard, nil))), sub, pub
}

func TestEveryMemberGetsTheSameFrameOnce(t *testing.T) {
	h, sub, pub := newHub(t)
	members := make([]*recorder, 3)
	for i := range members {
		members[i] = &recorder{}
		if err := h.Join("global", members[i]); err != nil {
			t.Fatal(err)
		}
	}
	if sub.NumSubscriptions() != 1 {
		t.Fatalf("%d NATS subscriptions for one room, want 1", sub.NumSubscriptions())
	}
	if err := pub.Publish(envelopev1.RoomSubject("global"), envelope(t)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for members[2].count() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("message not delivered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	for i, m := range members {
		if m.count() != 1 || &m.frames[0][0] != &members[0].frames[0][0] {
			t.Errorf("member %d got %d frames, or a copy instead of the shared frame", i, m.count())
		}
	}
	for _, m := range members {
		h.Leave("global", m)
	}
	if sub.NumSubscriptions() != 0 || h.RoomCount() != 0 {
		t.Errorf("after the last leave: %d subscriptions, %d rooms", sub.NumSubscriptions(), h.RoomCount())
	}
}

func TestUndecodableEnvelopesAreDroppedNotFannedOut(t *testing.T) {
	h, _, pub := newHub(t)
	m := &recorder{}
	if err := h.Join("global", m); err != nil {
		t.Fatal(err)
	}
	_ = pub.Publish(envelopev1.RoomSubject("global"), []byte("\xff\xff not protobuf"))
	_ = pub.Publish(envelopev1.RoomSubject("global"), envelope(t))
	deadline := time.Now().Add(5 * time.Second)
	for m.count() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the good message after a bad one did not arrive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m.count() != 1 {
		t.Errorf("got %d frames, want only the good one", m.count())
	}
}

type countingSubscriber struct{ id, n int }

func (c *countingSubscriber) Deliver([]byte) { c.n++ }

func TestJoinsAndLeavesKeepEveryOtherMember(t *testing.T) {
	r := &room{index: map[Subscriber]int{}}
	subs := make([]*countingSubscriber, 100)
	for i := range subs {
		subs[i] = &countingSubscriber{id: i}
		r.add(subs[i])
	}
	r.add(subs[0]) // joining twice is a no-op
	for i := 0; i < 100; i += 3 {
		r.remove(subs[i])
	}
	r.remove(&countingSubscriber{}) // never joined
	for _, m := range r.members {
		m.Deliver(nil)
	}
	for i, s := range subs {
		want := 1
		if i%3 == 0 {
			want = 0
		}
		if s.n != want {
			t.Errorf("member %d got %d deliveries, want %d", i, s.n, want)
		}
		if idx, ok := r.index[s]; ok && r.members[idx] != Subscriber(s) {
			t.Errorf("index of member %d points at another member", i)
		}
	}
}

// BenchmarkJoin20000 fills one room with 20,000 members: joins must stay O(1).
func BenchmarkJoin20000(b *testing.B) {
	for b.Loop() {
		r := &room{index: map[Subscriber]int{}}
		for i := range 20000 {
			r.add(&countingSubscriber{id: i})
		}
	}
}

// BenchmarkFanout5000 measures the hub's per-message cost for one room of
// 5000 members: decode and render once, then one Deliver per member.
func BenchmarkFanout5000(b *testing.B) {
	h, _, _ := newHub(b)
	r := &room{name: "global", index: map[Subscriber]int{}}
	for i := range 5000 {
		r.add(&countingSubscriber{id: i})
	}
	handler := r.handler(h)
	msg := &nats.Msg{Data: envelope(b)}
	b.ReportAllocs()
	for b.Loop() {
		handler(msg)
	}
	b.ReportMetric(float64(b.N)*5000/b.Elapsed().Seconds(), "deliveries/s")
}
