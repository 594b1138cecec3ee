package ingest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/mqtttest"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
)

// edgeToken plays the edge whose client sent the commands: results come
// back on its result subject.
const edgeToken = "edgetest"

// sendCommand makes the request an edge makes and returns the answer.
func sendCommand(t *testing.T, nc *nats.Conn, c *commandv1.Command) *commandv1.Result {
	t.Helper()
	data, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(commandv1.SendSubject(c.GetDeviceId()), data, 5*time.Second)
	if err != nil {
		t.Fatalf("command to %s: %v", c.GetDeviceId(), err)
	}
	var r commandv1.Result
	if err := proto.Unmarshal(msg.Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.GetCommandId() != c.GetCommandId() {
		t.Fatalf("answer %v is for another command than %s", &r, c.GetCommandId())
	}
	return &r
}

func newCommand(deviceID, unique, name string, params map[string]any, ttl time.Duration) *commandv1.Command {
	p, _ := structpb.NewStruct(params)
	return &commandv1.Command{
		CommandId: commandv1.NewCommandID(edgeToken, unique), DeviceId: deviceID, Name: name,
		Params: p, IssuedAt: timestamppb.Now(), TtlMs: ttl.Milliseconds(),
	}
}

// commandDevice is an MQTT device subscribed to its commands.
type commandDevice struct {
	client   *paho.Client
	commands chan *paho.Publish
}

func startCommandDevice(t *testing.T, brokerURL, id string) *commandDevice {
	t.Helper()
	d := &commandDevice{commands: make(chan *paho.Publish, 10)}
	c, _ := device(t, brokerURL, id, nil)
	c.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		d.commands <- pr.Packet
		return true, nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "devices/" + id + "/commands", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	d.client = c
	return d
}

func (d *commandDevice) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case p := <-d.commands:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no command reached the device")
		return nil
	}
}

func nextResult(t *testing.T, sub *nats.Subscription) *commandv1.Result {
	t.Helper()
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no command result relayed: %v", err)
	}
	var r commandv1.Result
	if err := proto.Unmarshal(msg.Data, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func reasonOf(r *commandv1.Result) string {
	s, _ := r.GetResult().AsMap()["reason"].(string)
	return s
}

func TestCommandsReachTheDeviceAndItsAcknowledgementsTheEdge(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, _ := mqtttest.Start(t)
	devices := staticDevices{
		"lamp":   {Enabled: true, Version: 1},
		"broken": {Enabled: false, Version: 1},
	}
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-commands", ingest.WithDevices(devices))
	results := subscribe(t, in.nc, commandv1.ResultSubject(edgeToken))
	lamp := startCommandDevice(t, mqttURL, "lamp")

	c := newCommand("lamp", "1", "blink", map[string]any{"times": 2}, 30*time.Second)
	if r := sendCommand(t, in.nc, c); r.GetStatus() != commandv1.Status_STATUS_ACCEPTED {
		t.Fatalf("answer %v, want accepted", r)
	}
	p := lamp.next(t)
	var got struct {
		CommandID string         `json:"command_id"`
		Name      string         `json:"name"`
		Params    map[string]any `json:"params"`
		IssuedAt  time.Time      `json:"issued_at"`
	}
	if err := json.Unmarshal(p.Payload, &got); err != nil {
		t.Fatalf("command payload %s: %v", p.Payload, err)
	}
	if got.CommandID != c.GetCommandId() || got.Name != "blink" || got.Params["times"] != 2.0 || time.Since(got.IssuedAt) > time.Minute {
		t.Errorf("device got %s", p.Payload)
	}
	if p.QoS != 1 || p.Properties == nil || p.Properties.MessageExpiry == nil || *p.Properties.MessageExpiry > 30 || *p.Properties.MessageExpiry < 25 {
		t.Errorf("command published with QoS %d and properties %+v, want QoS 1 expiring in its TTL", p.QoS, p.Properties)
	}

	ack := func(topic, payload string) { publish(t, lamp.client, topic, payload, nil) }
	ack("devices/lamp/commands/ack", `{"command_id":"`+c.GetCommandId()+`","status":"delivered"}`)
	ack("devices/lamp/commands/ack", `{"command_id":"`+c.GetCommandId()+`","status":"succeeded","result":{"blinked":2}}`)
	if r := nextResult(t, results); r.GetStatus() != commandv1.Status_STATUS_DELIVERED || r.GetDeviceId() != "lamp" {
		t.Errorf("first relayed result %v", r)
	}
	if r := nextResult(t, results); r.GetStatus() != commandv1.Status_STATUS_SUCCEEDED || r.GetResult().AsMap()["blinked"] != 2.0 {
		t.Errorf("second relayed result %v", r)
	}

	// Bad acknowledgements are counted and relayed nowhere.
	for _, payload := range []string{
		`not json`,
		`{"status":"succeeded"}`,
		`{"command_id":"` + c.GetCommandId() + `","status":"done"}`,
		`{"command_id":"nodash","status":"failed"}`,
	} {
		ack("devices/lamp/commands/ack", payload)
	}
	waitFor(t, 5*time.Second, "bad acknowledgements counted", func() bool {
		return counter(t, in.reg, "sensorcast_ingest_rejected_total", "reason=invalid_ack") == 3 &&
			counter(t, in.reg, "sensorcast_ingest_rejected_total", "reason=invalid_json") == 1
	})
	expectNothing(t, results, 100*time.Millisecond)

	for name, tc := range map[string]struct {
		cmd  *commandv1.Command
		want string
	}{
		"unknown device":  {newCommand("stranger", "2", "blink", nil, time.Minute), "no such device"},
		"disabled device": {newCommand("broken", "3", "blink", nil, time.Minute), "disabled"},
		"expired": {func() *commandv1.Command {
			c := newCommand("lamp", "4", "blink", nil, time.Second)
			c.IssuedAt = timestamppb.New(time.Now().Add(-time.Hour))
			return c
		}(), "expired"},
	} {
		r := sendCommand(t, in.nc, tc.cmd)
		if r.GetStatus() != commandv1.Status_STATUS_REJECTED || !strings.Contains(reasonOf(r), tc.want) {
			t.Errorf("%s: answer %v, want rejected with %q", name, r, tc.want)
		}
	}
	if n := counter(t, in.reg, "sensorcast_ingest_commands_total", "outcome=accepted"); n != 1 {
		t.Errorf("%v commands counted accepted, want 1", n)
	}
	if n := counter(t, in.reg, "sensorcast_ingest_commands_total", "outcome=rejected"); n != 3 {
		t.Errorf("%v commands counted rejected, want 3", n)
	}
	select {
	case p := <-lamp.commands:
		t.Errorf("a rejected command reached the device: %s", p.Payload)
	default:
	}
}

func TestCommandsAreRejectedByNoOneWhileNoReplicaReachesTheBroker(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, stopBroker := mqtttest.StartStoppable(t)
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-commands-down", ingest.WithDevices(staticDevices{"lamp": {Enabled: true}}))
	startCommandDevice(t, mqttURL, "lamp")
	if r := sendCommand(t, in.nc, newCommand("lamp", "1", "blink", nil, time.Minute)); r.GetStatus() != commandv1.Status_STATUS_ACCEPTED {
		t.Fatalf("answer %v, want accepted", r)
	}
	// With the broker gone the replica stops answering, so that a replica
	// that still reaches it takes the commands; with none left the edge
	// hears there are no responders.
	stopBroker()
	waitFor(t, 10*time.Second, "ingest to give up its command subscription", func() bool {
		data, _ := proto.Marshal(newCommand("lamp", "2", "blink", nil, time.Minute))
		_, err := in.nc.Request(commandv1.SendSubject("lamp"), data, time.Second)
		return err == nats.ErrNoResponders
	})
}

func TestCommandsGoToTheEdgeThatHoldsTheDevicesWebSocket(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, _ := mqtttest.Start(t)
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-commands-ws", ingest.WithDevices(staticDevices{"ws-dev": {Enabled: true}}))
	got := make(chan *commandv1.Command, 1)
	sub, err := in.nc.Subscribe(commandv1.DeviceSubject("ws-dev"), func(m *nats.Msg) {
		var c commandv1.Command
		_ = proto.Unmarshal(m.Data, &c)
		got <- &c
		data, _ := proto.Marshal(&commandv1.Result{CommandId: c.GetCommandId(), DeviceId: c.GetDeviceId(), Status: commandv1.Status_STATUS_ACCEPTED})
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	c := newCommand("ws-dev", "1", "blink", nil, time.Minute)
	if r := sendCommand(t, in.nc, c); r.GetStatus() != commandv1.Status_STATUS_ACCEPTED {
		t.Fatalf("answer %v, want accepted", r)
	}
	if c2 := <-got; c2.GetCommandId() != c.GetCommandId() || c2.GetName() != "blink" {
		t.Errorf("the edge got %v", c2)
	}
}
