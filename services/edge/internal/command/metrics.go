package command

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the dispatcher's Prometheus collectors.
type Metrics struct {
	Sent    prometheus.Counter
	Results *prometheus.CounterVec
	Dropped *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_edge_commands_total",
			Help: "Commands sent to devices on behalf of this pod's connections.",
		}),
		Results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_edge_command_results_total",
			Help: "Command status changes forwarded to the requesting connection, by status.",
		}, []string{"status"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_edge_command_results_dropped_total",
			Help: "Command results not forwarded, by reason (late_or_duplicate, wrong_device, undecodable).",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Sent, m.Results, m.Dropped)
	}
	return m
}
