//go:build unix

package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// AwaitTimeout is how long a client waits for a message it expects: long
// enough for a busy machine running everything with -race.
const AwaitTimeout = 5 * time.Second

// DialOptions change how a Client connects.
type DialOptions struct {
	// Origin is sent as the Origin header, as a browser would send it.
	Origin string
	// BearerHeader sends the token in an Authorization header instead of
	// the token query parameter.
	BearerHeader bool
	// ReceiveBuffer, when positive, sets the socket's SO_RCVBUF before it
	// connects, so that a client that does not read fills up fast.
	ReceiveBuffer int
	// Paused leaves frames unread after `connected`: the client reads only
	// while a test waits on it, until Resume.
	Paused bool
}

// Client is a dashboard WebSocket connection. Unless paused, a goroutine
// reads every frame into an inbox, so a test can wait for one kind of
// message without losing the others that arrive meanwhile.
type Client struct {
	Name      string
	Connected Connected // the payload of the first frame

	conn    *websocket.Conn
	writeMu sync.Mutex
	ids     atomic.Int64

	mu         sync.Mutex
	inbox      []Message
	readErr    error         // why reading ended; nil while it goes on
	endedAt    time.Time     // when reading ended
	changed    chan struct{} // closed and replaced when inbox or readErr change
	reading    bool          // the reader goroutine runs
	readerDone chan struct{}
	closeOnce  sync.Once
}

// Dial connects to an edge's WebSocket URL with token (none if empty),
// checks that the first frame is `connected`, and closes the client when
// t ends.
func Dial(t testing.TB, name, wsURL, token string, opts DialOptions) *Client {
	t.Helper()
	conn, resp, err := dial(wsURL, token, opts)
	if err != nil {
		t.Fatalf("%s: dial %s: %v%s", name, wsURL, err, describe(resp))
	}
	c := &Client{Name: name, conn: conn, changed: make(chan struct{}), readerDone: make(chan struct{})}
	t.Cleanup(c.Close)
	first, err := c.Await(AwaitTimeout, func(Message) bool { return true })
	if err != nil {
		t.Fatalf("%s: no first frame: %v", name, err)
	}
	if first.Type != "connected" {
		t.Fatalf("%s: first frame is %s; want connected", name, first)
	}
	first.Decode(t, &c.Connected)
	if c.Connected.ConnectionID == "" || c.Connected.HeartbeatS <= 0 || !validTime(c.Connected.ServerTime) {
		t.Fatalf("%s: connected payload %s lacks connection_id, heartbeat_s or server_time", name, first.Payload)
	}
	if !opts.Paused {
		c.Resume()
	}
	return c
}

// Refusal is an edge's answer to an upgrade it refused.
type Refusal struct {
	Status      int
	ContentType string
	Body        HTTPError
	Raw         string
}

// DialRefused tries to connect and expects the edge to refuse before the
// upgrade with an HTTP error whose body is JSON; it fails t otherwise.
func DialRefused(t testing.TB, wsURL, token string, opts DialOptions) Refusal {
	t.Helper()
	conn, resp, err := dial(wsURL, token, opts)
	if err == nil {
		conn.Close()
		t.Fatalf("dial %s: upgraded; want the upgrade refused", wsURL)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v; want an HTTP error response", wsURL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := Refusal{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Raw: string(raw)}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("dial %s: refused with %s and a body that is not JSON: %q", wsURL, resp.Status, raw)
	}
	return r
}

func dial(wsURL, token string, opts DialOptions) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: AwaitTimeout}
	if opts.ReceiveBuffer > 0 {
		nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var err error
			if cerr := rc.Control(func(fd uintptr) {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, opts.ReceiveBuffer)
			}); cerr != nil {
				return cerr
			}
			return err
		}}
		d.NetDialContext = nd.DialContext
	}
	header := http.Header{}
	if opts.Origin != "" {
		header.Set("Origin", opts.Origin)
	}
	if token != "" {
		if opts.BearerHeader {
			header.Set("Authorization", "Bearer "+token)
		} else {
			wsURL += "?token=" + url.QueryEscape(token)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), AwaitTimeout)
	defer cancel()
	return d.DialContext(ctx, wsURL, header)
}

func describe(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf(" (HTTP %s: %s)", resp.Status, strings.TrimSpace(string(body)))
}

// Resume starts reading in the background.
func (c *Client) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading {
		return
	}
	c.reading = true
	go func() {
		defer close(c.readerDone)
		for c.readFrame(time.Time{}) == nil {
		}
	}()
}

// readFrame reads one frame into the inbox, waiting until deadline (zero:
// no deadline). A frame that breaks the contract's framing is kept with the
// type "!invalid" so it shows up as unexpected.
func (c *Client) readFrame(deadline time.Time) error {
	_ = c.conn.SetReadDeadline(deadline)
	kind, data, err := c.conn.ReadMessage()
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.notifyLocked()
	if err != nil {
		c.readErr, c.endedAt = err, time.Now()
		return err
	}
	m, err := decodeMessage(data)
	if err != nil || kind != websocket.TextMessage {
		m = Message{Type: "!invalid", Raw: data}
	}
	c.inbox = append(c.inbox, m)
	return nil
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Await removes and returns the first message, received or arriving within
// timeout, that match accepts. A paused client reads frames here.
func (c *Client) Await(timeout time.Duration, match func(Message) bool) (Message, error) {
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		for i, m := range c.inbox {
			if match(m) {
				c.inbox = append(c.inbox[:i:i], c.inbox[i+1:]...)
				c.mu.Unlock()
				return m, nil
			}
		}
		readErr, changed, reading := c.readErr, c.changed, c.reading
		c.mu.Unlock()

		wait := time.Until(deadline)
		switch {
		case readErr != nil:
			return Message{}, fmt.Errorf("connection ended: %w", readErr)
		case wait <= 0:
			return Message{}, errTimeout
		case !reading:
			if err := c.readFrame(deadline); err != nil && time.Now().After(deadline) {
				return Message{}, errTimeout
			}
		default:
			timer := time.NewTimer(wait)
			select {
			case <-changed:
			case <-timer.C:
			}
			timer.Stop()
		}
	}
}

var errTimeout = errors.New("timed out")

// AwaitClose reads until the server closes the connection and returns its
// close frame and when it arrived; it fails t if none comes within timeout
// or the connection ends without one. Messages received before the close
// stay in the inbox.
func (c *Client) AwaitClose(t testing.TB, timeout time.Duration) (*websocket.CloseError, time.Time) {
	t.Helper()
	c.Resume()
	select {
	case <-c.readerDone:
	case <-time.After(timeout):
		t.Fatalf("%s: still open after %s; want a close frame", c.Name, timeout)
	}
	c.mu.Lock()
	err, at := c.readErr, c.endedAt
	c.mu.Unlock()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: connection ended without a close frame: %v", c.Name, err)
	}
	return ce, at
}

// Ended returns why the connection ended (a *websocket.CloseError when the
// server closed it), or nil while it is open. A paused client does not notice
// an end until it reads again.
func (c *Client) Ended() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// TakeAll removes and returns every message received so far.
func (c *Client) TakeAll() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	msgs := c.inbox
	c.inbox = nil
	return msgs
}

func (c *Client) pending() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.inbox) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, m := range c.inbox {
		if i == 10 {
			fmt.Fprintf(&b, "\n\t... and %d more", len(c.inbox)-i)
			break
		}
		fmt.Fprintf(&b, "\n\t%.300s", m.Raw)
	}
	return b.String()
}

// Close sends a normal close frame and closes the connection. Cleanup
// calls it; calling it earlier is fine.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.writeMu.Lock()
		_ = c.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.writeMu.Unlock()
		_ = c.conn.Close()
		c.mu.Lock()
		reading := c.reading
		c.mu.Unlock()
		if reading {
			<-c.readerDone
		}
	})
}

func validTime(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}
