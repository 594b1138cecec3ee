//go:build unix

package harness

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestNATSRestartKeepsThePortAndTheStreams(t *testing.T) {
	CheckGoroutines(t)
	n := StartNATS(t)
	url := n.ClientURL()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s.a", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	before := n.Server()
	n.Restart(t)
	if n.Server() == before || n.ClientURL() != url {
		t.Fatalf("restart: server %p -> %p, url %s -> %s", before, n.Server(), url, n.ClientURL())
	}
	var msg *jetstream.RawStreamMsg
	Eventually(t, 10*time.Second, func() error {
		s, err := js.Stream(ctx, "S")
		if err != nil {
			return err
		}
		msg, err = s.GetMsg(ctx, 1)
		return err
	})
	if string(msg.Data) != "kept" {
		t.Errorf("message 1 after the restart is %q", msg.Data)
	}
}
