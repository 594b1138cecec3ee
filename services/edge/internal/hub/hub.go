// Package hub joins WebSocket sessions to rooms and fans room messages out
// to them, with nothing lost and nothing twice.
//
// Each room a pod's clients are in holds exactly one NATS subscription to
// the room's live subject (the JetStream room stream republishes every
// stored message there, with its stream sequence), taken on the first local
// join and dropped on the last leave. One goroutine per room owns its
// delivery: it decodes and renders each message once and hands the same
// frame bytes to every member, so no goroutine sees every message of the pod.
//
// The room goroutine also keeps the room gap-free: it remembers the last
// sequence it delivered, and when the live path may have lost messages (a
// NATS reconnect, a subscription that overflowed, a message whose
// predecessor it never saw) it fetches the missing ones from the stream
// before delivering anything newer. A client that resumes (Resume) is
// replayed from the stream, then attached to the live fan-out at exactly
// the sequence where its replay ended.
package hub

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// Subscriber receives room frames. Deliver must not block: it is called from
// the room's delivery goroutine, once per message per member. It reports
// whether the frame was queued (false: the subscriber is closing, or its
// queue overflowed and it is being closed as a slow consumer).
type Subscriber interface {
	Deliver(frame []byte) bool
}

// Replayer is a Subscriber that can also take a replay. Replay may block
// (that is the replay's back-pressure) and fails once the subscriber is gone.
type Replayer interface {
	Subscriber
	Replay(frame []byte) error
}

// shardCount spreads rooms over independent locks so joins and leaves of
// different rooms do not contend.
const shardCount = 64

// Tuning of the room goroutines.
const (
	// liveBuffer is each room's buffer of live messages. A room that falls
	// further behind loses messages on the live path, and catches up from
	// the stream.
	liveBuffer = 1024
	// fetchBatch is how many stored messages one stream read returns.
	fetchBatch = 256
	// retryCatchUp is the wait before fetching again after a failed catch-up.
	retryCatchUp = time.Second
)

// Hub is the pod's set of rooms. Its zero value is not usable; use New.
type Hub struct {
	conns   []*nats.Conn
	readers []*roomstream.Reader
	seed    maphash.Seed
	shards  [shardCount]shard
	metrics *Metrics
	logger  *slog.Logger
	tracer  trace.Tracer
	now     func() time.Time
	// rooms counts running room goroutines, for Close.
	rooms sync.WaitGroup

	flushTimeout time.Duration
}

type shard struct {
	mu    sync.Mutex
	rooms map[string]*room
}

// New returns a hub that spreads its room subscriptions over conns (by a
// hash of the room name), so one NATS connection's read loop is not the
// pod's bottleneck. It hooks into each connection's reconnect and error
// handlers (keeping the ones already set) to learn when the live path may
// have lost messages. Fan-outs and replays are traced with tp.
func New(conns []*nats.Conn, metrics *Metrics, logger *slog.Logger, tp trace.TracerProvider) *Hub {
	h := &Hub{
		conns:        conns,
		seed:         maphash.MakeSeed(),
		metrics:      metrics,
		logger:       logger,
		tracer:       tp.Tracer("github.com/sensorcast/sensorcast/services/edge/hub"),
		now:          time.Now,
		flushTimeout: 5 * time.Second,
	}
	for i := range h.shards {
		h.shards[i].rooms = map[string]*room{}
	}
	for _, nc := range conns {
		h.readers = append(h.readers, roomstream.NewReader(nc))
		prevReconnect := nc.ReconnectHandler()
		nc.SetReconnectHandler(func(c *nats.Conn) {
			if prevReconnect != nil {
				prevReconnect(c)
			}
			h.reconnected(c)
		})
		prevErr := nc.ErrorHandler()
		nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
			if prevErr != nil {
				prevErr(c, sub, err)
			}
			if sub != nil && errors.Is(err, nats.ErrSlowConsumer) {
				h.overflowed(sub)
			}
		})
	}
	return h
}

// ErrUnavailable means the room could not be subscribed on NATS, or its
// stream could not be read.
var ErrUnavailable = errors.New("room unavailable")

// Join adds sub to a valid room name. When it is the pod's first member, it
// subscribes on NATS and waits for the server to confirm, so every message
// published after Join returns reaches sub.
func (h *Hub) Join(name string, sub Subscriber) error {
	held, err := h.Hold(name)
	if err != nil {
		return err
	}
	if !held.Join(sub) {
		return fmt.Errorf("%w: %s sent more than a join keeps while it was held", ErrUnavailable, name)
	}
	return nil
}

// Held is a room subscribed on NATS and kept, without a member, until Join
// or Release. A session holds its new rooms while it sends the `subscribed`
// reply and joins them after, so that no room message overtakes the reply.
// What the room sends while held is kept and handed over by Join, so that
// every message published after the reply reaches the session too.
type Held struct {
	hub  *Hub
	room *room
	// Guarded by room.mu (see room.holds).
	frames     [][]byte
	overflowed bool
}

// heldFrames bounds what a hold keeps: the reply is sent between Hold and
// Join, so a hold rarely keeps any.
const heldFrames = 256

// Hold subscribes a room (if the pod is not in it yet) and keeps it.
func (h *Hub) Hold(name string) (*Held, error) {
	r, err := h.acquire(name)
	if err != nil {
		return nil, err
	}
	x := &Held{hub: h, room: r}
	r.mu.Lock()
	r.holds[x] = struct{}{}
	r.mu.Unlock()
	return x, nil
}

// keep is called by the room's fan-out, under its read lock.
func (x *Held) keep(frame []byte) {
	if len(x.frames) == heldFrames {
		x.overflowed = true
		return
	}
	x.frames = append(x.frames, frame)
}

// Join hands sub what the room sent while held, adds it to the room and
// lets go of the hold. If more was sent than a hold keeps, sub is not
// added and Join returns false: its client must resume from what it has.
func (x *Held) Join(sub Subscriber) bool {
	r := x.room
	r.mu.Lock()
	delete(r.holds, x)
	ok := !x.overflowed
	if ok {
		for _, f := range x.frames {
			sub.Deliver(f) // a full queue closes sub's connection: it resumes
		}
		r.addLocked(member{sub: sub})
	}
	x.frames = nil
	r.mu.Unlock()
	x.hub.release(r)
	return ok
}

// Release lets go of the hold without joining.
func (x *Held) Release() {
	x.room.mu.Lock()
	delete(x.room.holds, x)
	x.frames = nil
	x.room.mu.Unlock()
	x.hub.release(x.room)
}

// From says where a resuming member starts.
type From struct {
	// Seq: replay the room's stored messages after this sequence.
	Seq uint64
	// Snapshot first sends the last telemetry and status of Devices as of
	// stream sequence Seq (without a sequence: they are a snapshot, not
	// the room's history), then the room after Seq. Take Seq from Position
	// before telling the client it is subscribed.
	Snapshot bool
	Devices  []string
	// AnyDevices, when positive, snapshots up to that many devices of any
	// room instead of Devices (at most two messages each); for when no
	// device list is known.
	AnyDevices int
}

// Resume adds sub to a room the way a reconnecting client needs it: it
// replays what the stream holds from the given point, in order, then
// attaches sub to the live fan-out with no gap and no duplicate at the seam.
// On error sub is not in the room.
//
// Its span, a child of ctx's, links to the traces of the first messages
// it replays (up to maxReplayLinks).
func (h *Hub) Resume(ctx context.Context, name string, sub Replayer, from From) (err error) {
	ctx, span := h.tracer.Start(ctx, "replay "+name)
	var replayed int
	defer func() {
		if span.IsRecording() {
			span.SetAttributes(tracing.Room(name), attribute.Int64("sensorcast.since", int64(from.Seq)),
				attribute.Bool("sensorcast.snapshot", from.Snapshot), attribute.Int("sensorcast.replayed", replayed))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
		}
		span.End()
	}()
	r, err := h.acquire(name)
	if err != nil {
		return err
	}
	defer h.release(r)

	pos := from.Seq
	if from.Snapshot {
		if err := h.snapshot(ctx, r, sub, from); err != nil {
			return err
		}
	}
	for {
		last, err := h.replay(ctx, r, sub, pos, span, &replayed)
		if err != nil {
			return err
		}
		ok, err := r.attach(ctx, member{sub: sub, after: last})
		if err != nil || ok {
			return err
		}
		// The room delivered past our replay meanwhile: read on.
		pos = last
	}
}

// maxReplayLinks bounds the links of a replay span: a replay may send
// thousands of messages, each of its own trace.
const maxReplayLinks = 32

// replay sends sub the room's stored messages after pos until the stream
// has no more, and returns the last sequence sent (pos if none). It counts
// them in replayed and links span to the first ones' traces.
func (h *Hub) replay(ctx context.Context, r *room, sub Replayer, pos uint64, span trace.Span, replayed *int) (uint64, error) {
	for {
		msgs, pending, err := r.reader.After(ctx, r.filter, pos, fetchBatch)
		if err != nil {
			return pos, fmt.Errorf("%w: replay %s: %v", ErrUnavailable, r.name, err)
		}
		for _, m := range msgs {
			if frame, _, ok := h.render(r.name, m.Seq, m.Data); ok {
				if err := sub.Replay(frame); err != nil {
					return pos, err
				}
				h.metrics.Replayed.Inc()
				if *replayed < maxReplayLinks && span.IsRecording() {
					if sc := trace.SpanContextFromContext(tracing.ExtractNATS(ctx, m.Header)); sc.IsValid() {
						span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.Int64("sensorcast.seq", int64(m.Seq))}})
					}
				}
				*replayed++
			}
			pos = m.Seq
		}
		if pending == 0 || len(msgs) == 0 {
			return pos, nil
		}
	}
}

// snapshot sends sub the latest telemetry and status of the devices in
// from, as of stream sequence from.Seq.
func (h *Hub) snapshot(ctx context.Context, r *room, sub Replayer, from From) error {
	var subjects []string
	if from.AnyDevices > 0 {
		subjects = []string{
			envelopev1.RoomSubject("device:*", envelopev1.KindTelemetry),
			envelopev1.RoomSubject("device:*", envelopev1.KindDeviceStatus),
		}
	}
	for _, id := range from.Devices {
		subjects = append(subjects,
			envelopev1.RoomSubject("device:"+id, envelopev1.KindTelemetry),
			envelopev1.RoomSubject("device:"+id, envelopev1.KindDeviceStatus))
	}
	for len(subjects) > 0 {
		n := min(len(subjects), roomstream.MaxMultiLast)
		msgs, err := r.reader.MultiLast(ctx, subjects[:n], from.Seq)
		if err != nil {
			return fmt.Errorf("%w: latest of %s: %v", ErrUnavailable, r.name, err)
		}
		if from.AnyDevices > 0 {
			msgs = firstDevices(msgs, from.AnyDevices)
		}
		for _, m := range msgs {
			if frame, _, ok := h.render(r.name, 0, m.Data); ok {
				if err := sub.Replay(frame); err != nil {
					return err
				}
			}
		}
		subjects = subjects[n:]
	}
	return nil
}

// Position returns the stream's last sequence: the point a snapshot is
// taken at. It fails, with ErrUnavailable, when the stream cannot be read.
func (h *Hub) Position(ctx context.Context, name string) (uint64, error) {
	state, err := h.readers[h.hash(name)%uint64(len(h.readers))].State(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: position for %s: %v", ErrUnavailable, name, err)
	}
	return state.LastSeq, nil
}

// firstDevices keeps the messages of the first max devices among msgs
// (stored device-room messages, each device's telemetry and status).
func firstDevices(msgs []roomstream.Msg, max int) []roomstream.Msg {
	seen := map[string]bool{}
	kept := msgs[:0]
	for _, m := range msgs {
		device := strings.TrimSuffix(m.Subject, "."+envelopev1.KindOfSubject(m.Subject))
		if !seen[device] && len(seen) == max {
			continue
		}
		seen[device] = true
		kept = append(kept, m)
	}
	return kept
}

// ResumePoint checks a client's `since` for a room: recovered is true when
// the stream still holds the message at since in that room (so, retention
// being oldest-first, everything after it too). start is where to replay
// from: since, or 0 when since lies beyond the stream's end (the stream was
// recreated, so its sequences started over). It fails, with ErrUnavailable,
// only when the stream cannot be read.
func (h *Hub) ResumePoint(ctx context.Context, name string, since uint64) (start uint64, recovered bool, err error) {
	reader := h.readers[h.hash(name)%uint64(len(h.readers))]
	if since > 0 {
		m, err := reader.Get(ctx, since)
		switch {
		case err == nil && envelopev1.SubjectInRoom(m.Subject, name):
			return since, true, nil
		case err != nil && !errors.Is(err, roomstream.ErrNotFound):
			return 0, false, fmt.Errorf("%w: resume point of %s: %v", ErrUnavailable, name, err)
		}
	}
	state, err := reader.State(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("%w: resume point of %s: %v", ErrUnavailable, name, err)
	}
	if since > state.LastSeq {
		return 0, false, nil
	}
	return since, since == 0 && state.FirstSeq <= 1, nil
}

// Leave removes sub from a room; the last leave drops the NATS subscription.
func (h *Hub) Leave(name string, sub Subscriber) {
	sh := h.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.rooms[name]
	if !ok {
		return
	}
	if r.remove(sub) == 0 && r.pending == 0 {
		h.dropLocked(sh, r)
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

// Close drops every room and waits for their goroutines to end.
func (h *Hub) Close() {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for _, r := range sh.rooms {
			h.dropLocked(sh, r)
		}
		sh.mu.Unlock()
	}
	h.rooms.Wait()
}

func (h *Hub) hash(name string) uint64 { return maphash.String(h.seed, name) }

func (h *Hub) shard(name string) *shard { return &h.shards[h.hash(name)%shardCount] }

// acquire returns the room, creating and subscribing it if needed, with a
// pending reference that keeps it alive until release.
func (h *Hub) acquire(name string) (*room, error) {
	hash := h.hash(name)
	sh := &h.shards[hash%shardCount]
	sh.mu.Lock()
	r, ok := sh.rooms[name]
	if ok {
		r.pending++
		sh.mu.Unlock()
		<-r.subscribed // its first joiner may still be confirming it
		return r, nil
	}
	i := hash % uint64(len(h.conns))
	r = newRoom(h, name, h.conns[i], h.readers[i])
	s, err := r.nc.ChanSubscribe(envelopev1.LiveFilter(name), r.live)
	if err != nil {
		sh.mu.Unlock()
		return nil, fmt.Errorf("%w: subscribe %s: %v", ErrUnavailable, name, err)
	}
	r.sub = s
	r.pending = 1
	sh.rooms[name] = r
	h.metrics.Rooms.Inc()
	h.rooms.Add(1)
	go r.run()
	sh.mu.Unlock()

	if err := r.nc.FlushTimeout(h.flushTimeout); err != nil {
		// The subscription stays registered and is restored by the
		// client's reconnect logic, which also marks the room for a
		// catch-up from the stream.
		h.logger.Warn("nats flush after subscribe failed", "room", name, "err", err)
	}
	close(r.subscribed)
	return r, nil
}

// release drops the reference acquire took; the room goes when it was the
// last thing keeping it.
func (h *Hub) release(r *room) {
	sh := h.shard(r.name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r.pending--
	if r.pending == 0 && r.memberCount() == 0 && sh.rooms[r.name] == r {
		h.dropLocked(sh, r)
	}
}

func (h *Hub) dropLocked(sh *shard, r *room) {
	delete(sh.rooms, r.name)
	h.metrics.Rooms.Dec()
	if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		h.logger.Warn("nats unsubscribe failed", "room", r.name, "err", err)
	}
	close(r.stop)
}

// reconnected marks every room on nc for a catch-up: messages stored while
// the connection was down were not republished to it.
func (h *Hub) reconnected(nc *nats.Conn) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for _, r := range sh.rooms {
			if r.nc == nc {
				r.kick()
			}
		}
		sh.mu.Unlock()
	}
}

// overflowed marks the room of a subscription that dropped messages.
func (h *Hub) overflowed(sub *nats.Subscription) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for _, r := range sh.rooms {
			if r.sub == sub {
				h.metrics.Dropped.WithLabelValues("live_overflow").Inc()
				r.kick()
			}
		}
		sh.mu.Unlock()
	}
}

// render decodes a stored envelope and renders the room message once; seq 0
// renders it without a sequence (a snapshot). It also returns when ingest
// accepted the message, for the latency histogram.
func (h *Hub) render(room string, seq uint64, data []byte) ([]byte, time.Time, bool) {
	var env envelopev1.Envelope
	if err := proto.Unmarshal(data, &env); err != nil {
		h.metrics.Dropped.WithLabelValues("bad_envelope").Inc()
		h.logger.Warn("dropping undecodable envelope", "room", room, "seq", seq, "err", err)
		return nil, time.Time{}, false
	}
	frame, err := wire.RoomFrame(room, seq, &env, h.now())
	if err != nil {
		h.metrics.Dropped.WithLabelValues("unknown_body").Inc()
		return nil, time.Time{}, false
	}
	var ingested time.Time
	if at := env.GetIngestedAt(); at != nil {
		ingested = at.AsTime()
	}
	return frame, ingested, true
}

func parseSeq(h nats.Header, key string) uint64 {
	n, _ := strconv.ParseUint(h.Get(key), 10, 64)
	return n
}
