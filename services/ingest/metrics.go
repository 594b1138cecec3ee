package ingest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
)

// metrics are the service's Prometheus series. Every label value is
// created up front so dashboards show zeros rather than gaps.
type metrics struct {
	messages      *prometheus.CounterVec // by kind, once stored in the room stream
	rejected      *prometheus.CounterVec // by reason, for every bad message
	publishErrors prometheus.Counter     // every failed NATS attempt (retried)
	mqttConnected prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_ingest_messages_total",
			Help: "Device messages accepted and stored in the room stream, by kind (telemetry, status).",
		}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_ingest_rejected_total",
			Help: "Device messages rejected by validation, by reason; they are acknowledged and dropped.",
		}, []string{"reason"}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_ingest_publish_errors_total",
			Help: "Failed attempts to publish envelopes to the room stream (errors, timeouts, NATS away); each is retried until it succeeds.",
		}),
		mqttConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sensorcast_ingest_mqtt_connected",
			Help: "1 while connected to the MQTT broker, else 0.",
		}),
	}
	for _, k := range []devicemsg.Kind{devicemsg.KindTelemetry, devicemsg.KindStatus} {
		m.messages.WithLabelValues(k.String())
	}
	for _, r := range devicemsg.Reasons() {
		m.rejected.WithLabelValues(string(r))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.messages, m.rejected, m.publishErrors, m.mqttConnected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register ingest metrics: %w", err)
		}
	}
	return m, nil
}
