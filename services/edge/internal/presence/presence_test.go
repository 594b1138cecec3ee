package presence

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/proto/edgestats"
	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
	"github.com/sensorcast/sensorcast/services/internal/redistest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// backends runs a test against every Backend: the real Redis one and the
// in-process one, so both keep the same behaviour.
func backends(t *testing.T, fn func(t *testing.T, newBackend func() Backend, shared bool)) {
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		fn(t, func() Backend { return NewRedis(srv.Client(t)) }, true)
	})
	t.Run("memory", func(t *testing.T) {
		m := NewMemory()
		fn(t, func() Backend { return m }, false)
	})
}

func startTracker(t *testing.T, pod string, b Backend, lease time.Duration) (*Tracker, context.CancelFunc) {
	tr := NewTracker(pod, b, lease, func() PodStats { return PodStats{Connections: 1} }, discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return tr, func() { cancel(); <-done }
}

func members(t *testing.T, tr *Tracker, room string) []wire.Member {
	t.Helper()
	m, err := tr.Members(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func eventually(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMembersAreCountedAcrossPods(t *testing.T) {
	backends(t, func(t *testing.T, newBackend func() Backend, _ bool) {
		a, _ := startTracker(t, "pod-a", newBackend(), 5*time.Second)
		b, _ := startTracker(t, "pod-b", newBackend(), 5*time.Second)
		a.Join("global", "alice")
		a.Join("global", "alice")
		b.Join("global", "alice")
		b.Join("global", "bob")
		b.Join("device:x", "bob")

		// b's own read flushes b; a's changes arrive with its next flush.
		eventually(t, 5*time.Second, func() bool {
			got := members(t, b, "global")
			return len(got) == 2 && got[0] == (wire.Member{UserID: "alice", Connections: 3}) && got[1] == (wire.Member{UserID: "bob", Connections: 1})
		}, "global has alice×3 and bob×1")

		a.Leave("global", "alice")
		a.Leave("global", "alice")
		b.Leave("global", "bob")
		eventually(t, 5*time.Second, func() bool {
			got := members(t, a, "global")
			return len(got) == 1 && got[0] == (wire.Member{UserID: "alice", Connections: 1})
		}, "only alice×1 is left")
		if got := members(t, a, "group:none"); len(got) != 0 {
			t.Errorf("empty room has members %v", got)
		}
	})
}

// A pod's members are written only under its lease: readers drop the
// members of pods without one as dead, so a join flushed before the pod's
// first heartbeat would vanish until the next one.
func TestAJoinBeforeTheFirstHeartbeatIsKept(t *testing.T) {
	backends(t, func(t *testing.T, newBackend func() Backend, _ bool) {
		tr := NewTracker("pod-a", newBackend(), time.Minute, func() PodStats { return PodStats{} }, discard)
		tr.Join("global", "alice") // Run has not started: no heartbeat yet
		if got := members(t, tr, "global"); len(got) != 1 || got[0].UserID != "alice" {
			t.Fatalf("members right after the join = %v, want alice", got)
		}
		if got := members(t, tr, "global"); len(got) != 1 {
			t.Errorf("members read again = %v, want alice still", got)
		}
	})
}

func TestACleanStopRemovesThePodAtOnce(t *testing.T) {
	backends(t, func(t *testing.T, newBackend func() Backend, _ bool) {
		a, stopA := startTracker(t, "pod-a", newBackend(), time.Minute)
		b, _ := startTracker(t, "pod-b", newBackend(), time.Minute)
		a.Join("global", "alice")
		b.Join("global", "bob")
		eventually(t, 5*time.Second, func() bool { return len(members(t, b, "global")) == 2 }, "both users present")
		stopA()
		if got := members(t, b, "global"); len(got) != 1 || got[0].UserID != "bob" {
			t.Errorf("after pod-a stopped: %v", got)
		}
	})
}

func TestADeadPodDropsOutWithinItsLease(t *testing.T) {
	srv := redistest.Start(t)
	lease := time.Second
	// pod-a "dies": its backend calls fail from now on, as if the process were gone.
	deadClient := srv.Client(t)
	a, _ := startTracker(t, "pod-a", NewRedis(deadClient), lease)
	b, _ := startTracker(t, "pod-b", NewRedis(srv.Client(t)), lease)
	a.Join("global", "alice")
	b.Join("global", "bob")
	eventually(t, 5*time.Second, func() bool { return len(members(t, b, "global")) == 2 }, "both users present")
	_ = deadClient.Close()
	start := time.Now()
	eventually(t, 3*lease, func() bool { return len(members(t, b, "global")) == 1 }, "alice's pod drops out")
	t.Logf("dead pod dropped out after %s (lease %s)", time.Since(start).Round(10*time.Millisecond), lease)
}

func TestPresenceRebuildsAfterARedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	lease := time.Second
	a, _ := startTracker(t, "pod-a", NewRedis(srv.Client(t)), lease)
	a.Join("global", "alice")
	eventually(t, 5*time.Second, func() bool { return len(members(t, a, "global")) == 1 }, "alice present")

	srv.Restart(t) // all data lost
	start := time.Now()
	eventually(t, 3*lease, func() bool {
		got, err := NewRedis(srv.Client(t)).Members(context.Background(), "global")
		return err == nil && len(got) == 1 && got[0].UserID == "alice"
	}, "presence rebuilt from the live pod")
	t.Logf("rebuilt %s after the restart (lease %s)", time.Since(start).Round(10*time.Millisecond), lease)

	stats, err := srv.Client(t).HGetAll(context.Background(), edgestats.PodKey("pod-a")).Result()
	if err != nil || stats["connections"] != "1" {
		t.Errorf("pod stats after restart = %v, %v", stats, err)
	}
}

func TestShedRequestsComeWithTheHeartbeatOnce(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	tr, _ := startTracker(t, "pod-a", NewRedis(rdb), 300*time.Millisecond)

	// Written the way the operator writes it (operator/internal/edgeload).
	request := func(fields ...any) {
		t.Helper()
		if err := rdb.HSet(ctx, edgestats.ShedKey("pod-a"), fields...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	request(edgestats.FieldShedConnections, 40, edgestats.FieldShedPerSecond, 20)
	select {
	case got := <-tr.Sheds():
		if got != (Shed{Connections: 40, PerSecond: 20}) {
			t.Fatalf("shed %+v, want 40 at 20/s", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no shed request within two heartbeats")
	}
	eventually(t, time.Second, func() bool {
		return rdb.Exists(ctx, edgestats.ShedKey("pod-a")).Val() == 0
	}, "the request is removed once taken")

	// A malformed request is dropped, not acted on.
	request(edgestats.FieldShedConnections, "all", edgestats.FieldShedPerSecond, 20)
	eventually(t, time.Second, func() bool {
		return rdb.Exists(ctx, edgestats.ShedKey("pod-a")).Val() == 0
	}, "the malformed request is taken")
	select {
	case got := <-tr.Sheds():
		t.Fatalf("malformed request delivered as %+v", got)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestANewerShedRequestReplacesAnUntakenOne(t *testing.T) {
	tr := NewTracker("pod-a", NewMemory(), time.Second, func() PodStats { return PodStats{} }, discard)
	tr.offerShed(Shed{Connections: 10, PerSecond: 1})
	tr.offerShed(Shed{Connections: 30, PerSecond: 5})
	if got := <-tr.Sheds(); got != (Shed{Connections: 30, PerSecond: 5}) {
		t.Fatalf("got %+v, want the newer request", got)
	}
}
