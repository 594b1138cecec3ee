package harness

import (
	"encoding/json"
	"fmt"
	"testing"
)

// The dashboard protocol's server messages as a client sees them, spelt out
// here from docs/protocol.md rather than borrowed from the edge's code, so
// the tests check the contract and not the implementation's own types.

// Message is one server frame: the contract's envelope.
type Message struct {
	Type      string          `json:"type"`
	Room      string          `json:"room,omitempty"`
	Seq       *uint64         `json:"seq,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	Timestamp string          `json:"timestamp"`
	RequestID string          `json:"request_id,omitempty"`

	Raw []byte `json:"-"` // the frame as received
}

// IsRoomMessage reports whether m was delivered through a room (device data)
// rather than being a reply to the client.
func (m Message) IsRoomMessage() bool {
	return m.Type == "telemetry" || m.Type == "device_status" || m.Type == "alert"
}

// Decode decodes m's payload into v, failing t if it does not fit.
func (m Message) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(m.Payload, v); err != nil {
		t.Fatalf("decode %s payload %s: %v", m.Type, m.Payload, err)
	}
}

func (m Message) String() string { return string(m.Raw) }

// Connected is the payload of `connected`.
type Connected struct {
	ConnectionID string `json:"connection_id"`
	ServerTime   string `json:"server_time"`
	HeartbeatS   int    `json:"heartbeat_s"`
}

// Subscribed is the payload of `subscribed`.
type Subscribed struct {
	Rooms    []string    `json:"rooms"`
	Rejected []Rejection `json:"rejected"`
}

// Rejection says why one room of a subscribe was refused.
type Rejection struct {
	Room   string `json:"room"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// Rooms is the payload of `unsubscribed`.
type Rooms struct {
	Rooms []string `json:"rooms"`
}

// Presence is the payload of a `presence` reply.
type Presence struct {
	Room    string   `json:"room"`
	Count   int      `json:"count"`
	Members []Member `json:"members"`
}

// Member is one user in a presence reply.
type Member struct {
	UserID      string `json:"user_id"`
	Connections int    `json:"connections"`
}

// Error is the payload of `error`.
type Error struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

// Telemetry is the payload of a `telemetry` room message.
type Telemetry struct {
	DeviceID  string            `json:"device_id"`
	Timestamp string            `json:"timestamp"`
	Fields    map[string]any    `json:"fields"`
	Tags      map[string]string `json:"tags"`
}

// DeviceStatus is the payload of a `device_status` room message.
type DeviceStatus struct {
	DeviceID  string `json:"device_id"`
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
}

// HTTPError is the JSON body of a refused upgrade (401, 403).
type HTTPError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func decodeMessage(frame []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(frame, &m); err != nil {
		return Message{Raw: frame}, fmt.Errorf("frame is not a JSON object: %w: %q", err, frame)
	}
	if m.Type == "" {
		return Message{Raw: frame}, fmt.Errorf("frame has no type: %q", frame)
	}
	m.Raw = frame
	return m, nil
}
