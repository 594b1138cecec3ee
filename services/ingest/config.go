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
