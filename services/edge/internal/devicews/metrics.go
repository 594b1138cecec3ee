package devicews

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the device connections' Prometheus collectors.
type Metrics struct {
	Connections prometheus.Gauge
	Messages    *prometheus.CounterVec // frames from devices, by type
	Rejected    *prometheus.CounterVec // device messages ingest refused, by error code
	Commands    prometheus.Counter     // commands queued for a device's socket
	Closes      *prometheus.CounterVec // ended connections, by reason
}

// NewMetrics creates the collectors and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sensorcast_edge_device_connections",
			Help: "Devices connected to this pod over WebSocket.",
		}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_edge_device_messages_total",
			Help: "Frames received from WebSocket devices, by type (telemetry, device_status, command_ack, invalid, rate_limited).",
		}, []string{"type"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_edge_device_rejected_total",
			Help: "WebSocket device messages that ingest did not store, by the error code the device got.",
		}, []string{"code"}),
		Commands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_edge_device_commands_total",
			Help: "Commands queued for devices connected to this pod over WebSocket.",
		}),
		Closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_edge_device_connection_closes_total",
			Help: "Ended WebSocket device connections, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Connections, m.Messages, m.Rejected, m.Commands, m.Closes)
	}
	return m
}
