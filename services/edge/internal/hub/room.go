package hub

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// member is one subscriber of a room. A resumed member has seen the room
// up to after already, so the fan-out skips older messages for it.
type member struct {
	sub   Subscriber
	after uint64
}

// room is one joined room. Its goroutine (run) owns delivery: it alone
// reads the live messages, fetches from the stream, and decides what each
// member gets. Members are guarded by mu: delivery holds the read lock
// while it hands a frame to every member (Deliver never blocks); joins and
// leaves are O(1) (append, swap-remove by index), so filling a room of
// 20,000 members costs no more per join than a room of 2.
type room struct {
	hub    *Hub
	name   string
	filter string // the room's stored subjects
	nc     *nats.Conn
	reader *roomstream.Reader
	sub    *nats.Subscription // set before run starts

	live       chan *nats.Msg
	attaches   chan attachment
	resync     chan struct{} // a catch-up is needed; buffered, never blocks
	subscribed chan struct{} // closed once the server has the subscription
	stop       chan struct{} // closed when the room is dropped

	// pending counts Join and Resume calls under way; guarded by the
	// shard's lock. The room stays while it has members or pending calls.
	pending int

	mu      sync.RWMutex
	members []member
	index   map[Subscriber]int // position of each member in members
	// holds keep what the room sends while a session's join is held (see
	// Held); written by run under the read lock, read under the write lock.
	holds map[*Held]struct{}

	// Owned by run.
	last      uint64 // the last sequence delivered (0: none yet)
	base      uint64 // the room's last stored sequence when it was subscribed
	baseKnown bool
	stale     bool // the live path may have lost messages since last
}

// attachment asks run to add a resumed member whose replay ended at
// m.after; ok says whether it was added, or whether run delivered past
// that point meanwhile and the replay must continue.
type attachment struct {
	m  member
	ok chan bool
}

func newRoom(h *Hub, name string, nc *nats.Conn, reader *roomstream.Reader) *room {
	return &room{
		hub:        h,
		name:       name,
		filter:     envelopev1.RoomFilter(name),
		nc:         nc,
		reader:     reader,
		live:       make(chan *nats.Msg, liveBuffer),
		attaches:   make(chan attachment),
		resync:     make(chan struct{}, 1),
		subscribed: make(chan struct{}),
		stop:       make(chan struct{}),
		index:      map[Subscriber]int{},
		holds:      map[*Held]struct{}{},
	}
}

func (r *room) add(m member) {
	r.mu.Lock()
	r.addLocked(m)
	r.mu.Unlock()
}

func (r *room) addLocked(m member) {
	if _, ok := r.index[m.sub]; !ok {
		r.index[m.sub] = len(r.members)
		r.members = append(r.members, m)
	}
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
		r.index[r.members[i].sub] = i
	}
	r.members[last] = member{}
	r.members = r.members[:last]
	delete(r.index, sub)
	return last
}

func (r *room) memberCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.members)
}

// kick asks run for a catch-up from the stream.
func (r *room) kick() {
	select {
	case r.resync <- struct{}{}:
	default:
	}
}

// attach hands a resumed member to run.
func (r *room) attach(ctx context.Context, m member) (bool, error) {
	a := attachment{m: m, ok: make(chan bool, 1)}
	select {
	case r.attaches <- a:
	case <-r.stop:
		return false, fmt.Errorf("%w: %s was dropped (the hub is closing)", ErrUnavailable, r.name)
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// run answers at once, so this wait is short; not giving up on it
	// keeps a member from being added behind the caller's back.
	return <-a.ok, nil
}

// run delivers the room until it is dropped.
func (r *room) run() {
	defer r.hub.rooms.Done()
	select {
	case <-r.subscribed:
	case <-r.stop:
		return
	}
	r.learnBase()
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case msg := <-r.live:
			r.onLive(msg)
		case <-r.resync:
			r.stale = true
			r.catchUp()
		case a := <-r.attaches:
			if r.last > a.m.after {
				a.ok <- false
				continue
			}
			r.add(a.m)
			a.ok <- true
		case <-r.stop:
			return
		}
		if r.stale && retry == nil {
			// A catch-up failed: try again later, whether or not anything
			// arrives live meanwhile.
			retry = time.AfterFunc(retryCatchUp, r.kick)
		} else if !r.stale && retry != nil {
			retry.Stop()
			retry = nil
		}
	}
}

// learnBase records where the room stood when it was subscribed, so that a
// catch-up before its first live message knows where to start.
func (r *room) learnBase() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	last, err := r.reader.RoomLastSeq(ctx, r.name)
	if err != nil {
		r.hub.logger.Warn("reading a new room's position failed; a NATS outage before its first message may go unnoticed", "room", r.name, "err", err)
		return
	}
	r.base, r.baseKnown = last, true
}

// position is the sequence the room has delivered everything up to.
func (r *room) position() (uint64, bool) {
	if r.last > 0 {
		return r.last, true
	}
	return r.base, r.baseKnown
}

func (r *room) onLive(msg *nats.Msg) {
	seq := parseSeq(msg.Header, envelopev1.HeaderSequence)
	if seq == 0 {
		r.hub.metrics.Dropped.WithLabelValues("no_sequence").Inc()
		return
	}
	if seq <= r.last {
		r.hub.metrics.Dropped.WithLabelValues("duplicate").Inc()
		return
	}
	// Nats-Last-Sequence is the previous message of the same subject: if
	// the room has not delivered it, the live path lost it.
	if prev := parseSeq(msg.Header, "Nats-Last-Sequence"); !r.stale {
		if pos, ok := r.position(); ok && prev > pos {
			r.hub.metrics.Gaps.Inc()
			r.stale = true
		}
	}
	if r.stale {
		r.catchUp()
		if r.stale {
			// The stream is unreadable: the message stays stored and is
			// delivered, in order, by the next catch-up.
			return
		}
		if seq <= r.last {
			return // the catch-up delivered it
		}
	}
	r.fanOut(tracing.ExtractNATS(context.Background(), msg.Header), msg.Subject, seq, msg.Data, false)
}

// catchUp delivers what the stream holds after the room's position. It
// clears stale on success.
func (r *room) catchUp() {
	pos, ok := r.position()
	if !ok {
		// Nothing to start from: the room is new and its position unknown.
		r.stale = false
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		msgs, pending, err := r.reader.After(ctx, r.filter, pos, fetchBatch)
		if err != nil {
			r.hub.logger.Warn("catching a room up from the stream failed; retrying", "room", r.name, "after", pos, "err", err)
			return
		}
		for _, m := range msgs {
			r.fanOut(tracing.ExtractNATS(context.Background(), m.Header), m.Subject, m.Seq, m.Data, true)
			r.hub.metrics.CaughtUp.Inc()
			pos = m.Seq
		}
		if pending == 0 || len(msgs) == 0 {
			r.stale = false
			return
		}
	}
}

// fanOut renders one message once and hands it to every member that has
// not seen it. Its span (one per message per pod, not per recipient) is a
// child of the message's send span in ingest, from ctx.
func (r *room) fanOut(ctx context.Context, subject string, seq uint64, data []byte, caughtUp bool) {
	r.last = seq
	h := r.hub
	_, span := tracing.StartMessaging(ctx, h.tracer, tracing.Process,
		tracing.Destination{System: "nats", Name: subject, Template: envelopev1.SubjectTemplate(subject)})
	defer span.End()
	frame, ingested, ok := h.render(r.name, seq, data)
	if !ok {
		span.SetStatus(codes.Error, "undecodable envelope")
		return
	}
	n, dropped := 0, 0
	r.mu.RLock()
	for _, m := range r.members {
		if seq > m.after {
			if m.sub.Deliver(frame) {
				n++
			} else {
				dropped++
			}
		}
	}
	if len(r.holds) > 0 { // rarely: a session between Hold and Join
		for x := range r.holds {
			x.keep(frame)
		}
	}
	r.mu.RUnlock()
	if span.IsRecording() {
		span.SetAttributes(
			semconv.MessagingMessageBodySize(len(data)),
			tracing.Room(r.name),
			attribute.Int64("sensorcast.seq", int64(seq)),
			attribute.Int("sensorcast.recipients", n),
			attribute.Int("sensorcast.queue_drops", dropped),
			attribute.Bool("sensorcast.caught_up", caughtUp),
		)
	}
	h.metrics.RoomMessages.Inc()
	h.metrics.Deliveries.Add(float64(n))
	if !ingested.IsZero() {
		h.metrics.FanoutLatency.Observe(h.now().Sub(ingested).Seconds())
	}
}
