// Package v1alpha1 holds the autoscaling.sensorcast.io/v1alpha1 API: the
// EdgeAutoscaler, which scales a Deployment of edge pods by the WebSocket
// connections they report.
//
// +kubebuilder:object:generate=true
// +groupName=autoscaling.sensorcast.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of this API.
var GroupVersion = schema.GroupVersion{Group: "autoscaling.sensorcast.io", Version: "v1alpha1"}

// AddToScheme adds this API's types to s.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &EdgeAutoscaler{}, &EdgeAutoscalerList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
