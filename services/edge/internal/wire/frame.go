// Package wire speaks the dashboard WebSocket protocol of the contract
// (docs/protocol.md): it decodes client messages, renders server messages
// as JSON, and pre-frames them as WebSocket frames so one room message is
// encoded once and its bytes written unchanged to every recipient.
package wire

import "encoding/binary"

// WebSocket opcodes (RFC 6455 §5.2) the edge writes itself.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
	finBit  = 0x80
)

// MaxHeaderLen is the longest header of an unmasked server frame.
const MaxHeaderLen = 10

// Builder renders a message straight into a buffer that keeps MaxHeaderLen
// bytes free at its start, so Frame can put the WebSocket header in front
// of the payload without copying it.
type Builder struct {
	buf []byte
}

// NewBuilder returns a Builder whose payload may grow to sizeHint bytes
// before it reallocates.
func NewBuilder(sizeHint int) *Builder {
	b := &Builder{buf: make([]byte, MaxHeaderLen, MaxHeaderLen+sizeHint)}
	return b
}

// Payload returns the bytes appended so far, after the reserved header room.
func (b *Builder) Payload() []byte { return b.buf[MaxHeaderLen:] }

// Frame writes the header of a final text frame in front of the payload
// and returns the complete frame. The Builder must not be used afterwards:
// the frame is shared, read-only, by every recipient.
func (b *Builder) Frame() []byte {
	n := len(b.buf) - MaxHeaderLen
	start := MaxHeaderLen - headerLen(n)
	putHeader(b.buf[start:MaxHeaderLen], opText, n)
	return b.buf[start:]
}

// TextFrame returns a final text frame holding payload (copied).
func TextFrame(payload []byte) []byte {
	return controlOrData(opText, payload)
}

// PingFrame is an empty ping; the same bytes serve every connection.
var PingFrame = []byte{finBit | opPing, 0}

// PongFrame answers a client's ping, echoing its application data (≤125 bytes).
func PongFrame(data []byte) []byte {
	return controlOrData(opPong, data)
}

// CloseFrame returns a close frame with a status code and a reason; the
// reason is cut to fit the 125-byte control frame limit.
func CloseFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	body := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(body, uint16(code))
	copy(body[2:], reason)
	return controlOrData(opClose, body)
}

func controlOrData(op byte, payload []byte) []byte {
	h := headerLen(len(payload))
	f := make([]byte, h+len(payload))
	putHeader(f[:h], op, len(payload))
	copy(f[h:], payload)
	return f
}

func headerLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// putHeader writes an unmasked final-frame header for a payload of n bytes
// into h, which must be exactly headerLen(n) long.
func putHeader(h []byte, op byte, n int) {
	h[0] = finBit | op
	switch len(h) {
	case 2:
		h[1] = byte(n)
	case 4:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
}
