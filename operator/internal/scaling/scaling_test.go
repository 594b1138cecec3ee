package scaling

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func at(seconds int) time.Time { return t0.Add(time.Duration(seconds) * time.Second) }

var policy = Policy{
	MinReplicas: 2, MaxReplicas: 10, TargetPerPod: 100,
	UpWindow: 0, DownWindow: 60 * time.Second,
	UpMaxStep: 4, DownMaxStep: 1,
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		obs     Observation
		history []Recommendation
		now     time.Time

		desired     int32
		recommended int32
		total       int64
		limited     bool
		stale       bool
		reason      string
	}{
		{
			name:    "load that fits the current pods keeps them",
			obs:     Observation{Current: 3, Known: []int64{90, 100, 80}},
			history: []Recommendation{{At: at(-30), Replicas: 3}},
			desired: 3, recommended: 3, total: 270, reason: "fit 3 pods",
		},
		{
			name:    "more load scales up at once with no up window",
			obs:     Observation{Current: 2, Known: []int64{200, 200}},
			history: []Recommendation{{At: at(-30), Replicas: 2}},
			desired: 4, recommended: 4, total: 400, reason: "need 4 pods",
		},
		{
			name:    "a partial pod's worth of load rounds up",
			obs:     Observation{Current: 2, Known: []int64{101, 100}},
			history: []Recommendation{{At: at(-30), Replicas: 2}},
			desired: 3, recommended: 3, total: 201,
		},
		{
			name:    "scale-up is limited to the up step",
			obs:     Observation{Current: 2, Known: []int64{500, 500}},
			history: []Recommendation{{At: at(-30), Replicas: 2}},
			desired: 6, recommended: 10, total: 1000, limited: true, reason: "limited to 4",
		},
		{
			name:    "load beyond the maximum stops at the maximum",
			obs:     Observation{Current: 10, Known: []int64{600, 600}},
			history: []Recommendation{{At: at(-30), Replicas: 10}},
			desired: 10, recommended: 10, total: 1200, limited: true, reason: "bounded to [2, 10]",
		},
		{
			name:    "no load still keeps the minimum",
			obs:     Observation{Current: 2, Known: []int64{0, 0}},
			history: []Recommendation{{At: at(-120), Replicas: 2}},
			desired: 2, recommended: 2, limited: true,
		},
		{
			name:    "a burst shorter than the up window adds nothing",
			policy:  withUpWindow(policy, 30*time.Second),
			obs:     Observation{Current: 2, Known: []int64{400, 400}},
			history: []Recommendation{{At: at(-20), Replicas: 2}, {At: at(-10), Replicas: 2}},
			desired: 2, recommended: 8, total: 800, reason: "waiting out",
		},
		{
			name:    "load that stays through the up window scales up to the lowest recommendation in it",
			policy:  withUpWindow(policy, 30*time.Second),
			obs:     Observation{Current: 2, Known: []int64{400, 400}},
			history: []Recommendation{{At: at(-40), Replicas: 2}, {At: at(-25), Replicas: 5}, {At: at(-10), Replicas: 8}},
			desired: 5, recommended: 8, total: 800,
		},
		{
			name:    "a dip inside the down window removes nothing",
			obs:     Observation{Current: 5, Known: []int64{50, 50, 50, 50, 50}},
			history: []Recommendation{{At: at(-50), Replicas: 5}, {At: at(-20), Replicas: 3}},
			desired: 5, recommended: 3, total: 250, reason: "waiting out",
		},
		{
			name:    "low load through the whole down window scales down by one step",
			obs:     Observation{Current: 5, Known: []int64{40, 40, 40, 40, 40}},
			history: []Recommendation{{At: at(-90), Replicas: 5}, {At: at(-50), Replicas: 2}, {At: at(-20), Replicas: 2}},
			desired: 4, recommended: 2, total: 200, limited: true, reason: "limited to 1",
		},
		{
			name:    "scale-down goes to the highest recommendation of the window",
			policy:  withDownStep(policy, 5),
			obs:     Observation{Current: 6, Known: []int64{40, 40, 40, 40, 40, 40}},
			history: []Recommendation{{At: at(-90), Replicas: 6}, {At: at(-50), Replicas: 4}, {At: at(-20), Replicas: 3}},
			desired: 4, recommended: 3, total: 240,
		},
		{
			name:    "pods that have not reported yet count as empty, and hold scale-down back",
			obs:     Observation{Current: 4, Known: []int64{350}, Starting: 3},
			desired: 4, recommended: 4, total: 350, stale: true,
		},
		{
			name:    "pods that have not reported yet do not inflate a scale-up",
			obs:     Observation{Current: 4, Known: []int64{550}, Starting: 3},
			desired: 6, recommended: 6, total: 550, stale: true,
		},
		{
			name:    "after a restart a scale-up is not delayed",
			obs:     Observation{Current: 2, Known: []int64{300, 300}},
			desired: 6, recommended: 6, total: 600,
		},
		{
			name: "after a restart the up window starts afresh, without the stand-in",
			policy: Policy{MinReplicas: 2, MaxReplicas: 10, TargetPerPod: 100, UpWindow: 60 * time.Second,
				DownWindow: 60 * time.Second, UpMaxStep: 4, DownMaxStep: 1},
			obs:     Observation{Current: 2, Known: []int64{300, 300}},
			desired: 6, recommended: 6, total: 600,
		},
		{
			name:    "after a restart the missing history counts as the current replicas",
			obs:     Observation{Current: 5, Known: []int64{10, 10, 10, 10, 10}},
			desired: 5, recommended: 2, total: 50, limited: true,
		},
		{
			name:    "a stale pod counts at the average, not as zero, and scaling up still works",
			obs:     Observation{Current: 3, Known: []int64{150, 150}, Unknown: 1},
			history: []Recommendation{{At: at(-30), Replicas: 3}},
			desired: 5, recommended: 5, total: 450, stale: true,
		},
		{
			name:    "a stale pod forbids scaling down",
			obs:     Observation{Current: 5, Known: []int64{10, 10, 10, 10}, Unknown: 1},
			history: []Recommendation{{At: at(-120), Replicas: 2}, {At: at(-50), Replicas: 2}},
			desired: 5, recommended: 2, total: 50, limited: true, stale: true, reason: "not scaling down on unknown load",
		},
		{
			name:    "with every report stale the replicas stay",
			obs:     Observation{Current: 4, Unknown: 4},
			history: []Recommendation{{At: at(-120), Replicas: 2}},
			desired: 4, recommended: 4, stale: true, reason: "no pod reports",
		},
		{
			name:    "replicas below the minimum go to it at once",
			obs:     Observation{Current: 1, Known: []int64{0}},
			history: []Recommendation{{At: at(-30), Replicas: 1}},
			desired: 2, recommended: 2, limited: true, reason: "outside the bounds",
		},
		{
			name:    "replicas above the maximum go to it at once, past the step limit",
			obs:     Observation{Current: 15, Known: []int64{1000, 1000}},
			history: []Recommendation{{At: at(-30), Replicas: 15}},
			desired: 10, recommended: 10, total: 2000, limited: true, reason: "outside the bounds",
		},
		{
			name:    "replicas above the maximum go to it even with no report",
			obs:     Observation{Current: 15},
			desired: 10, recommended: 10, reason: "outside the bounds",
		},
		{
			name:    "negative reports count as zero",
			obs:     Observation{Current: 2, Known: []int64{-50, 150}},
			history: []Recommendation{{At: at(-30), Replicas: 2}},
			desired: 2, recommended: 2, total: 150,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.policy
			if p == (Policy{}) {
				p = policy
			}
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			d := Decide(p, tt.obs, tt.history, now)
			if d.Desired != tt.desired || d.Recommended != tt.recommended || d.Total != tt.total ||
				d.Limited != tt.limited || d.Stale != tt.stale {
				t.Fatalf("got desired %d recommended %d total %d limited %v stale %v (%q, %q); want %d %d %d %v %v",
					d.Desired, d.Recommended, d.Total, d.Limited, d.Stale, d.Reason, d.LimitedReason,
					tt.desired, tt.recommended, tt.total, tt.limited, tt.stale)
			}
			if !strings.Contains(d.Reason+" "+d.LimitedReason, tt.reason) {
				t.Errorf("reason %q / %q does not mention %q", d.Reason, d.LimitedReason, tt.reason)
			}
			if last := d.History[len(d.History)-1]; last.At != now || last.Replicas != d.Recommended {
				t.Errorf("history does not end with this round: %+v", d.History)
			}
		})
	}
}

func TestHistoryKeepsOnlyTheLongerWindow(t *testing.T) {
	p := withUpWindow(policy, 10*time.Second) // down window 60s is the longer
	h := []Recommendation{{At: at(-100), Replicas: 9}, {At: at(-61), Replicas: 8}, {At: at(-60), Replicas: 7}, {At: at(-5), Replicas: 6}}
	d := Decide(p, Observation{Current: 3, Known: []int64{100, 100, 100}}, h, t0)
	want := []Recommendation{{At: at(-60), Replicas: 7}, {At: at(-5), Replicas: 6}, {At: t0, Replicas: 3}}
	if !reflect.DeepEqual(d.History, want) {
		t.Fatalf("history %+v, want %+v", d.History, want)
	}
}

// A load that swings around a boundary every round must not make the replicas
// flap: with a down window, the count only goes up and then stays.
func TestASwingingLoadDoesNotFlap(t *testing.T) {
	var history []Recommendation
	current := int32(2)
	changes := 0
	for i := range 60 {
		load := int64(190)
		if i%2 == 1 {
			load = 310
		}
		d := Decide(policy, Observation{Current: current, Known: []int64{load / 2, load - load/2}}, history, at(i*5))
		history = d.History
		if d.Desired != current {
			changes++
			current = d.Desired
		}
	}
	if changes != 1 || current != 4 {
		t.Fatalf("%d changes ending at %d replicas; want one change to 4", changes, current)
	}
}

func TestDeletionCosts(t *testing.T) {
	got := DeletionCosts([]PodLoad{
		known("a", 500),
		known("b", 20),
		{Name: "c", Unknown: "no report"},
		known("d", 1<<40),
	})
	want := map[string]int32{"a": 500, "b": 20, "c": 2147483647, "d": 2147483647}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("costs %v, want %v", got, want)
	}
	got = DeletionCosts([]PodLoad{known("a", 5), {Name: "b", Unknown: "no report"}})
	if got["b"] != 5 {
		t.Fatalf("an unknown pod costs %d, want the highest known (5)", got["b"])
	}
}

func TestSheds(t *testing.T) {
	tests := []struct {
		name    string
		desired int32
		pods    []PodLoad
		want    []Shed
	}{
		{
			name:    "an overloaded pod sheds down to the target once the new pods are ready",
			desired: 3,
			pods:    []PodLoad{known("a", 250), known("b", 30), known("c", 0)},
			want:    []Shed{{Pod: "a", Connections: 150}},
		},
		{
			name:    "a pod just over target but under 1.5 times it is left alone",
			desired: 2,
			pods:    []PodLoad{known("a", 149), known("b", 0)},
		},
		{
			name:    "when every pod is full, a pod sheds only down to the average",
			desired: 2,
			pods:    []PodLoad{known("a", 400), known("b", 200)},
			want:    []Shed{{Pod: "a", Connections: 100}},
		},
		{
			name:    "nothing is shed while new pods are still coming",
			desired: 3,
			pods:    []PodLoad{known("a", 400), known("b", 0)},
		},
		{
			name:    "nothing is shed while any load is unknown",
			desired: 2,
			pods:    []PodLoad{known("a", 400), {Name: "b", Unknown: "report is 1m0s old"}},
		},
		{
			name:    "a single pod has no one to hand its load to",
			desired: 1,
			pods:    []PodLoad{known("a", 400)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Sheds(100, tt.desired, tt.pods)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("sheds %+v, want %+v", got, tt.want)
			}
		})
	}
}

func known(name string, conns int64) PodLoad {
	return PodLoad{Name: name, Connections: conns}
}

func withUpWindow(p Policy, w time.Duration) Policy { p.UpWindow = w; return p }

func withDownStep(p Policy, s int32) Policy { p.DownMaxStep = s; return p }
