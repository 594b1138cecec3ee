package load

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

// publisher sends telemetry envelopes to room subjects, round-robin over
// the rooms, at a fixed total rate. Each carries its send time and its
// room's sequence number as tags, which the clients read back. It publishes
// with core NATS, not waiting for JetStream's acknowledgements as ingest
// does, so that one core can offer the highest rates: the room stream still
// stores every message and republishes it to the edges.
type publisher struct {
	nc       *nats.Conn
	rooms    []string
	subjects []string
	seq      []uint64   // last sequence number sent, per room
	inWindow [][]uint64 // per step, per room: messages sent in the measurement window
	next     int        // next room

	env   envelopev1.Envelope
	tel   envelopev1.Telemetry
	ts    timestamppb.Timestamp
	tags  map[string]string
	buf   []byte
	mopts proto.MarshalOptions
	sent  uint64
}

func newPublisher(nc *nats.Conn, rooms []string, steps int) *publisher {
	p := &publisher{
		nc:       nc,
		rooms:    rooms,
		subjects: make([]string, len(rooms)),
		seq:      make([]uint64, len(rooms)),
		inWindow: make([][]uint64, steps),
		tags:     map[string]string{},
		buf:      make([]byte, 0, 512),
	}
	for i, r := range rooms {
		p.subjects[i] = envelopev1.RoomSubject(r, envelopev1.KindTelemetry)
	}
	for i := range p.inWindow {
		p.inWindow[i] = make([]uint64, len(rooms))
	}
	p.tel.Tags = p.tags
	p.tel.Timestamp = &p.ts
	p.tel.Fields = map[string]*envelopev1.FieldValue{
		"temperature": {Kind: &envelopev1.FieldValue_Number{Number: 21.5}},
		"humidity":    {Kind: &envelopev1.FieldValue_Number{Number: 48.25}},
	}
	p.env.IngestedAt = &p.ts
	p.env.Body = &envelopev1.Envelope_Telemetry{Telemetry: &p.tel}
	return p
}

// publishOne sends the next room's next message and counts it in step when
// its send time falls in w's measurement window.
func (p *publisher) publishOne(step int, w *stepWindow) error {
	i := p.next
	p.next++
	if p.next == len(p.rooms) {
		p.next = 0
	}
	p.seq[i]++
	now := time.Now()
	ns := now.UnixNano()
	p.ts.Seconds, p.ts.Nanos = ns/1e9, int32(ns%1e9)
	p.tel.DeviceId = p.rooms[i][len("device:"):]
	p.tags["n"] = itoa(int64(p.seq[i]))
	p.tags["sent_ns"] = itoa(ns)
	p.env.Id = p.tel.DeviceId + "-" + p.tags["n"]
	var err error
	p.buf, err = p.mopts.MarshalAppend(p.buf[:0], &p.env)
	if err != nil {
		return fmt.Errorf("marshal envelope: %w", err)
	}
	if err := p.nc.Publish(p.subjects[i], p.buf); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	p.sent++
	if ns >= w.From && ns < w.To {
		p.inWindow[step][i]++
	}
	return nil
}

// runStep publishes at rate messages/s from start until end: every tick it
// sends whatever the elapsed time calls for, so the average rate is exact
// even when the generator's core is busy and ticks come late.
func (p *publisher) runStep(ctx context.Context, step int, w stepWindow) error {
	start := time.Unix(0, w.WarmFrom)
	end := time.Unix(0, w.To)
	if d := time.Until(start); d > 0 {
		time.Sleep(d)
	}
	tick := time.Duration(float64(time.Second) / w.Rate)
	tick = min(max(tick, 500*time.Microsecond), 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var sent uint64
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		due := uint64(now.Sub(start).Seconds() * w.Rate)
		for ; sent < due; sent++ {
			if err := p.publishOne(step, &w); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return p.nc.Flush()
}
