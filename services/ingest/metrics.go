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
	alerts        *prometheus.CounterVec // by state (firing, resolved), once stored
	alertErrors   prometheus.Counter     // failed rule evaluations (state store unreachable)
	commands      *prometheus.CounterVec // by outcome (accepted, rejected), as answered to the edge
	commandAcks   *prometheus.CounterVec // by status, device acknowledgements relayed to the edge
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
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_ingest_alerts_total",
			Help: "Alerts raised by rule evaluation and stored in the room stream, by state (firing, resolved).",
		}, []string{"state"}),
		alertErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_ingest_alert_errors_total",
			Help: "Rule evaluations that failed because the alert state store could not be read or written.",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_ingest_commands_total",
			Help: "Commands answered to the edge, by outcome: accepted (the MQTT broker holds it for the device) or rejected.",
		}, []string{"outcome"}),
		commandAcks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_ingest_command_acks_total",
			Help: "Device acknowledgements of commands relayed to the edge, by status (delivered, succeeded, failed).",
		}, []string{"status"}),
	}
	for _, o := range []string{"accepted", "rejected"} {
		m.commands.WithLabelValues(o)
	}
	for _, st := range []string{"delivered", "succeeded", "failed"} {
		m.commandAcks.WithLabelValues(st)
	}
	m.alerts.WithLabelValues("firing")
	m.alerts.WithLabelValues("resolved")
	for _, k := range []devicemsg.Kind{devicemsg.KindTelemetry, devicemsg.KindStatus} {
		m.messages.WithLabelValues(k.String())
	}
	for _, r := range devicemsg.Reasons() {
		m.rejected.WithLabelValues(string(r))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.messages, m.rejected, m.publishErrors, m.mqttConnected, m.alerts, m.alertErrors, m.commands, m.commandAcks} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register ingest metrics: %w", err)
		}
	}
	return m, nil
}
