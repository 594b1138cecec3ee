package envflag

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlagsThenEnvironmentThenDefaults(t *testing.T) {
	env := map[string]string{"SENSORCAST_NATS_URL": "nats://env:4222", "SENSORCAST_HTTP_ADDR": ":9999", "SENSORCAST_PING_INTERVAL": "5s"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	nats := fs.String("nats-url", "nats://default:4222", "")
	addr := fs.String("http-addr", ":8080", "")
	ping := fs.Duration("ping-interval", time.Minute, "")
	level := fs.String("log-level", "info", "")
	if err := Parse(fs, []string{"--http-addr", ":1234"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *nats != "nats://env:4222" || *addr != ":1234" || *ping != 5*time.Second || *level != "info" {
		t.Errorf("got nats=%s addr=%s ping=%s level=%s", *nats, *addr, *ping, *level)
	}
}

func TestABadValueNamesTheVariable(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Duration("pong-timeout", time.Minute, "")
	err := Parse(fs, nil, func(k string) string { return map[string]string{"SENSORCAST_PONG_TIMEOUT": "soon"}[k] })
	if err == nil || !strings.Contains(err.Error(), "SENSORCAST_PONG_TIMEOUT") {
		t.Errorf("err = %v, want it to name SENSORCAST_PONG_TIMEOUT", err)
	}
}
