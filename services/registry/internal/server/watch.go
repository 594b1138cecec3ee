package server

import (
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/registry/internal/convert"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// Bounds of one WatchChanges stream's memory: it holds at most one batch
// read from the store and one response being built.
const (
	// watchBatch is how many changes a stream reads from the store at once.
	watchBatch = 1000
	// maxWatchResponseBytes caps one response: a batch of large device
	// snapshots is split over several responses, well under a client's
	// default 4 MiB receive limit.
	maxWatchResponseBytes = 1 << 20
)

// WatchChanges streams the change log from req.ResumeAfter. The change log
// in the store is the source of truth, so every replica on the same
// database streams the same changes: a stream polls it every PollInterval
// once caught up, and wakes sooner on writes through this replica and on
// Notify (the registry calls it when another replica announces a change).
//
// The first response goes out at once: the first batch to replay, or no
// changes and the current sequence. A stream ends when the client cancels
// or the server closes.
func (s *Server) WatchChanges(req *registryv1.WatchChangesRequest, stream registryv1.DeviceRegistry_WatchChangesServer) error {
	ctx := stream.Context()
	if req.GetResumeAfter() < 0 {
		return invalidField("resume_after", "must not be negative")
	}
	kinds := make(map[device.ChangeKind]bool)
	for i, k := range req.GetKinds() {
		d, ok := convert.ChangeKindFromProto(k)
		if !ok {
			return invalidField(fmt.Sprintf("kinds[%d]", i), fmt.Sprintf("must be a kind of change, got %s", k))
		}
		kinds[d] = true
	}
	if s.metrics != nil {
		s.metrics.watchStreams.Inc()
		defer s.metrics.watchStreams.Dec()
	}

	after := req.GetResumeAfter()
	if after == 0 {
		latest, err := s.store.LatestSeq(ctx)
		if err != nil {
			return s.toStatus(ctx, err, asIs)
		}
		after = latest
	}
	first := true
	timer := time.NewTimer(s.poll)
	defer timer.Stop()
	for {
		wake := s.woken() // before reading, so a write after the read still wakes us
		changes, err := s.store.Changes(ctx, after, watchBatch)
		if err != nil {
			return s.toStatus(ctx, err, asIs)
		}
		if first || len(changes) > 0 {
			if err := s.sendChanges(stream, changes, kinds, after, first); err != nil {
				return err
			}
			first = false
			if len(changes) > 0 {
				after = changes[len(changes)-1].Seq
			}
		}
		if len(changes) == watchBatch {
			continue // replaying: read on without waiting
		}
		timer.Reset(s.poll)
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.done:
			return status.Error(codes.Unavailable, "the registry is shutting down; resume on another replica")
		case <-wake:
		case <-timer.C:
		}
	}
}

// sendChanges sends the changes of the wanted kinds (all if kinds is
// empty), split into responses of at most maxWatchResponseBytes. Each
// response's sequence is its last change's, and the final one's is the
// batch's last, so a client resumes past changes filtered out. When every
// change is filtered out, one empty response moves the client's sequence
// on; always is for the first response of a stream.
func (s *Server) sendChanges(stream registryv1.DeviceRegistry_WatchChangesServer, changes []device.Change, kinds map[device.ChangeKind]bool, after int64, always bool) error {
	seq := after
	if len(changes) > 0 {
		seq = changes[len(changes)-1].Seq
	}
	resp := &registryv1.WatchChangesResponse{}
	size := 0
	for i := range changes {
		c := &changes[i]
		if len(kinds) > 0 && !kinds[c.Kind] {
			continue
		}
		pc := convert.Change(c)
		n := proto.Size(pc)
		if size > 0 && size+n > maxWatchResponseBytes {
			resp.Sequence = resp.Changes[len(resp.Changes)-1].GetSequence()
			if err := stream.Send(resp); err != nil {
				return err
			}
			resp, size = &registryv1.WatchChangesResponse{}, 0
		}
		resp.Changes = append(resp.Changes, pc)
		size += n
	}
	resp.Sequence = seq
	if len(resp.Changes) == 0 && !always && len(changes) == 0 {
		return nil
	}
	return stream.Send(resp)
}
