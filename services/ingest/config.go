package ingest

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sensorcast/sensorcast/services/internal/envflag"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
)

// Config is everything the ingest service needs besides its NATS
// connection, which the command opens and shares.
type Config struct {
	// MQTTURL is one broker URL or a comma-separated list, tried in turn
	// (mqtt://, tls://, mqtts://, ws://, wss://).
	MQTTURL string
	// MQTTClientID names this instance's MQTT session. Keep it stable
	// across restarts (a StatefulSet pod name, not a random one): the
	// broker keeps unacknowledged messages in the session of that name
	// and hands them to whoever resumes it.
	MQTTClientID string
	MQTTUsername string
	MQTTPassword string
	// MQTTShareGroup is the shared-subscription group all ingest
	// instances join, so the broker gives each message to one of them.
	MQTTShareGroup string
	// MQTTKeepAlive is the MQTT keepalive, in whole seconds.
	MQTTKeepAlive time.Duration
	// MQTTSessionExpiry is how long the broker keeps this instance's
	// session (and queues its messages) while it is disconnected. An
	// instance that never comes back strands what the broker routed to its
	// session for this long; brokers differ in whether they hand a shared
	// subscription's messages to a connected member instead.
	MQTTSessionExpiry time.Duration
	// Retention is how much of each room the room stream keeps and how it
	// is stored. Ingest owns the stream: it creates it, or updates it to
	// this, at start.
	Retention roomstream.Retention
}

// RegisterFlags adds the ingest settings to fs, with defaults that work
// against a local broker. Each also reads its SENSORCAST_* variable when
// parsed with envflag.Parse.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.MQTTURL, "mqtt-url", "mqtt://127.0.0.1:1883", "MQTT broker URL, or a comma-separated list of them")
	fs.StringVar(&c.MQTTClientID, "mqtt-client-id", defaultClientID(), "MQTT client id; stable per instance so its session survives restarts")
	fs.StringVar(&c.MQTTUsername, "mqtt-username", "", "MQTT username")
	fs.StringVar(&c.MQTTPassword, "mqtt-password", "", "MQTT password")
	fs.StringVar(&c.MQTTShareGroup, "mqtt-share-group", "sensorcast-ingest", "MQTT shared-subscription group of all ingest instances")
	fs.DurationVar(&c.MQTTKeepAlive, "mqtt-keepalive", 30*time.Second, "MQTT keepalive")
	fs.DurationVar(&c.MQTTSessionExpiry, "mqtt-session-expiry", time.Hour, "how long the broker keeps the MQTT session of a disconnected instance")
	d := roomstream.DefaultRetention
	fs.DurationVar(&c.Retention.MaxAge, "retention-max-age", d.MaxAge, "how long the room stream keeps a message, for clients that resume")
	fs.Int64Var(&c.Retention.MaxPerRoom, "retention-max-per-room", d.MaxPerRoom, "messages the room stream keeps per room and message kind")
	fs.Int64Var(&c.Retention.MaxBytes, "retention-max-bytes", d.MaxBytes, "bytes the whole room stream may hold, oldest dropped first (-1: no limit)")
	fs.IntVar(&c.Retention.Replicas, "stream-replicas", d.Replicas, "copies of the room stream in a NATS cluster (1 to 5)")
	fs.BoolVar(&c.Retention.Memory, "stream-memory", d.Memory, "keep the room stream in memory instead of files: faster, but lost when NATS restarts")
}

func defaultClientID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "sensorcast-ingest"
	}
	return "sensorcast-ingest-" + host
}

// Validate reports the first bad setting, naming its flag and variable.
func (c Config) Validate() error {
	if _, err := c.serverURLs(); err != nil {
		return err
	}
	if c.MQTTClientID == "" {
		return settingError("mqtt-client-id", "must not be empty")
	}
	if c.MQTTShareGroup == "" || strings.ContainsAny(c.MQTTShareGroup, "/+#") {
		return settingError("mqtt-share-group", "must be a non-empty name without / + #")
	}
	if c.MQTTKeepAlive < time.Second || c.MQTTKeepAlive > 65535*time.Second || c.MQTTKeepAlive%time.Second != 0 {
		return settingError("mqtt-keepalive", "must be whole seconds from 1s to 65535s")
	}
	if c.MQTTSessionExpiry < 0 || c.MQTTSessionExpiry > (1<<32-1)*time.Second {
		return settingError("mqtt-session-expiry", "must be from 0s to 4294967295s")
	}
	return c.validateRetention()
}

// maxReplicas is JetStream's largest replication factor.
const maxReplicas = 5

func (c Config) validateRetention() error {
	r := c.Retention
	if r.MaxAge < time.Second {
		return settingError("retention-max-age", "must be at least 1s")
	}
	if r.MaxPerRoom < 1 {
		return settingError("retention-max-per-room", "must be at least 1")
	}
	if r.MaxBytes != -1 && r.MaxBytes < 1 {
		return settingError("retention-max-bytes", "must be positive, or -1 for no limit")
	}
	if r.Replicas < 1 || r.Replicas > maxReplicas {
		return settingError("stream-replicas", fmt.Sprintf("must be from 1 to %d", maxReplicas))
	}
	return nil
}

// serverURLs parses MQTTURL.
func (c Config) serverURLs() ([]*url.URL, error) {
	var urls []*url.URL
	for _, raw := range strings.Split(c.MQTTURL, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, settingError("mqtt-url", fmt.Sprintf("%q is not a URL: %v", raw, err))
		}
		switch u.Scheme {
		case "mqtt", "tcp", "tls", "ssl", "mqtts", "ws", "wss":
		default:
			return nil, settingError("mqtt-url", fmt.Sprintf("%q: scheme must be mqtt, tcp, tls, ssl, mqtts, ws or wss", raw))
		}
		if u.Host == "" {
			return nil, settingError("mqtt-url", fmt.Sprintf("%q has no host", raw))
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return nil, settingError("mqtt-url", "must name at least one broker")
	}
	return urls, nil
}

var errSetting = errors.New("invalid setting")

func settingError(flagName, problem string) error {
	return fmt.Errorf("%w: --%s (%s) %s", errSetting, flagName, envflag.EnvName(flagName), problem)
}
