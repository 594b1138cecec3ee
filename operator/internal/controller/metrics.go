package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the operator's Prometheus series, labelled by autoscaler
// ("namespace/name").
type Metrics struct {
	connections *prometheus.GaugeVec
	unknownPods *prometheus.GaugeVec
	desired     *prometheus.GaugeVec
	current     *prometheus.GaugeVec
	scales      *prometheus.CounterVec
	sheds       *prometheus.CounterVec
	readErrors  *prometheus.CounterVec
}

// NewMetrics registers the series with reg (controller-runtime's
// metrics.Registry in the binary, so they are served beside its own).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sensorcast_operator_connections",
			Help: "Connections the edge pods of an autoscaler's target reported (known reports plus the estimate for unknown ones).",
		}, []string{"autoscaler"}),
		unknownPods: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sensorcast_operator_unknown_pods",
			Help: "Ready edge pods whose connection report is missing or stale.",
		}, []string{"autoscaler"}),
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sensorcast_operator_desired_replicas",
			Help: "Replicas the operator decided the target should run.",
		}, []string{"autoscaler"}),
		current: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sensorcast_operator_current_replicas",
			Help: "Replicas the target had when last observed.",
		}, []string{"autoscaler"}),
		scales: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_operator_scale_changes_total",
			Help: "Changes the operator made to a target's replicas, by direction (up, down).",
		}, []string{"autoscaler", "direction"}),
		sheds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_operator_shed_requests_total",
			Help: "Requests to overloaded edge pods to close some of their connections.",
		}, []string{"autoscaler"}),
		readErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_operator_report_read_errors_total",
			Help: "Failed reads of the edge pods' reports from Redis.",
		}, []string{"autoscaler"}),
	}
	reg.MustRegister(m.connections, m.unknownPods, m.desired, m.current, m.scales, m.sheds, m.readErrors)
	return m
}

func (m *Metrics) forget(autoscaler string) {
	for _, v := range []*prometheus.GaugeVec{m.connections, m.unknownPods, m.desired, m.current} {
		v.DeleteLabelValues(autoscaler)
	}
	for _, v := range []*prometheus.CounterVec{m.scales, m.sheds, m.readErrors} {
		v.DeletePartialMatch(prometheus.Labels{"autoscaler": autoscaler})
	}
}
