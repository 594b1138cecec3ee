package command

import (
	"sync"
	"time"

	"github.com/sensorcast/sensorcast/services/edge/internal/ratelimit"
)

// keyedLimiter bounds the commands per key (a device, whoever sends to
// it; a user, over all their connections) through this pod: a bucket per
// key, forgotten once full again.
type keyedLimiter struct {
	rate  float64
	burst int

	mu      sync.Mutex
	buckets map[string]*ratelimit.Bucket
}

// sweepAt is the number of buckets above which full ones are dropped.
const sweepAt = 10_000

func newKeyedLimiter(rate float64, burst int) *keyedLimiter {
	return &keyedLimiter{rate: rate, burst: burst, buckets: map[string]*ratelimit.Bucket{}}
}

func (l *keyedLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > sweepAt {
		for id, b := range l.buckets {
			if b.Full(now) {
				delete(l.buckets, id)
			}
		}
	}
	b, ok := l.buckets[key]
	if !ok {
		nb := ratelimit.New(l.rate, l.burst, now)
		b = &nb
		l.buckets[key] = b
	}
	return b.Allow(now)
}
