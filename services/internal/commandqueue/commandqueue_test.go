package commandqueue_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
	"github.com/sensorcast/sensorcast/services/internal/commandqueue"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
)

func hold(t *testing.T, js jetstream.JetStream, nc *nats.Conn, device, id string, issued time.Time, ttl time.Duration) {
	t.Helper()
	c := &commandv1.Command{CommandId: id, DeviceId: device, Name: "blink", IssuedAt: timestamppb.New(issued), TtlMs: time.Minute.Milliseconds()}
	data, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := commandqueue.Hold(t.Context(), js, nc, c, data, ttl); err != nil {
		t.Fatal(err)
	}
}

func take(t *testing.T, js jetstream.JetStream, device string, accept int) []string {
	t.Helper()
	var got []string
	err := commandqueue.Take(t.Context(), js, device, time.Now, func(c *commandv1.Command, _ []byte) bool {
		if len(got) == accept {
			return false
		}
		got = append(got, c.GetCommandId())
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestHeldCommandsAreTakenOnceInOrderUntilTheyExpire(t *testing.T) {
	ns := natstest.Start(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := commandqueue.Ensure(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	if err := commandqueue.Ensure(t.Context(), js); err != nil {
		t.Fatalf("ensure again: %v", err)
	}
	notified, err := nc.SubscribeSync(commandqueue.NotifySubject("d1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	hold(t, js, nc, "d1", "e-1", now, time.Minute)
	hold(t, js, nc, "d2", "e-2", now, time.Minute)
	hold(t, js, nc, "d1", "e-3", now.Add(-time.Hour), time.Minute) // its own TTL is over
	hold(t, js, nc, "d1", "e-4", now, time.Minute)
	hold(t, js, nc, "d1", "e-4", now, time.Minute) // a retried hold: stored once
	hold(t, js, nc, "d1", "e-5", now, time.Minute)
	if _, err := notified.NextMsg(time.Second); err != nil {
		t.Errorf("holding a command did not notify: %v", err)
	}

	// The device goes away after two: the rest stay for next time.
	if got := take(t, js, "d1", 2); len(got) != 2 || got[0] != "e-1" || got[1] != "e-4" {
		t.Fatalf("first take: %v, want e-1 e-4", got)
	}
	if got := take(t, js, "d1", 10); len(got) != 1 || got[0] != "e-5" {
		t.Fatalf("second take: %v, want e-5", got)
	}
	if got := take(t, js, "d1", 10); len(got) != 0 {
		t.Fatalf("third take: %v, want nothing", got)
	}
	if got := take(t, js, "d2", 10); len(got) != 1 {
		t.Fatalf("d2: %v", got)
	}

	// JetStream drops a command when its hold ends.
	hold(t, js, nc, "d3", "e-6", now, time.Second)
	time.Sleep(2500 * time.Millisecond)
	if got := take(t, js, "d3", 10); len(got) != 0 {
		t.Fatalf("after its TTL: %v, want nothing", got)
	}
}
