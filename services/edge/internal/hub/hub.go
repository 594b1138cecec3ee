// Package hub joins WebSocket sessions to rooms and fans room messages out
// to them. Each room a pod's clients are in holds exactly one NATS
// subscription, taken on the first local join and dropped on the last
// leave. Each message is decoded and rendered once, in its room's own NATS
// delivery goroutine, and the same frame bytes are handed to every local
// member: no goroutine sees every message of the pod.
package hub

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
)

// Subscriber receives room frames. Deliver must not block: it is called from
// the room's delivery goroutine, once per message per member.
type Subscriber interface {
	Deliver(frame []byte)
}

// shardCount spreads rooms over independent locks so joins and leaves of
// different rooms do not contend.
const shardCount = 64

// Hub is the pod's set of rooms. Its zero value is not usable; use New.
type Hub struct {
	conns        []*nats.Conn
	seed         maphash.Seed
	shards       [shardCount]shard
	metrics      *Metrics
	logger       *slog.Logger
	flushTimeout time.Duration
	now          func() time.Time
}

type shard struct {
	mu    sync.Mutex
	rooms map[string]*room
}

// room is one joined room: its NATS subscription and its members. Delivery
// holds the read lock while it hands a frame to every member (Deliver never
// blocks); joins and leaves are O(1) (append, swap-remove by index), so
// filling a room of 20,000 members costs no more per join than a room of 2.
type room struct {
	name string
	sub  *nats.Subscription

	mu      sync.RWMutex
	members []Subscriber
	index   map[Subscriber]int // position of each member in members
}

func (r *room) add(sub Subscriber) {
	r.mu.Lock()
	if _, ok := r.index[sub]; !ok {
		r.index[sub] = len(r.members)
		r.members = append(r.members, sub)
	}
	r.mu.Unlock()
}

// remove takes sub out and reports how many members remain.
func (r *room) remove(sub Subscriber) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.index[sub]
	if !ok {
		return len(r.members)
	}
	last := len(r.members) - 1
	if i != last {
		r.members[i] = r.members[last]
		r.index[r.members[i]] = i
	}
	r.members[last] = nil
	r.members = r.members[:last]
	delete(r.index, sub)
	return last
}

// New returns a hub that spreads its room subscriptions over conns (by a
// hash of the room name), so one NATS connection's read loop is not the
// pod's bottleneck.
func New(conns []*nats.Conn, metrics *Metrics, logger *slog.Logger) *Hub {
	h := &Hub{
		conns:        conns,
		seed:         maphash.MakeSeed(),
		metrics:      metrics,
		logger:       logger,
		flushTimeout: 5 * time.Second,
		now:          time.Now,
	}
	for i := range h.shards {
		h.shards[i].rooms = map[string]*room{}
	}
	return h
}

// ErrUnavailable means the room could not be subscribed on NATS.
var ErrUnavailable = errors.New("room unavailable")

// Join adds sub to a valid room name. When it is the pod's first member, it
// subscribes on NATS and waits for the server to confirm, so every message
// published after Join returns reaches sub.
func (h *Hub) Join(name string, sub Subscriber) error {
	hash := maphash.String(h.seed, name)
	sh := &h.shards[hash%shardCount]
	sh.mu.Lock()
	r, ok := sh.rooms[name]
	var nc *nats.Conn
	if !ok {
		r = &room{name: name, index: map[Subscriber]int{}}
		nc = h.conns[hash%uint64(len(h.conns))]
		s, err := nc.Subscribe(envelopev1.RoomSubject(name), r.handler(h))
		if err != nil {
			sh.mu.Unlock()
			return fmt.Errorf("%w: subscribe %s: %v", ErrUnavailable, name, err)
		}
		// Slow-consumer protection lives in the sessions' bounded queues;
		// delivery itself never blocks, so the per-subscription buffer only
		// needs to absorb bursts.
		_ = s.SetPendingLimits(64*1024, 64<<20)
		r.sub = s
		sh.rooms[name] = r
		h.metrics.Rooms.Inc()
	}
	r.add(sub)
	sh.mu.Unlock()

	if nc != nil {
		if err := nc.FlushTimeout(h.flushTimeout); err != nil {
			// The subscription stays registered and is restored by the
			// client's reconnect logic; only the guarantee is lost.
			h.logger.Warn("nats flush after subscribe failed", "room", name, "err", err)
		}
	}
	return nil
}

// Leave removes sub from a room; the last leave drops the NATS subscription.
func (h *Hub) Leave(name string, sub Subscriber) {
	hash := maphash.String(h.seed, name)
	sh := &h.shards[hash%shardCount]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.rooms[name]
	if !ok {
		return
	}
	if r.remove(sub) > 0 {
		return
	}
	delete(sh.rooms, name)
	h.metrics.Rooms.Dec()
	if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		h.logger.Warn("nats unsubscribe failed", "room", name, "err", err)
	}
}

// RoomCount returns how many rooms the pod is subscribed to.
func (h *Hub) RoomCount() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		n += len(sh.rooms)
		sh.mu.Unlock()
	}
	return n
}

// handler renders each message of the room once and hands it to every member.
func (r *room) handler(h *Hub) nats.MsgHandler {
	return func(msg *nats.Msg) {
		var env envelopev1.Envelope
		if err := proto.Unmarshal(msg.Data, &env); err != nil {
			h.metrics.Dropped.WithLabelValues("bad_envelope").Inc()
			h.logger.Warn("dropping undecodable envelope", "room", r.name, "err", err)
			return
		}
		now := h.now()
		frame, err := wire.RoomFrame(r.name, &env, now)
		if err != nil {
			h.metrics.Dropped.WithLabelValues("unknown_body").Inc()
			return
		}
		r.mu.RLock()
		for _, m := range r.members {
			m.Deliver(frame)
		}
		n := len(r.members)
		r.mu.RUnlock()
		h.metrics.RoomMessages.Inc()
		h.metrics.Deliveries.Add(float64(n))
		if at := env.GetIngestedAt(); at != nil {
			h.metrics.FanoutLatency.Observe(now.Sub(at.AsTime()).Seconds())
		}
	}
}
