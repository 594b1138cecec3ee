// Package presence tracks who is in which room across every edge pod.
//
// Each pod is the authority for its own connections: a Tracker counts them
// locally (no I/O on join or leave) and mirrors the counts to a shared
// Backend in small batches. The pod also renews a lease there; members of
// a pod whose lease lapsed (it died without cleaning up) are ignored by
// readers, and a pod that finds its lease gone (Redis restarted, or it was
// cut off) writes all its state again, so presence rebuilds itself from
// the live pods within one lease period.
package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
)

// Change sets this pod's connection count for one user in one room
// (0 removes the user).
type Change struct {
	Room        string
	User        string
	Connections int
}

// PodStats is what a pod reports with its lease; the operator scales on it.
type PodStats struct {
	Connections int
	Rooms       int
}

// Shed is the operator's request that this pod close some of its
// connections, at most PerSecond a second, so their clients reconnect to
// emptier pods.
type Shed struct {
	Connections int
	PerSecond   int
}

// Beat is what a heartbeat learns.
type Beat struct {
	// Held: the lease was still held; false means the pod's state may be gone.
	Held bool
	// Shed is a pending shed request, taken (removed) by this heartbeat;
	// zero when there is none.
	Shed Shed
}

// Backend stores every pod's presence.
type Backend interface {
	Apply(ctx context.Context, pod string, changes []Change) error
	// Heartbeat renews the pod's lease and stats, and takes any shed request.
	Heartbeat(ctx context.Context, pod string, stats PodStats, lease time.Duration) (Beat, error)
	Members(ctx context.Context, room string) ([]wire.Member, error)
	// Forget removes the pod and its members from the given rooms.
	Forget(ctx context.Context, pod string, rooms []string) error
}

type roomUser struct{ room, user string }

// Tracker is this pod's presence.
type Tracker struct {
	pod        string
	backend    Backend
	lease      time.Duration
	flushEvery time.Duration
	stats      func() PodStats
	logger     *slog.Logger

	mu     sync.Mutex
	counts map[roomUser]int
	dirty  map[roomUser]struct{}
	// moved holds the rooms where a user's first connection on this pod
	// came or its last went since the last flush: their members may have
	// changed, which onMoved announces once the flush is applied.
	moved   map[string]struct{}
	onMoved func(rooms []string)

	// flushMu orders flushes so an older snapshot never overwrites a newer one.
	flushMu sync.Mutex
	// leased is set by the first heartbeat that succeeds. Readers treat the
	// members of a pod without a lease as dead and delete them, so nothing
	// is written before it.
	leased atomic.Bool

	// sheds holds the latest shed request not yet taken by the pod; a newer
	// request replaces an untaken one.
	sheds chan Shed
}

// NewTracker returns a tracker for pod. stats is read at every heartbeat.
func NewTracker(pod string, backend Backend, lease time.Duration, stats func() PodStats, logger *slog.Logger) *Tracker {
	return &Tracker{
		pod:        pod,
		backend:    backend,
		lease:      lease,
		flushEvery: 100 * time.Millisecond,
		stats:      stats,
		logger:     logger,
		counts:     map[roomUser]int{},
		dirty:      map[roomUser]struct{}{},
		moved:      map[string]struct{}{},
		sheds:      make(chan Shed, 1),
	}
}

// OnMembersMoved sets fn to be told, after the shared backend has them,
// the rooms whose members may have changed because of this pod: a user's
// first connection to the room here came, or its last went (and, at the
// end, every room of the pod). Set it before Run; fn must not block.
func (t *Tracker) OnMembersMoved(fn func(rooms []string)) { t.onMoved = fn }

// Sheds delivers the operator's shed requests, which come with heartbeats.
func (t *Tracker) Sheds() <-chan Shed { return t.sheds }

// Join counts one more connection of user in room.
func (t *Tracker) Join(room, user string) { t.add(room, user, 1) }

// Leave counts one connection of user in room less.
func (t *Tracker) Leave(room, user string) { t.add(room, user, -1) }

func (t *Tracker) add(room, user string, delta int) {
	k := roomUser{room, user}
	t.mu.Lock()
	n := t.counts[k] + delta
	if n <= 0 {
		delete(t.counts, k)
	} else {
		t.counts[k] = n
	}
	if n <= 0 || n == 1 && delta > 0 {
		t.moved[room] = struct{}{}
	}
	t.dirty[k] = struct{}{}
	t.mu.Unlock()
}

// Members returns the users in room across all pods. It flushes this pod's
// pending changes first, so a client sees its own join at once.
func (t *Tracker) Members(ctx context.Context, room string) ([]wire.Member, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.backend.Members(ctx, room)
}

// Run mirrors the local state to the backend and renews the lease until
// ctx ends, then removes the pod's presence.
func (t *Tracker) Run(ctx context.Context) {
	t.heartbeat(ctx)
	flush := time.NewTicker(t.flushEvery)
	defer flush.Stop()
	beat := time.NewTicker(t.lease / 3)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			t.forget()
			return
		case <-flush.C:
			if err := t.flush(ctx); err != nil && ctx.Err() == nil {
				t.logger.Warn("presence flush failed; will retry", "err", err)
			}
		case <-beat.C:
			t.heartbeat(ctx)
		}
	}
}

func (t *Tracker) heartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, t.lease/3)
	defer cancel()
	beat, err := t.backend.Heartbeat(ctx, t.pod, t.stats(), t.lease)
	if err != nil {
		if ctx.Err() == nil {
			t.logger.Warn("presence heartbeat failed", "pod", t.pod, "err", err)
		}
		return
	}
	wasLeased := t.leased.Swap(true)
	if beat.Shed.Connections > 0 && beat.Shed.PerSecond > 0 {
		t.offerShed(beat.Shed)
	}
	if !beat.Held {
		// Our state may be gone: write all of it again.
		t.mu.Lock()
		for k := range t.counts {
			t.dirty[k] = struct{}{}
		}
		n := len(t.counts)
		t.mu.Unlock()
		if n > 0 && wasLeased {
			t.logger.Info("presence lease was lost; rewriting local state", "pod", t.pod, "entries", n)
		}
	}
}

func (t *Tracker) offerShed(s Shed) {
	for {
		select {
		case t.sheds <- s:
			return
		default:
		}
		select {
		case <-t.sheds: // replaced by the newer request
		default:
		}
	}
}

func (t *Tracker) flush(ctx context.Context) error {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	if !t.leased.Load() {
		// A read (Members) can come before Run's first heartbeat.
		t.heartbeat(ctx)
		if !t.leased.Load() {
			return errors.New("presence: no lease yet (the heartbeat failed)")
		}
	}
	t.mu.Lock()
	if len(t.dirty) == 0 {
		t.mu.Unlock()
		return nil
	}
	changes := make([]Change, 0, len(t.dirty))
	for k := range t.dirty {
		changes = append(changes, Change{Room: k.room, User: k.user, Connections: t.counts[k]})
	}
	clear(t.dirty)
	moved := make([]string, 0, len(t.moved))
	for room := range t.moved {
		moved = append(moved, room)
	}
	clear(t.moved)
	t.mu.Unlock()

	if err := t.backend.Apply(ctx, t.pod, changes); err != nil {
		// Put them back unless something newer is already pending.
		t.mu.Lock()
		for _, c := range changes {
			t.dirty[roomUser{c.Room, c.User}] = struct{}{}
		}
		for _, room := range moved {
			t.moved[room] = struct{}{}
		}
		t.mu.Unlock()
		return fmt.Errorf("apply presence changes: %w", err)
	}
	if len(moved) > 0 && t.onMoved != nil {
		t.onMoved(moved)
	}
	return nil
}

// forget removes this pod's presence on a clean shutdown, so others do not
// wait a lease period to see its users leave.
func (t *Tracker) forget() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	t.mu.Lock()
	seen := map[string]struct{}{}
	var rooms []string
	for k := range t.counts {
		if _, ok := seen[k.room]; !ok {
			seen[k.room] = struct{}{}
			rooms = append(rooms, k.room)
		}
	}
	for k := range t.dirty {
		if _, ok := seen[k.room]; !ok {
			seen[k.room] = struct{}{}
			rooms = append(rooms, k.room)
		}
	}
	t.mu.Unlock()
	if err := t.backend.Forget(ctx, t.pod, rooms); err != nil {
		t.logger.Warn("removing pod presence failed; it expires with the lease", "pod", t.pod, "err", err)
		return
	}
	if len(rooms) > 0 && t.onMoved != nil {
		t.onMoved(rooms)
	}
}
