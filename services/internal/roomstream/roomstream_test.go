package roomstream_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
)

func setup(t *testing.T, r roomstream.Retention) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := natstest.Connect(t, natstest.Start(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := roomstream.Ensure(ctx, nc, r); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func publish(t *testing.T, js jetstream.JetStream, room, kind, data string) uint64 {
	t.Helper()
	ack, err := js.Publish(context.Background(), envelopev1.RoomSubject(room, kind), []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func TestStoredMessagesAreRepublishedLiveWithTheirSequence(t *testing.T) {
	nc, js := setup(t, roomstream.DefaultRetention)
	sub, err := nc.SubscribeSync(envelopev1.LiveFilter("device:d1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	seq := publish(t, js, "device:d1", envelopev1.KindTelemetry, "x")
	publish(t, js, "device:d2", envelopev1.KindTelemetry, "other room")
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "sensorcast.live.device.d1.telemetry" || m.Header.Get(envelopev1.HeaderSequence) != strconv.FormatUint(seq, 10) {
		t.Fatalf("live message %s with sequence %q, want sensorcast.live.device.d1.telemetry with %d", m.Subject, m.Header.Get(envelopev1.HeaderSequence), seq)
	}
}

func TestReaderReplaysARoomInBatches(t *testing.T) {
	nc, js := setup(t, roomstream.DefaultRetention)
	r := roomstream.NewReader(nc)
	ctx := context.Background()

	var want []uint64
	for i := range 10 {
		want = append(want, publish(t, js, "group:g", envelopev1.KindTelemetry, fmt.Sprint(i)))
		publish(t, js, "global", envelopev1.KindTelemetry, "noise")
	}
	want = append(want, publish(t, js, "group:g", envelopev1.KindDeviceStatus, "s"))

	var got []uint64
	after := uint64(0)
	for {
		msgs, pending, err := r.After(ctx, envelopev1.RoomFilter("group:g"), after, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, m.Seq)
			after = m.Seq
		}
		if pending == 0 {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	msgs, pending, err := r.After(ctx, envelopev1.RoomFilter("group:g"), after, 4)
	if err != nil || len(msgs) != 0 || pending != 0 {
		t.Fatalf("after the last message: %d messages, %d pending, %v", len(msgs), pending, err)
	}
	last, err := r.RoomLastSeq(ctx, "group:g")
	if err != nil || last != want[len(want)-1] {
		t.Fatalf("RoomLastSeq = %d, %v; want %d", last, err, want[len(want)-1])
	}
	if last, err := r.RoomLastSeq(ctx, "device:none"); err != nil || last != 0 {
		t.Fatalf("RoomLastSeq of an empty room = %d, %v", last, err)
	}
	st, err := r.State(ctx)
	if err != nil || st.FirstSeq != 1 || st.LastSeq != 21 {
		t.Fatalf("State = %+v, %v; want 1..21", st, err)
	}
}

func TestReaderGetsAMessageBySequence(t *testing.T) {
	nc, js := setup(t, roomstream.Retention{MaxAge: time.Hour, MaxPerRoom: 2, MaxBytes: -1})
	r := roomstream.NewReader(nc)
	ctx := context.Background()
	first := publish(t, js, "device:d1", envelopev1.KindTelemetry, "1")
	publish(t, js, "device:d1", envelopev1.KindTelemetry, "2")
	third := publish(t, js, "device:d1", envelopev1.KindTelemetry, "3") // pushes out the first

	m, err := r.Get(ctx, third)
	if err != nil || string(m.Data) != "3" || m.Subject != envelopev1.RoomSubject("device:d1", envelopev1.KindTelemetry) {
		t.Fatalf("Get(%d) = %+v, %v", third, m, err)
	}
	if _, err := r.Get(ctx, first); !errors.Is(err, roomstream.ErrNotFound) {
		t.Fatalf("Get of a message past retention: %v, want ErrNotFound", err)
	}
	if _, err := r.Get(ctx, third+100); !errors.Is(err, roomstream.ErrNotFound) {
		t.Fatalf("Get of a future sequence: %v, want ErrNotFound", err)
	}
}

func TestReaderGetsTheLastMessageOfEachSubject(t *testing.T) {
	nc, js := setup(t, roomstream.DefaultRetention)
	r := roomstream.NewReader(nc)
	publish(t, js, "device:a", envelopev1.KindTelemetry, "a1")
	publish(t, js, "device:a", envelopev1.KindDeviceStatus, "a-online")
	publish(t, js, "device:a", envelopev1.KindTelemetry, "a2")
	publish(t, js, "device:b", envelopev1.KindTelemetry, "b1")
	last := publish(t, js, "device:c", envelopev1.KindTelemetry, "c1")

	msgs, err := r.MultiLast(context.Background(), []string{
		envelopev1.RoomSubject("device:a", envelopev1.KindTelemetry),
		envelopev1.RoomSubject("device:a", envelopev1.KindDeviceStatus),
		envelopev1.RoomSubject("device:b", envelopev1.KindTelemetry),
		envelopev1.RoomSubject("device:b", envelopev1.KindDeviceStatus),
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, string(m.Data))
	}
	if fmt.Sprint(got) != "[a-online a2 b1]" {
		t.Fatalf("MultiLast = %v, want [a-online a2 b1]", got)
	}
	// As of an earlier point in the stream.
	msgs, err = r.MultiLast(context.Background(), []string{envelopev1.RoomSubject("device:a", envelopev1.KindTelemetry)}, last-3)
	if err != nil || len(msgs) != 1 || string(msgs[0].Data) != "a1" {
		t.Fatalf("MultiLast up to %d = %v, %v; want a1", last-3, msgs, err)
	}
	msgs, err = r.MultiLast(context.Background(), []string{envelopev1.RoomSubject("device:none", envelopev1.KindTelemetry)}, 0)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("MultiLast of nothing = %v, %v", msgs, err)
	}
}

func TestEnsureUpdatesRetention(t *testing.T) {
	nc, js := setup(t, roomstream.DefaultRetention)
	ctx := context.Background()
	if err := roomstream.Ensure(ctx, nc, roomstream.Retention{MaxAge: time.Minute, MaxPerRoom: 5, MaxBytes: -1}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, envelopev1.RoomStream)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; cfg.MaxAge != time.Minute || cfg.MaxMsgsPerSubject != 5 {
		t.Fatalf("stream config after update: max age %s, per subject %d", cfg.MaxAge, cfg.MaxMsgsPerSubject)
	}
}

func TestEnsureRefusesAChangeJetStreamCannotMake(t *testing.T) {
	nc, _ := setup(t, roomstream.DefaultRetention)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	memory := roomstream.DefaultRetention
	memory.Memory = true
	err := roomstream.Ensure(ctx, nc, memory)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("changing the storage type: %v, want an immediate configuration error", err)
	}
}
