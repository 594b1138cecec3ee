package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/internal/auth"
	"github.com/sensorcast/sensorcast/services/internal/commandqueue"
)

// ingressMsg is a device message as ingest received it.
type ingressMsg struct {
	subject string
	data    string
}

// fakeIngress answers device messages the way ingest does: it refuses
// payloads containing "bad" and stores the rest.
func fakeIngress(t *testing.T, e *testEdge) chan ingressMsg {
	t.Helper()
	got := make(chan ingressMsg, 100)
	sub, err := e.pub.QueueSubscribe(envelopev1.IngressWildcard, envelopev1.IngressQueue, func(m *nats.Msg) {
		got <- ingressMsg{m.Subject, string(m.Data)}
		if strings.Contains(string(m.Data), "bad") {
			data, _ := json.Marshal(envelopev1.IngressError{Reason: "invalid_fields", Error: `invalid_fields: "fields" is empty`})
			_ = m.Respond(data)
			return
		}
		_ = m.Respond(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.pub.Flush(); err != nil {
		t.Fatal(err)
	}
	return got
}

func nextIngress(t *testing.T, got chan ingressMsg) ingressMsg {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no device message reached ingest")
		return ingressMsg{}
	}
}

func deviceURL(e *testEdge) string { return strings.Replace(e.url, WSPath, DeviceWSPath, 1) }

func deviceToken(t *testing.T, deviceID string) string {
	t.Helper()
	tok, err := auth.MintHS256([]byte(testSecret), auth.Claims{DeviceID: deviceID}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func dialDevice(t *testing.T, e *testEdge, header http.Header, query string) *client {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(deviceURL(e)+query, header)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn}
}

type secrets map[string]string

func (s secrets) VerifyDeviceSecret(_ context.Context, in *registryv1.VerifyDeviceSecretRequest, _ ...grpc.CallOption) (*registryv1.VerifyDeviceSecretResponse, error) {
	want, ok := s[in.GetDeviceId()]
	return &registryv1.VerifyDeviceSecretResponse{Valid: ok && want == in.GetSecret()}, nil
}

func TestDevicesAreRefusedWithoutProofOfIdentity(t *testing.T) {
	e := startEdge(t, nil, func(d *Deps) { d.DeviceSecrets = secrets{"esp-1": "s3cret"} })
	basic := func(id, secret string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}}
	}
	for name, tc := range map[string]struct {
		header http.Header
		query  string
	}{
		"nothing":             {},
		"a dashboard's token": {query: "?token=" + token(t, "alice", "device:*")},
		"a forged token":      {query: "?token=" + deviceToken(t, "esp-1") + "x"},
		"a wrong secret":      {header: basic("esp-1", "guess")},
		"an unknown device":   {header: basic("esp-2", "s3cret")},
	} {
		_, resp, err := websocket.DefaultDialer.Dial(deviceURL(e)+tc.query, tc.header)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %v, %v; want 401", name, err, resp)
		}
	}
	// A device token's bearer cannot watch dashboards either.
	if _, resp, err := websocket.DefaultDialer.Dial(e.url+"?token="+deviceToken(t, "esp-1"), nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a device token on the dashboard endpoint: %v, %v; want 401", err, resp)
	}
	got := fakeIngress(t, e)
	dialDevice(t, e, basic("esp-1", "s3cret"), "")
	if m := nextIngress(t, got); m.subject != envelopev1.IngressSubject("esp-1", "status") || !strings.Contains(m.data, "online") {
		t.Errorf("a device with its registry credential: got %+v, want its online status", m)
	}
}

func TestADeviceOverWebSocketSendsReadingsAndAnswersCommands(t *testing.T) {
	e := startEdge(t, nil)
	got := fakeIngress(t, e)
	d := dialDevice(t, e, nil, "?token="+deviceToken(t, "esp-1"))
	if m := nextIngress(t, got); m.subject != envelopev1.IngressSubject("esp-1", "status") || m.data != `{"status":"online"}` {
		t.Fatalf("first message %+v, want online", m)
	}

	d.send(`{"type":"telemetry","payload":{"fields":{"temperature":21.5},"tags":{"site":"a"}}}`)
	if m := nextIngress(t, got); m.subject != envelopev1.IngressSubject("esp-1", "telemetry") || m.data != `{"fields":{"temperature":21.5},"tags":{"site":"a"}}` {
		t.Errorf("telemetry reached ingest as %+v", m)
	}
	d.send(`{"type":"telemetry","request_id":"r1","payload":{"fields":"bad"}}`)
	nextIngress(t, got)
	m := d.next()
	var perr struct{ Code, Error string }
	d.payload(m, &perr)
	if m.Type != "error" || m.RequestID != "r1" || perr.Code != "invalid_payload" || !strings.Contains(perr.Error, "fields") {
		t.Errorf("a rejected reading: got %s %s", m.Type, m.Payload)
	}
	for frame, code := range map[string]string{
		`{"type":"dance"}`: "unknown_type",
		`not json`:         "invalid_json",
		`{"type":"command_ack","payload":{"command_id":"x","status":"done"}}`: "invalid_payload",
	} {
		d.send(frame)
		m := d.next()
		d.payload(m, &perr)
		if m.Type != "error" || perr.Code != code {
			t.Errorf("%s: got %s %s, want %s", frame, m.Type, m.Payload, code)
		}
	}
	d.send(`{"type":"ping","request_id":"p"}`)
	if m := d.next(); m.Type != "pong" || m.RequestID != "p" {
		t.Errorf("ping: got %s", m.Type)
	}

	// A command, as the ingest replica that took it hands it over.
	results := subscribeSync(t, e.pub, commandv1.ResultSubject("edgetok"))
	cmd := &commandv1.Command{CommandId: "edgetok-1", DeviceId: "esp-1", Name: "blink", IssuedAt: timestamppb.Now(), TtlMs: 30_000}
	data, _ := proto.Marshal(cmd)
	reply, err := e.pub.Request(commandv1.DeviceSubject("esp-1"), data, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var accepted commandv1.Result
	if err := proto.Unmarshal(reply.Data, &accepted); err != nil || accepted.GetStatus() != commandv1.Status_STATUS_ACCEPTED {
		t.Fatalf("the device's edge answered %v, %v", &accepted, err)
	}
	m = d.next()
	var c struct {
		CommandID string `json:"command_id"`
		Name      string `json:"name"`
	}
	d.payload(m, &c)
	if m.Type != "command" || c.CommandID != "edgetok-1" || c.Name != "blink" {
		t.Fatalf("the device got %s %s", m.Type, m.Payload)
	}
	d.send(`{"type":"command_ack","payload":{"command_id":"edgetok-1","status":"succeeded","result":{"blinked":3}}}`)
	msg, err := results.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r commandv1.Result
	if err := proto.Unmarshal(msg.Data, &r); err != nil || r.GetStatus() != commandv1.Status_STATUS_SUCCEEDED || r.GetDeviceId() != "esp-1" {
		t.Errorf("relayed result %v, %v", &r, err)
	}

	// Gone: offline, and its commands go elsewhere.
	_ = d.conn.Close()
	if m := nextIngress(t, got); m.data != `{"status":"offline"}` {
		t.Errorf("after the device left: %+v, want offline", m)
	}
	eventually(t, func() bool {
		_, err := e.pub.Request(commandv1.DeviceSubject("esp-1"), data, time.Second)
		return err == nats.ErrNoResponders
	}, "the device's command subscription to go")
}

func subscribeSync(t *testing.T, nc *nats.Conn, subject string) *nats.Subscription {
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

func TestDevicesTheRegistryDoesNotAdmitAreRefused(t *testing.T) {
	cat := &catalog{devices: map[string]bool{"esp-1": true}}
	e := startEdge(t, nil, func(d *Deps) { d.Catalog = cat })
	dial := func(id string) int {
		_, resp, err := websocket.DefaultDialer.Dial(deviceURL(e)+"?token="+deviceToken(t, id), nil)
		if err == nil {
			t.Fatalf("%s connected", id)
		}
		return resp.StatusCode
	}
	if code := dial("esp-1"); code != http.StatusServiceUnavailable {
		t.Errorf("before the registry is loaded: %d, want 503", code)
	}
	cat.ready.Store(true)
	if code := dial("esp-2"); code != http.StatusForbidden {
		t.Errorf("an unknown device: %d, want 403", code)
	}
	fakeIngress(t, e)
	dialDevice(t, e, nil, "?token="+deviceToken(t, "esp-1"))
}

func TestAWebSocketDeviceGetsTheCommandsHeldForIt(t *testing.T) {
	e := startEdge(t, nil)
	fakeIngress(t, e)
	if err := commandqueue.Ensure(t.Context(), e.js); err != nil {
		t.Fatal(err)
	}
	hold := func(id string) {
		t.Helper()
		c := &commandv1.Command{CommandId: id, DeviceId: "esp-1", Name: "blink", IssuedAt: timestamppb.Now(), TtlMs: 60_000}
		data, _ := proto.Marshal(c)
		if err := commandqueue.Hold(t.Context(), e.js, e.pub, c, data, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(d *client, id string) {
		t.Helper()
		m := d.next()
		var c struct {
			CommandID string `json:"command_id"`
		}
		d.payload(m, &c)
		if m.Type != "command" || c.CommandID != id {
			t.Fatalf("got %s %s, want command %s", m.Type, m.Payload, id)
		}
	}
	hold("edgetok-1")
	hold("edgetok-2")
	d := dialDevice(t, e, nil, "?token="+deviceToken(t, "esp-1"))
	expect(d, "edgetok-1")
	expect(d, "edgetok-2")
	hold("edgetok-3") // while it is connected (a race with its connecting)
	expect(d, "edgetok-3")
	_ = d.conn.Close()

	// Taken means gone: the next connection gets nothing old.
	d = dialDevice(t, e, nil, "?token="+deviceToken(t, "esp-1"))
	d.send(`{"type":"ping","request_id":"p"}`)
	if m := d.next(); m.Type != "pong" {
		t.Fatalf("a command was delivered twice: %s %s", m.Type, m.Payload)
	}
}
