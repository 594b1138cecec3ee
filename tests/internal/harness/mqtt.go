package harness

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// MQTTPublisher publishes device messages at QoS 1 over one MQTT 3.1.1
// connection, as a gateway in front of many devices would, at rates a
// mosquitto_pub process per message cannot reach. It speaks just enough
// of MQTT for that: CONNECT, PUBLISH at QoS 1 and their acknowledgements.
//
// Messages to one topic reach subscribers in the order they were
// published (MQTT's ordered-topic guarantee). Publish returns once the
// message is sent; Wait returns once the broker has acknowledged every
// message sent so far.
type MQTTPublisher struct {
	conn   net.Conn
	window chan struct{} // one token per message awaiting PUBACK

	writeMu sync.Mutex
	w       *bufio.Writer
	nextID  uint16

	mu       sync.Mutex
	inflight map[uint16]struct{}
	acked    chan struct{} // closed and replaced whenever a PUBACK arrives
	err      error         // why the connection failed; nil while it works
	sent     int64

	readerDone chan struct{}
	closeOnce  sync.Once
}

// mqttWindow bounds the messages awaiting acknowledgement, so a stalled
// broker stops the publisher instead of queueing without limit.
const mqttWindow = 256

// DialMQTT connects to the broker at addr (host:port) with clientID and a
// clean session. The connection is closed when t ends.
func DialMQTT(t testing.TB, addr, clientID string) *MQTTPublisher {
	t.Helper()
	p, err := dialMQTT(addr, clientID)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close mqtt publisher: %v", err)
		}
	})
	return p
}

func dialMQTT(addr, clientID string) (*MQTTPublisher, error) {
	conn, err := net.DialTimeout("tcp", addr, AwaitTimeout)
	if err != nil {
		return nil, fmt.Errorf("mqtt: dial %s: %w", addr, err)
	}
	p := &MQTTPublisher{
		conn:       conn,
		window:     make(chan struct{}, mqttWindow),
		w:          bufio.NewWriter(conn),
		inflight:   map[uint16]struct{}{},
		acked:      make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	// CONNECT: protocol "MQTT" level 4 (3.1.1), clean session, no keepalive
	// (the broker then never expects a PINGREQ).
	var vh []byte
	vh = appendMQTTString(vh, "MQTT")
	vh = append(vh, 4, 0x02, 0, 0)
	vh = appendMQTTString(vh, clientID)
	_ = conn.SetDeadline(time.Now().Add(AwaitTimeout))
	if err := p.writePacket(0x10, vh); err != nil {
		conn.Close()
		return nil, fmt.Errorf("mqtt: connect to %s: %w", addr, err)
	}
	r := bufio.NewReader(conn)
	typ, body, err := readMQTTPacket(r)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("mqtt: connect to %s: %w", addr, err)
	}
	if typ>>4 != 2 || len(body) != 2 || body[1] != 0 {
		conn.Close()
		return nil, fmt.Errorf("mqtt: connect to %s: refused (packet %#x %v)", addr, typ, body)
	}
	_ = conn.SetDeadline(time.Time{})
	go p.readAcks(r)
	return p, nil
}

func appendMQTTString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// writePacket writes one packet and flushes it; callers hold writeMu or
// own the connection alone.
func (p *MQTTPublisher) writePacket(header byte, body []byte) error {
	if err := p.w.WriteByte(header); err != nil {
		return err
	}
	// Remaining length: 7 bits per byte, least significant first.
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		if err := p.w.WriteByte(b); err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	if _, err := p.w.Write(body); err != nil {
		return err
	}
	return p.w.Flush()
}

func readMQTTPacket(r *bufio.Reader) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, shift := 0, 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return typ, body, nil
}

// readAcks reads PUBACKs until the connection ends.
func (p *MQTTPublisher) readAcks(r *bufio.Reader) {
	defer close(p.readerDone)
	for {
		typ, body, err := readMQTTPacket(r)
		if err == nil && (typ>>4 != 4 || len(body) != 2) {
			err = fmt.Errorf("unexpected packet %#x from the broker", typ)
		}
		p.mu.Lock()
		if err != nil {
			if p.err == nil {
				p.err = fmt.Errorf("mqtt: connection ended: %w", err)
			}
			close(p.acked)
			p.acked = make(chan struct{})
			p.mu.Unlock()
			return
		}
		id := binary.BigEndian.Uint16(body)
		if _, ok := p.inflight[id]; ok {
			delete(p.inflight, id)
			<-p.window
		}
		close(p.acked)
		p.acked = make(chan struct{})
		p.mu.Unlock()
	}
}

// Publish sends payload to topic at QoS 1. It blocks while mqttWindow
// messages await acknowledgement, and fails once the connection has.
func (p *MQTTPublisher) Publish(ctx context.Context, topic string, payload []byte) error {
	for {
		p.mu.Lock()
		err, acked := p.err, p.acked
		p.mu.Unlock()
		if err != nil {
			return err
		}
		select {
		case p.window <- struct{}{}:
		case <-acked: // the connection may have failed meanwhile
			continue
		case <-ctx.Done():
			return fmt.Errorf("mqtt: publish to %s: %w", topic, ctx.Err())
		}
		break
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	p.nextID++
	if p.nextID == 0 { // 0 is not a valid packet id
		p.nextID = 1
	}
	id := p.nextID
	p.mu.Lock()
	p.inflight[id] = struct{}{}
	p.sent++
	p.mu.Unlock()
	body := appendMQTTString(make([]byte, 0, 4+len(topic)+len(payload)), topic)
	body = binary.BigEndian.AppendUint16(body, id)
	body = append(body, payload...)
	_ = p.conn.SetWriteDeadline(time.Now().Add(AwaitTimeout))
	if err := p.writePacket(0x32, body); err != nil { // PUBLISH, QoS 1
		p.fail(fmt.Errorf("mqtt: publish to %s: %w", topic, err))
		return p.Err()
	}
	return nil
}

func (p *MQTTPublisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// Err is why the connection failed, or nil.
func (p *MQTTPublisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Sent is how many messages were sent.
func (p *MQTTPublisher) Sent() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// Wait waits until the broker has acknowledged every message sent so far.
func (p *MQTTPublisher) Wait(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		pending, err, acked := len(p.inflight), p.err, p.acked
		p.mu.Unlock()
		switch {
		case err != nil:
			return err
		case pending == 0:
			return nil
		}
		select {
		case <-acked:
		case <-timer.C:
			return fmt.Errorf("mqtt: %d messages still unacknowledged after %s", pending, timeout)
		}
	}
}

// Close disconnects and waits for the reader to end. It reports a
// connection that had failed before.
func (p *MQTTPublisher) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = p.Err()
		p.writeMu.Lock()
		_ = p.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = p.writePacket(0xe0, nil) // DISCONNECT
		p.writeMu.Unlock()
		_ = p.conn.Close()
		<-p.readerDone
	})
	return err
}
