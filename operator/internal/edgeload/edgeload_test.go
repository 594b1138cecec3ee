package edgeload

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/operator/internal/redistest"
	"github.com/sensorcast/sensorcast/proto/edgestats"
)

func TestReadTellsFreshReportsFromUnknownOnes(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t, redistest.Start(t))
	now := time.Now()
	report := func(pod string, conns string, at time.Time) {
		if err := rdb.HSet(ctx, edgestats.PodKey(pod), edgestats.FieldConnections, conns, edgestats.FieldRooms, 3,
			edgestats.FieldUpdatedMs, strconv.FormatInt(at.UnixMilli(), 10)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	report("fresh", "120", now.Add(-2*time.Second))
	report("idle", "0", now)
	report("stale", "500", now.Add(-time.Minute))
	report("garbled", "lots", now)
	rdb.HSet(ctx, edgestats.PodKey("half"), edgestats.FieldConnections, 7)

	got, err := NewStore(rdb).Read(ctx, []string{"fresh", "idle", "stale", "garbled", "half", "missing"}, 30*time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Report{
		"fresh":   {Connections: 120},
		"idle":    {Connections: 0},
		"stale":   {Unknown: "report is 1m0s old"},
		"garbled": {Unknown: "unreadable report"},
		"half":    {Unknown: "no report"},
		"missing": {Unknown: "no report"},
	}
	for pod, w := range want {
		if got[pod] != w {
			t.Errorf("%s: %+v, want %+v", pod, got[pod], w)
		}
	}
}

func TestReadFailsWhenRedisIsDown(t *testing.T) {
	addr := redistest.Start(t)
	rdb := redistest.Client(t, addr)
	if err := rdb.Shutdown(context.Background()).Err(); err == nil {
		t.Fatal("shutdown did not close the connection")
	}
	if _, err := NewStore(rdb).Read(context.Background(), []string{"a"}, time.Second, time.Now()); err == nil {
		t.Fatal("read succeeded against a stopped redis; a failure must not read as zero load")
	}
}

func TestRequestShedWritesAnExpiringRequest(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t, redistest.Start(t))
	if err := NewStore(rdb).RequestShed(ctx, "edge-1", 150, 20, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := rdb.HGetAll(ctx, edgestats.ShedKey("edge-1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got[edgestats.FieldShedConnections] != "150" || got[edgestats.FieldShedPerSecond] != "20" {
		t.Fatalf("shed request %v", got)
	}
	if ttl := rdb.PTTL(ctx, edgestats.ShedKey("edge-1")).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("shed request ttl %s", ttl)
	}
}

// BenchmarkRead reads the reports of 500 pods, one autoscaler round's worth
// for a large fleet, from a real Redis.
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	rdb := redistest.Client(b, redistest.Start(b))
	now := time.Now()
	pods := make([]string, 500)
	for i := range pods {
		pods[i] = "edge-" + strconv.Itoa(i)
		rdb.HSet(ctx, edgestats.PodKey(pods[i]), edgestats.FieldConnections, 4000, edgestats.FieldUpdatedMs, now.UnixMilli())
	}
	s := NewStore(rdb)
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Read(ctx, pods, time.Minute, now); err != nil {
			b.Fatal(err)
		}
	}
}
