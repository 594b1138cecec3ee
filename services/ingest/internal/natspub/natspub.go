// Package natspub publishes messages to JetStream and tells the caller when
// the stream has stored every one of them. Ingest acknowledges an MQTT
// message only then, so a reading is never lost between the broker and the
// stream: not in nats.go's buffers, not in a socket that dies, not in a
// server that restarts before it stored the message.
//
// Every message is published with a reply subject of its own, and
// JetStream answers there once it has stored it (a publish acknowledgement).
// Many messages are in flight at once, up to Options.QueueSize publishes,
// so a batch costs one round trip however large it is. One goroutine (Run)
// writes everything, in the order Publish was called, and confirms
// publishes in that order.
//
// A message is written again when its acknowledgement says JetStream failed,
// when none comes within Options.AckTimeout, or when the connection it was
// written on is lost, until it is stored. Each carries a Nats-Msg-Id header
// set by the caller, so JetStream stores a message written twice once, as
// long as the second write comes within the stream's duplicate window (an
// outage longer than that may store a message twice).
//
// Order is kept as well as NATS allows:
//
//   - after any failure, nothing new is written until every unconfirmed
//     message has been written again, oldest first, and JetStream has
//     acknowledged one of them; until then Publish blocks;
//   - Run never writes while the connection is down, so nats.go does not
//     hold messages in memory to send after a reconnect, ahead of the
//     retries.
//
// What it cannot undo: when one message fails while later ones are stored
// (a timeout, an error for that message alone), the retry lands after them.
// And a disconnection can still race with a write; open the connection with
// nats.ReconnectBufSize(-1) so that nats.go refuses that write instead of
// sending it, out of order, after the reconnect.
package natspub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Defaults of Options.
const (
	DefaultQueueSize  = 1024
	DefaultAckTimeout = 5 * time.Second
	DefaultMaxBackoff = time.Second
)

// minBackoff is the first wait after a failure: long enough not to spin,
// short enough that a blip in NATS costs little latency.
const minBackoff = 10 * time.Millisecond

// Options tunes a Publisher. Zero values take the defaults.
type Options struct {
	// QueueSize bounds the publishes written but not yet confirmed. When it
	// is full, Publish blocks: that back-pressure is what stops intake
	// while JetStream is slow or away.
	QueueSize int
	// AckTimeout is how long a message may wait for its acknowledgement
	// before it is written again. It also bounds the wait for the last
	// acknowledgements when Run stops.
	AckTimeout time.Duration
	// MaxBackoff caps the wait between retries.
	MaxBackoff time.Duration
	// OnError is told of every failed attempt (which is then retried), for
	// counting and logging. It runs on Run's goroutine and must not block.
	OnError func(error)
}

// ErrNoStream is reported (wrapped) when NATS answers a publish with "no
// responders": no JetStream stream stores the subject, for instance because
// the stream was deleted or lived in the memory of a restarted server.
var ErrNoStream = errors.New("no JetStream stream stores the subject")

var (
	errNotConnected = errors.New("nats not connected")
	errConnLost     = errors.New("nats connection lost before the acknowledgement")
	errAckTimeout   = errors.New("no acknowledgement from JetStream in time")
	errStopped      = errors.New("natspub: publisher stopped")
)

// Publisher publishes messages and confirms them once JetStream has stored
// them. Publish may be called from any goroutine; Run must be running for
// anything to be published.
type Publisher struct {
	nc   *nats.Conn
	opts Options
	// inbox prefixes the reply subjects: <inbox>.<position>.<write>, where
	// position numbers messages in Publish order and write counts the times
	// that message was written, so an answer to an earlier write is told
	// from the latest one's.
	inbox string
	// requests hands publishes to Run. It is unbuffered and Run receives
	// only when it can write at once, so a blocked Publish is the
	// back-pressure and a Publish that returned has been taken for good.
	requests chan request
	// waiting counts Publish calls blocked on requests, so that Run reports
	// failed attempts while NATS is away even when it has nothing pending.
	waiting atomic.Int64
	// wake tells Run that acknowledgements arrived or a Publish is waiting.
	wake    chan struct{}
	running atomic.Bool
	stopped chan struct{} // closed when Run returns

	ackMu sync.Mutex
	acks  []ack // received, not yet seen by Run
}

type request struct {
	msgs      []*nats.Msg
	confirmed func()
}

// ack is JetStream's answer to one write.
type ack struct {
	pos   uint64
	write uint32
	err   error
}

// New returns a Publisher on nc, which the caller keeps owning. Open nc
// with nats.ReconnectBufSize(-1) (see the package comment).
func New(nc *nats.Conn, opts Options) *Publisher {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	return &Publisher{
		nc:       nc,
		opts:     opts,
		inbox:    nc.NewInbox(),
		requests: make(chan request),
		wake:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
	}
}

// Publish hands msgs to Run, which writes them in order and calls confirmed
// (on its own goroutine) once JetStream has stored them all. The messages
// belong to the publisher from then on: it sets their reply subject.
//
// Publish blocks while NATS or JetStream is away, while earlier messages
// are being written again, and while QueueSize publishes are unconfirmed.
// It returns an error only when ctx ends or Run has stopped first, and then
// confirmed is never called.
func (p *Publisher) Publish(ctx context.Context, msgs []*nats.Msg, confirmed func()) error {
	r := request{msgs: msgs, confirmed: confirmed}
	select {
	case p.requests <- r:
		return nil
	default:
	}
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	p.signal()
	select {
	case p.requests <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stopped:
		return errStopped
	}
}

// signal wakes Run without blocking; one pending wake-up is enough.
func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run publishes and confirms until ctx ends. It then waits, at most
// AckTimeout, for the acknowledgements of what it has written, so a clean
// shutdown confirms what it can instead of leaving it to be redelivered,
// and returns nil. It fails only if it cannot subscribe to the
// acknowledgements (the connection is closed). Call it once.
func (p *Publisher) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("natspub: Run called twice")
	}
	defer close(p.stopped)
	sub, err := p.nc.Subscribe(p.inbox+".*.*", p.onAck)
	if err != nil {
		return fmt.Errorf("subscribe to publish acknowledgements: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// Connection changes only wake Run up; what happened is read from the
	// connection itself, since events are dropped when nobody listens.
	status := p.nc.StatusChanged()
	defer p.nc.RemoveStatusListener(status)

	s := &state{p: p, epoch: p.epoch()}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		s.step(now)
		var take chan request
		if s.canTake() {
			take = p.requests
		}
		var alarm <-chan time.Time
		if at, ok := s.nextAlarm(now); ok {
			timer.Reset(at.Sub(now))
			alarm = timer.C
		}
		select {
		case r := <-take:
			s.add(r)
			s.write(time.Now())
		case <-p.wake:
		case <-status:
		case <-alarm:
		case <-ctx.Done():
			s.drain()
			return nil
		}
	}
}

// onAck runs on the subscription's goroutine for every answer JetStream
// sends; it parses it there, off Run's goroutine, and queues it for Run.
func (p *Publisher) onAck(m *nats.Msg) {
	pos, write, ok := parseReply(m.Subject[len(p.inbox)+1:])
	if !ok {
		return
	}
	a := ack{pos: pos, write: write, err: ackError(m)}
	p.ackMu.Lock()
	p.acks = append(p.acks, a)
	p.ackMu.Unlock()
	p.signal()
}

func parseReply(tokens string) (pos uint64, write uint32, ok bool) {
	posText, writeText, found := strings.Cut(tokens, ".")
	if !found {
		return 0, 0, false
	}
	pos, err := strconv.ParseUint(posText, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	w, err := strconv.ParseUint(writeText, 10, 32)
	if err != nil {
		return 0, 0, false
	}
	return pos, uint32(w), true
}

// pubAck is the part of JetStream's publish acknowledgement read here.
type pubAck struct {
	Stream string `json:"stream"`
	Error  *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// ackError returns nil if m acknowledges a stored message (a duplicate
// included: JetStream has the message already) and why not otherwise.
func ackError(m *nats.Msg) error {
	if len(m.Data) == 0 {
		if status := m.Header.Get("Status"); status == "503" {
			return ErrNoStream
		} else if status != "" {
			return fmt.Errorf("nats status %s %s", status, m.Header.Get("Description"))
		}
	}
	var a pubAck
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return fmt.Errorf("unreadable publish acknowledgement: %w", err)
	}
	if a.Error != nil {
		return fmt.Errorf("jetstream: %s (code %d, err_code %d)", a.Error.Description, a.Error.Code, a.Error.ErrCode)
	}
	if a.Stream == "" {
		return errors.New("publish acknowledgement names no stream")
	}
	return nil
}

// epoch identifies the current connection: nats.go counts every reconnect.
func (p *Publisher) epoch() uint64 { return p.nc.Stats().Reconnects }

// state is Run's, and only Run's.
type state struct {
	p *Publisher
	// window holds the unconfirmed messages in Publish order; window[0] is
	// at position base and is never stored (stored ones at the front are
	// confirmed and dropped at once).
	window []slot
	base   uint64
	// next is the first message of window not yet written since the last
	// failure: everything before it is written or stored.
	next int
	// publishes counts the publishes in window, bounded by QueueSize.
	publishes int
	// epoch is the connection window[:next] was written on.
	epoch uint64
	// recovering is set by a failure and cleared by the first
	// acknowledgement of a message written after it: until then nothing
	// new is taken, so retries go out ahead of newer messages and a JetStream
	// that is away sees only them.
	recovering bool
	attempt    int       // failures since the last success, for the backoff
	retryAt    time.Time // no writing before this, after a failure
	spare      []ack     // the other half of the acknowledgement buffer
}

// slot is one message in the window.
type slot struct {
	msg       *nats.Msg // nil for a publish of no messages
	confirmed func()    // on the last message of its publish only
	last      bool      // last message of its publish
	stored    bool
	writes    uint32    // times written
	at        time.Time // when last written
}

// step applies what happened since the last one: acknowledgements, a lost
// connection, a timeout; then writes again what must be, when it is time.
func (s *state) step(now time.Time) {
	s.applyAcks(true)
	connected := s.p.nc.IsConnected()
	if e := s.p.epoch(); e != s.epoch || !connected {
		s.epoch = e
		if s.next > 0 {
			// The socket those messages went to is gone, and with it any
			// acknowledgement still to come.
			s.fail(now, errConnLost)
		}
	}
	if s.next > 0 && now.Sub(s.window[0].at) >= s.p.opts.AckTimeout {
		s.fail(now, fmt.Errorf("%s: %w", s.window[0].msg.Subject, errAckTimeout))
	}
	if now.Before(s.retryAt) {
		return
	}
	switch {
	case !connected && (s.next < len(s.window) || s.p.waiting.Load() > 0):
		// Nothing can be written, and something waits to be: a failed attempt.
		s.p.opts.OnError(errNotConnected)
		s.backOff(now)
	case connected && s.next < len(s.window):
		s.write(now)
	}
}

// applyAcks takes the acknowledgements received so far. A positive one
// stores its message whichever write it answers; an error counts only for
// the latest write on the current connection, and only if failures count
// (not while draining).
func (s *state) applyAcks(failures bool) {
	s.p.ackMu.Lock()
	acks := s.p.acks
	s.p.acks = s.spare[:0]
	s.p.ackMu.Unlock()
	now := time.Now()
	for _, a := range acks {
		if a.pos < s.base || a.pos-s.base >= uint64(len(s.window)) {
			continue // already confirmed
		}
		i := int(a.pos - s.base)
		sl := &s.window[i]
		if sl.stored {
			continue
		}
		current := i < s.next && a.write == sl.writes
		if a.err == nil {
			sl.stored = true
			if current {
				// JetStream takes what is written now: stop holding back.
				s.recovering, s.attempt = false, 0
			}
			continue
		}
		if failures && current {
			s.fail(now, fmt.Errorf("%s: %w", sl.msg.Subject, a.err))
		}
	}
	clear(acks) // no errors kept alive
	s.spare = acks
	s.confirm()
}

// confirm drops the stored messages at the front of the window and calls
// confirmed for every publish completed that way, in order.
func (s *state) confirm() {
	n := 0
	for n < len(s.window) && s.window[n].stored {
		if sl := s.window[n]; sl.last {
			s.publishes--
			if sl.confirmed != nil {
				sl.confirmed()
			}
		}
		n++
	}
	if n == 0 {
		return
	}
	clear(s.window[:n]) // let the messages be collected
	s.window = s.window[n:]
	s.base += uint64(n)
	s.next = max(s.next-n, 0)
	if len(s.window) == 0 {
		// Nothing older is left to keep newer messages behind.
		s.recovering = false
	}
}

// fail records a failed attempt: every unconfirmed message is to be written
// again, in order, after a backoff, before anything new.
func (s *state) fail(now time.Time, err error) {
	s.p.opts.OnError(err)
	s.next = 0
	s.recovering = true
	s.backOff(now)
}

func (s *state) backOff(now time.Time) {
	d := s.p.opts.MaxBackoff
	if s.attempt < 16 {
		d = min(minBackoff<<s.attempt, s.p.opts.MaxBackoff)
	}
	s.attempt++
	s.retryAt = now.Add(d)
}

// canTake tells whether a new publish could be written at once. The
// backoff after a failure needs no check here: recovering outlasts it.
func (s *state) canTake() bool {
	return !s.recovering && s.next == len(s.window) && s.publishes < s.p.opts.QueueSize && s.p.nc.IsConnected()
}

// add appends a publish's messages to the window.
func (s *state) add(r request) {
	s.publishes++
	if len(r.msgs) == 0 {
		s.window = append(s.window, slot{confirmed: r.confirmed, last: true, stored: true})
		s.confirm()
		return
	}
	for i, m := range r.msgs {
		sl := slot{msg: m, last: i == len(r.msgs)-1}
		if sl.last {
			sl.confirmed = r.confirmed
		}
		s.window = append(s.window, sl)
	}
}

// write writes window[next:] in order, each message with a fresh reply
// subject, and stops at the first error.
func (s *state) write(now time.Time) {
	if s.next == 0 {
		// The first write since a failure: the connection a later loss is
		// checked against.
		s.epoch = s.p.epoch()
	}
	var reply []byte
	for ; s.next < len(s.window); s.next++ {
		sl := &s.window[s.next]
		if sl.stored {
			continue
		}
		sl.writes++
		reply = append(reply[:0], s.p.inbox...)
		reply = append(reply, '.')
		reply = strconv.AppendUint(reply, s.base+uint64(s.next), 10)
		reply = append(reply, '.')
		reply = strconv.AppendUint(reply, uint64(sl.writes), 10)
		sl.msg.Reply = string(reply)
		if err := s.p.nc.PublishMsg(sl.msg); err != nil {
			s.fail(now, fmt.Errorf("publish to %s: %w", sl.msg.Subject, err))
			return
		}
		sl.at = now
	}
}

// nextAlarm returns when step has something to do without being woken:
// the timeout of the oldest message, or a retry after a backoff.
func (s *state) nextAlarm(now time.Time) (time.Time, bool) {
	var at time.Time
	if s.next > 0 {
		at = s.window[0].at.Add(s.p.opts.AckTimeout)
	}
	if now.Before(s.retryAt) && (s.next < len(s.window) || s.p.waiting.Load() > 0) {
		if at.IsZero() || s.retryAt.Before(at) {
			at = s.retryAt
		}
	}
	return at, !at.IsZero()
}

// drain waits, at most AckTimeout, for the acknowledgements of what was
// written on the current connection, confirming what they cover, and
// writes nothing more.
func (s *state) drain() {
	timer := time.NewTimer(s.p.opts.AckTimeout)
	defer timer.Stop()
	for {
		s.applyAcks(false)
		if s.next == 0 || !s.p.nc.IsConnected() || s.p.epoch() != s.epoch {
			return
		}
		select {
		case <-s.p.wake:
		case <-timer.C:
			return
		}
	}
}
