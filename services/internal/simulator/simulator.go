// Package simulator plays a fleet of devices against an MQTT broker, for
// `make run` and demos: each device is its own MQTT v5 client that says it
// is online, sends plausible sensor readings and says it is offline when it
// stops, exactly as the wire contract (protocol.md section 2) asks of real
// devices, last will included.
package simulator

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sensorcast/sensorcast/services/internal/room"
)

// Defaults for the zero values of Config.
const (
	DefaultDevices  = 20
	DefaultInterval = time.Second
	DefaultPrefix   = "sim-"
)

// Config describes the simulated fleet. Zero values take the defaults.
type Config struct {
	// BrokerURL is the MQTT broker, e.g. mqtt://127.0.0.1:1883.
	BrokerURL string
	// Devices is how many devices to simulate.
	Devices int
	// Interval is the mean time between two readings of one device.
	Interval time.Duration
	// Prefix starts every device id; ids are Prefix plus a 3-digit number
	// (sim-001).
	Prefix string
	// WebSocketDevices more devices speak WebSocket to the edge at
	// WebSocketURL (ws://host:port/api/v1/device/ws) instead of MQTT, with
	// the tokens Token mints; their ids are Prefix, "ws-" and a number.
	WebSocketDevices int
	WebSocketURL     string
	Token            func(deviceID string) (string, error)
}

func (c Config) withDefaults() Config {
	if c.Devices == 0 && c.WebSocketDevices == 0 {
		c.Devices = DefaultDevices
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	return c
}

func (c Config) validate() (*url.URL, error) {
	u, err := url.Parse(c.BrokerURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("simulator: broker URL %q is not a URL with a host", c.BrokerURL)
	}
	if c.Devices < 0 {
		return nil, fmt.Errorf("simulator: %d devices", c.Devices)
	}
	if c.Interval < 0 {
		return nil, fmt.Errorf("simulator: negative interval %s", c.Interval)
	}
	if c.WebSocketDevices < 0 {
		return nil, fmt.Errorf("simulator: %d WebSocket devices", c.WebSocketDevices)
	}
	if c.WebSocketDevices > 0 {
		if u, err := url.Parse(c.WebSocketURL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, fmt.Errorf("simulator: WebSocket URL %q is not a ws:// or wss:// URL", c.WebSocketURL)
		}
		if c.Token == nil {
			return nil, fmt.Errorf("simulator: WebSocket devices need a token source")
		}
	}
	if err := room.CheckID(deviceID(c.Prefix, c.Devices)); err != nil {
		return nil, fmt.Errorf("simulator: prefix %q makes bad device ids: %w", c.Prefix, err)
	}
	return u, nil
}

func deviceID(prefix string, n int) string { return fmt.Sprintf("%s%03d", prefix, n) }

func wsDeviceID(prefix string, n int) string { return deviceID(prefix+"ws-", n) }

// Model is the hardware model every simulated device reports.
const Model = "esp32-s3"

// siteOf spreads devices over a few sites, so dashboards have groups to show.
func siteOf(n int) string { return [...]string{"building-a", "building-b", "warehouse-1"}[(n-1)%3] }

// Member is one device of the simulated fleet.
type Member struct {
	ID   string
	Site string // the "site" tag of its readings
}

// Fleet returns the devices Run simulates for cfg, so a caller can
// register them before they send anything.
func Fleet(cfg Config) []Member {
	cfg = cfg.withDefaults()
	out := make([]Member, 0, cfg.Devices+cfg.WebSocketDevices)
	for i := 1; i <= cfg.Devices; i++ {
		out = append(out, Member{ID: deviceID(cfg.Prefix, i), Site: siteOf(i)})
	}
	for i := 1; i <= cfg.WebSocketDevices; i++ {
		out = append(out, Member{ID: wsDeviceID(cfg.Prefix, i), Site: siteOf(cfg.Devices + i)})
	}
	return out
}

// Run simulates the fleet until ctx ends, then has every device publish
// offline and disconnect, and returns nil. Devices that cannot reach the
// broker keep retrying; that is logged, not returned.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	cfg = cfg.withDefaults()
	broker, err := cfg.validate()
	if err != nil {
		return err
	}
	logger.Info("simulating devices", "devices", cfg.Devices, "websocket_devices", cfg.WebSocketDevices, "interval", cfg.Interval, "broker", broker.Redacted())
	// One shared budget for connection warnings, so a missing broker gives a
	// line every few seconds, not one per device per retry.
	connectWarn := &rate.Sometimes{First: 1, Interval: 5 * time.Second}
	var wg sync.WaitGroup
	for i := 1; i <= cfg.Devices; i++ {
		d := newDevice(deviceID(cfg.Prefix, i), i, broker, cfg.Interval, logger, connectWarn)
		wg.Go(func() { d.run(ctx) })
	}
	for i := 1; i <= cfg.WebSocketDevices; i++ {
		// Their sensors are seeded apart from the MQTT devices'.
		n := cfg.Devices + i
		d := &wsDevice{
			id: wsDeviceID(cfg.Prefix, i), url: cfg.WebSocketURL, token: cfg.Token, interval: cfg.Interval,
			sensors: newSensors(n), jitter: rand.New(rand.NewPCG(uint64(n), 0x3eb50c)),
			logger: logger.With("device_id", wsDeviceID(cfg.Prefix, i)), connectWarn: connectWarn,
		}
		wg.Go(func() { d.run(ctx) })
	}
	wg.Wait()
	logger.Info("simulator stopped")
	return nil
}
