package devicecache

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
)

// fakeRegistry is a hand-written registry for the cache's own logic: a
// listing, and a change feed the test drives. (The real server is exercised
// against this cache in the registry's tests.)
type fakeRegistry struct {
	registryv1.UnimplementedDeviceRegistryServer

	mu       sync.Mutex
	devices  []*registryv1.Device
	groups   []*registryv1.Group
	rules    []*registryv1.AlertRule
	seq      int64
	feed     chan *registryv1.Change
	resumes  []int64 // resume_after of every WatchChanges call
	outRange bool    // answer the next resume with OUT_OF_RANGE
	lists    int
}

func (f *fakeRegistry) WatchChanges(req *registryv1.WatchChangesRequest, stream grpc.ServerStreamingServer[registryv1.WatchChangesResponse]) error {
	f.mu.Lock()
	f.resumes = append(f.resumes, req.GetResumeAfter())
	if f.outRange && req.GetResumeAfter() > 0 {
		f.outRange = false
		f.mu.Unlock()
		return status.Error(codes.OutOfRange, "too old")
	}
	seq, feed := f.seq, f.feed
	f.mu.Unlock()
	if err := stream.Send(&registryv1.WatchChangesResponse{Sequence: seq}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ch, ok := <-feed:
			if !ok {
				return status.Error(codes.Unavailable, "registry restarting")
			}
			if err := stream.Send(&registryv1.WatchChangesResponse{Changes: []*registryv1.Change{ch}, Sequence: ch.GetSequence()}); err != nil {
				return err
			}
		}
	}
}

func (f *fakeRegistry) ListDevices(_ context.Context, req *registryv1.ListDevicesRequest) (*registryv1.ListDevicesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	// Two devices per page, to exercise paging.
	start := 0
	if req.GetPageToken() != "" {
		start = int(req.GetPageToken()[0] - '0')
	}
	end := min(start+2, len(f.devices))
	resp := &registryv1.ListDevicesResponse{Devices: f.devices[start:end]}
	if end < len(f.devices) {
		resp.NextPageToken = string(rune('0' + end))
	}
	return resp, nil
}

func (f *fakeRegistry) ListGroups(context.Context, *registryv1.ListGroupsRequest) (*registryv1.ListGroupsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &registryv1.ListGroupsResponse{Groups: f.groups}, nil
}

func (f *fakeRegistry) ListAlertRules(context.Context, *registryv1.ListAlertRulesRequest) (*registryv1.ListAlertRulesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &registryv1.ListAlertRulesResponse{AlertRules: f.rules}, nil
}

func start(t *testing.T, f *fakeRegistry) (*Cache, func()) {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	registryv1.RegisterDeviceRegistryServer(srv, f)
	go func() { _ = srv.Serve(ln) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := New(registryv1.NewDeviceRegistryClient(conn), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		conn.Close()
		srv.Stop()
	}
	t.Cleanup(stop)
	return c, stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func device(id string, version int64, enabled bool, groups ...string) *registryv1.Device {
	return &registryv1.Device{Id: id, Version: version, Enabled: enabled, Groups: groups}
}

func TestTheCacheLoadsEverythingThenFollowsChanges(t *testing.T) {
	f := &fakeRegistry{
		devices: []*registryv1.Device{device("a", 1, true, "g1"), device("b", 3, false), device("c", 1, true), device("d", 2, true, "g1", "g2")},
		groups:  []*registryv1.Group{{Id: "g1", Version: 1}, {Id: "g2", Version: 1}},
		seq:     10,
		feed:    make(chan *registryv1.Change, 10),
	}
	c, _ := start(t, f)
	eventually(t, "ready", c.Ready)
	if d, ok := c.Lookup("d"); !ok || !d.Enabled || len(d.Groups) != 2 {
		t.Errorf("device d = %+v, %v (all four pages must load)", d, ok)
	}
	if d, _ := c.Lookup("b"); d.Enabled {
		t.Error("device b is disabled in the registry")
	}
	if !c.GroupExists("g2") || c.GroupExists("g3") {
		t.Error("groups wrong after load")
	}
	if got := fmt.Sprint(c.GroupMembers("g1", 10), c.GroupMembers("g2", 10), c.DeviceIDs(10)); got != "[a d] [d] [a b c d]" {
		t.Errorf("members after load: %s", got)
	}
	if two := c.DeviceIDs(2); len(two) != 2 || two[0] >= two[1] {
		t.Errorf("DeviceIDs with limit 2 = %v, want two distinct ids, sorted", two)
	}
	if got := len(c.GroupMembers("g1", 1)); got != 1 {
		t.Errorf("GroupMembers with limit 1 returned %d ids", got)
	}

	f.feed <- &registryv1.Change{Sequence: 11, Kind: registryv1.ChangeKind_CHANGE_KIND_DEVICE_UPDATED, Id: "a", Version: 2,
		Snapshot: &registryv1.Change_Device{Device: device("a", 2, true, "g1", "g2")}}
	f.feed <- &registryv1.Change{Sequence: 12, Kind: registryv1.ChangeKind_CHANGE_KIND_DEVICE_DELETED, Id: "c", Version: 1}
	f.feed <- &registryv1.Change{Sequence: 13, Kind: registryv1.ChangeKind_CHANGE_KIND_GROUP_CREATED, Id: "g3", Version: 1,
		Snapshot: &registryv1.Change_Group{Group: &registryv1.Group{Id: "g3", Version: 1}}}
	// A change the listing already reflected is skipped.
	f.feed <- &registryv1.Change{Sequence: 14, Kind: registryv1.ChangeKind_CHANGE_KIND_DEVICE_UPDATED, Id: "b", Version: 3,
		Snapshot: &registryv1.Change_Device{Device: device("b", 3, true)}}
	eventually(t, "changes applied", func() bool {
		a, _ := c.Lookup("a")
		_, cExists := c.Lookup("c")
		return len(a.Groups) == 2 && !cExists && c.GroupExists("g3")
	})
	if d, _ := c.Lookup("b"); d.Enabled {
		t.Error("a change at the version the cache already holds was applied")
	}
	if got := fmt.Sprint(c.GroupMembers("g1", 10), c.GroupMembers("g2", 10)); got != "[a d] [a d]" {
		t.Errorf("members after a device moved and another was deleted: %s", got)
	}
}

func TestABrokenStreamResumesAndAnExpiredOneReloads(t *testing.T) {
	f := &fakeRegistry{devices: []*registryv1.Device{device("a", 1, true)}, seq: 5, feed: make(chan *registryv1.Change, 10)}
	c, _ := start(t, f)
	eventually(t, "ready", c.Ready)
	f.feed <- &registryv1.Change{Sequence: 6, Kind: registryv1.ChangeKind_CHANGE_KIND_DEVICE_CREATED, Id: "b", Version: 1,
		Snapshot: &registryv1.Change_Device{Device: device("b", 1, true)}}
	eventually(t, "b arrives", func() bool { _, ok := c.Lookup("b"); return ok })

	// The registry restarts: the stream breaks and the cache resumes after 6.
	f.mu.Lock()
	old := f.feed
	f.feed = make(chan *registryv1.Change, 10)
	f.mu.Unlock()
	close(old)
	eventually(t, "resumed after sequence 6", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.resumes) >= 2 && f.resumes[len(f.resumes)-1] == 6
	})
	f.mu.Lock()
	listsBefore := f.lists
	f.mu.Unlock()

	// Next time the resume point is too old: the cache reloads everything.
	f.mu.Lock()
	f.outRange = true
	f.devices = []*registryv1.Device{device("z", 1, true)}
	old = f.feed
	f.feed = make(chan *registryv1.Change, 10)
	f.mu.Unlock()
	close(old)
	eventually(t, "reloaded from a fresh listing", func() bool {
		_, z := c.Lookup("z")
		_, a := c.Lookup("a")
		return z && !a
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lists <= listsBefore {
		t.Error("no new listing after OUT_OF_RANGE")
	}
}

func rule(id string, version int64, enabled bool, target string) *registryv1.AlertRule {
	r := &registryv1.AlertRule{Id: id, Name: "rule " + id, Field: "temperature", Operator: registryv1.Operator_OPERATOR_GT,
		Threshold: 40, Severity: registryv1.Severity_SEVERITY_CRITICAL, Enabled: enabled, Version: version,
		Hold: durationpb.New(2 * time.Second)}
	if g, ok := strings.CutPrefix(target, "group:"); ok {
		r.Target = &registryv1.AlertRule_GroupId{GroupId: g}
	} else {
		r.Target = &registryv1.AlertRule_DeviceId{DeviceId: strings.TrimPrefix(target, "device:")}
	}
	return r
}

func ruleIDs(rules []Rule) string {
	var ids []string
	for _, r := range rules {
		ids = append(ids, r.ID)
	}
	return strings.Join(ids, ",")
}

func TestTheCacheKeepsAlertRulesByTarget(t *testing.T) {
	f := &fakeRegistry{
		devices: []*registryv1.Device{device("a", 1, true, "g1")},
		groups:  []*registryv1.Group{{Id: "g1", Version: 1}},
		rules:   []*registryv1.AlertRule{rule("r1", 1, true, "device:a"), rule("r2", 1, true, "group:g1"), rule("r3", 1, false, "device:a"), rule("r4", 1, true, "device:b")},
		seq:     3,
		feed:    make(chan *registryv1.Change, 10),
	}
	c, _ := start(t, f)
	eventually(t, "ready", c.Ready)
	rules := c.RulesFor("a", []string{"g1"})
	if got := ruleIDs(rules); got != "r1,r2" {
		t.Fatalf("rules of a in g1: %s, want r1,r2 (r3 is disabled, r4 is b's)", got)
	}
	if r := rules[0]; r.Target != "device:a" || r.Hold != 2*time.Second || r.Threshold != 40 || r.Operator != registryv1.Operator_OPERATOR_GT || r.Name != "rule r1" {
		t.Errorf("rule r1 = %+v", r)
	}

	f.feed <- &registryv1.Change{Sequence: 4, Kind: registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_UPDATED, Id: "r3", Version: 2,
		Snapshot: &registryv1.Change_AlertRule{AlertRule: rule("r3", 2, true, "device:a")}}
	f.feed <- &registryv1.Change{Sequence: 5, Kind: registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_UPDATED, Id: "r1", Version: 2,
		Snapshot: &registryv1.Change_AlertRule{AlertRule: rule("r1", 2, true, "group:g2")}}
	f.feed <- &registryv1.Change{Sequence: 6, Kind: registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_DELETED, Id: "r2", Version: 1}
	f.feed <- &registryv1.Change{Sequence: 7, Kind: registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_CREATED, Id: "r5", Version: 1,
		Snapshot: &registryv1.Change_AlertRule{AlertRule: rule("r5", 1, true, "group:g1")}}
	eventually(t, "rule changes applied", func() bool { return ruleIDs(c.RulesFor("a", []string{"g1"})) == "r3,r5" })
	if got := ruleIDs(c.RulesFor("x", []string{"g2"})); got != "r1" {
		t.Errorf("rules of a device in g2: %s, want r1 (moved there)", got)
	}
}

func TestDevicesPageInIDOrderAndFollowChanges(t *testing.T) {
	f := &fakeRegistry{
		devices: []*registryv1.Device{device("c", 1, true, "g1"), device("a", 1, true, "g1"), device("d", 1, false), device("b", 1, true, "g2")},
		groups:  []*registryv1.Group{{Id: "g2", DisplayName: "Second", Version: 1}, {Id: "g1", DisplayName: "First", Version: 1}},
		seq:     1,
		feed:    make(chan *registryv1.Change, 10),
	}
	f.devices[1].DisplayName, f.devices[1].Labels = "Boiler A", map[string]string{"site": "x"}
	c, _ := start(t, f)
	eventually(t, "ready", c.Ready)
	all := func(Device) bool { return true }
	ids := func(page []Device) string {
		var out []string
		for _, d := range page {
			out = append(out, d.ID)
		}
		return strings.Join(out, ",")
	}

	page, total := c.Devices("", 2, "", all)
	if ids(page) != "a,b" || total != 4 {
		t.Errorf("first page = %s of %d, want a,b of 4", ids(page), total)
	}
	if page[0].Name != "Boiler A" || page[0].Labels["site"] != "x" {
		t.Errorf("device a = %+v, want its name and labels", page[0])
	}
	if page, _ = c.Devices("b", 2, "", all); ids(page) != "c,d" {
		t.Errorf("page after b = %s, want c,d", ids(page))
	}
	if page, total = c.Devices("", 10, "BOILER", all); ids(page) != "a" || total != 1 {
		t.Errorf("a search by name in another case = %s of %d, want a", ids(page), total)
	}
	if page, _ = c.Devices("", 10, "c", all); ids(page) != "c" {
		t.Errorf("a search by id = %s, want c", ids(page))
	}
	inG1 := func(d Device) bool { return slices.Contains(d.Groups, "g1") }
	if page, total = c.Devices("", 10, "", inG1); ids(page) != "a,c" || total != 2 {
		t.Errorf("g1 = %s of %d, want a,c of 2", ids(page), total)
	}
	if got := fmt.Sprint(c.Groups()); got != "[{g1 First 2 1} {g2 Second 1 1}]" {
		t.Errorf("groups = %s", got)
	}

	f.feed <- &registryv1.Change{Sequence: 2, Kind: registryv1.ChangeKind_CHANGE_KIND_DEVICE_CREATED, Id: "aa", Version: 1,
		Snapshot: &registryv1.Change_Device{Device: device("aa", 1, true)}}
	f.feed <- &registryv1.Change{Sequence: 3, Kind: registryv1.ChangeKind_CHANGE_KIND_DEVICE_DELETED, Id: "b", Version: 1}
	f.feed <- &registryv1.Change{Sequence: 4, Kind: registryv1.ChangeKind_CHANGE_KIND_GROUP_UPDATED, Id: "g2", Version: 2,
		Snapshot: &registryv1.Change_Group{Group: &registryv1.Group{Id: "g2", DisplayName: "Renamed", Version: 2}}}
	eventually(t, "changes applied", func() bool {
		page, _ := c.Devices("", 10, "", all)
		return ids(page) == "a,aa,c,d"
	})
	if got := fmt.Sprint(c.Groups()); got != "[{g1 First 2 1} {g2 Renamed 0 2}]" {
		t.Errorf("groups after changes = %s", got)
	}
}
