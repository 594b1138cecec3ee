//go:build unix

package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A ResumingClient is a dashboard that never gives up: the reconnect and
// resume logic of the TypeScript SDK, in Go, so that end-to-end tests can
// hold the platform to "nothing lost" while edges and NATS fail under it.
//
//   - It connects to one of several edge URLs and moves on to the next one
//     on every reconnect, as a client behind a load balancer would land on
//     another pod.
//   - It subscribes to its rooms and remembers the seq of the last message
//     received in each.
//   - When the connection ends it reconnects: with exponential backoff and
//     full jitter (a random delay between 0 and min(cap, base·2^attempt))
//     after failures, but at once, after a random 0–RestartJitter delay,
//     when the edge closed with 1012 (draining) or 1013 (slow consumer),
//     which ask the client to come back now, elsewhere or later in the
//     stream. The jitter spreads a drained pod's clients over time.
//   - On every new connection it subscribes to each room again with since
//     set to that room's last seq (rooms with none yet get no since entry),
//     so the edge replays what it missed before going live.
//   - A room the edge rejects as `unavailable` (it cannot read the room's
//     history right now) is asked for again on the same connection, with
//     the same since, after a backoff with full jitter.
//
// It records every room message, the time each reconnect took (from losing
// a connection on which it had joined every room to having joined every
// room on a new one) and the close codes it saw, for the test to check.
type ResumingClient struct {
	Name string

	opts   ResumeOptions
	dialer websocket.Dialer
	gate   *readGate
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	log    *slog.Logger

	subscribedOnce sync.Once
	subscribed     chan struct{} // closed once every room was first joined

	mu           sync.Mutex
	conn         *websocket.Conn // the connection now open, if any
	lastSeq      map[string]uint64
	received     []RoomMessage
	distinct     map[string]map[deviceCounter]struct{}
	reconnects   []time.Duration
	closeCodes   map[int]int
	dialFailures int
	connections  int
	unrecovered  []string
	unavailable  int
	changed      chan struct{} // closed and replaced when a room message arrives
	problems     []string
	stopOnce     sync.Once
}

// ResumeOptions configure a ResumingClient.
type ResumeOptions struct {
	// URLs are the edges' WebSocket URLs (ws://host:port/api/v1/ws).
	URLs []string
	// First is the index in URLs of the edge tried first.
	First int
	// Token is the dashboard JWT, sent in the token query parameter.
	Token string
	// Rooms are joined on every connection.
	Rooms []string
	// Latest asks for the latest state of the rooms not resumed through
	// since (snapshot messages without seq, recorded with HasSeq false).
	Latest bool
	// BackoffBase and BackoffCap bound the reconnect delay after failures
	// (defaults: 1s and 30s, the SDK's).
	BackoffBase, BackoffCap time.Duration
	// RestartJitter bounds the random delay before reconnecting after a
	// 1012 or 1013 close (default 250ms).
	RestartJitter time.Duration
	// CounterField names the telemetry field that carries the device's
	// reading counter, which RoomMessage.Counter reports.
	CounterField string
	// ReceiveBuffer, when positive, sets each socket's SO_RCVBUF before it
	// connects, so that a paused client fills up fast.
	ReceiveBuffer int
	// Logger receives reconnects (debug) and anything unexpected (warn);
	// nil discards them.
	Logger *slog.Logger
}

// RoomMessage is one room message a ResumingClient received.
type RoomMessage struct {
	Room    string
	Type    string
	Seq     uint64 // 0 when the message had none (latest state)
	HasSeq  bool
	Device  string
	Counter int64 // the CounterField of telemetry; -1 when absent
	Conn    int   // which of the client's connections delivered it, from 1
}

type deviceCounter struct {
	device  string
	counter int64
}

// The close codes that ask a client to reconnect at once.
const (
	CloseServiceRestart = websocket.CloseServiceRestart // 1012: the pod drains
	CloseTryAgainLater  = websocket.CloseTryAgainLater  // 1013: slow consumer
	// CloseAbnormal is recorded for a connection that ended without a
	// close frame (the pod died, the socket was reset).
	CloseAbnormal = websocket.CloseAbnormalClosure
)

// FullJitter returns the delay before reconnect attempt attempt (0 for
// the first after a failure): uniformly random in
// [0, min(maxDelay, base·2^attempt)].
func FullJitter(attempt int, base, maxDelay time.Duration) time.Duration {
	ceiling := base
	for i := 0; i < attempt && ceiling < maxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxDelay)
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// StartResuming starts a client that connects, subscribes and keeps
// resuming until Stop, which t's cleanup calls.
func StartResuming(t testing.TB, name string, opts ResumeOptions) *ResumingClient {
	t.Helper()
	if len(opts.URLs) == 0 || len(opts.Rooms) == 0 {
		t.Fatalf("%s: a resuming client needs edge URLs and rooms", name)
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = time.Second
	}
	if opts.BackoffCap <= 0 {
		opts.BackoffCap = 30 * time.Second
	}
	if opts.RestartJitter <= 0 {
		opts.RestartJitter = 250 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &ResumingClient{
		Name:       name,
		opts:       opts,
		gate:       &readGate{},
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		log:        log.With("client", name),
		subscribed: make(chan struct{}),
		lastSeq:    map[string]uint64{},
		distinct:   map[string]map[deviceCounter]struct{}{},
		closeCodes: map[int]int{},
		changed:    make(chan struct{}),
	}
	c.dialer = websocket.Dialer{HandshakeTimeout: AwaitTimeout, NetDialContext: c.netDial}
	t.Cleanup(c.Stop)
	go c.run()
	return c
}

// netDial opens the TCP connection of a WebSocket, wrapped so that
// PauseReading can stop reads.
func (c *ResumingClient) netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{}
	if size := c.opts.ReceiveBuffer; size > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var err error
			if cerr := rc.Control(func(fd uintptr) {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
			}); cerr != nil {
				return cerr
			}
			return err
		}
	}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: conn, gate: c.gate, closed: make(chan struct{})}, nil
}

// run connects and reconnects until Stop.
func (c *ResumingClient) run() {
	defer close(c.done)
	next := c.opts.First
	attempt := 0         // failures since the last subscribed connection
	var lostAt time.Time // when the last subscribed connection ended
	for {
		wsURL := c.opts.URLs[next%len(c.opts.URLs)]
		next++
		code, subscribed, err := c.session(wsURL, lostAt)
		if c.ctx.Err() != nil {
			return
		}
		if subscribed {
			attempt = 0
			lostAt = time.Now()
		}
		var delay time.Duration
		if code == CloseServiceRestart || code == CloseTryAgainLater {
			delay = rand.N(c.opts.RestartJitter + 1)
		} else {
			delay = FullJitter(attempt, c.opts.BackoffBase, c.opts.BackoffCap)
			attempt++
		}
		c.log.Debug("connection ended; reconnecting", "url", wsURL, "code", code, "err", err, "delay", delay)
		timer := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// session runs one connection: dial, `connected`, subscribe with since,
// then read until it ends. It returns the close code (0 if the connection
// was never open) and whether every room was joined on it.
func (c *ResumingClient) session(wsURL string, lostAt time.Time) (code int, subscribed bool, err error) {
	u := wsURL + "?token=" + url.QueryEscape(c.opts.Token)
	conn, resp, err := c.dialer.DialContext(c.ctx, u, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		c.mu.Lock()
		c.dialFailures++
		c.mu.Unlock()
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			c.problem("dial %s: HTTP %s", wsURL, resp.Status)
		}
		return 0, false, fmt.Errorf("dial %s: %w", wsURL, err)
	}
	connNo, ok := c.setConn(conn)
	if !ok {
		return 0, false, c.ctx.Err()
	}
	s := &connSession{c: c, conn: conn, no: connNo, lostAt: lostAt,
		requests: map[string]subscribePayload{}, joined: map[string]bool{}}
	defer func() {
		s.end()
		c.setConn(nil)
		_ = conn.Close()
		if err != nil {
			code = CloseAbnormal
			if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
				code = ce.Code
			}
		}
		if c.ctx.Err() == nil { // not Stop's own close
			c.mu.Lock()
			c.closeCodes[code]++
			c.mu.Unlock()
		}
	}()

	first, err := readMessage(conn)
	if err != nil {
		return 0, false, err
	}
	if first.Type != "connected" {
		c.problem("first frame on %s is %s; want connected", wsURL, first)
	}
	if err := s.subscribe(c.opts.Rooms); err != nil {
		return 0, false, err
	}
	for {
		m, err := readMessage(conn)
		if err != nil {
			return 0, s.resumed, err
		}
		switch {
		case m.IsRoomMessage():
			if !s.joined[m.Room] {
				c.problem("room message of %s, not joined on this connection: %s", m.Room, m)
			}
			c.record(m, connNo)
		case m.Type == "subscribed":
			s.subscribed(m)
		case m.Type == "error":
			c.problem("error message: %s", m)
		}
	}
}

// connSession is the state of one connection: the subscribes sent on it
// and not yet answered, the rooms joined, and the retry of rooms the edge
// could not resume yet.
type connSession struct {
	c      *ResumingClient
	conn   *websocket.Conn
	no     int
	lostAt time.Time

	// Only the read loop uses these.
	joined  map[string]bool
	resumed bool // every room joined
	retries int  // subscribe retries of unavailable rooms on this connection

	mu       sync.Mutex // guards requests, timers, ended, nextID and writes
	requests map[string]subscribePayload
	timers   []*time.Timer
	ended    bool
	nextID   int
	pending  sync.WaitGroup // retry timers that have not finished
}

// subscribe asks to join rooms, with since for those that have a seq.
func (s *connSession) subscribe(rooms []string) error {
	p := subscribePayload{Rooms: rooms}
	s.c.mu.Lock()
	for _, room := range rooms {
		if seq, ok := s.c.lastSeq[room]; ok {
			if p.Since == nil {
				p.Since = map[string]uint64{}
			}
			p.Since[room] = seq
		}
	}
	s.c.mu.Unlock()
	// The edge sends the latest state only of rooms it does not resume
	// through since: those without a seq yet and those it no longer can.
	p.Latest = s.c.opts.Latest

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil
	}
	s.nextID++
	id := fmt.Sprintf("%s-%d-%d", s.c.Name, s.no, s.nextID)
	s.requests[id] = p
	data, err := json.Marshal(subscribeRequest{Type: "subscribe", RequestID: id, Payload: p})
	if err != nil {
		return fmt.Errorf("encode subscribe: %w", err)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(AwaitTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		return fmt.Errorf("send subscribe: %w", err)
	}
	return nil
}

// retryLater subscribes to rooms again after a backoff, on this
// connection; a failed send ends the connection, which the read loop sees.
func (s *connSession) retryLater(rooms []string) {
	delay := FullJitter(s.retries, s.c.opts.BackoffBase, s.c.opts.BackoffCap)
	s.retries++
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.pending.Add(1)
	s.timers = append(s.timers, time.AfterFunc(delay, func() {
		defer s.pending.Done()
		if err := s.subscribe(rooms); err != nil {
			_ = s.conn.Close()
		}
	}))
}

// end cancels retries and waits for any that already started.
func (s *connSession) end() {
	s.mu.Lock()
	s.ended = true
	for _, t := range s.timers {
		if t.Stop() {
			s.pending.Done()
		}
	}
	s.mu.Unlock()
	s.pending.Wait()
}

// subscribeRequest is the client's subscribe message.
type subscribeRequest struct {
	Type      string           `json:"type"`
	RequestID string           `json:"request_id"`
	Payload   subscribePayload `json:"payload"`
}

type subscribePayload struct {
	Rooms  []string          `json:"rooms"`
	Since  map[string]uint64 `json:"since,omitempty"`
	Latest bool              `json:"latest,omitempty"`
}

// subscribedPayload is `subscribed` with the resume answer.
type subscribedPayload struct {
	Rooms     []string        `json:"rooms"`
	Rejected  []Rejection     `json:"rejected"`
	Recovered map[string]bool `json:"recovered"`
}

// subscribed handles the answer to one of this connection's subscribes.
// Rooms rejected as `unavailable` (the edge cannot read their history
// right now) are asked for again, with the same since, after a backoff;
// any other rejection breaks the test's expectations.
func (s *connSession) subscribed(m Message) {
	c := s.c
	s.mu.Lock()
	req, ok := s.requests[m.RequestID]
	delete(s.requests, m.RequestID)
	s.mu.Unlock()
	if !ok {
		c.problem("subscribed answers no subscribe of this connection: %s", m)
		return
	}
	var p subscribedPayload
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		c.problem("subscribed payload: %v: %s", err, m)
		return
	}
	var retry []string
	rejected := map[string]bool{}
	for _, r := range p.Rejected {
		rejected[r.Room] = true
		if r.Code == "unavailable" && slices.Contains(req.Rooms, r.Room) {
			retry = append(retry, r.Room)
			continue
		}
		c.problem("subscribe rejected %+v", r)
	}
	for room := range p.Recovered {
		if _, asked := req.Since[room]; !asked {
			c.problem("subscribed answers recovered for %s, which had no since", room)
		}
	}
	for _, room := range req.Rooms {
		if rejected[room] {
			continue
		}
		if !slices.Contains(p.Rooms, room) {
			c.problem("subscribed lists rooms %v without %s", p.Rooms, room)
			continue
		}
		s.joined[room] = true
		since, asked := req.Since[room]
		if !asked {
			continue
		}
		recovered, answered := p.Recovered[room]
		switch {
		case !answered:
			c.problem("subscribed has no recovered entry for %s (since %d)", room, since)
		case !recovered:
			c.log.Warn("edge could not recover room", "room", room, "since", since)
			c.mu.Lock()
			c.unrecovered = append(c.unrecovered, fmt.Sprintf("%s after seq %d", room, since))
			c.mu.Unlock()
		}
	}
	if len(retry) > 0 {
		c.mu.Lock()
		c.unavailable += len(retry)
		c.mu.Unlock()
		s.retryLater(retry)
	}
	if !s.resumed && len(s.joined) == len(c.opts.Rooms) {
		s.resumed = true
		if !s.lostAt.IsZero() {
			c.mu.Lock()
			c.reconnects = append(c.reconnects, time.Since(s.lostAt))
			c.mu.Unlock()
		}
		c.subscribedOnce.Do(func() { close(c.subscribed) })
	}
}

// readMessage reads one frame and decodes the envelope; a frame that is
// not a JSON object with a type is returned with the type "!invalid".
func readMessage(conn *websocket.Conn) (Message, error) {
	_, data, err := conn.ReadMessage()
	if err != nil {
		return Message{}, err
	}
	m, derr := decodeMessage(data)
	if derr != nil {
		m = Message{Type: "!invalid", Raw: data}
	}
	return m, nil
}

// setConn makes conn the connection Stop closes and returns its number;
// it refuses (and closes conn) once Stop has begun.
func (c *ResumingClient) setConn(conn *websocket.Conn) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn != nil && c.ctx.Err() != nil {
		_ = conn.Close()
		return 0, false
	}
	c.conn = conn
	if conn != nil {
		c.connections++
	}
	return c.connections, true
}

// roomPayload is what the client reads of a room message's payload.
type roomPayload struct {
	DeviceID string                     `json:"device_id"`
	Fields   map[string]json.RawMessage `json:"fields"`
}

func (c *ResumingClient) record(m Message, connNo int) {
	rm := RoomMessage{Room: m.Room, Type: m.Type, Counter: -1, Conn: connNo}
	if m.Seq != nil {
		rm.Seq, rm.HasSeq = *m.Seq, true
	}
	var p roomPayload
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		c.problem("room message payload: %v: %s", err, m)
	}
	rm.Device = p.DeviceID
	if raw, ok := p.Fields[c.opts.CounterField]; ok && c.opts.CounterField != "" {
		var n float64
		if err := json.Unmarshal(raw, &n); err != nil {
			c.problem("counter field %s of %s is not a number", c.opts.CounterField, m)
		} else {
			rm.Counter = int64(n)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.received = append(c.received, rm)
	close(c.changed)
	c.changed = make(chan struct{})
	if !rm.HasSeq {
		return // latest state: not part of the stream, never a since
	}
	// The SDK resumes from the highest seq seen: a stray older message
	// must not send it back in the stream.
	if last, ok := c.lastSeq[rm.Room]; !ok || rm.Seq > last {
		c.lastSeq[rm.Room] = rm.Seq
	}
	set := c.distinct[rm.Room]
	if set == nil {
		set = map[deviceCounter]struct{}{}
		c.distinct[rm.Room] = set
	}
	set[deviceCounter{rm.Device, rm.Counter}] = struct{}{}
}

func (c *ResumingClient) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.log.Warn(msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, msg)
}

// WaitSubscribed waits until the client has first joined all its rooms.
func (c *ResumingClient) WaitSubscribed(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-c.subscribed:
		return nil
	case <-timer.C:
		return fmt.Errorf("%s: not subscribed after %s", c.Name, timeout)
	}
}

// Rooms are the rooms the client joins.
func (c *ResumingClient) Rooms() []string { return slices.Clone(c.opts.Rooms) }

// Distinct returns how many distinct readings (device and CounterField
// value) with a seq the client has received in room.
func (c *ResumingClient) Distinct(room string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.distinct[room])
}

// AwaitDistinct waits until the client holds at least n distinct readings
// of room (see Distinct).
func (c *ResumingClient) AwaitDistinct(room string, n int, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		got, changed := len(c.distinct[room]), c.changed
		c.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return fmt.Errorf("%s: %d of %d readings of %s after %s", c.Name, got, n, room, timeout)
		}
	}
}

// Received returns every room message received so far, in order.
func (c *ResumingClient) Received() []RoomMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.received)
}

// Reconnects returns how long each reconnect took: from losing a
// connection on which every room was joined to having joined every room
// on a new one.
func (c *ResumingClient) Reconnects() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reconnects)
}

// CloseCodes counts how the client's connections ended, by close code
// (CloseAbnormal when there was no close frame).
func (c *ResumingClient) CloseCodes() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.closeCodes)
}

// Connections is how many connections the client opened.
func (c *ResumingClient) Connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connections
}

// DialFailures is how many connection attempts failed before the upgrade.
func (c *ResumingClient) DialFailures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialFailures
}

// Unavailable counts the rooms an edge rejected as `unavailable` (its
// message store was out of reach), which the client then asked for again.
func (c *ResumingClient) Unavailable() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unavailable
}

// Unrecovered lists the rooms an edge answered `"recovered": false` for.
func (c *ResumingClient) Unrecovered() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.unrecovered)
}

// Problems lists what broke the contract: rejected rooms, error replies,
// malformed frames, room messages before `subscribed`.
func (c *ResumingClient) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.problems)
}

// PauseReading stops reading from the socket (the read blocks), as a
// browser tab busy elsewhere would; the edge's writes then back up.
func (c *ResumingClient) PauseReading() { c.gate.pause() }

// ResumeReading lets reads go on.
func (c *ResumingClient) ResumeReading() { c.gate.resume() }

// Stop closes the connection with a normal close and waits until the
// client's goroutine has ended. It is safe to call more than once.
func (c *ResumingClient) Stop() {
	c.stopOnce.Do(func() {
		c.cancel()
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn != nil {
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			_ = conn.Close()
		}
		c.gate.resume()
		<-c.done
	})
}

// readGate blocks reads while paused.
type readGate struct {
	mu      sync.Mutex
	resumed chan struct{} // nil while not paused; closed on resume
}

func (g *readGate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resumed == nil {
		g.resumed = make(chan struct{})
	}
}

func (g *readGate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resumed != nil {
		close(g.resumed)
		g.resumed = nil
	}
}

func (g *readGate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.resumed
}

// gatedConn is a connection whose reads wait while its gate is paused.
type gatedConn struct {
	net.Conn
	gate      *readGate
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *gatedConn) Read(b []byte) (int, error) {
	if wait := c.gate.wait(); wait != nil {
		select {
		case <-wait:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	return c.Conn.Read(b)
}

func (c *gatedConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
