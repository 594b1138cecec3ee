package command

import (
	"sync"
	"time"

	"github.com/sensorcast/sensorcast/services/edge/internal/ratelimit"
)

// deviceLimiter bounds the commands one device receives through this pod,
// whoever sends them: a bucket per device, forgotten once full again.
type deviceLimiter struct {
	rate  float64
	burst int

	mu      sync.Mutex
	buckets map[string]*ratelimit.Bucket
}

// sweepAt is the number of buckets above which full ones are dropped.
const sweepAt = 10_000

func newDeviceLimiter(rate float64, burst int) *deviceLimiter {
	return &deviceLimiter{rate: rate, burst: burst, buckets: map[string]*ratelimit.Bucket{}}
}

func (l *deviceLimiter) allow(deviceID string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > sweepAt {
		for id, b := range l.buckets {
			if b.Full(now) {
				delete(l.buckets, id)
			}
		}
	}
	b, ok := l.buckets[deviceID]
	if !ok {
		nb := ratelimit.New(l.rate, l.burst, now)
		b = &nb
		l.buckets[deviceID] = b
	}
	return b.Allow(now)
}
