package e2e

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// metricsWait bounds the wait for a counter to catch up with what a client
// already saw: a service counts a message a moment after it passed it on.
const metricsWait = 10 * time.Second

// TestMetricsCountTheTraffic runs ingest and an edge as separate processes
// and checks, scraping their /metrics with Prometheus' own parser, that the
// metrics the chart's alerts and dashboard read say exactly what the test
// did: the readings one dashboard received, an invalid payload, the
// dashboard's connection and rooms, and a NATS restart.
func TestMetricsCountTheTraffic(t *testing.T) {
	harness.CheckGoroutines(t)
	redis := harness.StartRedis(t)
	mqtt := harness.StartMosquitto(t)
	nats := harness.StartNATS(t)
	ingest := sensorcast.StartIngest(t, "ingest-metrics", harness.Settings{
		"NATS_URL": nats.ClientURL(), "MQTT_URL": mqtt.URL, "MQTT_CLIENT_ID": "e2e-ingest-metrics", "MQTT_SHARE_GROUP": "e2e-metrics",
	})
	// More than one, to see each reported as its own connection.
	const edgeNATSConns = 2
	edge := sensorcast.StartEdge(t, "edge-metrics", harness.Settings{
		"NATS_URL": nats.ClientURL(), "NATS_CONNS": strconv.Itoa(edgeNATSConns), "REDIS_URL": redis.URL, "JWT_SECRET": jwtSecret,
	})
	ingestMetrics, edgeMetrics := ingest.AdminURL+"/metrics", edge.BaseURL+"/metrics"
	natsConns := map[string]int{ingestMetrics: 1, edgeMetrics: edgeNATSConns}
	warmUpEdges(t, mqtt, edge)

	const device = "metrics-001"
	topic := "devices/" + device + "/telemetry"
	dashboard := dial(t, edge, "mia")
	dashboard.MustSubscribe(t, "device:"+device)

	t.Run("gauges show the open connection, its room, NATS and Redis", func(t *testing.T) {
		// The warm-up's connections close in the background.
		harness.Eventually(t, metricsWait, func() error {
			m := harness.Scrape(t, edgeMetrics)
			return errors.Join(
				is(m, 1, "sensorcast_edge_connections"),
				is(m, 1, "sensorcast_edge_rooms"),
			)
		})
		for url, want := range natsConns {
			m := harness.Scrape(t, url)
			if err := everyConnection(m, "sensorcast_nats_connected", want, func(v float64) bool { return v == 1 }); err != nil {
				t.Errorf("%s: %v", url, err)
			}
		}
		m := harness.Scrape(t, edgeMetrics)
		if err := errors.Join(
			is(m, 0, "sensorcast_redis_dials_total", "result", "error"),
			atLeast(m, 1, "sensorcast_redis_dials_total", "result", "ok"),
		); err != nil {
			t.Error(err)
		}
	})

	const readings = 5
	ingestBefore := harness.Scrape(t, ingestMetrics)
	t.Run("each reading is counted once by ingest and once per room and recipient by the edge", func(t *testing.T) {
		edgeBefore := harness.Scrape(t, edgeMetrics)
		for n := 1; n <= readings; n++ {
			mqtt.Publish(t, topic, fmt.Appendf(nil, `{"fields":{"n":%d}}`, n), false)
		}
		dashboard.ExpectRoomMessages(t, readings)
		harness.Eventually(t, metricsWait, func() error {
			in, out := harness.Scrape(t, ingestMetrics), harness.Scrape(t, edgeMetrics)
			return errors.Join(
				grewBy(ingestBefore, in, readings, "sensorcast_ingest_messages_total", "kind", "telemetry"),
				grewBy(ingestBefore, in, 0, "sensorcast_ingest_rejected_total"),
				grewBy(edgeBefore, out, readings, "sensorcast_edge_room_messages_total"),
				grewBy(edgeBefore, out, readings, "sensorcast_edge_deliveries_total"),
				grewBy(edgeBefore, out, readings, "sensorcast_edge_ingest_to_fanout_seconds_count"),
				grewBy(edgeBefore, out, 0, "sensorcast_edge_room_messages_dropped_total"),
			)
		})
	})

	t.Run("an invalid payload counts as rejected for its reason, and as nothing else", func(t *testing.T) {
		mqtt.Publish(t, topic, []byte(`temperature=21.5`), false)
		harness.Eventually(t, metricsWait, func() error {
			in := harness.Scrape(t, ingestMetrics)
			return errors.Join(
				grewBy(ingestBefore, in, 1, "sensorcast_ingest_rejected_total", "reason", "invalid_json"),
				grewBy(ingestBefore, in, 1, "sensorcast_ingest_rejected_total"),
				// Still the readings alone: none was counted twice, late.
				grewBy(ingestBefore, in, readings, "sensorcast_ingest_messages_total"),
			)
		})
		dashboard.ExpectNoRoomMessage(t, quiet)
	})

	t.Run("a closed connection leaves the gauges and counts as a client close", func(t *testing.T) {
		before := harness.Scrape(t, edgeMetrics)
		dashboard.Close()
		harness.Eventually(t, metricsWait, func() error {
			m := harness.Scrape(t, edgeMetrics)
			return errors.Join(
				is(m, 0, "sensorcast_edge_connections"),
				is(m, 0, "sensorcast_edge_rooms"),
				grewBy(before, m, 1, "sensorcast_edge_connection_closes_total", "reason", "client"),
				grewBy(before, m, 1, "sensorcast_edge_connection_closes_total"),
			)
		})
	})

	t.Run("after a NATS restart every connection has reconnected and is connected", func(t *testing.T) {
		for url, want := range natsConns {
			if err := everyConnection(harness.Scrape(t, url), "sensorcast_nats_reconnects_total", want, func(v float64) bool { return v == 0 }); err != nil {
				t.Fatalf("%s before the restart: %v", url, err)
			}
		}
		nats.Restart(t)
		harness.Eventually(t, 30*time.Second, func() error {
			var errs []error
			for url, want := range natsConns {
				m := harness.Scrape(t, url)
				if err := errors.Join(
					everyConnection(m, "sensorcast_nats_reconnects_total", want, func(v float64) bool { return v >= 1 }),
					everyConnection(m, "sensorcast_nats_connected", want, func(v float64) bool { return v == 1 }),
				); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", url, err))
				}
			}
			return errors.Join(errs...)
		})
	})
}

// series writes a series the way PromQL selects it, for messages.
func series(name string, labels []string) string {
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	if len(pairs) == 0 {
		return name
	}
	return name + "{" + strings.Join(pairs, ", ") + "}"
}

// is checks that the series (summed, as Metrics.Value does) is want.
func is(m harness.Metrics, want float64, name string, labels ...string) error {
	if got := m.Value(name, labels...); got != want {
		return fmt.Errorf("%s is %v, want %v", series(name, labels), got, want)
	}
	return nil
}

// atLeast checks that the series is at least want.
func atLeast(m harness.Metrics, want float64, name string, labels ...string) error {
	if got := m.Value(name, labels...); got < want {
		return fmt.Errorf("%s is %v, want at least %v", series(name, labels), got, want)
	}
	return nil
}

// grewBy checks that the series grew by exactly want from before to after.
func grewBy(before, after harness.Metrics, want float64, name string, labels ...string) error {
	if got := after.Value(name, labels...) - before.Value(name, labels...); got != want {
		return fmt.Errorf("%s grew by %v, want %v", series(name, labels), got, want)
	}
	return nil
}

// everyConnection checks that name has a series for each of want NATS
// connections (its label "connection") and that ok holds for each value.
func everyConnection(m harness.Metrics, name string, want int, ok func(float64) bool) error {
	samples := m.Samples(name)
	if len(samples) != want {
		return fmt.Errorf("%s has %d series, want one for each of %d NATS connections: %v", name, len(samples), want, samples)
	}
	var errs []error
	for _, s := range samples {
		if !ok(s.Value) {
			errs = append(errs, fmt.Errorf("%s is %v", series(name, []string{"connection", s.Labels["connection"]}), s.Value))
		}
	}
	return errors.Join(errs...)
}
