package natspub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/ingest/internal/natspub"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
)

var (
	subjectA = envelopev1.RoomSubject("device:a", envelopev1.KindTelemetry)
	subjectB = envelopev1.RoomSubject("global", envelopev1.KindTelemetry)
)

// connect opens a publishing connection the way ingest's should be opened:
// reconnecting quickly, and never buffering publishes while disconnected.
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// ensureStream creates the room stream on the server at url.
func ensureStream(t testing.TB, url string, r roomstream.Retention) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := roomstream.Ensure(ctx, connect(t, url), r); err != nil {
		t.Fatal(err)
	}
}

// run starts p.Run until the test ends.
func run(t testing.TB, p *natspub.Publisher) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := p.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ctx
}

// msg is a message with the de-duplication id JetStream needs to store a
// retried publish once.
func msg(subject, id string) *nats.Msg {
	return &nats.Msg{Subject: subject, Header: nats.Header{envelopev1.HeaderMsgID: {id}}, Data: []byte(id)}
}

// stored returns the data of every message in the room stream, in order.
func stored(t *testing.T, nc *nats.Conn) []string {
	t.Helper()
	r := roomstream.NewReader(nc)
	var out []string
	for after := uint64(0); ; {
		msgs, pending, err := r.After(context.Background(), envelopev1.RoomSubjectWildcard, after, 1000)
		if err != nil && !errors.Is(err, roomstream.ErrNotFound) {
			t.Fatalf("read the stream: %v", err)
		}
		for _, m := range msgs {
			out = append(out, string(m.Data))
			after = m.Seq
		}
		if len(msgs) == 0 || pending == 0 {
			return out
		}
	}
}

func wantStored(t *testing.T, nc *nats.Conn, want ...string) {
	t.Helper()
	if got := stored(t, nc); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stream holds %q, want %q", got, want)
	}
}

func waitConfirmed(t *testing.T, confirmed <-chan int, want int) {
	t.Helper()
	select {
	case i := <-confirmed:
		if i != want {
			t.Fatalf("confirmed publish %d, want %d (in order)", i, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("publish %d not confirmed", want)
	}
}

func TestPublishConfirmsInOrderOnceJetStreamHasStoredTheMessages(t *testing.T) {
	ns := natstest.Start(t)
	ensureStream(t, ns.ClientURL(), roomstream.DefaultRetention)
	reader := connect(t, ns.ClientURL())
	p := natspub.New(connect(t, ns.ClientURL()), natspub.Options{})
	ctx := run(t, p)

	confirmed := make(chan int, 10)
	var want []string
	for i := range 10 {
		msgs := []*nats.Msg{msg(subjectA, fmt.Sprintf("a%d", i)), msg(subjectB, fmt.Sprintf("b%d", i))}
		want = append(want, fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i))
		if err := p.Publish(ctx, msgs, func() { confirmed <- i }); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	for i := range 10 {
		waitConfirmed(t, confirmed, i)
		if n := len(stored(t, reader)); n < 2*(i+1) {
			t.Fatalf("publish %d confirmed with %d messages stored, want at least %d", i, n, 2*(i+1))
		}
	}
	wantStored(t, reader, want...)
}

func TestPublishWaitsForNATSAndConfirmsAfterItReturns(t *testing.T) {
	storeDir := t.TempDir()
	ns := natstest.StartOnPort(t, -1, storeDir)
	port := ns.Addr().(*net.TCPAddr).Port
	ensureStream(t, ns.ClientURL(), roomstream.DefaultRetention)
	nc := connect(t, ns.ClientURL())
	var errs atomic.Int64
	p := natspub.New(nc, natspub.Options{MaxBackoff: 50 * time.Millisecond, OnError: func(error) { errs.Add(1) }})
	ctx := run(t, p)

	confirmed := make(chan int, 2)
	if err := p.Publish(ctx, []*nats.Msg{msg(subjectA, "before")}, func() { confirmed <- 0 }); err != nil {
		t.Fatal(err)
	}
	waitConfirmed(t, confirmed, 0)

	ns.Shutdown()
	ns.WaitForShutdown()
	for nc.IsConnected() {
		time.Sleep(5 * time.Millisecond)
	}
	published := make(chan error, 1)
	go func() {
		published <- p.Publish(ctx, []*nats.Msg{msg(subjectA, "during"), msg(subjectB, "during-b")}, func() { confirmed <- 1 })
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

	// The same store directory: the stream survives the restart.
	natstest.StartOnPort(t, port, storeDir)
	waitConfirmed(t, confirmed, 1)
	if err := <-published; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	wantStored(t, connect(t, ns.ClientURL()), "before", "during", "during-b")
}

// TestOrderSurvivesANATSRestartMidStream restarts NATS while a steady
// stream of publishes is in flight: the stream must end up with every
// message once, in Publish order, whichever of them the first server had
// stored.
func TestOrderSurvivesANATSRestartMidStream(t *testing.T) {
	storeDir := t.TempDir()
	ns := natstest.StartOnPort(t, -1, storeDir)
	port := ns.Addr().(*net.TCPAddr).Port
	ensureStream(t, ns.ClientURL(), roomstream.DefaultRetention)
	var reported atomic.Int64
	p := natspub.New(connect(t, ns.ClientURL()), natspub.Options{
		MaxBackoff: 50 * time.Millisecond, OnError: func(error) { reported.Add(1) },
	})
	ctx := run(t, p)

	var confirmed atomic.Int64
	var outOfOrder atomic.Bool
	stop := make(chan struct{})
	published := make(chan int, 1)
	go func() {
		n := 0
		defer func() { published <- n }()
		for ; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			i := int64(n)
			err := p.Publish(ctx, []*nats.Msg{msg(subjectA, fmt.Sprint(n))}, func() {
				if !confirmed.CompareAndSwap(i, i+1) {
					outOfOrder.Store(true)
				}
			})
			if err != nil {
				t.Errorf("Publish %d: %v", n, err)
				return
			}
		}
	}()
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitUntil("20 confirmations", func() bool { return confirmed.Load() >= 20 })
	ns.Shutdown()
	ns.WaitForShutdown()
	time.Sleep(100 * time.Millisecond)
	atRestart := confirmed.Load()
	natstest.StartOnPort(t, port, storeDir)
	waitUntil("20 more confirmations", func() bool { return confirmed.Load() >= atRestart+20 })
	close(stop)
	n := <-published
	waitUntil("every publish confirmed", func() bool { return confirmed.Load() == int64(n) })
	if outOfOrder.Load() {
		t.Error("publishes were confirmed out of order")
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	wantStored(t, connect(t, ns.ClientURL()), want...)
	t.Logf("%d publishes, %d failed attempts reported", n, reported.Load())
}

// TestAPublishWhoseAcknowledgementIsLostIsStoredOnce loses JetStream's
// acknowledgements on the way back to the publisher, after the server has
// stored the messages, and checks that writing them again stores nothing
// twice and keeps the order.
func TestAPublishWhoseAcknowledgementIsLostIsStoredOnce(t *testing.T) {
	for _, tt := range []struct {
		name string
		// lose makes the held acknowledgements late or lost.
		lose func(*proxy)
	}{
		{"the connection is lost", (*proxy).cut},
		{"the acknowledgements come too late", func(px *proxy) {
			time.Sleep(300 * time.Millisecond) // past AckTimeout: the publisher writes again
			px.release()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t)
			ensureStream(t, ns.ClientURL(), roomstream.DefaultRetention)
			reader := connect(t, ns.ClientURL())
			px := startProxy(t, ns.Addr().String())
			var mu sync.Mutex
			var reported []error
			p := natspub.New(connect(t, "nats://"+px.addr()), natspub.Options{
				AckTimeout: 100 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
				OnError: func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() },
			})
			ctx := run(t, p)

			px.hold()
			confirmed := make(chan int, 3)
			for i := range 3 {
				if err := p.Publish(ctx, []*nats.Msg{msg(subjectA, fmt.Sprintf("m%d", i))}, func() { confirmed <- i }); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(stored(t, reader)) < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("the server stored %q, want all three", stored(t, reader))
				}
				time.Sleep(10 * time.Millisecond)
			}
			tt.lose(px)
			for i := range 3 {
				waitConfirmed(t, confirmed, i)
			}
			wantStored(t, reader, "m0", "m1", "m2")
			mu.Lock()
			defer mu.Unlock()
			if len(reported) == 0 {
				t.Error("the retry was not reported")
			}
		})
	}
}

func TestPublishBlocksWhileNoStreamStoresTheSubject(t *testing.T) {
	ns := natstest.Start(t)
	reported := make(chan error, 100)
	p := natspub.New(connect(t, ns.ClientURL()), natspub.Options{
		QueueSize: 1, MaxBackoff: 50 * time.Millisecond,
		OnError: func(err error) {
			select {
			case reported <- err:
			default:
			}
		},
	})
	ctx := run(t, p)

	confirmed := make(chan int, 2)
	if err := p.Publish(ctx, []*nats.Msg{msg(subjectA, "first")}, func() { confirmed <- 0 }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reported:
		if !errors.Is(err, natspub.ErrNoStream) {
			t.Fatalf("reported %v, want ErrNoStream", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported without a stream")
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := p.Publish(short, []*nats.Msg{msg(subjectA, "second")}, func() { confirmed <- 1 }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish while JetStream refuses = %v, want to block until its context ends", err)
	}

	ensureStream(t, ns.ClientURL(), roomstream.DefaultRetention)
	waitConfirmed(t, confirmed, 0)
	if err := p.Publish(ctx, []*nats.Msg{msg(subjectA, "third")}, func() { confirmed <- 2 }); err != nil {
		t.Fatal(err)
	}
	waitConfirmed(t, confirmed, 2)
	wantStored(t, connect(t, ns.ClientURL()), "first", "third")
}

func TestPublishGivesUpWhenTheContextEnds(t *testing.T) {
	ns := natstest.Start(t)
	nc := connect(t, ns.ClientURL())
	p := natspub.New(nc, natspub.Options{QueueSize: 1})
	run(t, p)
	ns.Shutdown()
	ns.WaitForShutdown()
	for nc.IsConnected() {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	var called atomic.Bool
	err := p.Publish(ctx, []*nats.Msg{msg(subjectA, "x")}, func() { called.Store(true) })
	if err == nil || called.Load() {
		t.Fatalf("Publish = %v, confirmed %v; want the context's error and no confirmation", err, called.Load())
	}
}

// BenchmarkPublish measures confirmed messages per second against an
// embedded server storing to files, with ingest's shape of publish: one
// device reading to its device room, a group room and global.
func BenchmarkPublish(b *testing.B) {
	for _, memory := range []bool{false, true} {
		b.Run(map[bool]string{false: "file", true: "memory"}[memory], func(b *testing.B) {
			ns := natstest.Start(b)
			r := roomstream.DefaultRetention
			r.Memory = memory
			ensureStream(b, ns.ClientURL(), r)
			p := natspub.New(connect(b, ns.ClientURL()), natspub.Options{})
			ctx := run(b, p)
			subjects := []string{
				envelopev1.RoomSubject("device:d1", envelopev1.KindTelemetry),
				envelopev1.RoomSubject("group:g1", envelopev1.KindTelemetry),
				envelopev1.RoomSubject("global", envelopev1.KindTelemetry),
			}
			data := make([]byte, 200)
			var done sync.WaitGroup
			b.ResetTimer()
			for i := range b.N {
				msgs := make([]*nats.Msg, len(subjects))
				for j, s := range subjects {
					msgs[j] = &nats.Msg{Subject: s, Header: nats.Header{envelopev1.HeaderMsgID: {fmt.Sprintf("%d:%d", i, j)}}, Data: data}
				}
				done.Add(1)
				if err := p.Publish(ctx, msgs, done.Done); err != nil {
					b.Fatal(err)
				}
			}
			done.Wait()
			b.ReportMetric(float64(b.N*len(subjects))/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// proxy forwards TCP connections to a NATS server and can hold back what
// the server sends (the acknowledgements) or cut every connection.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	held  bool
	cond  *sync.Cond
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{ln: ln, target: target}
	px.cond = sync.NewCond(&px.mu)
	var wg sync.WaitGroup
	wg.Go(px.serve)
	t.Cleanup(func() {
		ln.Close()
		px.cut()
		wg.Wait()
	})
	return px
}

func (px *proxy) addr() string { return px.ln.Addr().String() }

func (px *proxy) serve() {
	for {
		client, err := px.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", px.target)
		if err != nil {
			client.Close()
			continue
		}
		px.mu.Lock()
		px.conns = append(px.conns, client, server)
		px.mu.Unlock()
		go func() {
			_, _ = io.Copy(server, client)
			server.Close()
		}()
		go px.copyBack(client, server)
	}
}

// copyBack forwards what the server sends, waiting while it is held.
func (px *proxy) copyBack(client, server net.Conn) {
	defer client.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			px.mu.Lock()
			for px.held {
				px.cond.Wait()
			}
			px.mu.Unlock()
			if _, err := client.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (px *proxy) hold() {
	px.mu.Lock()
	px.held = true
	px.mu.Unlock()
}

// release delivers what was held, late.
func (px *proxy) release() {
	px.mu.Lock()
	px.held = false
	px.cond.Broadcast()
	px.mu.Unlock()
}

// cut closes every connection, losing what was held, and lets new ones through.
func (px *proxy) cut() {
	px.mu.Lock()
	for _, c := range px.conns {
		c.Close()
	}
	px.conns = nil
	px.mu.Unlock()
	px.release()
}
