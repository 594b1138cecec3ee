package natspub_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sensorcast/sensorcast/services/ingest/internal/natspub"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
)

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// run starts p.Run until the test ends.
func run(t *testing.T, p *natspub.Publisher) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := p.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ctx
}

func TestPublishConfirmsAfterTheServerHasTheMessages(t *testing.T) {
	ns := natstest.Start(t)
	sub := connect(t, ns.ClientURL())
	got, err := sub.SubscribeSync("a.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	p := natspub.New(connect(t, ns.ClientURL()), natspub.Options{})
	ctx := run(t, p)

	confirmed := make(chan int, 10)
	for i := range 10 {
		msgs := []*nats.Msg{{Subject: "a.one", Data: []byte{byte(i)}}, {Subject: "a.two", Data: []byte{byte(i)}}}
		if err := p.Publish(ctx, msgs, func() { confirmed <- i }); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	for want := range 10 {
		select {
		case i := <-confirmed:
			if i != want {
				t.Fatalf("confirmed publish %d, want %d (in order)", i, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("publish %d not confirmed", want)
		}
	}
	for i := range 20 {
		m, err := got.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := []string{"a.one", "a.two"}[i%2]; m.Subject != want || m.Data[0] != byte(i/2) {
			t.Fatalf("message %d = %s %v, want %s [%d]", i, m.Subject, m.Data, want, i/2)
		}
	}
}

func TestPublishWaitsForNATSAndConfirmsAfterItReturns(t *testing.T) {
	ns := natstest.Start(t)
	port := ns.Addr().(*net.TCPAddr).Port
	nc := connect(t, ns.ClientURL())
	// A subscription on the publishing connection itself is restored on
	// reconnect before anything is published again, so it must see the
	// message once it is confirmed.
	got, err := nc.SubscribeSync("b.>")
	if err != nil {
		t.Fatal(err)
	}
	var errs atomic.Int64
	p := natspub.New(nc, natspub.Options{MaxBackoff: 50 * time.Millisecond, OnError: func(error) { errs.Add(1) }})
	ctx := run(t, p)

	ns.Shutdown()
	ns.WaitForShutdown()
	for nc.IsConnected() {
		time.Sleep(5 * time.Millisecond)
	}

	confirmed := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		published <- p.Publish(ctx, []*nats.Msg{{Subject: "b.one", Data: []byte("x")}}, func() { close(confirmed) })
	}()
	select {
	case err := <-published:
		t.Fatalf("Publish returned %v while NATS was down", err)
	case <-confirmed:
		t.Fatal("publish confirmed while NATS was down")
	case <-time.After(300 * time.Millisecond):
	}
	if errs.Load() == 0 {
		t.Error("no failed attempt was reported while NATS was down")
	}

	natstest.StartOnPort(t, port)
	select {
	case <-confirmed:
	case <-time.After(10 * time.Second):
		t.Fatal("publish not confirmed after NATS came back")
	}
	if err := <-published; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if m, err := got.NextMsg(5 * time.Second); err != nil || string(m.Data) != "x" {
		t.Fatalf("after the restart got %v, %v; want the message", m, err)
	}
}

func TestPublishGivesUpWhenTheContextEnds(t *testing.T) {
	ns := natstest.Start(t)
	nc := connect(t, ns.ClientURL())
	p := natspub.New(nc, natspub.Options{QueueSize: 1})
	ns.Shutdown()
	ns.WaitForShutdown()
	for nc.IsConnected() {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	called := false
	err := p.Publish(ctx, []*nats.Msg{{Subject: "c", Data: []byte("x")}}, func() { called = true })
	if err == nil || called {
		t.Fatalf("Publish = %v, confirmed %v; want the context's error and no confirmation", err, called)
	}
}
