package presence

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
)

// Sink takes the presence_join and presence_leave frames of a room's
// member changes for its client: a session. Each frame is built once for
// all of a room's sinks. Deliver must not block.
type Sink interface {
	Deliver(frame []byte) bool
}

// MembersReader reads a room's members across pods; Tracker is one.
type MembersReader interface {
	Members(ctx context.Context, room string) ([]wire.Member, error)
}

// subscribeWait bounds the wait for NATS to confirm a new subscription.
const subscribeWait = time.Second

// Watcher tells the sessions of this pod that asked for a room's presence
// when users join or leave it, on whichever pod. Pods announce on NATS
// that a room's members may have changed (Tracker.OnMembersMoved, wired to
// Announce); a pod with watchers of that room reads its members again,
// at most once per Debounce, and tells each watcher the difference. Every
// watched room is also read again each Refresh, for pods that died without
// a word: their members leave when their lease lapses.
//
// Reads happen on the Run goroutine, one room at a time, never under the
// watcher's lock; a room's announcements between two reads cost one read.
type Watcher struct {
	nc      *nats.Conn
	members MembersReader
	logger  *slog.Logger
	// Debounce gathers a burst of announcements into one read; Refresh
	// rereads every watched room. Set them before Run.
	Debounce time.Duration
	Refresh  time.Duration

	mu      sync.Mutex
	rooms   map[string]*watchedRoom
	pending map[string]struct{}
	wake    chan struct{} // capacity 1: Run has pending rooms to read
}

type watchedRoom struct {
	sinks map[Sink]struct{}
	sub   *nats.Subscription
	users map[string]struct{}
	// version counts updates of users, so that a read that started before
	// a fresher one (Watch's) does not overwrite it.
	version uint64
}

// NewWatcher returns a watcher that hears announcements on nc and reads
// members from members. Run makes it work.
func NewWatcher(nc *nats.Conn, members MembersReader, logger *slog.Logger) *Watcher {
	return &Watcher{
		nc: nc, members: members, logger: logger,
		Debounce: 500 * time.Millisecond,
		Refresh:  15 * time.Second,
		rooms:    map[string]*watchedRoom{},
		pending:  map[string]struct{}{},
		wake:     make(chan struct{}, 1),
	}
}

// Announce says on NATS that the members of rooms may have changed; it
// fits Tracker.OnMembersMoved. Announcements are best effort: a lost one
// is made up for by the next Refresh.
func Announce(nc *nats.Conn, logger *slog.Logger) func(rooms []string) {
	return func(rooms []string) {
		for _, room := range rooms {
			if err := nc.Publish(envelopev1.PresenceSubject(room), nil); err != nil {
				logger.Debug("presence announcement not sent", "room", room, "err", err)
			}
		}
	}
}

// Watch adds sink to the watchers of room. members is what sink was just
// told (a presence reply): the freshest view, so the room's other watchers
// are told how it differs from theirs, and sink hears of changes from it on.
func (w *Watcher) Watch(room string, sink Sink, members []wire.Member) {
	w.mu.Lock()
	r, ok := w.rooms[room]
	if !ok {
		r = &watchedRoom{sinks: map[Sink]struct{}{}, users: map[string]struct{}{}}
		w.rooms[room] = r
	}
	users := userSet(members)
	changes := diff(r.users, users)
	others := make([]Sink, 0, len(r.sinks))
	for s := range r.sinks {
		if s != sink {
			others = append(others, s)
		}
	}
	r.users = users
	r.version++
	r.sinks[sink] = struct{}{}
	w.mu.Unlock()
	tell(others, room, changes)
	if !ok {
		w.subscribe(room)
	}
}

// Unwatch removes sink from the watchers of room; the room's announcements
// stop with its last watcher.
func (w *Watcher) Unwatch(room string, sink Sink) {
	w.mu.Lock()
	r, ok := w.rooms[room]
	if !ok {
		w.mu.Unlock()
		return
	}
	delete(r.sinks, sink)
	var sub *nats.Subscription
	if len(r.sinks) == 0 {
		delete(w.rooms, room)
		delete(w.pending, room)
		sub = r.sub
	}
	w.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// subscribe listens to room's announcements, unless the room lost its
// watchers meanwhile. It waits until NATS has the subscription, then has
// the room read once more: an announcement made before that is not heard.
func (w *Watcher) subscribe(room string) {
	sub, err := w.nc.Subscribe(envelopev1.PresenceSubject(room), func(*nats.Msg) { w.mark(room) })
	if err != nil {
		// Refresh still rereads the room, only later.
		w.logger.Warn("presence announcements unavailable for a room", "room", room, "err", err)
		return
	}
	_ = w.nc.FlushTimeout(subscribeWait) // if it times out, the read below still covers the gap
	w.mark(room)
	w.mu.Lock()
	r, ok := w.rooms[room]
	if ok && r.sub == nil {
		r.sub = sub
		sub = nil
	}
	w.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe() // unwatched, or watched again, meanwhile
	}
}

// mark asks Run to read room again.
func (w *Watcher) mark(room string) {
	w.mu.Lock()
	if _, ok := w.rooms[room]; ok {
		w.pending[room] = struct{}{}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run reads announced rooms (and every watched room each Refresh) until
// ctx ends, then drops every subscription.
func (w *Watcher) Run(ctx context.Context) {
	refresh := time.NewTicker(w.Refresh)
	defer refresh.Stop()
	defer w.close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			w.mu.Lock()
			for room := range w.rooms {
				w.pending[room] = struct{}{}
			}
			w.mu.Unlock()
		case <-w.wake:
			// Let the rest of a burst arrive.
			select {
			case <-ctx.Done():
				return
			case <-time.After(w.Debounce):
			}
		}
		w.mu.Lock()
		rooms := make([]string, 0, len(w.pending))
		for room := range w.pending {
			rooms = append(rooms, room)
		}
		clear(w.pending)
		w.mu.Unlock()
		for _, room := range rooms {
			w.read(ctx, room)
		}
	}
}

// read reads room's members and tells its watchers what changed.
func (w *Watcher) read(ctx context.Context, room string) {
	w.mu.Lock()
	r, ok := w.rooms[room]
	var version uint64
	if ok {
		version = r.version
	}
	w.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	members, err := w.members.Members(ctx, room)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Warn("presence read failed; will retry", "room", room, "err", err)
		}
		return // Refresh tries again
	}
	users := userSet(members)
	w.mu.Lock()
	r, ok = w.rooms[room]
	if !ok || r.version != version {
		w.mu.Unlock()
		return // unwatched, or a fresher view arrived while we read
	}
	changes := diff(r.users, users)
	r.users = users
	r.version++
	sinks := slices.Collect(maps.Keys(r.sinks))
	w.mu.Unlock()
	tell(sinks, room, changes)
}

func (w *Watcher) close() {
	w.mu.Lock()
	rooms := w.rooms
	w.rooms = map[string]*watchedRoom{}
	clear(w.pending)
	w.mu.Unlock()
	for _, r := range rooms {
		if r.sub != nil {
			_ = r.sub.Unsubscribe()
		}
	}
}

func userSet(members []wire.Member) map[string]struct{} {
	users := make(map[string]struct{}, len(members))
	for _, m := range members {
		users[m.UserID] = struct{}{}
	}
	return users
}

type change struct {
	user   string
	joined bool
}

// diff lists who joined (in now, not in before) and who left.
func diff(before, now map[string]struct{}) []change {
	var out []change
	for u := range now {
		if _, ok := before[u]; !ok {
			out = append(out, change{u, true})
		}
	}
	for u := range before {
		if _, ok := now[u]; !ok {
			out = append(out, change{u, false})
		}
	}
	return out
}

func tell(sinks []Sink, room string, changes []change) {
	if len(sinks) == 0 {
		return
	}
	now := time.Now()
	for _, c := range changes {
		typ := wire.TypePresenceLeave
		if c.joined {
			typ = wire.TypePresenceJoin
		}
		frame := wire.ReplyFrame(typ, "", wire.PresenceChangePayload{Room: room, UserID: c.user}, now)
		for _, s := range sinks {
			s.Deliver(frame)
		}
	}
}
