package ingest_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/natsconn"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
)

// waitFor polls cond until it holds or timeout passes; tests poll rather
// than sleep so they are fast when things are fast and patient on a busy
// machine.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkGoroutineLeaks fails the test if goroutines started during it are
// still running once all its cleanups (registered later, so run earlier)
// have finished.
func checkGoroutineLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before the test, %d after:\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// testLogger collects logs and prints them only when the test fails, and
// never writes through t after the test (late NATS callbacks may log).
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			t.Logf("service logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// instance is a running ingest service and what it was given.
type instance struct {
	svc *ingest.Service
	nc  *nats.Conn
	reg *prometheus.Registry
}

// testConfig is a valid configuration for an instance named clientID.
func testConfig(mqttURL, clientID string) ingest.Config {
	return ingest.Config{
		MQTTURL:           mqttURL,
		MQTTClientID:      clientID,
		MQTTShareGroup:    "sensorcast-ingest",
		MQTTKeepAlive:     30 * time.Second,
		MQTTSessionExpiry: time.Minute,
		Retention:         roomstream.DefaultRetention,
	}
}

// startIngest runs an ingest service against the brokers until the test
// ends, and waits until it is ready.
func startIngest(t *testing.T, natsURL, mqttURL, clientID string, opts ...ingest.Option) *instance {
	t.Helper()
	in, _ := startIngestConfig(t, natsURL, testConfig(mqttURL, clientID), opts...)
	return in
}

// startIngestStoppable is startIngest that also returns a function to stop
// the service early; it checks that Run returns nil.
func startIngestStoppable(t *testing.T, natsURL, mqttURL, clientID string, opts ...ingest.Option) (*instance, func()) {
	t.Helper()
	return startIngestConfig(t, natsURL, testConfig(mqttURL, clientID), opts...)
}

// startIngestConfig is startIngestStoppable with the whole configuration.
// The NATS connection is opened the way the command opens ingest's.
func startIngestConfig(t *testing.T, natsURL string, cfg ingest.Config, opts ...ingest.Option) (*instance, func()) {
	t.Helper()
	clientID := cfg.MQTTClientID
	logger := testLogger(t).With("instance", clientID)
	nc, err := natsconn.Connect(t.Context(), natsURL, clientID, logger,
		nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg := prometheus.NewRegistry()
	svc, err := ingest.New(cfg, nc, logger, reg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
	})
	t.Cleanup(stop)
	waitFor(t, 10*time.Second, "ingest ready", func() bool { return svc.Ready() == nil })
	return &instance{svc: svc, nc: nc, reg: reg}, stop
}

// device connects an MQTT v5 client the way a device would, with an
// optional last will, and returns it with its raw connection (close that
// to make the device vanish without DISCONNECT).
func device(t *testing.T, brokerURL, id string, will *paho.WillMessage) (*paho.Client, net.Conn) {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: id, Conn: conn})
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}
	if will != nil {
		cp.WillMessage = will
		cp.WillProperties = &paho.WillProperties{}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, cp); err != nil {
		t.Fatalf("device %s connect: %v", id, err)
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		<-c.Done()
	})
	return c, conn
}

// publish sends a QoS 1 message from a device and waits for the broker's
// PUBACK.
func publish(t *testing.T, c *paho.Client, topic, payload string, props *paho.PublishProperties) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload), Properties: props}); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

// counter returns the value of a counter or gauge series in reg, 0 if it
// does not exist; labels are name=value pairs.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, want := range labels {
				k, v, _ := strings.Cut(want, "=")
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// subscribe returns a synchronous subscription on subject, in place on the
// server before it returns.
func subscribe(t *testing.T, nc *nats.Conn, subject string) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}
