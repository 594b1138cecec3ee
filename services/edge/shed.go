package edge

import (
	"context"
	"time"

	"github.com/sensorcast/sensorcast/services/edge/internal/presence"
	"github.com/sensorcast/sensorcast/services/edge/internal/session"
)

// shedLoop acts on the operator's shed requests until ctx ends: when this pod
// holds far more connections than its siblings, the operator asks it to close
// some, with 1012, at a pace, so their clients reconnect (and resume) on the
// emptier pods behind the same Service.
func (s *Service) shedLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-s.tracker.Sheds():
			s.shed(ctx, req)
		}
	}
}

// shed closes up to req.Connections connections, one every 1/req.PerSecond.
// It stops early when ctx ends or the drain begins (the drain closes them all).
func (s *Service) shed(ctx context.Context, req presence.Shed) {
	s.mu.Lock()
	victims := make([]connection, 0, min(req.Connections, len(s.sessions)))
	for c := range s.sessions { // map order: a random choice
		if len(victims) == cap(victims) {
			break
		}
		victims = append(victims, c)
	}
	s.mu.Unlock()
	s.logger.Info("shedding connections at the operator's request",
		"requested", req.Connections, "closing", len(victims), "per_second", req.PerSecond)
	pace := time.NewTicker(max(time.Second/time.Duration(req.PerSecond), time.Millisecond))
	defer pace.Stop()
	for i, c := range victims {
		if s.draining.Load() {
			return
		}
		c.Close(session.CloseServiceRestart, "server rebalancing, reconnect", "shed")
		if i == len(victims)-1 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-pace.C:
		}
	}
}
