package load

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// maxFrame bounds one server frame; the edge's largest replies are a few KB.
const maxFrame = 16 << 20

// ErrMaskedServerFrame: servers must not mask frames (RFC 6455 §5.1).
var ErrMaskedServerFrame = errors.New("websocket: server frame is masked")

// FrameReader parses server-to-client frames out of its own buffer, which
// the caller fills with one Read at a time. It never copies a frame that
// fits the buffer and never allocates on the hot path, and it lets the
// caller take one timestamp per Read for every frame that Read brought in.
type FrameReader struct {
	buf  []byte
	r, w int // unread data is buf[r:w]
	// frag collects a fragmented message (the edge never fragments; this
	// is here for correctness).
	frag   []byte
	fragOp byte
	inFrag bool
}

// NewFrameReader returns a reader with a buffer of size bytes; frames larger
// than that grow it.
func NewFrameReader(size int) *FrameReader {
	if size < 64 {
		size = 64
	}
	return &FrameReader{buf: make([]byte, size)}
}

// Prime puts bytes already read (e.g. after the HTTP handshake) in front.
func (f *FrameReader) Prime(b []byte) {
	f.ensure(len(b))
	f.w += copy(f.buf[f.w:], b)
}

// ensure makes room for n more bytes after w, compacting then growing.
func (f *FrameReader) ensure(n int) {
	if len(f.buf)-f.w >= n {
		return
	}
	if f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	if len(f.buf)-f.w < n {
		nb := make([]byte, max(2*len(f.buf), f.w+n))
		copy(nb, f.buf[:f.w])
		f.buf = nb
	}
}

// Fill reads once from rd into the buffer. need is the number of bytes the
// last Next said it lacked (0: any amount).
func (f *FrameReader) Fill(rd io.Reader, need int) (int, error) {
	if f.r == f.w {
		f.r, f.w = 0, 0
	}
	if need < 1 {
		need = 1
	}
	if free := len(f.buf) - f.w; free < len(f.buf)/4 && f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	f.ensure(need)
	n, err := rd.Read(f.buf[f.w:])
	f.w += n
	return n, err
}

// Buffered is the number of unparsed bytes.
func (f *FrameReader) Buffered() int { return f.w - f.r }

// Next returns the next complete message from the buffer: its opcode and
// payload (valid until the next Fill). Control frames come back as they
// are, also in the middle of a fragmented message. When the buffer holds
// no complete frame, ok is false and need says how many more bytes are
// required at least.
func (f *FrameReader) Next() (op byte, payload []byte, need int, ok bool, err error) {
	for {
		b := f.buf[f.r:f.w]
		if len(b) < 2 {
			return 0, nil, 2 - len(b), false, nil
		}
		fin := b[0]&0x80 != 0
		op = b[0] & 0x0f
		if b[1]&0x80 != 0 {
			return 0, nil, 0, false, ErrMaskedServerFrame
		}
		hl := 2
		n := uint64(b[1] & 0x7f)
		switch n {
		case 126:
			hl = 4
			if len(b) < hl {
				return 0, nil, hl - len(b), false, nil
			}
			n = uint64(binary.BigEndian.Uint16(b[2:4]))
		case 127:
			hl = 10
			if len(b) < hl {
				return 0, nil, hl - len(b), false, nil
			}
			n = binary.BigEndian.Uint64(b[2:10])
		}
		if n > maxFrame {
			return 0, nil, 0, false, fmt.Errorf("websocket: frame of %d bytes is too large", n)
		}
		total := hl + int(n)
		if len(b) < total {
			return 0, nil, total - len(b), false, nil
		}
		payload = b[hl:total]
		f.r += total
		if op >= OpClose { // control frames are never fragmented
			return op, payload, 0, true, nil
		}
		switch {
		case op == OpContinuation:
			if !f.inFrag {
				return 0, nil, 0, false, errors.New("websocket: continuation frame without a start")
			}
			f.frag = append(f.frag, payload...)
			if len(f.frag) > maxFrame {
				return 0, nil, 0, false, errors.New("websocket: fragmented message too large")
			}
			if fin {
				f.inFrag = false
				return f.fragOp, f.frag, 0, true, nil
			}
		case !fin:
			if f.inFrag {
				return 0, nil, 0, false, errors.New("websocket: new message inside a fragmented one")
			}
			f.inFrag = true
			f.fragOp = op
			f.frag = append(f.frag[:0], payload...)
		default:
			return op, payload, 0, true, nil
		}
	}
}

// AppendClientFrame appends a final, masked client frame (clients must mask,
// RFC 6455 §5.3) with the given opcode, mask key and payload to dst.
func AppendClientFrame(dst []byte, op byte, mask [4]byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= mask[i&3]
	}
	return dst
}

// CloseCode parses a close frame's payload into its status code (1005,
// "no status", when absent) and reason.
func CloseCode(payload []byte) (int, string) {
	if len(payload) < 2 {
		return 1005, ""
	}
	return int(binary.BigEndian.Uint16(payload)), string(payload[2:])
}

// Room message scanning. The edge renders telemetry as
//
//	{"type":"telemetry","room":"...","payload":{...,"tags":{"n":"17","sent_ns":"..."}},"timestamp":...}
//
// The generator finds its two tags by byte search instead of decoding JSON.
var (
	telemetryPrefix = []byte(`{"type":"telemetry"`)
	tagsKey         = []byte(`"tags":{`)
	seqKey          = []byte(`"n":"`)
	sentKey         = []byte(`"sent_ns":"`)
)

// IsTelemetry reports whether a text message is a telemetry room message.
func IsTelemetry(msg []byte) bool { return bytes.HasPrefix(msg, telemetryPrefix) }

// MessageType returns the value of the leading "type" field of a server
// message, or "" when the message does not start with one.
func MessageType(msg []byte) string {
	const p = `{"type":"`
	if !bytes.HasPrefix(msg, []byte(p)) {
		return ""
	}
	rest := msg[len(p):]
	if i := bytes.IndexByte(rest, '"'); i >= 0 {
		return string(rest[:i])
	}
	return ""
}

// ScanLoadTags extracts the generator's "n" (per-room sequence) and
// "sent_ns" (publish time, Unix nanoseconds) tags from a telemetry message.
// The edge renders tags in key order at the end of the payload, followed
// only by the server timestamp:
//
//	...,"tags":{"n":"17","sent_ns":"1767323045123456789"}},"timestamp":"..."}
//
// so it walks back from the end first (a few dozen bytes, no search), and
// falls back to searching the message for any other layout.
func ScanLoadTags(msg []byte) (seq uint64, sentNs int64, ok bool) {
	if seq, sentNs, ok = scanTagsBackward(msg); ok {
		return seq, sentNs, ok
	}
	i := bytes.Index(msg, tagsKey)
	if i < 0 {
		return 0, 0, false
	}
	return scanTags(msg[i+len(tagsKey):])
}

// scanTagsBackward reads `"n":"<digits>","sent_ns":"<digits>"}}` ending at
// the last "}}" of msg.
func scanTagsBackward(msg []byte) (uint64, int64, bool) {
	p := len(msg) - 2
	for p >= 0 && !(msg[p] == '}' && msg[p+1] == '}') {
		p--
	}
	sent, p, ok := digitsBefore(msg, p) // p: index of the opening quote
	if !ok || !bytes.HasSuffix(msg[:p], sentKey[:len(sentKey)-1]) {
		return 0, 0, false
	}
	p -= len(sentKey) - 1
	if p < 1 || msg[p-1] != ',' {
		return 0, 0, false
	}
	seq, p, ok := digitsBefore(msg, p-1)
	if !ok || !bytes.HasSuffix(msg[:p], seqKey[:len(seqKey)-1]) {
		return 0, 0, false
	}
	return seq, int64(sent), true
}

// digitsBefore parses `"<digits>"` ending just before end and returns the
// value and the index of the opening quote.
func digitsBefore(msg []byte, end int) (uint64, int, bool) {
	if end < 3 || msg[end-1] != '"' {
		return 0, 0, false
	}
	i := end - 2
	for i >= 0 && msg[i] >= '0' && msg[i] <= '9' {
		i--
	}
	n := end - 2 - i
	if i < 0 || msg[i] != '"' || n == 0 || n > 19 {
		return 0, 0, false
	}
	var v uint64
	for _, c := range msg[i+1 : end-1] {
		v = v*10 + uint64(c-'0')
	}
	return v, i, true
}

func scanTags(b []byte) (uint64, int64, bool) {
	s, ok1 := scanUint(b, seqKey)
	t, ok2 := scanUint(b, sentKey)
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return s, int64(t), true
}

// scanUint finds key in b and parses the decimal digits after it.
func scanUint(b, key []byte) (uint64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	var v uint64
	n := 0
	for n < len(b) && n < 20 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	if n == 0 || n >= len(b) || b[n] != '"' {
		return 0, false
	}
	return v, true
}

// itoa is strconv.FormatInt for tag values.
func itoa(v int64) string { return strconv.FormatInt(v, 10) }
