package announce_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/registry/internal/announce"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
	"github.com/sensorcast/sensorcast/services/registry/internal/memstore"
)

// startedLog tells when the announcer has read its starting point.
type startedLog struct {
	announce.ChangeLog
	once    sync.Once
	started chan struct{}
}

func (l *startedLog) LatestSeq(ctx context.Context) (int64, error) {
	seq, err := l.ChangeLog.LatestSeq(ctx)
	l.once.Do(func() { close(l.started) })
	return seq, err
}

func TestEveryChangeIsAnnouncedOnceInOrderWithoutSecrets(t *testing.T) {
	before := runtime.NumGoroutine()
	ns := natstest.Start(t)
	pubConn := natstest.Connect(t, ns)
	subConn := natstest.Connect(t, ns)
	sub, err := subConn.SubscribeSync(registryv1.ChangesSubject)
	if err != nil {
		t.Fatal(err)
	}
	if err := subConn.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx := t.Context()
	store := memstore.New(memstore.Options{})
	if _, err := store.CreateGroup(ctx, device.Group{ID: "before-start"}); err != nil {
		t.Fatal(err)
	}
	log := &startedLog{ChangeLog: store, started: make(chan struct{})}
	a := announce.New(log, pubConn, announce.Options{Interval: 20 * time.Millisecond})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	<-log.started

	hash, err := device.HashSecret("a device secret of some length")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateGroup(ctx, device.Group{ID: "g"}); err != nil {
		t.Fatal(err)
	}
	const devices = 1500 // more than one batch
	for i := range devices {
		d := device.Device{ID: fmt.Sprintf("d%04d", i), Groups: []string{"g"}, Enabled: true}
		if i == 0 {
			d.SecretHash = hash
		}
		if _, err := store.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	a.Notify()

	var seqs []int64
	for len(seqs) < devices+1 {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d announcements: %v", len(seqs), err)
		}
		if bytes.Contains(msg.Data, []byte("argon2id")) {
			t.Fatalf("an announcement carries a secret hash")
		}
		var c registryv1.Change
		if err := proto.Unmarshal(msg.Data, &c); err != nil {
			t.Fatal(err)
		}
		if len(seqs) == 0 && (c.GetId() != "g" || c.GetKind() != registryv1.ChangeKind_CHANGE_KIND_GROUP_CREATED) {
			t.Errorf("first announcement = %v, want the creation of g (not the change before start)", &c)
		}
		if c.GetId() == "d0000" && !c.GetDevice().GetHasSecret() {
			t.Errorf("d0000 announced without has_secret: %v", &c)
		}
		seqs = append(seqs, c.GetSequence())
	}
	for i, s := range seqs {
		if s != int64(i)+2 {
			t.Fatalf("announcement %d has sequence %d, want %d (in order, each once)", i, s, i+2)
		}
	}
	if msg, err := sub.NextMsg(300 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("an extra announcement: %v, %v", msg, err)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	pubConn.Close()
	subConn.Close()
	ns.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines leaked:\n%s", buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failingPublisher fails its first n publishes.
type failingPublisher struct {
	mu   sync.Mutex
	n    int
	got  []int64
	fail error
}

func (p *failingPublisher) Publish(_ string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n > 0 {
		p.n--
		return p.fail
	}
	var c registryv1.Change
	if err := proto.Unmarshal(data, &c); err != nil {
		return err
	}
	p.got = append(p.got, c.GetSequence())
	return nil
}

func TestAFailedPublishIsRetriedWithoutSkipping(t *testing.T) {
	store := memstore.New(memstore.Options{})
	pub := &failingPublisher{n: 3, fail: errors.New("nats: connection closed")}
	log := &startedLog{ChangeLog: store, started: make(chan struct{})}
	a := announce.New(log, pub, announce.Options{Interval: 10 * time.Millisecond})
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-log.started
	for _, id := range []string{"a", "b", "c"} {
		if _, err := store.CreateGroup(ctx, device.Group{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pub.mu.Lock()
		got := append([]int64(nil), pub.got...)
		pub.mu.Unlock()
		if len(got) == 3 {
			if got[0] != 1 || got[1] != 2 || got[2] != 3 {
				t.Fatalf("published %v, want [1 2 3]", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %v after 5s", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
}
