package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/internal/redistest"
)

// recorder is a Sink that keeps what it was told, as "+user@room" and
// "-user@room".
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) Deliver(frame []byte) bool {
	// A short text frame: a 2-byte header, then the JSON message.
	var m struct {
		Type    string                     `json:"type"`
		Payload wire.PresenceChangePayload `json:"payload"`
	}
	if err := json.Unmarshal(frame[2:], &m); err != nil {
		panic(fmt.Sprintf("not a presence change: %q", frame))
	}
	sign := map[string]string{wire.TypePresenceJoin: "+", wire.TypePresenceLeave: "-"}[m.Type]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, sign+m.Payload.UserID+"@"+m.Payload.Room)
	return true
}

func (r *recorder) told() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func (r *recorder) await(t *testing.T, want ...string) {
	t.Helper()
	eventually(t, 5*time.Second, func() bool { return slices.Equal(r.told(), want) }, fmt.Sprintf("told %v", want))
}

// startPod is one edge pod's presence: a tracker announcing on NATS and a
// watcher, both running until the test ends (or stop).
func startPod(t *testing.T, pod string, b Backend, lease time.Duration, ns func() *Watcher) (*Tracker, *Watcher, context.CancelFunc) {
	t.Helper()
	w := ns()
	tr := NewTracker(pod, b, lease, func() PodStats { return PodStats{} }, discard)
	tr.OnMembersMoved(Announce(w.nc, discard))
	w.members = tr
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); tr.Run(ctx) }()
	go func() { defer wg.Done(); w.Run(ctx) }()
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return tr, w, stop
}

func TestWatchersHearOfJoinsAndLeavesOnEveryPod(t *testing.T) {
	srv := redistest.Start(t)
	nats := natstest.Start(t)
	newWatcher := func() *Watcher {
		w := NewWatcher(natstest.Connect(t, nats), nil, discard)
		w.Debounce = 50 * time.Millisecond
		w.Refresh = time.Hour // announcements alone, except where a test says
		return w
	}
	lease := time.Minute
	a, watcherA, _ := startPod(t, "pod-a", NewRedis(srv.Client(t)), lease, newWatcher)
	b, _, _ := startPod(t, "pod-b", NewRedis(srv.Client(t)), lease, newWatcher)

	// alice, on pod a, asks for global's presence and watches it from there.
	a.Join("global", "alice")
	alice := &recorder{}
	watcherA.Watch("global", alice, members(t, a, "global"))

	b.Join("global", "bob")
	alice.await(t, "+bob@global")
	// bob's second connection, and a room nobody watches, say nothing.
	b.Join("global", "bob")
	b.Join("device:x", "carol")
	a.Join("global", "alice")
	b.Leave("global", "bob")
	time.Sleep(300 * time.Millisecond)
	alice.await(t, "+bob@global")
	b.Leave("global", "bob")
	alice.await(t, "+bob@global", "-bob@global")

	// A second watcher on the same pod is told from its own view on.
	dave := &recorder{}
	b.Join("global", "erin")
	eventually(t, 5*time.Second, func() bool { return len(members(t, a, "global")) == 2 }, "erin is in")
	watcherA.Watch("global", dave, members(t, a, "global"))
	alice.await(t, "+bob@global", "-bob@global", "+erin@global")
	b.Leave("global", "erin")
	dave.await(t, "-erin@global")
	alice.await(t, "+bob@global", "-bob@global", "+erin@global", "-erin@global")

	// Unwatched, nothing more.
	watcherA.Unwatch("global", alice)
	b.Join("global", "frank")
	dave.await(t, "-erin@global", "+frank@global")
	if got := alice.told(); len(got) != 4 {
		t.Errorf("alice unwatched but was told %v", got)
	}
}

func TestAWatcherHearsADeadPodsUsersLeaveAfterItsLease(t *testing.T) {
	srv := redistest.Start(t)
	nats := natstest.Start(t)
	lease := time.Second
	newWatcher := func() *Watcher {
		w := NewWatcher(natstest.Connect(t, nats), nil, discard)
		w.Debounce = 50 * time.Millisecond
		w.Refresh = lease
		return w
	}
	deadClient := srv.Client(t)
	a, watcherA, _ := startPod(t, "pod-a", NewRedis(srv.Client(t)), lease, newWatcher)
	b, _, _ := startPod(t, "pod-b", NewRedis(deadClient), lease, newWatcher)
	a.Join("global", "alice")
	b.Join("global", "bob")
	eventually(t, 5*time.Second, func() bool { return len(members(t, a, "global")) == 2 }, "both in")
	alice := &recorder{}
	watcherA.Watch("global", alice, members(t, a, "global"))

	// pod-b dies without a word: its Redis calls fail, it announces nothing.
	_ = deadClient.Close()
	start := time.Now()
	alice.await(t, "-bob@global")
	t.Logf("bob's leave was told %s after his pod died (lease %s)", time.Since(start).Round(10*time.Millisecond), lease)
}
