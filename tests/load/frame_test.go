package load

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// serverFrame builds an unmasked server frame the way the edge does.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, byte(n))
	case n <= 0xffff:
		f = append(f, 126, byte(n>>8), byte(n))
	default:
		f = append(f, 127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	return append(f, payload...)
}

type msg struct {
	op      byte
	payload string
}

// readAll drives a FrameReader over r the way client.run does.
func readAll(t *testing.T, r io.Reader, bufSize int) ([]msg, error) {
	t.Helper()
	fr := NewFrameReader(bufSize)
	var out []msg
	need := 0
	for {
		for {
			op, p, n, ok, err := fr.Next()
			if err != nil {
				return out, err
			}
			if !ok {
				need = n
				break
			}
			out = append(out, msg{op, string(p)})
		}
		if _, err := fr.Fill(r, need); err != nil {
			if errors.Is(err, io.EOF) {
				if fr.Buffered() != 0 {
					return out, io.ErrUnexpectedEOF
				}
				return out, nil
			}
			return out, err
		}
	}
}

func TestFrameReaderLengthsAndSplits(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 1000, 4095, 4096, 65535, 65536, 70000}
	var stream []byte
	var want []msg
	for i, n := range sizes {
		p := strings.Repeat(string(rune('a'+i)), n)
		stream = append(stream, serverFrame(true, OpText, []byte(p))...)
		want = append(want, msg{OpText, p})
		if i == 3 {
			stream = append(stream, serverFrame(true, OpPing, []byte("hb"))...)
			want = append(want, msg{OpPing, "hb"})
		}
	}
	stream = append(stream, serverFrame(true, OpClose, []byte{0x03, 0xf5, 's', 'l', 'o', 'w'})...)
	want = append(want, msg{OpClose, "\x03\xf5slow"})

	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(stream) },
		"one-byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
	}
	for name, mk := range readers {
		for _, buf := range []int{64, 4096} {
			got, err := readAll(t, mk(), buf)
			if err != nil {
				t.Fatalf("%s/%d: %v", name, buf, err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s/%d: %d messages, want %d", name, buf, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s/%d: message %d = op %d len %d, want op %d len %d", name, buf, i,
						got[i].op, len(got[i].payload), want[i].op, len(want[i].payload))
				}
			}
		}
	}
	code, reason := CloseCode([]byte("\x03\xf5slow consumer"))
	if code != 1013 || reason != "slow consumer" {
		t.Errorf("CloseCode = %d %q", code, reason)
	}
	if code, _ := CloseCode(nil); code != 1005 {
		t.Errorf("empty close code = %d", code)
	}
}

func TestFrameReaderFragmentsAndPrime(t *testing.T) {
	var stream []byte
	stream = append(stream, serverFrame(false, OpText, []byte("hel"))...)
	stream = append(stream, serverFrame(true, OpPing, nil)...) // control frame inside a message
	stream = append(stream, serverFrame(false, OpContinuation, []byte("lo "))...)
	stream = append(stream, serverFrame(true, OpContinuation, []byte("world"))...)
	stream = append(stream, serverFrame(true, OpText, []byte("next"))...)

	fr := NewFrameReader(64)
	fr.Prime(stream[:5]) // e.g. bytes that came with the HTTP response
	r := bytes.NewReader(stream[5:])
	var got []msg
	need := 0
	for len(got) < 3 {
		op, p, n, ok, err := fr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, msg{op, string(p)})
			continue
		}
		need = n
		if _, err := fr.Fill(r, need); err != nil {
			t.Fatal(err)
		}
	}
	want := []msg{{OpPing, ""}, {OpText, "hello world"}, {OpText, "next"}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFrameReaderRejects(t *testing.T) {
	masked := []byte{0x81, 0x80 | 1, 1, 2, 3, 4, 'x'}
	if _, err := readAll(t, bytes.NewReader(masked), 64); !errors.Is(err, ErrMaskedServerFrame) {
		t.Errorf("masked frame: %v", err)
	}
	huge := []byte{0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0}
	if _, err := readAll(t, bytes.NewReader(huge), 64); err == nil {
		t.Error("4 GB frame accepted")
	}
	orphan := serverFrame(true, OpContinuation, []byte("x"))
	if _, err := readAll(t, bytes.NewReader(orphan), 64); err == nil {
		t.Error("continuation without start accepted")
	}
	truncated := serverFrame(true, OpText, []byte("abcdef"))[:5]
	if _, err := readAll(t, bytes.NewReader(truncated), 64); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v", err)
	}
}

func TestAppendClientFrameMasks(t *testing.T) {
	mask := [4]byte{0x11, 0x22, 0x33, 0x44}
	for _, n := range []int{0, 5, 125, 126, 300, 70000} {
		payload := bytes.Repeat([]byte("s"), n)
		f := AppendClientFrame(nil, OpText, mask, payload)
		if f[0] != 0x81 || f[1]&0x80 == 0 {
			t.Fatalf("n=%d: header %x: not final text or not masked", n, f[:2])
		}
		hl := 2
		l := int(f[1] & 0x7f)
		switch l {
		case 126:
			l, hl = int(binary.BigEndian.Uint16(f[2:])), 4
		case 127:
			l, hl = int(binary.BigEndian.Uint64(f[2:])), 10
		}
		if l != n {
			t.Fatalf("n=%d: encoded length %d", n, l)
		}
		if !bytes.Equal(f[hl:hl+4], mask[:]) {
			t.Fatalf("n=%d: mask key %x", n, f[hl:hl+4])
		}
		body := f[hl+4:]
		for i := range body {
			body[i] ^= mask[i&3]
		}
		if !bytes.Equal(body, payload) {
			t.Fatalf("n=%d: unmasked payload differs", n)
		}
	}
}

// A room message as the edge renders it (services/edge/internal/wire).
const sampleTelemetry = `{"type":"telemetry","room":"device:load-0001","payload":{"device_id":"load-0001",` +
	`"timestamp":"2026-01-02T03:04:05.123456789Z","fields":{"humidity":48.25,"temperature":21.5},` +
	`"tags":{"n":"17","sent_ns":"1767323045123456789"}},"timestamp":"2026-01-02T03:04:05.2Z"}`

func TestScanLoadTags(t *testing.T) {
	seq, sent, ok := ScanLoadTags([]byte(sampleTelemetry))
	if !ok || seq != 17 || sent != 1767323045123456789 {
		t.Fatalf("ScanLoadTags = %d, %d, %v", seq, sent, ok)
	}
	if _, _, ok := scanTagsBackward([]byte(sampleTelemetry)); !ok {
		t.Error("fast path missed the edge's layout")
	}
	// Another layout (extra tag, no trailing timestamp) takes the slow path.
	other := `{"type":"telemetry","payload":{"tags":{"a":"b","n":"5","sent_ns":"99","z":"1"}}}`
	if seq, sent, ok := ScanLoadTags([]byte(other)); !ok || seq != 5 || sent != 99 {
		t.Errorf("slow path = %d, %d, %v", seq, sent, ok)
	}
	if !IsTelemetry([]byte(sampleTelemetry)) || MessageType([]byte(sampleTelemetry)) != "telemetry" {
		t.Error("not recognised as telemetry")
	}
	for _, bad := range []string{
		`{"type":"telemetry","payload":{"tags":{}}}`,
		`{"type":"telemetry","payload":{"tags":{"n":"x","sent_ns":"1"}}}`,
		`{"type":"telemetry","payload":{"tags":{"n":"1","sent_ns":"12`,
		`{"type":"telemetry","payload":{"fields":{"n":"1"}}}`,
	} {
		if _, _, ok := ScanLoadTags([]byte(bad)); ok {
			t.Errorf("ScanLoadTags(%s) ok", bad)
		}
	}
	if MessageType([]byte(`{"type":"subscribed","payload":{}}`)) != "subscribed" || MessageType([]byte(`[]`)) != "" {
		t.Error("MessageType")
	}
}

func BenchmarkParseTelemetryFrames(b *testing.B) {
	frame := serverFrame(true, OpText, []byte(sampleTelemetry))
	stream := bytes.Repeat(frame, 16)
	fr := NewFrameReader(8192)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for i := 0; i < b.N; i += 16 {
		fr.r, fr.w = 0, 0
		fr.Prime(stream)
		for {
			_, p, _, ok, _ := fr.Next()
			if !ok {
				break
			}
			if _, _, ok := ScanLoadTags(p); !ok {
				b.Fatal("scan failed")
			}
		}
	}
}

func BenchmarkScanLoadTags(b *testing.B) {
	m := []byte(sampleTelemetry)
	for range b.N {
		if _, _, ok := ScanLoadTags(m); !ok {
			b.Fatal("scan failed")
		}
	}
}
