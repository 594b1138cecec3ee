package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// deviceToken signs a device token: a JWT with a device_id claim.
func deviceToken(t *testing.T, deviceID string) string {
	t.Helper()
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"device_id": deviceID, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// dialDevice opens a device WebSocket, or returns the HTTP status that
// refused it.
func dialDevice(t *testing.T, edge *harness.Edge, header http.Header, query string) (*websocket.Conn, int) {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+edge.Addr+"/api/v1/device/ws"+query, header)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp == nil {
			t.Fatalf("dial the device WebSocket: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, http.StatusSwitchingProtocols
}

func basicAuth(id, secret string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}}
}

// TestDevicesOverWebSocketTakeTheMQTTPath runs a registry, an ingest and an
// edge that follow it. A device connects to the edge's device WebSocket
// with its registry credential; its readings reach its group's room, a
// bad one is refused back to it, the group's alert rule fires on its
// readings, and its connection and departure show as online and offline.
func TestDevicesOverWebSocketTakeTheMQTTPath(t *testing.T) {
	harness.CheckGoroutines(t)
	mqtt := harness.StartMosquitto(t)
	natsURL := harness.StartNATS(t).ClientURL()
	reg := sensorcast.StartRegistry(t, "registry-devws", harness.Settings{"NATS_URL": natsURL, "JWT_SECRET": jwtSecret})
	admin := harness.AdminToken(t, jwtSecret)
	api := registryClient(t, reg.GRPCAddr, admin)
	ctx := t.Context()
	const secret = "a-long-enough-device-secret"
	must(t, call(api.CreateGroup(ctx, &registryv1.CreateGroupRequest{Group: &registryv1.Group{Id: "lab"}})))
	must(t, call(api.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{Id: "esp-a", Groups: []string{"lab"}, Enabled: true}})))
	must(t, call(api.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{Id: "esp-off", Enabled: false}})))
	must(t, call(api.SetDeviceSecret(ctx, &registryv1.SetDeviceSecretRequest{DeviceId: "esp-a", Secret: secret})))
	must(t, call(api.CreateAlertRule(ctx, &registryv1.CreateAlertRuleRequest{AlertRule: &registryv1.AlertRule{
		Name: "lab too hot", Target: &registryv1.AlertRule_GroupId{GroupId: "lab"},
		Field: "temperature", Operator: registryv1.Operator_OPERATOR_GT, Threshold: 100,
		Severity: registryv1.Severity_SEVERITY_CRITICAL, Hold: durationpb.New(0), Cooldown: durationpb.New(0), Enabled: true,
	}})))

	follow := harness.Settings{"NATS_URL": natsURL, "REGISTRY_URL": reg.GRPCAddr, "REGISTRY_TOKEN": admin}
	sensorcast.StartIngest(t, "ingest-devws", withSettings(follow, harness.Settings{
		"MQTT_URL": mqtt.URL, "MQTT_CLIENT_ID": "e2e-ingest-devws", "MQTT_SHARE_GROUP": "e2e-devws",
	}))
	edge := sensorcast.StartEdge(t, "edge-devws", withSettings(follow, harness.Settings{"JWT_SECRET": jwtSecret}))
	dash := harness.Dial(t, "dashboard", edge.WSURL, harness.Token(t, jwtSecret, "alice", time.Hour, "*"), harness.DialOptions{})
	dash.MustSubscribe(t, "group:lab")

	for name, tc := range map[string]struct {
		header http.Header
		query  string
		want   int
	}{
		"a wrong secret":        {header: basicAuth("esp-a", "not-the-secret"), want: http.StatusUnauthorized},
		"an unknown device":     {header: basicAuth("esp-x", secret), want: http.StatusUnauthorized},
		"a disabled device":     {query: "?token=" + deviceToken(t, "esp-off"), want: http.StatusForbidden},
		"an unregistered token": {query: "?token=" + deviceToken(t, "esp-x"), want: http.StatusForbidden},
		"a dashboard token":     {query: "?token=" + harness.Token(t, jwtSecret, "alice", time.Hour, "*"), want: http.StatusUnauthorized},
	} {
		if _, got := dialDevice(t, edge, tc.header, tc.query); got != tc.want {
			t.Errorf("%s: HTTP %d, want %d", name, got, tc.want)
		}
	}

	dev, status := dialDevice(t, edge, basicAuth("esp-a", secret), "")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("esp-a with its credential: HTTP %d", status)
	}
	await := func(what string, match func(harness.Message) bool) harness.Message {
		t.Helper()
		m, err := dash.Await(alertWait, func(m harness.Message) bool { return m.Room == "group:lab" && match(m) })
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return m
	}
	isStatus := func(status string) func(harness.Message) bool {
		return func(m harness.Message) bool {
			var p harness.DeviceStatus
			return m.Type == "device_status" && json.Unmarshal(m.Payload, &p) == nil && p.DeviceID == "esp-a" && p.Status == status
		}
	}
	await("esp-a online", isStatus("online"))

	send := func(frame string) {
		t.Helper()
		if err := dev.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"type":"telemetry","payload":{"fields":{"temperature":21.5},"tags":{"mark":"ws-1"}}}`)
	await("esp-a's reading", func(m harness.Message) bool {
		var p harness.Telemetry
		return m.Type == "telemetry" && json.Unmarshal(m.Payload, &p) == nil && p.DeviceID == "esp-a" && p.Tags["mark"] == "ws-1"
	})
	send(`{"type":"telemetry","request_id":"bad","payload":{"fields":{"temperature":[1]}}}`)
	_ = dev.SetReadDeadline(time.Now().Add(alertWait))
	var reply struct {
		Type      string `json:"type"`
		RequestID string `json:"request_id"`
		Payload   struct{ Code, Error string }
	}
	if err := dev.ReadJSON(&reply); err != nil {
		t.Fatal(err)
	}
	if reply.Type != "error" || reply.RequestID != "bad" || reply.Payload.Code != "invalid_payload" || !strings.Contains(reply.Payload.Error, "invalid_field_type") {
		t.Errorf("a bad reading got %+v", reply)
	}
	send(`{"type":"telemetry","payload":{"fields":{"temperature":120}}}`)
	alert := await("the lab's alert on esp-a's reading", func(m harness.Message) bool { return m.Type == "alert" })
	var a alertPayload
	alert.Decode(t, &a)
	if a.DeviceID != "esp-a" || a.State != "firing" || a.Value == nil || *a.Value != 120 {
		t.Errorf("alert %s", alert)
	}

	_ = dev.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	await("esp-a offline", isStatus("offline"))
}
