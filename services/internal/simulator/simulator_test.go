package simulator_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"github.com/sensorcast/sensorcast/services/internal/mqtttest"
	"github.com/sensorcast/sensorcast/services/internal/simulator"
)

// observer records what devices publish, as ingest would see it.
type observer struct {
	mu        sync.Mutex
	online    map[string]bool
	offline   map[string]bool
	telemetry map[string][]*envelopev1.Telemetry
	acks      map[string][]*commandv1.Result // by command id
	errs      []error
	client    *paho.Client
}

func (o *observer) handle(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	o.mu.Lock()
	defer o.mu.Unlock()
	if strings.HasSuffix(p.Topic, "/commands") {
		return true, nil // the test's own commands
	}
	if devicemsg.IsAckTopic(p.Topic) {
		id, err := devicemsg.ParseAckTopic(p.Topic)
		if err == nil {
			var r *commandv1.Result
			if r, err = devicemsg.ParseCommandAck(id, p.Payload); err == nil {
				o.acks[r.GetCommandId()] = append(o.acks[r.GetCommandId()], r)
			}
		}
		if err != nil {
			o.errs = append(o.errs, err)
		}
		return true, nil
	}
	id, kind, err := devicemsg.ParseTopic(p.Topic)
	if err != nil {
		o.errs = append(o.errs, err)
		return true, nil
	}
	switch kind {
	case devicemsg.KindTelemetry:
		tm, err := devicemsg.ParseTelemetry(id, p.Payload, time.Now())
		if err != nil {
			o.errs = append(o.errs, err)
			return true, nil
		}
		o.telemetry[id] = append(o.telemetry[id], tm)
	case devicemsg.KindStatus:
		st, err := devicemsg.ParseStatus(id, p.Payload, time.Now())
		if err != nil {
			o.errs = append(o.errs, err)
			return true, nil
		}
		if st.GetStatus() == envelopev1.Status_STATUS_ONLINE {
			o.online[id] = true
		} else {
			o.offline[id] = true
		}
	}
	return true, nil
}

// watch subscribes an observer to devices/# on the broker.
func watch(t *testing.T, brokerURL string) *observer {
	t.Helper()
	o := &observer{online: map[string]bool{}, offline: map[string]bool{}, telemetry: map[string][]*envelopev1.Telemetry{}, acks: map[string][]*commandv1.Result{}}
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: "observer", Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){o.handle}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "observer", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		<-c.Done()
	})
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	o.client = c
	return o
}

// command publishes a command to a device as ingest would.
func (o *observer) command(t *testing.T, deviceID, id, name string, params map[string]any) {
	t.Helper()
	payload, err := json.Marshal(map[string]any{"command_id": id, "name": name, "params": params, "issued_at": time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	expiry := uint32(60)
	if _, err := o.client.Publish(ctx, &paho.Publish{Topic: devicemsg.CommandTopic(deviceID), QoS: 1, Payload: payload, Properties: &paho.PublishProperties{MessageExpiry: &expiry}}); err != nil {
		t.Fatal(err)
	}
}

// awaitAcks waits for a command's delivered and final acknowledgements.
func (o *observer) awaitAcks(t *testing.T, id string) (final *commandv1.Result) {
	t.Helper()
	waitFor(t, "the acknowledgements of "+id, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.acks[id]) >= 2
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	acks := o.acks[id]
	if len(acks) != 2 || acks[0].GetStatus() != commandv1.Status_STATUS_DELIVERED {
		t.Fatalf("acks of %s: %v, want delivered then a final status", id, acks)
	}
	return acks[1]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDevicesGoOnlineSendValidTelemetryAndGoOffline(t *testing.T) {
	// Registered first, so it runs after the broker and observer have gone.
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		waitFor(t, "the goroutines of the test to end", func() bool { return runtime.NumGoroutine() <= before })
	})
	brokerURL, _ := mqtttest.Start(t)
	o := watch(t, brokerURL)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	cfg := simulator.Config{BrokerURL: brokerURL, Devices: 3, Interval: 20 * time.Millisecond}
	go func() { done <- simulator.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	ids := []string{"sim-001", "sim-002", "sim-003"}
	waitFor(t, "every device online with 5 readings", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, id := range ids {
			if !o.online[id] || len(o.telemetry[id]) < 5 {
				return false
			}
		}
		return true
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	waitFor(t, "every device offline", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.offline) == len(ids)
	})

	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.errs) > 0 {
		t.Fatalf("devices sent messages the contract rejects: %v", o.errs)
	}
	if len(o.telemetry) != len(ids) {
		t.Errorf("telemetry from %d devices, want %d", len(o.telemetry), len(ids))
	}
	for id, readings := range o.telemetry {
		for _, r := range readings {
			f := r.GetFields()
			temp, hum, bat := f["temperature"].GetNumber(), f["humidity"].GetNumber(), f["battery"].GetNumber()
			if temp < 15 || temp > 35 || hum < 20 || hum > 90 || bat <= 0 || bat > 100 {
				t.Errorf("%s: implausible reading %v", id, f)
			}
			if _, ok := f["door_open"].GetKind().(*envelopev1.FieldValue_Flag); !ok {
				t.Errorf("%s: door_open is not a boolean: %v", id, f["door_open"])
			}
			if rssi := f["rssi"].GetNumber(); rssi != float64(int(rssi)) || rssi > 0 {
				t.Errorf("%s: rssi %v is not a negative whole dBm", id, rssi)
			}
			if r.GetTags()["model"] != "esp32-s3" || r.GetTags()["site"] == "" {
				t.Errorf("%s: tags %v", id, r.GetTags())
			}
		}
	}
}

func TestRunRejectsABadConfig(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, cfg := range map[string]simulator.Config{
		"no broker":             {},
		"a prefix with a slash": {BrokerURL: "mqtt://127.0.0.1:1883", Prefix: "a/"},
		"negative devices":      {BrokerURL: "mqtt://127.0.0.1:1883", Devices: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if err := simulator.Run(t.Context(), cfg, logger); err == nil {
				t.Fatal("Run accepted a bad config")
			}
		})
	}
}

func TestDevicesAnswerCommandsAndGetThoseSentWhileTheyWereAway(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		waitFor(t, "the goroutines of the test to end", func() bool { return runtime.NumGoroutine() <= before })
	})
	brokerURL, _ := mqtttest.Start(t)
	o := watch(t, brokerURL)
	cfg := simulator.Config{BrokerURL: brokerURL, Devices: 2, Interval: time.Hour}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func() (stop func()) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- simulator.Run(ctx, cfg, logger) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	online := func(want int) {
		waitFor(t, "the devices online", func() bool {
			o.mu.Lock()
			defer o.mu.Unlock()
			return len(o.online) == want
		})
	}

	stop := start()
	online(2)
	// Subscribed once online: the status is published before the
	// subscription, so wait for a command to come through.
	waitFor(t, "sim-001 answering", func() bool {
		o.command(t, "sim-001", "probe", "blink", nil)
		time.Sleep(50 * time.Millisecond)
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.acks["probe"]) > 0
	})

	o.command(t, "sim-001", "c-blink", "blink", map[string]any{"times": 2})
	if r := o.awaitAcks(t, "c-blink"); r.GetStatus() != commandv1.Status_STATUS_SUCCEEDED || r.GetResult().AsMap()["blinked"] != 2.0 {
		t.Errorf("blink: %v", r)
	}
	o.command(t, "sim-002", "c-dance", "dance", nil)
	if r := o.awaitAcks(t, "c-dance"); r.GetStatus() != commandv1.Status_STATUS_FAILED || !strings.Contains(r.GetResult().AsMap()["reason"].(string), "unknown command") {
		t.Errorf("dance: %v", r)
	}
	o.command(t, "sim-002", "c-bad", "blink", map[string]any{"times": "many"})
	if r := o.awaitAcks(t, "c-bad"); r.GetStatus() != commandv1.Status_STATUS_FAILED {
		t.Errorf("blink with bad params: %v", r)
	}

	// Away: the broker keeps the command in the device's session.
	stop()
	o.command(t, "sim-001", "c-later", "blink", nil)
	stop = start()
	defer stop()
	if r := o.awaitAcks(t, "c-later"); r.GetStatus() != commandv1.Status_STATUS_SUCCEEDED {
		t.Errorf("command sent while away: %v", r)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.errs) > 0 {
		t.Fatalf("devices sent messages the contract rejects: %v", o.errs)
	}
}
