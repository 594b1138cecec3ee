package command

import (
	"sync"
	"time"
)

// deviceLimiter bounds the commands one device receives through this pod,
// whoever sends them: a token bucket per device, forgotten once full again.
type deviceLimiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// sweepAt is the number of buckets above which full ones are dropped.
const sweepAt = 10_000

func newDeviceLimiter(rate float64, burst int) *deviceLimiter {
	return &deviceLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

func (l *deviceLimiter) allow(deviceID string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > sweepAt {
		for id, b := range l.buckets {
			if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
				delete(l.buckets, id)
			}
		}
	}
	b, ok := l.buckets[deviceID]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[deviceID] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
