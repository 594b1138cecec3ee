package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EdgeAutoscalerSpec says which Deployment of edge pods to scale and how.
//
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
type EdgeAutoscalerSpec struct {
	// TargetRef names the Deployment of edge pods, in the autoscaler's namespace.
	TargetRef TargetReference `json:"targetRef"`

	// MinReplicas is the fewest edge pods to run, whatever the load.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the most edge pods to run, whatever the load.
	// +kubebuilder:validation:Minimum=1
	MaxReplicas int32 `json:"maxReplicas"`

	// TargetConnectionsPerPod is the WebSocket connections (dashboards and
	// devices) one edge pod should hold: the desired replicas are
	// ceil(total connections / this), within the bounds.
	// +kubebuilder:validation:Minimum=1
	TargetConnectionsPerPod int32 `json:"targetConnectionsPerPod"`

	// ScaleUp limits how fast replicas are added.
	// +kubebuilder:default={}
	// +optional
	ScaleUp ScaleUpPolicy `json:"scaleUp,omitempty"`

	// ScaleDown limits how fast replicas are removed.
	// +kubebuilder:default={}
	// +optional
	ScaleDown ScaleDownPolicy `json:"scaleDown,omitempty"`

	// DrainRate is how many connections per second a pod asked to shed load
	// closes at most, so the clients' reconnects arrive as a trickle, not a storm.
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=1
	// +optional
	DrainRate int32 `json:"drainRate,omitempty"`

	// ShedOverloadedPods lets the operator ask a pod holding over 1.5 times the
	// target, once every replica is ready, to close its excess connections at
	// DrainRate so their clients reconnect to the emptier pods.
	// +kubebuilder:default=true
	// +optional
	ShedOverloadedPods *bool `json:"shedOverloadedPods,omitempty"`

	// MetricsMaxAgeSeconds is how old a pod's connection report may be before it
	// counts as unknown. Unknown is never read as zero: while any ready pod's
	// report is unknown the operator does not scale down.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +optional
	MetricsMaxAgeSeconds int32 `json:"metricsMaxAgeSeconds,omitempty"`
}

// TargetReference names the scaled Deployment.
type TargetReference struct {
	// Name of a Deployment in the autoscaler's namespace.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// ScaleUpPolicy limits scale-up.
type ScaleUpPolicy struct {
	// StabilizationWindowSeconds: the operator scales up only to the lowest
	// recommendation of this window, so a burst shorter than it adds nothing.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	StabilizationWindowSeconds int32 `json:"stabilizationWindowSeconds,omitempty"`

	// MaxStep is the most replicas added in one change.
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxStep int32 `json:"maxStep,omitempty"`
}

// ScaleDownPolicy limits scale-down.
type ScaleDownPolicy struct {
	// StabilizationWindowSeconds: the operator scales down only to the highest
	// recommendation of this window, so a dip shorter than it removes nothing.
	// A pointer, so that an explicit 0 is not taken for "unset" and defaulted.
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	StabilizationWindowSeconds *int32 `json:"stabilizationWindowSeconds,omitempty"`

	// MaxStep is the most replicas removed in one change.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxStep int32 `json:"maxStep,omitempty"`
}

// EdgeAutoscalerStatus is what the operator last observed and decided.
type EdgeAutoscalerStatus struct {
	// ObservedGeneration is the spec generation the status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// CurrentReplicas is the target's replicas as last observed.
	// +optional
	CurrentReplicas int32 `json:"currentReplicas"`

	// DesiredReplicas is what the operator last decided the target should run.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas"`

	// TotalConnections is the sum of the known reports of ready pods.
	// +optional
	TotalConnections int64 `json:"totalConnections"`

	// UnknownPods counts ready pods whose report is missing or stale.
	// +optional
	UnknownPods int32 `json:"unknownPods,omitempty"`

	// Pods lists every ready pod of the target with its connections.
	// +listType=map
	// +listMapKey=name
	// +optional
	Pods []PodConnections `json:"pods,omitempty"`

	// LastScaleTime is when the operator last changed the target's replicas.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`

	// LastScaleReason says why it did.
	// +optional
	LastScaleReason string `json:"lastScaleReason,omitempty"`

	// Conditions: Ready (the target is found and scaled as decided),
	// ScalingLimited (bounds or step limits held the decision back) and
	// MetricsStale (some pod's report is unknown).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PodConnections is one pod's load.
type PodConnections struct {
	// Name of the pod.
	Name string `json:"name"`
	// Connections it reported; absent when unknown.
	// +optional
	Connections *int64 `json:"connections,omitempty"`
	// Unknown says why Connections is absent.
	// +optional
	Unknown string `json:"unknown,omitempty"`
}

// Condition types of an EdgeAutoscaler.
const (
	ConditionReady          = "Ready"
	ConditionScalingLimited = "ScalingLimited"
	ConditionMetricsStale   = "MetricsStale"
)

// EdgeAutoscaler scales a Deployment of Sensorcast edge pods by the live
// WebSocket connections they report, and removes the emptiest pods first.
//
// It has no scale subresource: it is not a workload with replicas of its own
// but the thing that scales one (like a HorizontalPodAutoscaler).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=eas,categories=sensorcast
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Min",type=integer,JSONPath=`.spec.minReplicas`
// +kubebuilder:printcolumn:name="Max",type=integer,JSONPath=`.spec.maxReplicas`
// +kubebuilder:printcolumn:name="Current",type=integer,JSONPath=`.status.currentReplicas`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="Connections",type=integer,JSONPath=`.status.totalConnections`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EdgeAutoscaler struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EdgeAutoscalerSpec   `json:"spec"`
	Status EdgeAutoscalerStatus `json:"status,omitempty"`
}

// EdgeAutoscalerList is a list of EdgeAutoscalers.
//
// +kubebuilder:object:root=true
type EdgeAutoscalerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EdgeAutoscaler `json:"items"`
}
