package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
)

// fakeIngest answers command requests the way an ingest replica does and
// lets the test play the device's acknowledgements.
type fakeIngest struct {
	t        *testing.T
	nc       *nats.Conn
	commands chan *commandv1.Command
}

func startFakeIngest(t *testing.T, e *testEdge, answer commandv1.Status) *fakeIngest {
	t.Helper()
	f := &fakeIngest{t: t, nc: e.pub, commands: make(chan *commandv1.Command, 10)}
	sub, err := e.pub.QueueSubscribe(commandv1.SendWildcard, commandv1.SendQueue, func(m *nats.Msg) {
		var c commandv1.Command
		if err := proto.Unmarshal(m.Data, &c); err != nil {
			t.Error(err)
			return
		}
		f.commands <- &c
		data, _ := proto.Marshal(&commandv1.Result{CommandId: c.GetCommandId(), DeviceId: c.GetDeviceId(), Status: answer})
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.pub.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// ack plays a device acknowledgement relayed by ingest.
func (f *fakeIngest) ack(c *commandv1.Command, status commandv1.Status, result map[string]any) {
	f.t.Helper()
	f.ackAs(c.GetDeviceId(), c, status, result)
}

// ackAs plays an acknowledgement of c that deviceID sent.
func (f *fakeIngest) ackAs(deviceID string, c *commandv1.Command, status commandv1.Status, result map[string]any) {
	f.t.Helper()
	subject, ok := commandv1.ResultSubjectOf(c.GetCommandId())
	if !ok {
		f.t.Fatalf("command id %q routes nowhere", c.GetCommandId())
	}
	r, _ := structpb.NewStruct(result)
	data, _ := proto.Marshal(&commandv1.Result{CommandId: c.GetCommandId(), DeviceId: deviceID, Status: status, Result: r})
	if err := f.nc.Publish(subject, data); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeIngest) next() *commandv1.Command {
	f.t.Helper()
	select {
	case c := <-f.commands:
		return c
	case <-time.After(5 * time.Second):
		f.t.Fatal("no command reached ingest")
		return nil
	}
}

type commandResult struct {
	CommandID string         `json:"command_id"`
	DeviceID  string         `json:"device_id"`
	Status    string         `json:"status"`
	Result    map[string]any `json:"result"`
}

func (c *client) commandResult(requestID string) commandResult {
	c.t.Helper()
	m := c.next()
	if m.Type != "command_result" || m.RequestID != requestID {
		c.t.Fatalf("got %s (request %q) %s, want command_result for %q", m.Type, m.RequestID, m.Payload, requestID)
	}
	if bytes.Contains(m.Payload, []byte(`"result":null`)) {
		c.t.Errorf("command_result %s: a status without a result leaves it out", m.Payload)
	}
	var r commandResult
	c.payload(m, &r)
	return r
}

func commandToken(t *testing.T, commands ...string) string {
	t.Helper()
	tok, err := MintToken(testSecret, "operator", []string{"device:*"}, commands, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestACommandReportsEachStatusOnceAndInOrder(t *testing.T) {
	e := startEdge(t, nil)
	ingest := startFakeIngest(t, e, commandv1.Status_STATUS_ACCEPTED)
	c := e.dial(t, commandToken(t, "device:d1"))
	c.send(`{"type":"command","request_id":"c1","payload":{"device_id":"d1","name":"blink","params":{"times":3}}}`)

	sent := ingest.next()
	if sent.GetDeviceId() != "d1" || sent.GetName() != "blink" || sent.GetParams().AsMap()["times"] != 3.0 || sent.GetTtlMs() != 30_000 {
		t.Fatalf("ingest got %v", sent)
	}
	accepted := c.commandResult("c1")
	if accepted.Status != "accepted" || accepted.CommandID != sent.GetCommandId() || accepted.DeviceID != "d1" {
		t.Fatalf("first result %+v", accepted)
	}
	ingest.ackAs("intruder", sent, commandv1.Status_STATUS_SUCCEEDED, nil) // not the commanded device
	ingest.ack(sent, commandv1.Status_STATUS_DELIVERED, nil)
	ingest.ack(sent, commandv1.Status_STATUS_DELIVERED, nil) // a duplicate
	ingest.ack(sent, commandv1.Status_STATUS_SUCCEEDED, map[string]any{"blinked": true})
	ingest.ack(sent, commandv1.Status_STATUS_FAILED, nil)    // a second final status
	ingest.ack(sent, commandv1.Status_STATUS_DELIVERED, nil) // late
	if r := c.commandResult("c1"); r.Status != "delivered" {
		t.Fatalf("second result %+v, want delivered", r)
	}
	if r := c.commandResult("c1"); r.Status != "succeeded" || r.Result["blinked"] != true {
		t.Fatalf("third result %+v, want succeeded with the device's result", r)
	}
	// Nothing more for c1: a ping's pong comes next.
	c.send(`{"type":"ping","request_id":"p"}`)
	if m := c.next(); m.Type != "pong" {
		t.Fatalf("after the final status got %s %s, want pong", m.Type, m.Payload)
	}
}

func TestACommandTimesOutOnceAndLateAcksAreDropped(t *testing.T) {
	e := startEdge(t, nil)
	ingest := startFakeIngest(t, e, commandv1.Status_STATUS_ACCEPTED)
	c := e.dial(t, commandToken(t, "device:*"))
	c.send(`{"type":"command","request_id":"slow","payload":{"device_id":"asleep","name":"reboot","timeout_ms":300}}`)
	sent := ingest.next()
	if sent.GetTtlMs() != 300 {
		t.Fatalf("ttl %d, want 300", sent.GetTtlMs())
	}
	if r := c.commandResult("slow"); r.Status != "accepted" {
		t.Fatalf("got %+v", r)
	}
	if r := c.commandResult("slow"); r.Status != "timeout" {
		t.Fatalf("got %+v, want timeout", r)
	}
	ingest.ack(sent, commandv1.Status_STATUS_SUCCEEDED, nil) // too late
	c.send(`{"type":"ping","request_id":"p"}`)
	if m := c.next(); m.Type != "pong" {
		t.Fatalf("after the timeout got %s %s, want pong", m.Type, m.Payload)
	}
}

func TestCommandsAreRejectedWithAReason(t *testing.T) {
	e := startEdge(t, func(c *Config) { c.Session.CommandBurst = 2 })
	tok := commandToken(t, "device:d1")
	c := e.dial(t, tok)

	reasonOf := func(r commandResult) string { s, _ := r.Result["reason"].(string); return s }
	c.send(`{"type":"command","request_id":"x","payload":{"device_id":"d2","name":"blink"}}`)
	if r := c.commandResult("x"); r.Status != "rejected" || reasonOf(r) == "" {
		t.Errorf("a device the token does not grant: %+v", r)
	}
	c.send(`{"type":"command","request_id":"y","payload":{"device_id":"d1","name":"blink"}}`)
	if r := c.commandResult("y"); r.Status != "rejected" || reasonOf(r) != "devices are unreachable right now, try again" {
		t.Errorf("no ingest to take it: %+v", r)
	}
	c.send(`{"type":"command","request_id":"z","payload":{"device_id":"d1","name":"blink"}}`)
	c.commandResult("z")
	c.send(`{"type":"command","request_id":"w","payload":{"device_id":"d1","name":"blink"}}`)
	if r := c.commandResult("w"); r.Status != "rejected" || reasonOf(r) == "" {
		t.Errorf("over the connection's command burst: %+v", r)
	}
	for _, bad := range []string{
		`{"type":"command","request_id":"b1","payload":{"device_id":"d 1","name":"blink"}}`,
		`{"type":"command","request_id":"b2","payload":{"device_id":"d1","name":""}}`,
		`{"type":"command","request_id":"b3","payload":{"device_id":"d1","name":"blink","timeout_ms":-5}}`,
		`{"type":"command","request_id":"b4","payload":{"device_id":"d1","name":"blink","params":[1]}}`,
	} {
		c.send(bad)
		m := c.next()
		var p struct{ Code string }
		_ = json.Unmarshal(m.Payload, &p)
		if m.Type != "error" || p.Code != "invalid_payload" {
			t.Errorf("%s: got %s %s, want invalid_payload", bad, m.Type, m.Payload)
		}
	}
}

func TestStatusesArriveInOrderWhateverOrderTheyComeIn(t *testing.T) {
	e := startEdge(t, nil)
	// This ingest relays the device's outcome before it answers the
	// request, as two replicas may: the outcome implies delivered and
	// accepted, which the client sees first.
	sub, err := e.pub.QueueSubscribe(commandv1.SendWildcard, commandv1.SendQueue, func(m *nats.Msg) {
		var c commandv1.Command
		if err := proto.Unmarshal(m.Data, &c); err != nil {
			t.Error(err)
			return
		}
		subject, _ := commandv1.ResultSubjectOf(c.GetCommandId())
		done, _ := proto.Marshal(&commandv1.Result{CommandId: c.GetCommandId(), DeviceId: c.GetDeviceId(), Status: commandv1.Status_STATUS_SUCCEEDED})
		delivered, _ := proto.Marshal(&commandv1.Result{CommandId: c.GetCommandId(), DeviceId: c.GetDeviceId(), Status: commandv1.Status_STATUS_DELIVERED})
		accepted, _ := proto.Marshal(&commandv1.Result{CommandId: c.GetCommandId(), DeviceId: c.GetDeviceId(), Status: commandv1.Status_STATUS_ACCEPTED})
		_ = e.pub.Publish(subject, done)
		_ = e.pub.Publish(subject, delivered)
		_ = e.pub.Flush()
		time.Sleep(50 * time.Millisecond)
		_ = m.Respond(accepted)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.pub.Flush(); err != nil {
		t.Fatal(err)
	}
	c := e.dial(t, commandToken(t, "device:*"))
	c.send(`{"type":"command","request_id":"r","payload":{"device_id":"d1","name":"blink"}}`)
	for _, want := range []string{"accepted", "delivered", "succeeded"} {
		if r := c.commandResult("r"); r.Status != want || r.DeviceID != "d1" {
			t.Fatalf("got %+v, want %s", r, want)
		}
	}
	c.send(`{"type":"ping","request_id":"p"}`)
	if m := c.next(); m.Type != "pong" {
		t.Fatalf("after the final status got %s %s, want pong", m.Type, m.Payload)
	}
}

func TestACommandToAnUnknownDeviceSaysSoOnlyToThoseGrantedIt(t *testing.T) {
	cat := &catalog{devices: map[string]bool{"d1": true}}
	cat.ready.Store(true)
	e := startEdge(t, nil, func(d *Deps) { d.Catalog = cat })
	reasonOf := func(r commandResult) string { s, _ := r.Result["reason"].(string); return s }
	wide := e.dial(t, commandToken(t, "device:*"))
	wide.send(`{"type":"command","request_id":"g","payload":{"device_id":"ghost","name":"blink"}}`)
	if r := wide.commandResult("g"); r.Status != "rejected" || !strings.Contains(reasonOf(r), "no such device") {
		t.Errorf("a token granting every device: %+v", r)
	}
	narrow := e.dial(t, commandToken(t, "device:d1"))
	narrow.send(`{"type":"command","request_id":"g","payload":{"device_id":"ghost","name":"blink"}}`)
	if r := narrow.commandResult("g"); r.Status != "rejected" || !strings.Contains(reasonOf(r), "does not grant") {
		t.Errorf("a token granting d1 only: %+v", r)
	}
}

func TestAUserCannotEscapeTheCommandLimitWithMoreConnections(t *testing.T) {
	e := startEdge(t, nil)
	ingest := startFakeIngest(t, e, commandv1.Status_STATUS_ACCEPTED)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() { // take every command, so that the fake never waits
		for {
			select {
			case <-ingest.commands:
			case <-stop:
				return
			}
		}
	}()
	var conns []*client
	for range 3 {
		conns = append(conns, e.dial(t, commandToken(t, "device:*")))
	}
	reasonOf := func(r commandResult) string { s, _ := r.Result["reason"].(string); return s }
	limited := 0
	for i, c := range conns {
		for j := range 10 { // each connection within its own burst of 10
			id := fmt.Sprintf("c%d-%d", i, j)
			c.send(fmt.Sprintf(`{"type":"command","request_id":%q,"payload":{"device_id":"d%d-%d","name":"blink"}}`, id, i, j))
			if r := c.commandResult(id); r.Status == "rejected" {
				if !strings.Contains(reasonOf(r), "from this user") {
					t.Fatalf("%s: %+v", id, r)
				}
				limited++
			}
		}
	}
	// 30 commands against a burst of 20, refilled at 5 per second while
	// they are sent.
	if limited == 0 {
		t.Error("no command was refused by the per-user limit")
	}
	other, err := MintToken(testSecret, "someone-else", []string{"device:*"}, []string{"device:*"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial(t, other)
	c.send(`{"type":"command","request_id":"x","payload":{"device_id":"dx","name":"blink"}}`)
	if r := c.commandResult("x"); r.Status != "accepted" {
		t.Errorf("another user's command: %+v", r)
	}
}
