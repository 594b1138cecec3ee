package roomstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

// Msg is one stored room message.
type Msg struct {
	Subject string
	Seq     uint64
	Header  nats.Header
	Data    []byte
}

// ErrNotFound means the stream holds no such message.
var ErrNotFound = errors.New("no such message in the room stream")

// Reader reads the room stream with direct gets.
type Reader struct {
	nc      *nats.Conn
	subject string // the direct get API subject of the stream
	timeout time.Duration
}

// NewReader reads the room stream over nc.
func NewReader(nc *nats.Conn) *Reader {
	return &Reader{nc: nc, subject: "$JS.API.DIRECT.GET." + envelopev1.RoomStream, timeout: 5 * time.Second}
}

// directGet is the request of JetStream's direct get API (ADR-31).
type directGet struct {
	Seq       uint64   `json:"seq,omitempty"`
	NextBy    string   `json:"next_by_subj,omitempty"`
	Batch     int      `json:"batch,omitempty"`
	MultiLast []string `json:"multi_last,omitempty"`
	UpToSeq   uint64   `json:"up_to_seq,omitempty"`
}

// After returns up to limit messages matching filter with a sequence
// greater than after, in order, and how many more match after them.
func (r *Reader) After(ctx context.Context, filter string, after uint64, limit int) ([]Msg, uint64, error) {
	msgs, pending, err := r.batch(ctx, directGet{Seq: after + 1, NextBy: filter, Batch: limit})
	return msgs, pending, err
}

// Get returns the message at seq; ErrNotFound if the stream no longer (or
// never) held it.
func (r *Reader) Get(ctx context.Context, seq uint64) (Msg, error) {
	msgs, _, err := r.batch(ctx, directGet{Seq: seq, Batch: 1})
	if err != nil {
		return Msg{}, err
	}
	if len(msgs) == 0 || msgs[0].Seq != seq {
		return Msg{}, ErrNotFound
	}
	return msgs[0], nil
}

// State is the stream's extent: the first and last sequences it holds.
type State struct {
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// State returns the stream's extent.
func (r *Reader) State(ctx context.Context) (State, error) {
	if !r.nc.IsConnected() {
		return State{}, fmt.Errorf("stream info of %s: %w", envelopev1.RoomStream, nats.ErrConnectionReconnecting)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	m, err := r.nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+envelopev1.RoomStream, nil)
	if err != nil {
		return State{}, fmt.Errorf("stream info of %s: %w", envelopev1.RoomStream, err)
	}
	var resp struct {
		State State `json:"state"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return State{}, fmt.Errorf("stream info of %s: %w", envelopev1.RoomStream, err)
	}
	if resp.Error != nil {
		return State{}, fmt.Errorf("stream info of %s: %s", envelopev1.RoomStream, resp.Error.Description)
	}
	return resp.State, nil
}

// RoomLastSeq returns the sequence of a room's last retained message (0 if
// it has none).
func (r *Reader) RoomLastSeq(ctx context.Context, room string) (uint64, error) {
	// The last message of each of the room's subjects (one per kind).
	msgs, err := r.MultiLast(ctx, []string{envelopev1.RoomFilter(room)}, 0)
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, m := range msgs {
		last = max(last, m.Seq)
	}
	return last, nil
}

// MultiLast returns the last message of each of subjects (which may hold
// wildcards) as of stream sequence upTo (0: now). At most MaxMultiLast
// subjects may match; callers split larger requests.
func (r *Reader) MultiLast(ctx context.Context, subjects []string, upTo uint64) ([]Msg, error) {
	msgs, _, err := r.batch(ctx, directGet{MultiLast: subjects, Batch: MaxMultiLast, UpToSeq: upTo})
	return msgs, err
}

// MaxMultiLast is how many messages the server returns to one multi-last request.
const MaxMultiLast = 1024

// batch sends one direct get and collects its answers up to the end-of-batch
// marker. A "no results" answer is an empty batch, not an error.
func (r *Reader) batch(ctx context.Context, req directGet) (msgs []Msg, pending uint64, err error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	if !r.nc.IsConnected() {
		// Fail fast: a request written now would wait out the timeout.
		return nil, 0, fmt.Errorf("direct get from %s: %w", envelopev1.RoomStream, nats.ErrConnectionReconnecting)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	// A request in flight when the connection drops is lost with it: give
	// up at once rather than wait out the timeout.
	lost := r.nc.StatusChanged(nats.RECONNECTING, nats.CLOSED)
	defer r.nc.RemoveStatusListener(lost)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-lost:
			cancel()
		case <-done:
		}
	}()
	inbox := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, 0, fmt.Errorf("direct get: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := r.nc.PublishRequest(r.subject, inbox, body); err != nil {
		return nil, 0, fmt.Errorf("direct get: %w", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("direct get from %s: %w", envelopev1.RoomStream, err)
		}
		status := m.Header.Get("Status")
		switch status {
		case "":
		case "204": // end of batch
			pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return msgs, pending, nil
		case "404":
			return msgs, 0, nil
		case "503":
			return nil, 0, fmt.Errorf("direct get from %s: %w", envelopev1.RoomStream, nats.ErrNoResponders)
		default:
			return nil, 0, fmt.Errorf("direct get from %s: status %s %s", envelopev1.RoomStream, status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(envelopev1.HeaderSequence), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("direct get from %s: bad sequence header: %w", envelopev1.RoomStream, err)
		}
		msgs = append(msgs, Msg{Subject: m.Header.Get("Nats-Subject"), Seq: seq, Header: m.Header, Data: m.Data})
	}
}
