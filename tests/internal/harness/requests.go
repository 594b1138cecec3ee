//go:build unix

package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// What a dashboard does on its connection: send messages, make requests of
// the contract and wait for the messages it expects.

// Expect waits for a message that match accepts and fails t, listing what
// did arrive, if none comes within AwaitTimeout.
func (c *Client) Expect(t testing.TB, what string, match func(Message) bool) Message {
	t.Helper()
	m, err := c.Await(AwaitTimeout, match)
	if err != nil {
		t.Fatalf("%s: waiting for %s: %v; unmatched messages: %s", c.Name, what, err, c.pending())
	}
	return m
}

// ExpectType waits for the next message of type typ.
func (c *Client) ExpectType(t testing.TB, typ string) Message {
	t.Helper()
	return c.Expect(t, "a "+typ+" message", func(m Message) bool { return m.Type == typ })
}

// ExpectError waits for an `error` message and returns its payload.
func (c *Client) ExpectError(t testing.TB) Error {
	t.Helper()
	var e Error
	c.ExpectType(t, "error").Decode(t, &e)
	return e
}

// ExpectRoomMessages waits for n room messages and returns them in the
// order they arrived.
func (c *Client) ExpectRoomMessages(t testing.TB, n int) []Message {
	t.Helper()
	msgs := make([]Message, 0, n)
	for len(msgs) < n {
		msgs = append(msgs, c.Expect(t, fmt.Sprintf("room message %d of %d", len(msgs)+1, n), Message.IsRoomMessage))
	}
	return msgs
}

// ExpectNoRoomMessage fails t if a room message arrives within quiet. It
// always waits the whole period, so use it once, after the last message a
// client should get.
func (c *Client) ExpectNoRoomMessage(t testing.TB, quiet time.Duration) {
	t.Helper()
	m, err := c.Await(quiet, Message.IsRoomMessage)
	switch {
	case err == nil:
		t.Errorf("%s: unexpected room message %s", c.Name, m)
	case !errors.Is(err, errTimeout):
		t.Errorf("%s: %v", c.Name, err)
	}
}

// ExpectNoRoomMessages waits quiet once and then fails t for every room
// message any of clients received meanwhile.
func ExpectNoRoomMessages(t testing.TB, quiet time.Duration, clients ...*Client) {
	t.Helper()
	deadline := time.Now().Add(quiet)
	for _, c := range clients {
		c.ExpectNoRoomMessage(t, time.Until(deadline))
	}
}

// Send sends v as one JSON text frame.
func (c *Client) Send(t testing.TB, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: encode %v: %v", c.Name, v, err)
	}
	c.SendText(t, data)
}

// SendText sends data as one text frame, as is.
func (c *Client) SendText(t testing.TB, data []byte) {
	t.Helper()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(AwaitTimeout))
	if err := c.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		t.Fatalf("%s: send %.80q: %v", c.Name, data, err)
	}
}

// NextRequestID returns a request_id no other message of this client used.
func (c *Client) NextRequestID() string {
	return fmt.Sprintf("%s-%d", c.Name, c.ids.Add(1))
}

// Request sends a message of type typ (payload nil for none) with a fresh
// request_id and returns the reply that echoes it.
func (c *Client) Request(t testing.TB, typ string, payload any) Message {
	t.Helper()
	id := c.NextRequestID()
	msg := map[string]any{"type": typ, "request_id": id}
	if payload != nil {
		msg["payload"] = payload
	}
	c.Send(t, msg)
	return c.Expect(t, "the reply to "+typ+" "+id, func(m Message) bool { return m.RequestID == id })
}

// expectReply fails t unless reply has type want.
func (c *Client) expectReply(t testing.TB, reply Message, want string) {
	t.Helper()
	if reply.Type != want {
		t.Fatalf("%s: got %s; want a %s reply", c.Name, reply, want)
	}
}

// Subscribe joins rooms and returns the `subscribed` payload.
func (c *Client) Subscribe(t testing.TB, rooms ...string) Subscribed {
	t.Helper()
	reply := c.Request(t, "subscribe", map[string]any{"rooms": rooms})
	c.expectReply(t, reply, "subscribed")
	var s Subscribed
	reply.Decode(t, &s)
	return s
}

// MustSubscribe joins rooms and fails t unless every one was joined.
func (c *Client) MustSubscribe(t testing.TB, rooms ...string) {
	t.Helper()
	s := c.Subscribe(t, rooms...)
	if len(s.Rejected) > 0 {
		t.Fatalf("%s: subscribe %v: rejected %+v", c.Name, rooms, s.Rejected)
	}
	for _, r := range rooms {
		if !slices.Contains(s.Rooms, r) {
			t.Fatalf("%s: subscribe %v: joined only %v", c.Name, rooms, s.Rooms)
		}
	}
}

// Unsubscribe leaves rooms and returns the rooms still joined.
func (c *Client) Unsubscribe(t testing.TB, rooms ...string) []string {
	t.Helper()
	reply := c.Request(t, "unsubscribe", map[string]any{"rooms": rooms})
	c.expectReply(t, reply, "unsubscribed")
	var r Rooms
	reply.Decode(t, &r)
	return r.Rooms
}

// Presence asks who is in room, across every edge.
func (c *Client) Presence(t testing.TB, room string) Presence {
	t.Helper()
	reply := c.Request(t, "presence", map[string]any{"room": room})
	c.expectReply(t, reply, "presence")
	var p Presence
	reply.Decode(t, &p)
	return p
}

// Ping sends an application ping and waits for its pong.
func (c *Client) Ping(t testing.TB) {
	t.Helper()
	c.expectReply(t, c.Request(t, "ping", nil), "pong")
}
