package ratelimit

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := New(2, 3, t0)
	for i := range 3 {
		if !b.Allow(t0) {
			t.Fatalf("burst event %d refused", i)
		}
	}
	if b.Allow(t0) || b.Full(t0) {
		t.Fatal("an empty bucket allowed an event or claims to be full")
	}
	if !b.Allow(t0.Add(500*time.Millisecond)) || b.Allow(t0.Add(500*time.Millisecond)) {
		t.Fatal("half a second at 2/s must allow exactly one event")
	}
	if !b.Full(t0.Add(10 * time.Second)) {
		t.Fatal("a bucket left alone must refill, and no further than its burst")
	}
}
