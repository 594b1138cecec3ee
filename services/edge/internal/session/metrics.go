package session

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the sessions' Prometheus collectors, shared by all sessions.
type Metrics struct {
	Connections   prometheus.Gauge
	ClientFrames  *prometheus.CounterVec
	ClientErrors  *prometheus.CounterVec
	Closes        *prometheus.CounterVec
	QueueDepth    prometheus.Histogram
	FramesWritten prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sensorcast_edge_connections",
			Help: "Open dashboard WebSocket connections on this pod.",
		}),
		ClientFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_edge_client_messages_total",
			Help: "Client messages received, by type (unknown types count as \"unknown\").",
		}, []string{"type"}),
		ClientErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_edge_client_errors_total",
			Help: "Error replies sent to clients, by contract error code.",
		}, []string{"code"}),
		Closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_edge_connection_closes_total",
			Help: "Connections closed, by reason (slow_consumer, drain, too_large, timeout, client, write_error).",
		}, []string{"reason"}),
		QueueDepth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sensorcast_edge_write_batch_frames",
			Help:    "Frames written per coalesced write: the depth of a connection's queue when its writer ran.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		FramesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_edge_frames_written_total",
			Help: "Frames written to client sockets.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Connections, m.ClientFrames, m.ClientErrors, m.Closes, m.QueueDepth, m.FramesWritten)
	}
	return m
}
