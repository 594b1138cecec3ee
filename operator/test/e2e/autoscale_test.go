// Package e2e runs the operator against a real control plane with
// kube-controller-manager, kube-scheduler and KWOK: Deployments really get
// pods, and the ReplicaSet controller really picks which pods to remove.
package e2e

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	autoscalingv1alpha1 "github.com/sensorcast/sensorcast/operator/api/v1alpha1"
	"github.com/sensorcast/sensorcast/operator/internal/k8stest"
	"github.com/sensorcast/sensorcast/operator/internal/redistest"
	"github.com/sensorcast/sensorcast/proto/edgestats"
)

const ns = "default"

func TestTheOperatorScalesARealDeploymentAndRemovesTheEmptiestPods(t *testing.T) {
	c := k8stest.Start(t, filepath.Join("..", "..", "config", "crd", "bases"))
	ctx := t.Context()
	rdb := redistest.Client(t, redistest.Start(t))
	edges := startFakeEdges(t, c, rdb)
	k8stest.StartOperator(t, c.Config, c.Scheme, rdb, k8stest.OperatorOptions{})

	labels := map[string]string{"app": "sensorcast-edge"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sensorcast-edge"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"type": "kwok"},
					Containers:   []corev1.Container{{Name: "edge", Image: "sensorcast:e2e"}},
				},
			},
		},
	}
	if err := c.Client.Create(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	first := waitRunning(t, c, 1)[0]
	edges.set(first, 50)

	const downWindow = 5 * time.Second
	eas := &autoscalingv1alpha1.EdgeAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge"},
		Spec: autoscalingv1alpha1.EdgeAutoscalerSpec{
			TargetRef:   autoscalingv1alpha1.TargetReference{Name: deploy.Name},
			MinReplicas: 1, MaxReplicas: 6, TargetConnectionsPerPod: 100,
			ScaleUp:   autoscalingv1alpha1.ScaleUpPolicy{MaxStep: 4},
			ScaleDown: autoscalingv1alpha1.ScaleDownPolicy{StabilizationWindowSeconds: ptr.To(int32(downWindow / time.Second)), MaxStep: 4},
			// Sheds would move connections between the fake pods; this test
			// is about replicas and which pods go.
			ShedOverloadedPods: ptr.To(false),
		},
	}
	if err := c.Client.Create(ctx, eas); err != nil {
		t.Fatal(err)
	}

	t.Log("raise the load: 350 connections on one pod want 4 pods")
	edges.set(first, 350)
	pods := waitRunning(t, c, 4)
	st := status(t, c, eas)
	if st.DesiredReplicas != 4 || st.LastScaleTime == nil {
		t.Errorf("status after scale-up: %+v", st)
	}

	t.Log("lower it: the pods hold 40, 3, 30 and 2; 75 connections fit one pod")
	load := map[string]int{}
	for i, n := range []int{40, 3, 30, 2} {
		load[pods[i]] = n
	}
	slices.SortFunc(pods, func(a, b string) int { return load[b] - load[a] })
	busiest := pods[0]
	lowered := time.Now()
	for p, n := range load {
		edges.set(p, n)
	}
	survivors := waitRunning(t, c, 1)
	if survivors[0] != busiest {
		t.Fatalf("pod %s survived the scale-down; the busiest, %s (%v), should have", survivors[0], busiest, load)
	}
	st = status(t, c, eas)
	if st.LastScaleTime == nil || st.LastScaleTime.Time.Before(lowered.Add(downWindow-time.Second)) {
		t.Errorf("scaled down at %v, %v after the load dropped: before the %v window", st.LastScaleTime, st.LastScaleTime.Sub(lowered), downWindow)
	}
	t.Logf("scale-down %v after the load dropped (window %v); %s (%d connections) kept", st.LastScaleTime.Sub(lowered).Round(100*time.Millisecond), downWindow, busiest, load[busiest])
}

// waitRunning waits until the Deployment has exactly n pods, all Running and
// Ready and none terminating, and returns their names in creation order.
func waitRunning(t *testing.T, c *k8stest.Cluster, n int) []string {
	t.Helper()
	var names []string
	k8stest.Eventually(t, 60*time.Second, fmt.Sprintf("%d pods Running", n), func() error {
		var list corev1.PodList
		if err := c.Client.List(t.Context(), &list, client.InNamespace(ns), client.MatchingLabels{"app": "sensorcast-edge"}); err != nil {
			return err
		}
		slices.SortFunc(list.Items, func(a, b corev1.Pod) int {
			return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
		})
		names = names[:0]
		var states []string
		for _, p := range list.Items {
			states = append(states, fmt.Sprintf("%s %s deleting=%v", p.Name, p.Status.Phase, p.DeletionTimestamp != nil))
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && ready(&p) {
				names = append(names, p.Name)
			}
		}
		if len(names) != n || len(list.Items) != n {
			return fmt.Errorf("pods: %v", states)
		}
		return nil
	})
	return names
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func status(t *testing.T, c *k8stest.Cluster, eas *autoscalingv1alpha1.EdgeAutoscaler) autoscalingv1alpha1.EdgeAutoscalerStatus {
	t.Helper()
	var got autoscalingv1alpha1.EdgeAutoscaler
	if err := c.Client.Get(t.Context(), client.ObjectKeyFromObject(eas), &got); err != nil {
		t.Fatal(err)
	}
	return got.Status
}

// fakeEdges reports, for every Running pod of the Deployment, the
// connections the test set for it (0 for a pod it has not set), every 200ms:
// what the edge's presence heartbeat does for real.
type fakeEdges struct {
	mu   sync.Mutex
	load map[string]int
}

func (e *fakeEdges) set(pod string, connections int) {
	e.mu.Lock()
	e.load[pod] = connections
	e.mu.Unlock()
}

func startFakeEdges(t *testing.T, c *k8stest.Cluster, rdb *redis.Client) *fakeEdges {
	e := &fakeEdges{load: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var list corev1.PodList
			if err := c.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
				continue
			}
			e.mu.Lock()
			load := maps.Clone(e.load)
			e.mu.Unlock()
			now := strconv.FormatInt(time.Now().UnixMilli(), 10)
			_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, pod := range list.Items {
					if pod.Status.Phase == corev1.PodRunning {
						p.HSet(ctx, edgestats.PodKey(pod.Name), edgestats.FieldConnections, load[pod.Name],
							edgestats.FieldRooms, 1, edgestats.FieldUpdatedMs, now)
					}
				}
				return nil
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return e
}
