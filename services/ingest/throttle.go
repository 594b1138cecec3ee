package ingest

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Rejected-message logging allows a burst, then a steady trickle: enough to
// see which devices misbehave, too little for a flood of bad messages (or a
// long NATS outage) to flood the logs. Metrics still count every one.
const (
	logBurst    = 20
	logInterval = time.Second / 5
)

// throttledLog writes warnings through a rate limiter and tells, in the next
// line it writes, how many it suppressed.
type throttledLog struct {
	logger     *slog.Logger
	limit      *rate.Limiter
	suppressed atomic.Int64
}

func newThrottledLog(logger *slog.Logger) *throttledLog {
	return &throttledLog{logger: logger, limit: rate.NewLimiter(rate.Every(logInterval), logBurst)}
}

func (t *throttledLog) warn(ctx context.Context, msg string, args ...any) {
	if !t.limit.Allow() {
		t.suppressed.Add(1)
		return
	}
	if n := t.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed_since_last", n)
	}
	t.logger.Log(ctx, slog.LevelWarn, msg, args...)
}
