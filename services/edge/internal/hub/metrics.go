package hub

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the hub's Prometheus collectors.
type Metrics struct {
	Rooms         prometheus.Gauge
	RoomMessages  prometheus.Counter
	Deliveries    prometheus.Counter
	Dropped       *prometheus.CounterVec
	Replayed      prometheus.Counter
	CaughtUp      prometheus.Counter
	Gaps          prometheus.Counter
	FanoutLatency prometheus.Histogram
}

// NewMetrics creates the hub's collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sensorcast_edge_rooms",
			Help: "Rooms this pod holds a NATS subscription for.",
		}),
		RoomMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_edge_room_messages_total",
			Help: "Room messages received from NATS.",
		}),
		Deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_edge_deliveries_total",
			Help: "Room messages handed to local connections (one per recipient).",
		}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_edge_room_messages_dropped_total",
			Help: "Room messages dropped before fan-out, by reason.",
		}, []string{"reason"}),
		Replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_edge_replayed_messages_total",
			Help: "Stored room messages replayed to resuming connections (one per recipient).",
		}),
		CaughtUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_edge_caught_up_messages_total",
			Help: "Room messages fetched from the stream because the live path missed them.",
		}),
		Gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_edge_live_gaps_total",
			Help: "Gaps detected on the live path (each repaired from the stream).",
		}),
		FanoutLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sensorcast_edge_ingest_to_fanout_seconds",
			Help:    "Time from ingest accepting a message to this pod fanning it out.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Rooms, m.RoomMessages, m.Deliveries, m.Dropped, m.Replayed, m.CaughtUp, m.Gaps, m.FanoutLatency)
	}
	return m
}
