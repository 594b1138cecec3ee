package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message types of the contract.
const (
	TypeSubscribe     = "subscribe"
	TypeUnsubscribe   = "unsubscribe"
	TypePing          = "ping"
	TypePresence      = "presence"
	TypeCommand       = "command"
	TypeConnected     = "connected"
	TypeSubscribed    = "subscribed"
	TypeUnsubscribed  = "unsubscribed"
	TypePong          = "pong"
	TypeError         = "error"
	TypeCommandResult = "command_result"
	TypePresenceJoin  = "presence_join"
	TypePresenceLeave = "presence_leave"
)

// Error codes of the contract's `error` message.
const (
	CodeInvalidJSON    = "invalid_json"
	CodeInvalidPayload = "invalid_payload"
	CodeInvalidRoom    = "invalid_room"
	CodeForbidden      = "forbidden"
	CodeRateLimited    = "rate_limited"
	CodeUnknownType    = "unknown_type"
	CodeLimitExceeded  = "limit_exceeded"
	CodeUnavailable    = "unavailable"
)

// ClientMessage is one decoded client frame. Payload is left raw: each
// type decodes its own.
type ClientMessage struct {
	Type        string          `json:"type"`
	RequestID   string          `json:"request_id,omitempty"`
	Traceparent string          `json:"traceparent,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

// ProtocolError is a client mistake with the contract's error code.
type ProtocolError struct {
	Code    string
	Message string
}

func (e *ProtocolError) Error() string { return e.Code + ": " + e.Message }

// Errorf builds a ProtocolError.
func Errorf(code, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// DecodeClient decodes a client frame. It fails with invalid_json for
// anything that is not one JSON object, and invalid_payload for an object
// whose envelope fields have the wrong shape. The returned message keeps
// any request_id it could read, so the error reply can echo it.
func DecodeClient(data []byte) (ClientMessage, error) {
	var m ClientMessage
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return m, Errorf(CodeInvalidJSON, "frame is not a JSON object")
	}
	if err := json.Unmarshal(trimmed, &m); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			m = ClientMessage{RequestID: salvageRequestID(trimmed)}
			return m, Errorf(CodeInvalidPayload, "field %q has the wrong type", typeErr.Field)
		}
		return ClientMessage{}, Errorf(CodeInvalidJSON, "frame is not a JSON object")
	}
	if m.Type == "" {
		return m, Errorf(CodeInvalidPayload, `missing "type"`)
	}
	return m, nil
}

func salvageRequestID(data []byte) string {
	var probe struct {
		RequestID any `json:"request_id"`
	}
	_ = json.Unmarshal(data, &probe)
	s, _ := probe.RequestID.(string)
	return s
}

// DecodePayload decodes a message payload into v, strictly enough that a
// client learns about a misspelt field's type but not so strictly that a
// newer client's extra fields break it.
func DecodePayload(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return Errorf(CodeInvalidPayload, "missing payload")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return Errorf(CodeInvalidPayload, "payload field %q has the wrong type", typeErr.Field)
		}
		return Errorf(CodeInvalidPayload, "payload is not the expected object")
	}
	return nil
}

// SubscribePayload is the payload of `subscribe`.
type SubscribePayload struct {
	Rooms  []string          `json:"rooms"`
	Since  map[string]uint64 `json:"since,omitempty"`
	Latest bool              `json:"latest,omitempty"`
}

// RoomsPayload is the payload of `unsubscribe` and `unsubscribed`.
type RoomsPayload struct {
	Rooms []string `json:"rooms"`
}

// PresenceRequest is the payload of a client's `presence`.
type PresenceRequest struct {
	Room string `json:"room"`
}

// Rejection says why one room of a subscribe was refused.
type Rejection struct {
	Room   string `json:"room"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// SubscribedPayload is the payload of `subscribed`.
type SubscribedPayload struct {
	Rooms    []string    `json:"rooms"`
	Rejected []Rejection `json:"rejected"`
	// Recovered says, per room of the request's `since`, whether the missed
	// messages could be replayed.
	Recovered map[string]bool `json:"recovered,omitempty"`
}

// ConnectedPayload is the payload of `connected`.
type ConnectedPayload struct {
	ConnectionID string `json:"connection_id"`
	ServerTime   string `json:"server_time"`
	HeartbeatS   int    `json:"heartbeat_s"`
}

// Member is one user in a presence reply.
type Member struct {
	UserID      string `json:"user_id"`
	Connections int    `json:"connections"`
}

// PresencePayload is the payload of the `presence` reply.
type PresencePayload struct {
	Room    string   `json:"room"`
	Count   int      `json:"count"`
	Members []Member `json:"members"`
}

// PresenceChangePayload is the payload of `presence_join` and
// `presence_leave`.
type PresenceChangePayload struct {
	Room   string `json:"room"`
	UserID string `json:"user_id"`
}

// ErrorPayload is the payload of `error`.
type ErrorPayload struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

// CommandPayload is the payload of a client's `command`.
type CommandPayload struct {
	DeviceID  string         `json:"device_id"`
	Name      string         `json:"name"`
	Params    map[string]any `json:"params,omitempty"`
	TimeoutMS int64          `json:"timeout_ms,omitempty"`
}

// CommandResultPayload is the payload of `command_result`.
type CommandResultPayload struct {
	CommandID string         `json:"command_id,omitempty"`
	DeviceID  string         `json:"device_id,omitempty"`
	Status    string         `json:"status"`
	Result    map[string]any `json:"result,omitempty"` // a map, so that none is no "result" at all
}

// reply is the envelope of every direct reply.
type reply struct {
	Type      string `json:"type"`
	Payload   any    `json:"payload,omitempty"`
	Timestamp string `json:"timestamp"`
	RequestID string `json:"request_id,omitempty"`
}

// Timestamp formats server times the way every message carries them.
func Timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// ReplyFrame renders a direct reply (its payload may be nil) as a text frame.
func ReplyFrame(msgType, requestID string, payload any, now time.Time) []byte {
	data, err := json.Marshal(reply{Type: msgType, Payload: payload, Timestamp: Timestamp(now), RequestID: requestID})
	if err != nil {
		// Only our own payload types reach here; failing to encode one is a bug.
		panic(fmt.Sprintf("wire: encode %s reply: %v", msgType, err))
	}
	return TextFrame(data)
}

// ErrorFrame renders an `error` reply.
func ErrorFrame(requestID string, perr *ProtocolError, now time.Time) []byte {
	return ReplyFrame(TypeError, requestID, ErrorPayload{Code: perr.Code, Error: perr.Message}, now)
}
