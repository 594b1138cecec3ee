// Package controller reconciles EdgeAutoscalers: it reads the connections the
// target's edge pods report, lets package scaling decide, and applies the
// decision to the Deployment and its pods.
package controller

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	autoscalingv1alpha1 "github.com/sensorcast/sensorcast/operator/api/v1alpha1"
	"github.com/sensorcast/sensorcast/operator/internal/edgeload"
	"github.com/sensorcast/sensorcast/operator/internal/scaling"
)

// DeletionCostAnnotation is read by the ReplicaSet controller: on scale-down
// it removes the pods with the lowest cost first.
const DeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

const (
	// costSettle is how long after setting deletion costs the scale-down waits,
	// so the ReplicaSet controller's cache has the new annotations when it picks
	// the pods to remove.
	costSettle = 2 * time.Second
	// costsFreshFor is how long costs set before a scale-down stay good enough
	// for the next steps of it: connection counts drift, rankings barely.
	costsFreshFor = 30 * time.Second
	// shedRequestTTL: a shed request the pod never takes (it died) goes away.
	shedRequestTTL = time.Minute
)

// LoadStore reads the edge pods' reports and writes shed requests.
type LoadStore interface {
	Read(ctx context.Context, pods []string, maxAge time.Duration, now time.Time) (map[string]edgeload.Report, error)
	RequestShed(ctx context.Context, pod string, connections int64, perSecond int32, ttl time.Duration) error
}

// EventRecorder records Kubernetes events (events.k8s.io).
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

var _ LoadStore = (*edgeload.Store)(nil)

// EdgeAutoscalerReconciler scales edge Deployments by their connections.
type EdgeAutoscalerReconciler struct {
	client   client.Client
	loads    LoadStore
	events   EventRecorder
	metrics  *Metrics
	interval time.Duration
	now      func() time.Time

	mu sync.Mutex
	// memory holds what a decision needs from earlier rounds. It is lost on
	// restart or leader change; scaling.Decide treats a lost history
	// conservatively (no early scale-down).
	memory map[types.NamespacedName]*memory
}

type memory struct {
	history    []scaling.Recommendation
	costsSetAt time.Time
	// shedUntil: when each pod's last shed request should be done, so it is
	// not asked again before.
	shedUntil map[string]time.Time
}

// Options tune the reconciler.
type Options struct {
	// Interval between rounds for each autoscaler. Connection counts change
	// without any Kubernetes event, so every autoscaler is re-read this often.
	Interval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// NewEdgeAutoscalerReconciler wires a reconciler.
func NewEdgeAutoscalerReconciler(c client.Client, loads LoadStore, events EventRecorder, metrics *Metrics, opts Options) *EdgeAutoscalerReconciler {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &EdgeAutoscalerReconciler{
		client: c, loads: loads, events: events, metrics: metrics,
		interval: opts.Interval, now: opts.Now,
		memory: make(map[types.NamespacedName]*memory),
	}
}

const targetNameIndex = ".spec.targetRef.name"

// SetupWithManager registers the controller: it runs on autoscaler spec
// changes, on changes to their Deployments, and every Interval.
func (r *EdgeAutoscalerReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(ctx, &autoscalingv1alpha1.EdgeAutoscaler{}, targetNameIndex,
		func(o client.Object) []string {
			return []string{o.(*autoscalingv1alpha1.EdgeAutoscaler).Spec.TargetRef.Name}
		})
	if err != nil {
		return fmt.Errorf("index autoscalers by target: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&autoscalingv1alpha1.EdgeAutoscaler{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.autoscalersOf)).
		Named("edgeautoscaler").
		Complete(r)
}

func (r *EdgeAutoscalerReconciler) autoscalersOf(ctx context.Context, o client.Object) []reconcile.Request {
	var list autoscalingv1alpha1.EdgeAutoscalerList
	if err := r.client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{targetNameIndex: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list autoscalers of deployment", "deployment", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i, a := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)}
	}
	return reqs
}

// +kubebuilder:rbac:groups=autoscaling.sensorcast.io,resources=edgeautoscalers,verbs=get;list;watch
// +kubebuilder:rbac:groups=autoscaling.sensorcast.io,resources=edgeautoscalers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile runs one round for one autoscaler.
func (r *EdgeAutoscalerReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	logger := log.FromContext(ctx)
	var eas autoscalingv1alpha1.EdgeAutoscaler
	if err := r.client.Get(ctx, req.NamespacedName, &eas); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get autoscaler: %w", err)
	}
	now := r.now()
	status := eas.Status.DeepCopy()
	status.ObservedGeneration = eas.Generation

	var deploy appsv1.Deployment
	err := r.client.Get(ctx, types.NamespacedName{Namespace: eas.Namespace, Name: eas.Spec.TargetRef.Name}, &deploy)
	if apierrors.IsNotFound(err) {
		setCondition(status, autoscalingv1alpha1.ConditionReady, false, "TargetNotFound",
			fmt.Sprintf("deployment %q not found", eas.Spec.TargetRef.Name), eas.Generation)
		if err := r.writeStatus(ctx, &eas, status); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{RequeueAfter: r.interval}, nil
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("get deployment %s: %w", eas.Spec.TargetRef.Name, err)
	}

	pods, err := r.readyPods(ctx, &deploy)
	if err != nil {
		return reconcile.Result{}, err
	}
	loads := r.readLoads(ctx, &eas, pods, now)
	current := int32(1)
	if deploy.Spec.Replicas != nil {
		current = *deploy.Spec.Replicas
	}

	mem := r.memoryOf(req.NamespacedName)
	obs := scaling.Observation{Current: current}
	for _, l := range loads {
		switch {
		case l.Known():
			obs.Known = append(obs.Known, l.Connections)
		case l.Starting:
			obs.Starting++
		default:
			obs.Unknown++
		}
	}
	decision := scaling.Decide(policyOf(&eas), obs, mem.history, now)
	mem.history = decision.History
	key := req.String()
	r.metrics.connections.WithLabelValues(key).Set(float64(decision.Total))
	r.metrics.unknownPods.WithLabelValues(key).Set(float64(obs.Unknown + obs.Starting))
	r.metrics.desired.WithLabelValues(key).Set(float64(decision.Desired))
	r.metrics.current.WithLabelValues(key).Set(float64(current))

	status.CurrentReplicas = current
	status.DesiredReplicas = decision.Desired
	status.TotalConnections = decision.Total
	status.UnknownPods = int32(obs.Unknown + obs.Starting)
	status.Pods = podStatuses(loads)
	setCondition(status, autoscalingv1alpha1.ConditionScalingLimited, decision.Limited, limitedReason(decision), decision.LimitedReason, eas.Generation)
	staleMessage := "every ready pod reported its connections recently"
	if decision.Stale {
		staleMessage = fmt.Sprintf("%d of %d ready pods have no fresh report (%d just started): they count at the average of the others (the starting ones as empty), and scale-down waits",
			obs.Unknown+obs.Starting, len(loads), obs.Starting)
	}
	setCondition(status, autoscalingv1alpha1.ConditionMetricsStale, decision.Stale, staleReason(decision.Stale), staleMessage, eas.Generation)

	requeue := r.interval
	switch {
	case decision.Desired > current:
		if err := r.scale(ctx, &eas, &deploy, status, current, decision, now); err != nil {
			return reconcile.Result{}, err
		}
	case decision.Desired < current:
		if now.Sub(mem.costsSetAt) > costsFreshFor {
			// Rank the pods first; the ReplicaSet controller must see the costs
			// before it picks which pods to remove.
			if err := r.setDeletionCosts(ctx, pods, loads); err != nil {
				return reconcile.Result{}, err
			}
			mem.costsSetAt = now
			requeue = costSettle
			logger.Info("set pod deletion costs before scaling down", "deployment", deploy.Name, "pods", len(pods))
			break
		}
		if err := r.scale(ctx, &eas, &deploy, status, current, decision, now); err != nil {
			return reconcile.Result{}, err
		}
	default:
		if ptrOr(eas.Spec.ShedOverloadedPods, true) && int(current) == len(loads) {
			r.shed(ctx, &eas, mem, decision.Desired, loads, now)
		}
	}

	setCondition(status, autoscalingv1alpha1.ConditionReady, true, "Scaling", decision.Reason, eas.Generation)
	if err := r.writeStatus(ctx, &eas, status); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// readyPods lists the target's pods that are running, ready and not on their
// way out: the ones expected to report, and the ones the ReplicaSet ranks by cost.
func (r *EdgeAutoscalerReconciler) readyPods(ctx context.Context, deploy *appsv1.Deployment) ([]corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(deploy.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s selector: %w", deploy.Name, err)
	}
	var list corev1.PodList
	if err := r.client.List(ctx, &list, client.InNamespace(deploy.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, fmt.Errorf("list pods of deployment %s: %w", deploy.Name, err)
	}
	pods := slices.DeleteFunc(list.Items, func(p corev1.Pod) bool {
		return p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !podReady(&p)
	})
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods, nil
}

func (r *EdgeAutoscalerReconciler) readLoads(ctx context.Context, eas *autoscalingv1alpha1.EdgeAutoscaler, pods []corev1.Pod, now time.Time) []scaling.PodLoad {
	names := make([]string, len(pods))
	for i := range pods {
		names[i] = pods[i].Name
	}
	maxAge := time.Duration(eas.Spec.MetricsMaxAgeSeconds) * time.Second
	if maxAge <= 0 {
		maxAge = 30 * time.Second
	}
	reports, err := r.loads.Read(ctx, names, maxAge, now)
	if err != nil {
		// Unknown, never zero: the decision will hold the replicas.
		log.FromContext(ctx).Error(err, "read edge load reports")
		r.metrics.readErrors.WithLabelValues(client.ObjectKeyFromObject(eas).String()).Inc()
	}
	loads := make([]scaling.PodLoad, len(names))
	for i, name := range names {
		rep, ok := reports[name]
		if !ok {
			rep = edgeload.Report{Unknown: "reports unavailable"}
		}
		loads[i] = scaling.PodLoad{Name: name, Connections: rep.Connections, Unknown: rep.Unknown}
		if ok && rep.Unknown == edgeload.NoReport {
			// A pod ready for less than a report's lifetime may simply not
			// have reported yet; after that, silence is unknown load.
			if since := now.Sub(readySince(&pods[i])); since < maxAge {
				loads[i].Starting = true
				loads[i].Unknown = fmt.Sprintf("no report yet (ready %s ago)", since.Round(time.Second))
			}
		}
	}
	return loads
}

func (r *EdgeAutoscalerReconciler) scale(ctx context.Context, eas *autoscalingv1alpha1.EdgeAutoscaler, deploy *appsv1.Deployment,
	status *autoscalingv1alpha1.EdgeAutoscalerStatus, current int32, d scaling.Decision, now time.Time,
) error {
	patch := client.MergeFrom(deploy.DeepCopy())
	deploy.Spec.Replicas = &d.Desired
	if err := r.client.Patch(ctx, deploy, patch); err != nil {
		return fmt.Errorf("scale deployment %s to %d: %w", deploy.Name, d.Desired, err)
	}
	direction, reason := "up", "ScaledUp"
	if d.Desired < current {
		direction, reason = "down", "ScaledDown"
	}
	r.metrics.scales.WithLabelValues(client.ObjectKeyFromObject(eas).String(), direction).Inc()
	r.events.Eventf(eas, deploy, corev1.EventTypeNormal, reason, "Scale",
		"scaled deployment %s from %d to %d replicas: %s", deploy.Name, current, d.Desired, d.Reason)
	log.FromContext(ctx).Info("scaled", "deployment", deploy.Name, "from", current, "to", d.Desired, "reason", d.Reason)
	t := metav1.NewTime(now)
	status.LastScaleTime = &t
	status.LastScaleReason = fmt.Sprintf("%d to %d: %s", current, d.Desired, d.Reason)
	status.CurrentReplicas = d.Desired
	return nil
}

// setDeletionCosts annotates each ready pod whose cost changed.
func (r *EdgeAutoscalerReconciler) setDeletionCosts(ctx context.Context, pods []corev1.Pod, loads []scaling.PodLoad) error {
	costs := scaling.DeletionCosts(loads)
	for i := range pods {
		pod := &pods[i]
		want := strconv.Itoa(int(costs[pod.Name]))
		if pod.Annotations[DeletionCostAnnotation] == want {
			continue
		}
		patch := client.MergeFrom(pod.DeepCopy())
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[DeletionCostAnnotation] = want
		if err := r.client.Patch(ctx, pod, patch); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("set deletion cost of pod %s: %w", pod.Name, err)
		}
	}
	return nil
}

// shed asks overloaded pods to hand some connections over to emptier ones. A
// failed request is logged and retried next round: it is an optimisation.
func (r *EdgeAutoscalerReconciler) shed(ctx context.Context, eas *autoscalingv1alpha1.EdgeAutoscaler, mem *memory, desired int32, loads []scaling.PodLoad, now time.Time) {
	rate := max(eas.Spec.DrainRate, 1)
	for _, s := range scaling.Sheds(eas.Spec.TargetConnectionsPerPod, desired, loads) {
		if now.Before(mem.shedUntil[s.Pod]) {
			continue
		}
		if err := r.loads.RequestShed(ctx, s.Pod, s.Connections, rate, shedRequestTTL); err != nil {
			log.FromContext(ctx).Error(err, "request shed", "pod", s.Pod)
			continue
		}
		// Done after connections/rate seconds; then its report must catch up
		// before another request could be based on it.
		took := time.Duration(s.Connections/int64(rate)+1) * time.Second
		mem.shedUntil[s.Pod] = now.Add(took + time.Duration(max(eas.Spec.MetricsMaxAgeSeconds, 1))*time.Second)
		r.metrics.sheds.WithLabelValues(client.ObjectKeyFromObject(eas).String()).Inc()
		r.events.Eventf(eas, nil, corev1.EventTypeNormal, "ShedRequested", "Shed",
			"asked pod %s to close %d of its connections at %d/s so they reconnect to emptier pods", s.Pod, s.Connections, rate)
	}
}

// writeStatus patches the autoscaler's status; one deleted meanwhile is no error.
func (r *EdgeAutoscalerReconciler) writeStatus(ctx context.Context, eas *autoscalingv1alpha1.EdgeAutoscaler, status *autoscalingv1alpha1.EdgeAutoscalerStatus) error {
	patch := client.MergeFrom(eas.DeepCopy())
	eas.Status = *status
	if err := r.client.Status().Patch(ctx, eas, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update autoscaler status: %w", err)
	}
	return nil
}

func (r *EdgeAutoscalerReconciler) memoryOf(key types.NamespacedName) *memory {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.memory[key]
	if !ok {
		m = &memory{shedUntil: make(map[string]time.Time)}
		r.memory[key] = m
	}
	return m
}

func (r *EdgeAutoscalerReconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.memory, key)
	r.mu.Unlock()
	r.metrics.forget(key.String())
}

func policyOf(eas *autoscalingv1alpha1.EdgeAutoscaler) scaling.Policy {
	s := eas.Spec
	return scaling.Policy{
		MinReplicas:  max(s.MinReplicas, 1),
		MaxReplicas:  max(s.MaxReplicas, s.MinReplicas, 1),
		TargetPerPod: max(s.TargetConnectionsPerPod, 1),
		UpWindow:     time.Duration(s.ScaleUp.StabilizationWindowSeconds) * time.Second,
		DownWindow:   time.Duration(ptrOr(s.ScaleDown.StabilizationWindowSeconds, 300)) * time.Second,
		UpMaxStep:    max(s.ScaleUp.MaxStep, 1),
		DownMaxStep:  max(s.ScaleDown.MaxStep, 1),
	}
}

func podStatuses(loads []scaling.PodLoad) []autoscalingv1alpha1.PodConnections {
	out := make([]autoscalingv1alpha1.PodConnections, len(loads))
	for i, l := range loads {
		out[i].Name = l.Name
		if l.Known() {
			c := l.Connections
			out[i].Connections = &c
		} else {
			out[i].Unknown = l.Unknown
		}
	}
	return out
}

func setCondition(status *autoscalingv1alpha1.EdgeAutoscalerStatus, kind string, on bool, reason, message string, generation int64) {
	s := metav1.ConditionFalse
	if on {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: kind, Status: s, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

func limitedReason(d scaling.Decision) string {
	if d.Limited {
		return "Limited"
	}
	return "NotLimited"
}

func staleReason(stale bool) string {
	if stale {
		return "ReportsMissing"
	}
	return "ReportsFresh"
}

// readySince is when the pod last became ready.
func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
