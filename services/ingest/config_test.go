package ingest_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/envflag"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
)

func parseConfig(t *testing.T, args []string, env map[string]string) (ingest.Config, error) {
	t.Helper()
	var cfg ingest.Config
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	err := envflag.Parse(fs, args, func(k string) string { return env[k] })
	return cfg, err
}

func TestConfigDefaultsWorkLocally(t *testing.T) {
	cfg, err := parseConfig(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if cfg.MQTTURL != "mqtt://127.0.0.1:1883" || cfg.MQTTShareGroup != "sensorcast-ingest" || cfg.MQTTKeepAlive != 30*time.Second {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	if cfg.Retention != roomstream.DefaultRetention {
		t.Errorf("retention defaults to %+v, want %+v", cfg.Retention, roomstream.DefaultRetention)
	}
	if !strings.HasPrefix(cfg.MQTTClientID, "sensorcast-ingest") {
		t.Errorf("default client id %q does not start with sensorcast-ingest", cfg.MQTTClientID)
	}
}

func TestConfigComesFromEnvironmentAndFlags(t *testing.T) {
	cfg, err := parseConfig(t, []string{"--mqtt-share-group=from-flag"}, map[string]string{
		"SENSORCAST_MQTT_URL":         "mqtt://a:1883, tls://b:8883",
		"SENSORCAST_MQTT_CLIENT_ID":   "ingest-0",
		"SENSORCAST_MQTT_USERNAME":    "user",
		"SENSORCAST_MQTT_PASSWORD":    "secret",
		"SENSORCAST_MQTT_SHARE_GROUP": "from-env",
		"SENSORCAST_MQTT_KEEPALIVE":   "10s",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ingest.Config{
		MQTTURL: "mqtt://a:1883, tls://b:8883", MQTTClientID: "ingest-0", MQTTUsername: "user", MQTTPassword: "secret",
		MQTTShareGroup: "from-flag", MQTTKeepAlive: 10 * time.Second, MQTTSessionExpiry: time.Hour,
		Retention: roomstream.DefaultRetention,
	}
	if cfg != want {
		t.Errorf("config = %+v\nwant     %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigRetentionComesFromEnvironmentAndFlags(t *testing.T) {
	cfg, err := parseConfig(t, []string{"--retention-max-age=2h", "--stream-memory"}, map[string]string{
		"SENSORCAST_RETENTION_MAX_AGE":      "3h",
		"SENSORCAST_RETENTION_MAX_PER_ROOM": "500",
		"SENSORCAST_RETENTION_MAX_BYTES":    "1073741824",
		"SENSORCAST_STREAM_REPLICAS":        "3",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := roomstream.Retention{MaxAge: 2 * time.Hour, MaxPerRoom: 500, MaxBytes: 1 << 30, Replicas: 3, Memory: true}
	if cfg.Retention != want {
		t.Errorf("retention = %+v\nwant        %+v", cfg.Retention, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigValidateNamesTheBadSetting(t *testing.T) {
	valid := func() ingest.Config {
		return ingest.Config{MQTTURL: "mqtt://127.0.0.1:1883", MQTTClientID: "x", MQTTShareGroup: "g", MQTTKeepAlive: 30 * time.Second, MQTTSessionExpiry: time.Hour,
			Retention: roomstream.DefaultRetention}
	}
	tests := []struct {
		name   string
		modify func(*ingest.Config)
		want   string
	}{
		{"an empty broker list", func(c *ingest.Config) { c.MQTTURL = " , " }, "SENSORCAST_MQTT_URL"},
		{"an unknown scheme", func(c *ingest.Config) { c.MQTTURL = "http://broker:1883" }, "SENSORCAST_MQTT_URL"},
		{"a URL without host", func(c *ingest.Config) { c.MQTTURL = "mqtt://" }, "SENSORCAST_MQTT_URL"},
		{"an empty client id", func(c *ingest.Config) { c.MQTTClientID = "" }, "SENSORCAST_MQTT_CLIENT_ID"},
		{"a share group with a slash", func(c *ingest.Config) { c.MQTTShareGroup = "a/b" }, "SENSORCAST_MQTT_SHARE_GROUP"},
		{"an empty share group", func(c *ingest.Config) { c.MQTTShareGroup = "" }, "SENSORCAST_MQTT_SHARE_GROUP"},
		{"a keepalive under a second", func(c *ingest.Config) { c.MQTTKeepAlive = 500 * time.Millisecond }, "SENSORCAST_MQTT_KEEPALIVE"},
		{"a keepalive in fractions", func(c *ingest.Config) { c.MQTTKeepAlive = 1500 * time.Millisecond }, "SENSORCAST_MQTT_KEEPALIVE"},
		{"a negative session expiry", func(c *ingest.Config) { c.MQTTSessionExpiry = -time.Second }, "SENSORCAST_MQTT_SESSION_EXPIRY"},
		{"no retention age", func(c *ingest.Config) { c.Retention.MaxAge = 0 }, "SENSORCAST_RETENTION_MAX_AGE"},
		{"a retention age under a second", func(c *ingest.Config) { c.Retention.MaxAge = 500 * time.Millisecond }, "SENSORCAST_RETENTION_MAX_AGE"},
		{"no messages per room", func(c *ingest.Config) { c.Retention.MaxPerRoom = 0 }, "SENSORCAST_RETENTION_MAX_PER_ROOM"},
		{"a stream of no bytes", func(c *ingest.Config) { c.Retention.MaxBytes = 0 }, "SENSORCAST_RETENTION_MAX_BYTES"},
		{"a negative byte limit other than -1", func(c *ingest.Config) { c.Retention.MaxBytes = -2 }, "SENSORCAST_RETENTION_MAX_BYTES"},
		{"no replicas", func(c *ingest.Config) { c.Retention.Replicas = 0 }, "SENSORCAST_STREAM_REPLICAS"},
		{"more replicas than JetStream allows", func(c *ingest.Config) { c.Retention.Replicas = 6 }, "SENSORCAST_STREAM_REPLICAS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.modify(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
			}
			if _, err := ingest.New(cfg, nil, nil, nil); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}
