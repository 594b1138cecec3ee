package memstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
	"github.com/sensorcast/sensorcast/services/registry/internal/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) device.Store { return New(Options{}) })
}

func TestChangeLogRetention(t *testing.T) {
	s := New(Options{ChangeLogCapacity: 10})
	ctx := t.Context()
	for i := range 100 {
		if _, err := s.CreateDevice(ctx, device.Device{ID: fmt.Sprintf("d%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("the latest changes are kept", func(t *testing.T) {
		changes, err := s.Changes(ctx, 90, 0)
		if err != nil || len(changes) != 10 || changes[0].Seq != 91 || changes[9].Seq != 100 {
			t.Fatalf("Changes(90) = %d changes, %v", len(changes), err)
		}
	})
	t.Run("reading from before the kept changes is ErrChangesExpired", func(t *testing.T) {
		for _, after := range []int64{0, 50, 85} {
			if _, err := s.Changes(ctx, after, 0); !errors.Is(err, device.ErrChangesExpired) {
				t.Errorf("Changes(%d) = %v, want ErrChangesExpired", after, err)
			}
		}
	})
	t.Run("at most an eighth more than the capacity is kept", func(t *testing.T) {
		if len(s.log) < 10 || len(s.log) > 11 {
			t.Fatalf("%d changes kept, want 10 or 11", len(s.log))
		}
	})
	t.Run("the latest seq still counts every change", func(t *testing.T) {
		if seq, _ := s.LatestSeq(ctx); seq != 100 {
			t.Fatalf("LatestSeq = %d, want 100", seq)
		}
	})
}

func TestCommitTimesNeverGoBack(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return now }})
	ctx := t.Context()
	a, _ := s.CreateDevice(ctx, device.Device{ID: "a"})
	now = now.Add(-time.Hour) // the wall clock steps back
	b, _ := s.CreateDevice(ctx, device.Device{ID: "b"})
	if b.CreatedAt.Before(a.CreatedAt) {
		t.Fatalf("b created at %v, before a at %v", b.CreatedAt, a.CreatedAt)
	}
}

func TestCancelledContext(t *testing.T) {
	s := New(Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.CreateDevice(ctx, device.Device{ID: "a"}); err == nil {
		t.Fatal("CreateDevice with a cancelled context succeeded")
	}
	if seq, _ := s.LatestSeq(t.Context()); seq != 0 {
		t.Fatalf("LatestSeq = %d, want 0", seq)
	}
}
