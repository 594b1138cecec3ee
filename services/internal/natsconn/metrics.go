package natsconn

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the state of a service's NATS connections, read from
// the client at scrape time, so it costs nothing between scrapes.
type Collector struct {
	conns      []*nats.Conn
	reconnects *prometheus.Desc
	connected  *prometheus.Desc
}

// NewCollector reports on conns; register it with the service's registry.
func NewCollector(conns ...*nats.Conn) *Collector {
	return &Collector{
		conns: conns,
		reconnects: prometheus.NewDesc("sensorcast_nats_reconnects_total",
			"Times the NATS connection reconnected to a server, by connection.", []string{"connection"}, nil),
		connected: prometheus.NewDesc("sensorcast_nats_connected",
			"1 while the NATS connection is connected, else 0, by connection.", []string{"connection"}, nil),
	}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reconnects
	ch <- c.connected
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, nc := range c.conns {
		name := nc.Opts.Name
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(nc.Stats().Reconnects), name)
		connected := 0.0
		if nc.IsConnected() {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, connected, name)
	}
}
