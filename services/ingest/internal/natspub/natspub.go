// Package natspub publishes to core NATS and tells the caller when the
// server has the messages, which core NATS publishing alone does not:
// Publish only writes into the client's buffer, and while disconnected
// nats.go holds messages in memory that die with the process.
//
// Ingest acknowledges an MQTT message only when this package confirms its
// envelopes, so a message is never lost between the broker and NATS. A
// confirmation is a flush (a PING/PONG round trip after the messages on the
// same connection); one flush confirms every publish queued before it, so
// the cost is shared by a whole batch, not paid per message.
//
// A flush confirms only what was written on the connection it ran on: a
// message written before a reconnect may have died in the old socket. So
// every publish remembers the connection it was written on (counted by
// nats.go's reconnect statistic) and is published again if that has
// changed. Delivery is therefore at least once (the server may have got
// the first copy), and a message published again may land after newer ones.
package natspub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Defaults of Options.
const (
	DefaultQueueSize    = 1024
	DefaultFlushTimeout = 5 * time.Second
	DefaultMaxBackoff   = time.Second
)

// minBackoff is the first wait after a failure: long enough not to spin,
// short enough that a blip in the NATS connection costs little latency.
const minBackoff = 10 * time.Millisecond

// Options tunes a Publisher. Zero values take the defaults.
type Options struct {
	// QueueSize bounds the publishes written but not yet confirmed. When it
	// is full, Publish blocks: that back-pressure is what stops intake
	// while NATS is slow or away.
	QueueSize int
	// FlushTimeout bounds one confirmation round trip.
	FlushTimeout time.Duration
	// MaxBackoff caps the wait between retries.
	MaxBackoff time.Duration
	// OnError is told of every failed attempt (which is then retried), for
	// counting and logging. It must not block.
	OnError func(error)
}

// Publisher publishes messages and confirms them in batches. Publish may be
// called from any goroutine; Run must be running for anything to be
// confirmed.
type Publisher struct {
	nc    *nats.Conn
	queue chan pending
	opts  Options
}

// pending is a publish written to the connection and awaiting confirmation.
type pending struct {
	msgs      []*nats.Msg
	confirmed func()
	// conn identifies the connection msgs were written on (see epoch).
	conn uint64
}

// New returns a Publisher on nc, which the caller keeps owning.
func New(nc *nats.Conn, opts Options) *Publisher {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = DefaultFlushTimeout
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	return &Publisher{nc: nc, queue: make(chan pending, opts.QueueSize), opts: opts}
}

// Publish writes msgs to NATS in order and queues them for confirmation;
// Run calls confirmed (on its own goroutine) once the server has them all.
// While NATS is disconnected or the queue is full, Publish waits and
// retries, so it returns an error only when ctx ends first, and then
// confirmed is never called.
func (p *Publisher) Publish(ctx context.Context, msgs []*nats.Msg, confirmed func()) error {
	conn, err := p.write(ctx, msgs)
	if err != nil {
		return err
	}
	select {
	case p.queue <- pending{msgs: msgs, confirmed: confirmed, conn: conn}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run confirms queued publishes until ctx ends. Whatever is queued then is
// given one last flush, bounded by FlushTimeout, so a clean shutdown
// confirms what it can instead of leaving it to be redelivered.
func (p *Publisher) Run(ctx context.Context) error {
	batch := make([]pending, 0, p.opts.QueueSize)
	for {
		select {
		case first := <-p.queue:
			batch = p.fill(append(batch[:0], first))
		case <-ctx.Done():
			p.drain(batch[:0])
			return nil
		}
		if err := p.confirm(ctx, batch); err != nil {
			p.drain(batch)
			return nil
		}
		done(batch)
		clear(batch) // let the messages be collected
	}
}

// fill adds to batch everything already queued, without waiting.
func (p *Publisher) fill(batch []pending) []pending {
	for len(batch) < cap(batch) {
		select {
		case next := <-p.queue:
			batch = append(batch, next)
		default:
			return batch
		}
	}
	return batch
}

// drain makes one bounded attempt to confirm batch plus whatever is still
// queued, at shutdown.
func (p *Publisher) drain(batch []pending) {
	batch = p.fill(batch)
	if len(batch) == 0 || !p.nc.IsConnected() {
		return
	}
	conn := p.epoch()
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.FlushTimeout)
	defer cancel()
	if err := p.nc.FlushWithContext(ctx); err != nil {
		p.opts.OnError(fmt.Errorf("flush at shutdown: %w", err))
		return
	}
	if p.epoch() != conn {
		return
	}
	for _, pd := range batch {
		if pd.conn == conn && pd.confirmed != nil {
			pd.confirmed()
		}
	}
}

func done(batch []pending) {
	for _, pd := range batch {
		if pd.confirmed != nil {
			pd.confirmed()
		}
	}
}

// confirm returns once the server has acknowledged everything in batch:
// it publishes again what was written on an earlier connection, flushes,
// and repeats after a failure or a reconnect.
func (p *Publisher) confirm(ctx context.Context, batch []pending) error {
	for attempt := 0; ; attempt++ {
		for i := range batch {
			if batch[i].conn == p.epoch() {
				continue
			}
			conn, err := p.write(ctx, batch[i].msgs)
			if err != nil {
				return err
			}
			batch[i].conn = conn
		}
		conn := p.epoch()
		err := p.flush(ctx)
		if err == nil && p.epoch() == conn && sameConn(batch, conn) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			continue // reconnected meanwhile: publish again at once
		}
		p.opts.OnError(fmt.Errorf("confirm %d publishes: %w", len(batch), err))
		if err := p.sleep(ctx, attempt); err != nil {
			return err
		}
	}
}

func sameConn(batch []pending, conn uint64) bool {
	for _, pd := range batch {
		if pd.conn != conn {
			return false
		}
	}
	return true
}

// epoch identifies the current connection: nats.go counts every reconnect.
func (p *Publisher) epoch() uint64 { return p.nc.Stats().Reconnects }

func (p *Publisher) flush(ctx context.Context) error {
	if !p.nc.IsConnected() {
		return errNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.FlushTimeout)
	defer cancel()
	return p.nc.FlushWithContext(ctx)
}

var errNotConnected = errors.New("nats not connected")

// write publishes msgs in order, waiting out disconnections, and returns the
// connection it started on; if that changed midway, confirm will publish
// them all again. It refuses to write while disconnected rather than let
// nats.go buffer the messages in memory, where a crash would lose them
// after all.
func (p *Publisher) write(ctx context.Context, msgs []*nats.Msg) (conn uint64, err error) {
	for i, attempt := 0, 0; i < len(msgs); {
		if i == 0 {
			conn = p.epoch()
		}
		err := errNotConnected
		if p.nc.IsConnected() {
			err = p.nc.PublishMsg(msgs[i])
		}
		if err == nil {
			i++
			attempt = 0
			continue
		}
		p.opts.OnError(fmt.Errorf("publish to %s: %w", msgs[i].Subject, err))
		if err := p.sleep(ctx, attempt); err != nil {
			return 0, err
		}
		attempt++
	}
	return conn, nil
}

// sleep waits before retry number attempt: exponential from minBackoff,
// capped at MaxBackoff.
func (p *Publisher) sleep(ctx context.Context, attempt int) error {
	d := p.opts.MaxBackoff
	if attempt < 16 {
		d = min(minBackoff<<attempt, p.opts.MaxBackoff)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
