// Package edgeload reads the connection counts edge pods report to Redis and
// writes the shed requests they act on (key layout in proto/edgestats).
package edgeload

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sensorcast/sensorcast/proto/edgestats"
)

// NoReport is Report.Unknown for a pod that has no report at all (it never
// reported, or its lease expired).
const NoReport = "no report"

// Report is one pod's load as read from Redis.
type Report struct {
	Connections int64
	// Unknown is empty when Connections can be trusted, else why it cannot.
	Unknown string
}

// Known says whether the report can be trusted.
func (r Report) Known() bool { return r.Unknown == "" }

// Store talks to the Redis the edges report to.
type Store struct {
	client redis.UniversalClient
}

// NewStore uses client, which the caller owns and closes.
func NewStore(client redis.UniversalClient) *Store { return &Store{client: client} }

// Read returns a report for each of pods, in one round trip. A report older
// than maxAge at now, missing (the pod never reported, or its lease expired) or
// unreadable is unknown, never zero.
func (s *Store) Read(ctx context.Context, pods []string, maxAge time.Duration, now time.Time) (map[string]Report, error) {
	cmds := make([]*redis.SliceCmd, len(pods))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, pod := range pods {
			cmds[i] = p.HMGet(ctx, edgestats.PodKey(pod), edgestats.FieldConnections, edgestats.FieldUpdatedMs)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read edge load reports: %w", err)
	}
	reports := make(map[string]Report, len(pods))
	for i, pod := range pods {
		reports[pod] = parse(cmds[i].Val(), maxAge, now)
	}
	return reports, nil
}

func parse(vals []any, maxAge time.Duration, now time.Time) Report {
	if len(vals) != 2 || vals[0] == nil || vals[1] == nil {
		return Report{Unknown: NoReport}
	}
	conns, err1 := strconv.ParseInt(fmt.Sprint(vals[0]), 10, 64)
	updated, err2 := strconv.ParseInt(fmt.Sprint(vals[1]), 10, 64)
	if err1 != nil || err2 != nil || conns < 0 {
		return Report{Unknown: "unreadable report"}
	}
	age := now.Sub(time.UnixMilli(updated))
	if age > maxAge {
		return Report{Unknown: fmt.Sprintf("report is %s old", age.Round(time.Second))}
	}
	return Report{Connections: conns}
}

// RequestShed asks pod to close connections at perSecond. The pod takes the
// request on its next heartbeat; if it never does (it died), the request
// expires after ttl.
func (s *Store) RequestShed(ctx context.Context, pod string, connections int64, perSecond int32, ttl time.Duration) error {
	key := edgestats.ShedKey(pod)
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, edgestats.FieldShedConnections, connections, edgestats.FieldShedPerSecond, perSecond)
		p.PExpire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("request %s to shed %d connections: %w", pod, connections, err)
	}
	return nil
}
