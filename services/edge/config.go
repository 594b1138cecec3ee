// Package edge wires the WebSocket edge service: HTTP endpoints, token
// checks, rooms (hub), sessions, presence and graceful drain.
package edge

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sensorcast/sensorcast/services/edge/internal/session"
)

// Config is the edge's configuration; RegisterFlags binds it to flags
// (and through envflag to SENSORCAST_* variables).
type Config struct {
	HTTPAddr       string
	JWTSecret      string
	JWTPublicKeys  string // comma-separated PEM files
	JWKSURL        string
	AllowedOrigins string // comma-separated; "*" allows any
	RedisURL       string // empty: in-process presence (single pod only)
	PodName        string
	PresenceLease  time.Duration
	DrainPeriod    time.Duration
	NATSConns      int
	Session        session.Config
}

// RegisterFlags declares every edge setting on fs with working defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	d := session.Defaults()
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "address for /api/v1/ws, /healthz, /readyz and /metrics")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret for dashboard tokens")
	fs.StringVar(&c.JWTPublicKeys, "jwt-public-keys", "", "comma-separated PEM files of RS256/ES256 public keys for dashboard tokens")
	fs.StringVar(&c.JWKSURL, "jwt-jwks-url", "", "JWKS URL with the public keys for dashboard tokens")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated browser origins allowed to connect (empty: same host only; * allows any)")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL for presence and connection counts (empty: in-process, single pod only)")
	fs.StringVar(&c.PodName, "pod-name", host, "this pod's name in presence and connection counts")
	fs.DurationVar(&c.PresenceLease, "presence-lease", 15*time.Second, "how long a pod's presence outlives it if it dies without cleaning up")
	fs.DurationVar(&c.DrainPeriod, "drain-period", 10*time.Second, "on shutdown, connections are closed with 1012 spread over this period")
	fs.IntVar(&c.NATSConns, "nats-conns", 4, "NATS connections the pod spreads its room subscriptions over")
	fs.DurationVar(&c.Session.PingInterval, "ping-interval", d.PingInterval, "interval of WebSocket pings to clients")
	fs.DurationVar(&c.Session.PongTimeout, "pong-timeout", d.PongTimeout, "a connection silent for this long is dropped")
	fs.DurationVar(&c.Session.WriteTimeout, "write-timeout", d.WriteTimeout, "deadline of one write to a client")
	fs.Int64Var(&c.Session.MaxMessageBytes, "max-message-bytes", d.MaxMessageBytes, "largest client message; larger closes with 1009")
	fs.IntVar(&c.Session.SendQueue, "send-queue", d.SendQueue, "messages queued per connection before it is closed as a slow consumer (1013)")
	fs.Float64Var(&c.Session.RateLimit, "rate-limit", d.RateLimit, "client messages per second per connection")
	fs.IntVar(&c.Session.RateBurst, "rate-burst", d.RateBurst, "burst of client messages per connection")
	fs.IntVar(&c.Session.MaxRooms, "max-rooms", d.MaxRooms, "rooms one connection may be in")
	fs.Float64Var(&c.Session.CommandRate, "command-rate", d.CommandRate, "commands per second one connection may send (excess ones are rejected)")
	fs.IntVar(&c.Session.CommandBurst, "command-burst", d.CommandBurst, "commands a connection may send at once before command-rate applies")
	fs.DurationVar(&c.Session.CommandTimeout, "command-timeout", d.CommandTimeout, "how long a command waits for its device when the client gives no timeout_ms")
	fs.DurationVar(&c.Session.MaxCommandTimeout, "max-command-timeout", d.MaxCommandTimeout, "the longest timeout_ms a client may ask for")
	fs.IntVar(&c.Session.LatestDevices, "latest-devices", d.LatestDevices, "devices whose latest state a `latest` subscribe sends, per room")
}

// Validate checks the settings once at start, naming the bad one.
func (c Config) Validate() error {
	var errs []error
	if c.JWTSecret == "" && c.JWTPublicKeys == "" && c.JWKSURL == "" {
		errs = append(errs, errors.New("no token keys: set SENSORCAST_JWT_SECRET, SENSORCAST_JWT_PUBLIC_KEYS or SENSORCAST_JWT_JWKS_URL"))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 16 {
		errs = append(errs, errors.New("jwt-secret (SENSORCAST_JWT_SECRET) must be at least 16 bytes"))
	}
	if c.PodName == "" || strings.Contains(c.PodName, "|") {
		errs = append(errs, fmt.Errorf("pod-name (SENSORCAST_POD_NAME) %q must be non-empty and without '|'", c.PodName))
	}
	if c.PresenceLease < time.Second {
		errs = append(errs, fmt.Errorf("presence-lease (SENSORCAST_PRESENCE_LEASE) must be at least 1s, got %s", c.PresenceLease))
	}
	if c.DrainPeriod < 0 {
		errs = append(errs, fmt.Errorf("drain-period (SENSORCAST_DRAIN_PERIOD) must not be negative"))
	}
	if c.NATSConns < 1 || c.NATSConns > 64 {
		errs = append(errs, fmt.Errorf("nats-conns (SENSORCAST_NATS_CONNS) must be 1..64, got %d", c.NATSConns))
	}
	if err := c.Session.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
