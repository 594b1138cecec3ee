// Package mqtttest runs an embedded MQTT broker (mochi-mqtt, MQTT 3.1.1 and
// 5) on a free loopback port for a test, so tests speak real MQTT over TCP
// without anything installed on the machine.
package mqtttest

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Start runs a broker that allows every client until the test ends. It
// returns the broker's URL (mqtt://127.0.0.1:<port>) and the broker itself,
// for tests that inspect sessions (Clients.Get(id).State.Inflight).
func Start(tb testing.TB) (string, *mqtt.Server) {
	tb.Helper()
	url, s, _ := start(tb)
	return url, s
}

// StartStoppable is Start that also returns a function that stops the
// broker early, for tests of a broker outage.
func StartStoppable(tb testing.TB) (string, func()) {
	tb.Helper()
	url, _, stop := start(tb)
	return url, stop
}

func start(tb testing.TB) (string, *mqtt.Server, func()) {
	s := mqtt.New(&mqtt.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		tb.Fatalf("mqtt broker hook: %v", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := s.AddListener(tcp); err != nil {
		tb.Fatalf("mqtt broker listener: %v", err)
	}
	if err := s.Serve(); err != nil {
		tb.Fatalf("mqtt broker: %v", err)
	}
	stop := sync.OnceFunc(func() { _ = s.Close() })
	tb.Cleanup(stop)
	return "mqtt://" + tcp.Address(), s, stop
}
