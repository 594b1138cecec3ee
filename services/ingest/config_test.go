package ingest_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/envflag"
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
	}
	if cfg != want {
		t.Errorf("config = %+v\nwant     %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigValidateNamesTheBadSetting(t *testing.T) {
	valid := func() ingest.Config {
		return ingest.Config{MQTTURL: "mqtt://127.0.0.1:1883", MQTTClientID: "x", MQTTShareGroup: "g", MQTTKeepAlive: 30 * time.Second, MQTTSessionExpiry: time.Hour}
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
