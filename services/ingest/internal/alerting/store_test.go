package alerting

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
)

// Two replicas, each with its own connection, receive one device's
// readings interleaved and at the same moments: the rule fires exactly
// once and resolves exactly once between them.
func TestReplicasSharingTheStoreFireOnce(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	stores := make([]*Store, 2)
	for i := range stores {
		js, err := jetstream.New(natstest.Connect(t, ns))
		if err != nil {
			t.Fatal(err)
		}
		if stores[i], err = OpenStore(ctx, js, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	rule := Rule{Operator: registryv1.Operator_OPERATOR_GT, Threshold: 40, Hold: 2 * time.Second}
	key := Key("rule-1", "device:with:colons")
	var ids atomic.Int64
	newID := func() string { return fmt.Sprintf("a%d", ids.Add(1)) }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	var fired, resolved atomic.Int64
	var wg sync.WaitGroup
	for r, store := range stores {
		wg.Go(func() {
			// Both replicas see every second's reading (as if delivered
			// twice), and alternate which one is first.
			for sec := range 20 {
				value := 41.0
				if sec >= 15 {
					value = 39
				}
				if sec%2 == r {
					time.Sleep(time.Millisecond)
				}
				_, tr, err := store.Apply(ctx, key, func(s State) (State, Transition) {
					return Step(rule, s, value, t0.Add(time.Duration(sec)*time.Second), newID)
				})
				if err != nil {
					t.Error(err)
					return
				}
				switch tr {
				case Fired:
					fired.Add(1)
				case Resolved:
					resolved.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if fired.Load() != 1 || resolved.Load() != 1 {
		t.Fatalf("fired %d and resolved %d times, want once each", fired.Load(), resolved.Load())
	}
}
