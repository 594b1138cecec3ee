package controller_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	autoscalingv1alpha1 "github.com/sensorcast/sensorcast/operator/api/v1alpha1"
	"github.com/sensorcast/sensorcast/operator/internal/controller"
	"github.com/sensorcast/sensorcast/proto/edgestats"
)

func TestTheAPIServerDefaultsAndValidatesTheSpec(t *testing.T) {
	f := newFixture(t)
	eas := f.autoscaler("defaults", "edge", nil)
	var got autoscalingv1alpha1.EdgeAutoscaler
	if err := admin.Get(f.ctx, client.ObjectKeyFromObject(eas), &got); err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	if s.MinReplicas != 1 || s.DrainRate != 50 || s.MetricsMaxAgeSeconds != 30 || !ptr.Deref(s.ShedOverloadedPods, false) ||
		s.ScaleUp != (autoscalingv1alpha1.ScaleUpPolicy{StabilizationWindowSeconds: 0, MaxStep: 4}) ||
		ptr.Deref(s.ScaleDown.StabilizationWindowSeconds, 0) != 300 || s.ScaleDown.MaxStep != 1 {
		t.Errorf("defaults: got %+v", s)
	}

	t.Run("accepts the sample", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "edgeautoscaler.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var sample autoscalingv1alpha1.EdgeAutoscaler
		if err := yaml.Unmarshal(data, &sample); err != nil {
			t.Fatal(err)
		}
		sample.Namespace = f.ns
		if err := admin.Create(f.ctx, &sample); err != nil {
			t.Fatalf("the sample in config/samples is refused: %v", err)
		}
	})

	for _, tc := range []struct {
		name   string
		change func(*autoscalingv1alpha1.EdgeAutoscalerSpec)
		want   string
	}{
		{"min above max", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) { s.MinReplicas, s.MaxReplicas = 5, 3 },
			"minReplicas must not exceed maxReplicas"},
		{"no target connections", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) { s.TargetConnectionsPerPod = 0 },
			"spec.targetConnectionsPerPod"},
		{"no target name", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) { s.TargetRef.Name = "" },
			"spec.targetRef.name"},
		{"window over an hour", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) {
			s.ScaleDown.StabilizationWindowSeconds = ptr.To[int32](7200)
		},
			"spec.scaleDown.stabilizationWindowSeconds"},
		{"zero step", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) { s.ScaleUp.MaxStep = -1 },
			"spec.scaleUp.maxStep"},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			eas := &autoscalingv1alpha1.EdgeAutoscaler{
				ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "bad"},
				Spec: autoscalingv1alpha1.EdgeAutoscalerSpec{
					TargetRef:   autoscalingv1alpha1.TargetReference{Name: "edge"},
					MaxReplicas: 10, TargetConnectionsPerPod: 100,
				},
			}
			tc.change(&eas.Spec)
			err := admin.Create(f.ctx, eas)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestScalesUpToTheConnectionsWithinTheBounds(t *testing.T) {
	f := newFixture(t)
	f.deployment("edge", 2)
	now := time.Now()
	for _, p := range []string{"edge-a", "edge-b"} {
		f.pod("edge", p)
		f.report(p, 450, now)
	}
	// 900 connections at 100 a pod want 9; the bound is 6.
	f.autoscaler("edge", "edge", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) {
		s.MaxReplicas = 6
		s.ScaleUp.MaxStep = 10
	})
	f.eventually("deployment scaled to the bound", func() error {
		if got := f.replicas("edge"); got != 6 {
			return fmt.Errorf("replicas %d, want 6", got)
		}
		return nil
	})
	// The status patch follows the scale.
	f.eventually("status of the scale-up", func() error {
		if st := f.status("edge"); st.LastScaleTime == nil {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	st := f.status("edge")
	if st.TotalConnections != 900 || st.DesiredReplicas != 6 || st.CurrentReplicas != 6 || len(st.Pods) != 2 ||
		st.LastScaleTime == nil || !strings.HasPrefix(st.LastScaleReason, "2 to 6") {
		t.Errorf("status: %+v", st)
	}
	key := f.ns + "/edge"
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sensorcast_operator_connections", []string{key}, 900},
		{"sensorcast_operator_desired_replicas", []string{key}, 6},
		{"sensorcast_operator_scale_changes_total", []string{key, "up"}, 1},
		{"sensorcast_operator_unknown_pods", []string{key}, 0},
	} {
		if got, err := f.metric(m.name, m.labels...); err != nil || got != m.want {
			t.Errorf("%s%v = %v (%v), want %v", m.name, m.labels, got, err, m.want)
		}
	}
	if c := meta.FindStatusCondition(st.Conditions, autoscalingv1alpha1.ConditionScalingLimited); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("ScalingLimited: got %+v, want True", c)
	}
	if c := meta.FindStatusCondition(st.Conditions, autoscalingv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready: got %+v, want True", c)
	}
	f.eventually("a ScaledUp event", func() error { return f.event("edge", "ScaledUp", "from 2 to 6") })
}

func TestScaleUpStepsAreLimited(t *testing.T) {
	f := newFixture(t)
	f.deployment("edge", 1)
	f.pod("edge", "edge-a")
	f.report("edge-a", 1000, time.Now())
	// 1000 connections want 10 pods; two are added a change, round after round.
	f.autoscaler("edge", "edge", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) { s.ScaleUp.MaxStep = 2 })
	f.eventually("steps of 2 up to 10", func() error {
		if got := f.replicas("edge"); got != 10 {
			return fmt.Errorf("replicas %d, want 10", got)
		}
		return nil
	})
	for _, step := range []string{"from 1 to 3", "from 3 to 5", "from 5 to 7", "from 7 to 9", "from 9 to 10"} {
		f.eventually("a ScaledUp event "+step, func() error { return f.event("edge", "ScaledUp", step) })
	}
}

func TestScaleDownRanksPodsByConnectionsFirst(t *testing.T) {
	f := newFixture(t)
	f.deployment("edge", 3)
	now := time.Now()
	conns := map[string]int{"edge-a": 40, "edge-b": 5, "edge-c": 30}
	for p, c := range conns {
		f.pod("edge", p)
		f.report(p, c, now)
	}
	// 75 connections fit one pod; the bound keeps two.
	f.autoscaler("edge", "edge", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) {
		s.MinReplicas = 2
		s.ScaleDown.StabilizationWindowSeconds = ptr.To[int32](0)
	})
	f.eventually("scaled down one step", func() error {
		if got := f.replicas("edge"); got != 2 {
			return fmt.Errorf("replicas %d, want 2", got)
		}
		return nil
	})
	// Every pod carries its connections as its cost, written before the
	// replicas were (the API server records when each field was last set, to
	// the second; the operator waits two between the two writes).
	var deploy appsv1.Deployment
	if err := admin.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: "edge"}, &deploy); err != nil {
		t.Fatal(err)
	}
	scaledAt := lastWrite(&deploy, `"f:replicas"`)
	for p, c := range conns {
		var pod corev1.Pod
		if err := admin.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: p}, &pod); err != nil {
			t.Fatal(err)
		}
		if got, want := pod.Annotations[controller.DeletionCostAnnotation], fmt.Sprint(c); got != want {
			t.Errorf("pod %s deletion cost %q, want %q", p, got, want)
		}
		if costAt := lastWrite(&pod, `"f:`+controller.DeletionCostAnnotation+`"`); costAt.IsZero() || !costAt.Before(scaledAt) {
			t.Errorf("pod %s: cost written at %v, replicas at %v: the cost must come first", p, costAt, scaledAt)
		}
	}
	f.eventually("a ScaledDown event", func() error { return f.event("edge", "ScaledDown", "from 3 to 2") })
}

func TestStaleReportsNeverScaleDown(t *testing.T) {
	f := newFixture(t)
	f.deployment("edge", 3)
	now := time.Now()
	f.pod("edge", "edge-a")
	f.report("edge-a", 1, now)
	f.pod("edge", "edge-b")
	f.report("edge-b", 1, now)
	f.pod("edge", "edge-c") // silent: it never reported
	f.autoscaler("edge", "edge", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) {
		s.ScaleDown.StabilizationWindowSeconds = ptr.To[int32](0)
		s.ScaleDown.MaxStep = 3
	})
	f.eventually("MetricsStale", func() error {
		st := f.status("edge")
		c := meta.FindStatusCondition(st.Conditions, autoscalingv1alpha1.ConditionMetricsStale)
		if c == nil || c.Status != metav1.ConditionTrue || st.UnknownPods != 1 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	// Several more rounds: still three pods.
	time.Sleep(5 * testInterval)
	if got := f.replicas("edge"); got != 3 {
		t.Fatalf("replicas %d with a pod's load unknown, want 3", got)
	}
	st := f.status("edge")
	var unknown string
	for _, p := range st.Pods {
		if p.Name == "edge-c" && p.Connections == nil {
			unknown = p.Unknown
		}
	}
	if unknown != "no report" || st.LastScaleTime != nil {
		t.Errorf("status: %+v", st)
	}

	// Once it reports, the load is known and the scale-down goes ahead.
	f.report("edge-c", 1, time.Now())
	f.eventually("scaled down to the minimum", func() error {
		if got := f.replicas("edge"); got != 1 {
			return fmt.Errorf("replicas %d, want 1", got)
		}
		return nil
	})
}

func TestAMissingTargetIsReportedUntilItAppears(t *testing.T) {
	f := newFixture(t)
	f.autoscaler("edge", "edge", nil)
	f.eventually("Ready False: TargetNotFound", func() error {
		c := meta.FindStatusCondition(f.status("edge").Conditions, autoscalingv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "TargetNotFound" {
			return fmt.Errorf("Ready: %+v", c)
		}
		return nil
	})
	f.deployment("edge", 1)
	f.pod("edge", "edge-a")
	f.report("edge-a", 0, time.Now())
	f.eventually("Ready True", func() error {
		c := meta.FindStatusCondition(f.status("edge").Conditions, autoscalingv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready: %+v", c)
		}
		return nil
	})
}

func TestAnOverloadedPodIsAskedToShedAtTheDrainRate(t *testing.T) {
	f := newFixture(t)
	f.deployment("edge", 2)
	now := time.Now()
	f.pod("edge", "edge-full")
	f.report("edge-full", 300, now)
	f.pod("edge", "edge-new")
	f.report("edge-new", 0, now)
	// 300 connections at 100 a pod want 3, bounded to 2: both pods run, one
	// holds everything.
	f.autoscaler("edge", "edge", func(s *autoscalingv1alpha1.EdgeAutoscalerSpec) {
		s.MaxReplicas = 2
		s.DrainRate = 25
	})
	f.eventually("a shed request for the full pod", func() error {
		got, err := f.redis.HGetAll(f.ctx, edgestats.ShedKey("edge-full")).Result()
		if err != nil {
			return err
		}
		if got[edgestats.FieldShedConnections] != "150" || got[edgestats.FieldShedPerSecond] != "25" {
			return fmt.Errorf("shed request %v, want 150 connections at 25/s", got)
		}
		return nil
	})
	if n, _ := f.redis.Exists(f.ctx, edgestats.ShedKey("edge-new")).Result(); n != 0 {
		t.Error("the empty pod was asked to shed")
	}
	if ttl, _ := f.redis.PTTL(f.ctx, edgestats.ShedKey("edge-full")).Result(); ttl <= 0 {
		t.Errorf("shed request TTL %v: a request no pod takes must expire", ttl)
	}
	f.eventually("a ShedRequested event", func() error { return f.event("edge", "ShedRequested", "edge-full to close 150") })
}

// event finds an events.k8s.io event about autoscaler with reason whose note
// contains text.
func (f *fixture) event(autoscaler, reason, text string) error {
	var list eventsv1.EventList
	if err := admin.List(f.ctx, &list, client.InNamespace(f.ns)); err != nil {
		return err
	}
	var seen []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "EdgeAutoscaler" && e.Regarding.Name == autoscaler && e.Reason == reason && strings.Contains(e.Note, text) {
			return nil
		}
		seen = append(seen, e.Reason+": "+e.Note)
	}
	return fmt.Errorf("no %s event with %q among %q", reason, text, seen)
}

// lastWrite is when field last changed on obj: the newest entry of its
// managedFields (main resource, not status) that owns it.
func lastWrite(obj metav1.Object, field string) time.Time {
	var at time.Time
	for _, m := range obj.GetManagedFields() {
		if m.Subresource == "" && m.FieldsV1 != nil && m.Time != nil &&
			bytes.Contains(m.FieldsV1.Raw, []byte(field)) && m.Time.After(at) {
			at = m.Time.Time
		}
	}
	return at
}

// metric reads one series of the operator's metrics; labels are the values
// of its labels in order.
func (f *fixture) metric(name string, labels ...string) (float64, error) {
	families, err := f.metrics.Gather()
	if err != nil {
		return 0, err
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			var values []string
			for _, l := range m.GetLabel() {
				values = append(values, l.GetValue())
			}
			if slices.Equal(values, labels) {
				if c := m.GetCounter(); c != nil {
					return c.GetValue(), nil
				}
				return m.GetGauge().GetValue(), nil
			}
		}
	}
	return 0, fmt.Errorf("no series %s%v", name, labels)
}
