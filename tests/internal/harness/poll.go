package harness

import (
	"testing"
	"time"
)

// Eventually calls check until it returns nil and fails t with check's last
// error if that does not happen within timeout. Tests wait with it instead
// of sleeping: it returns as soon as the condition holds.
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	if err := Poll(timeout, check); err != nil {
		t.Fatalf("still failing after %s: %v", timeout, err)
	}
}

// Poll calls check every few milliseconds (backing off to 100ms) until it
// returns nil or timeout has passed, and returns its last error.
func Poll(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	interval := 5 * time.Millisecond
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
		interval = min(interval*2, 100*time.Millisecond)
	}
}
