package harness

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// CheckGoroutines fails t if the test process holds more goroutines after
// t's cleanups than it did when CheckGoroutines was called. Call it first
// in a test, so that its check runs after every other cleanup.
func CheckGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		err := Poll(5*time.Second, func() error {
			if n := runtime.NumGoroutine(); n > before {
				return fmt.Errorf("%d goroutines remain, %d before the test", n, before)
			}
			return nil
		})
		if err != nil {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %v\n%s", err, buf)
		}
	})
}
