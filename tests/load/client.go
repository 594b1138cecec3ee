package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// ipBindAddressNoPort (IP_BIND_ADDRESS_NO_PORT, Linux ≥ 4.2) lets a socket
// bound to a source address pick its port at connect time, from the whole
// 4-tuple space, instead of reserving one at bind time.
const ipBindAddressNoPort = 24

// schedule is the run's measurement plan, shared read-only by all clients
// once published (an atomic pointer: nil until the publisher starts).
type schedule struct {
	Steps []stepWindow `json:"steps"`
}

// stepWindow is one rate step: messages sent in [WarmFrom, From) are
// warm-up, those sent in [From, To) are measured.
type stepWindow struct {
	Rate     float64 `json:"rate"`
	WarmFrom int64   `json:"warm_from_ns"`
	From     int64   `json:"from_ns"`
	To       int64   `json:"to_ns"`
}

// stepOf returns the step whose measurement window holds t, or -1.
func (s *schedule) stepOf(t int64) int {
	for i := range s.Steps {
		if t >= s.Steps[i].From && t < s.Steps[i].To {
			return i
		}
	}
	return -1
}

// clientStep is one client's measurements in one step.
type clientStep struct {
	lat       Histogram // publish -> receive latency of messages sent in the window
	delivered uint64    // distinct messages sent in the window that arrived
	received  uint64    // messages (of any send time) received during the window
}

// client is one WebSocket connection. Its fields are written by its own
// goroutine only and read by the coordinator after that goroutine ended.
type client struct {
	idx    int // global index
	room   string
	token  string
	source net.IP

	conn net.Conn
	rd   fdConn // the socket once handed to an epoll loop (fd 0: not)
	need int    // bytes the next frame still needs (epoll reader)
	fr   *FrameReader
	wbuf []byte
	mask [4]byte

	connectDur time.Duration // dial start -> `subscribed`
	ready      bool
	err        error

	distinct  uint64 // telemetry messages with a new sequence number
	dups      uint64 // sequence number not above the last one seen
	gaps      uint64 // sequence numbers skipped
	firstSeq  uint64
	lastSeq   uint64
	bad       uint64 // frames the generator could not read
	closeCode int    // close code sent by the edge (0: none)
	closeText string
	closedAt  int64 // when the edge ended the connection (Unix ns)
	steps     []*clientStep
}

// clientEnv is what every client shares.
type clientEnv struct {
	host     string // host:port of the edge
	path     string // request path and query
	sched    atomic.Pointer[schedule]
	received atomic.Uint64 // all telemetry frames, for progress
	stopping atomic.Bool   // set when the generator closes the clients itself
	readBuf  int
}

func (c *client) step(i, n int) *clientStep {
	if len(c.steps) < n {
		c.steps = append(c.steps, make([]*clientStep, n-len(c.steps))...)
	}
	st := c.steps[i]
	if st == nil {
		st = &clientStep{}
		c.steps[i] = st
	}
	return st
}

// dial connects, upgrades and subscribes; it returns once the edge has
// answered `subscribed` (ready) or failed.
func (c *client) dial(ctx context.Context, env *clientEnv) error {
	start := time.Now()
	d := net.Dialer{Timeout: 10 * time.Second}
	if c.source != nil {
		d.LocalAddr = &net.TCPAddr{IP: c.source}
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	conn, err := d.DialContext(ctx, "tcp", env.host)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	c.conn = conn
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	_, _ = rand.Read(c.mask[:])
	c.fr = NewFrameReader(env.readBuf)
	if err := c.handshake(env); err != nil {
		conn.Close()
		return err
	}
	sub := `{"type":"subscribe","payload":{"rooms":[` + strconv.Quote(c.room) + `]}}`
	if err := c.write(OpText, []byte(sub)); err != nil {
		conn.Close()
		return fmt.Errorf("send subscribe: %w", err)
	}
	// Wait for `subscribed`: `connected` comes first; anything else before
	// it is unexpected.
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		op, msg, err := c.nextMessage()
		if err != nil {
			conn.Close()
			return fmt.Errorf("waiting for subscribed: %w", err)
		}
		switch op {
		case OpText:
			switch t := MessageType(msg); t {
			case "connected":
			case "subscribed":
				if !bytes.Contains(msg, []byte(`"rejected":[]`)) && bytes.Contains(msg, []byte(`"rejected":[{`)) {
					conn.Close()
					return fmt.Errorf("room rejected: %s", msg)
				}
				_ = conn.SetReadDeadline(time.Time{})
				c.connectDur = time.Since(start)
				c.ready = true
				return nil
			default:
				conn.Close()
				return fmt.Errorf("unexpected %q before subscribed: %.200s", t, msg)
			}
		case OpClose:
			code, text := CloseCode(msg)
			conn.Close()
			return fmt.Errorf("closed by edge before subscribed: %d %s", code, text)
		}
	}
}

// handshake sends the HTTP upgrade request and reads the 101 response;
// bytes after the response stay in the frame reader.
func (c *client) handshake(env *clientEnv) error {
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	req := "GET " + env.path + " HTTP/1.1\r\nHost: " + env.host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k +
		"\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + c.token + "\r\n\r\n"
	_ = c.conn.SetDeadline(time.Now().Add(15 * time.Second))
	defer func() { _ = c.conn.SetDeadline(time.Time{}) }()
	if _, err := c.conn.Write([]byte(req)); err != nil {
		return fmt.Errorf("send upgrade: %w", err)
	}
	fr := c.fr
	for {
		if i := bytes.Index(fr.buf[fr.r:fr.w], []byte("\r\n\r\n")); i >= 0 {
			head := fr.buf[fr.r : fr.r+i]
			fr.r += i + 4
			return checkUpgrade(head, k, fr)
		}
		if fr.Buffered() > 16<<10 {
			return errors.New("upgrade response header too large")
		}
		if _, err := fr.Fill(c.conn, 0); err != nil {
			return fmt.Errorf("read upgrade response: %w", err)
		}
	}
}

var wsGUID = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11")

func checkUpgrade(head []byte, key string, fr *FrameReader) error {
	lines := bytes.Split(head, []byte("\r\n"))
	status := string(lines[0])
	if !bytes.HasPrefix(lines[0], []byte("HTTP/1.1 101")) {
		// The body (a JSON error) may follow; show what we have.
		body := fr.buf[fr.r:fr.w]
		return fmt.Errorf("upgrade refused: %s %.200s", status, body)
	}
	h := sha1.New()
	h.Write([]byte(key))
	h.Write(wsGUID)
	want := base64.StdEncoding.EncodeToString(h.Sum(nil))
	for _, l := range lines[1:] {
		name, val, ok := bytes.Cut(l, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Accept")) {
			if string(bytes.TrimSpace(val)) != want {
				return errors.New("bad Sec-WebSocket-Accept")
			}
			return nil
		}
	}
	return errors.New("upgrade response without Sec-WebSocket-Accept")
}

// nextMessage returns the next message, reading as needed (not the hot path).
func (c *client) nextMessage() (byte, []byte, error) {
	for {
		op, msg, need, ok, err := c.fr.Next()
		if err != nil {
			return 0, nil, err
		}
		if ok {
			if op == OpPing {
				if err := c.write(OpPong, msg); err != nil {
					return 0, nil, err
				}
				continue
			}
			return op, msg, nil
		}
		if _, err := c.fr.Fill(c.conn, need); err != nil {
			return 0, nil, err
		}
	}
}

// write sends one masked client frame.
func (c *client) write(op byte, payload []byte) error {
	c.wbuf = AppendClientFrame(c.wbuf[:0], op, c.mask, payload)
	if c.rd.fd > 0 {
		return c.rd.writeAll(c.wbuf)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(c.wbuf)
	return err
}

// run is the goroutine-per-connection reader (--reader goroutine): one
// Read, one timestamp, then every complete frame in the buffer.
func (c *client) run(env *clientEnv) {
	defer c.conn.Close()
	// Frames left over from the subscribe phase are parsed before the
	// first Read.
	now := time.Now().UnixNano()
	for {
		need, done := c.process(env, now)
		if done {
			return
		}
		if _, err := c.fr.Fill(c.conn, need); err != nil {
			c.process(env, time.Now().UnixNano())
			c.fail(err, env)
			return
		}
		now = time.Now().UnixNano()
	}
}

// readable is the epoll reader's step (--reader epoll): one read(2) on the
// non-blocking socket, then every complete frame. done means the
// connection has ended and must be deregistered and closed.
func (c *client) readable(env *clientEnv) (done bool) {
	_, err := c.fr.Fill(&c.rd, c.need)
	now := time.Now().UnixNano()
	var need int
	need, done = c.process(env, now)
	c.need = need
	if done {
		return true
	}
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) {
			return false
		}
		c.fail(err, env)
		return true
	}
	return false
}

// process handles every complete frame in the buffer, all stamped with
// now (the time of the read that brought them). It returns how many more
// bytes the next frame needs, and done when the connection ended.
func (c *client) process(env *clientEnv, now int64) (need int, done bool) {
	sched := env.sched.Load()
	rxStep := -1
	if sched != nil {
		rxStep = sched.stepOf(now)
	}
	var frames uint64
	defer func() {
		if frames > 0 {
			env.received.Add(frames)
		}
	}()
	for {
		op, msg, n, ok, perr := c.fr.Next()
		if perr != nil {
			c.fail(perr, env)
			return 0, true
		}
		if !ok {
			return n, false
		}
		switch op {
		case OpText:
			if !IsTelemetry(msg) {
				continue // replies, e.g. a late `error`
			}
			frames++
			c.telemetry(msg, now, sched, rxStep)
		case OpPing:
			if werr := c.write(OpPong, msg); werr != nil {
				c.fail(werr, env)
				return 0, true
			}
		case OpClose:
			code, text := CloseCode(msg)
			c.closeCode, c.closeText = code, text
			c.closedAt = time.Now().UnixNano()
			// Echo the close as the protocol asks, then hang up.
			reply := msg
			if len(reply) >= 2 {
				reply = reply[:2]
			}
			_ = c.write(OpClose, reply)
			return 0, true
		}
	}
}

func (c *client) fail(err error, env *clientEnv) {
	if !env.stopping.Load() && c.err == nil {
		c.err = err
		c.closedAt = time.Now().UnixNano()
	}
}

func (c *client) telemetry(msg []byte, now int64, sched *schedule, rxStep int) {
	seq, sent, ok := ScanLoadTags(msg)
	if !ok {
		c.bad++
		return
	}
	if sched == nil {
		// Published before this process learnt the schedule: counts for
		// sequence accounting only.
		c.account(seq)
		return
	}
	n := len(sched.Steps)
	if rxStep >= 0 {
		c.step(rxStep, n).received++
	}
	if !c.account(seq) {
		return
	}
	if s := sched.stepOf(sent); s >= 0 {
		st := c.step(s, n)
		st.delivered++
		st.lat.RecordNanos(now - sent)
	}
}

// account tracks the room sequence; false means a duplicate.
func (c *client) account(seq uint64) bool {
	if c.distinct > 0 && seq <= c.lastSeq {
		c.dups++
		return false
	}
	if c.distinct == 0 {
		c.firstSeq = seq
	} else if seq > c.lastSeq+1 {
		c.gaps += seq - c.lastSeq - 1
	}
	c.lastSeq = seq
	c.distinct++
	return true
}
