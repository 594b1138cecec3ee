package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

func TestDecodeClient(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantType  string
		wantReqID string
		wantCode  string
	}{
		{name: "a subscribe decodes", in: `{"type":"subscribe","request_id":"r1","payload":{"rooms":["global"]}}`, wantType: "subscribe", wantReqID: "r1"},
		{name: "surrounding whitespace is fine", in: " \n{\"type\":\"ping\"} ", wantType: "ping"},
		{name: "unknown fields are ignored", in: `{"type":"ping","future":1}`, wantType: "ping"},
		{name: "not JSON is invalid_json", in: `hello`, wantCode: CodeInvalidJSON},
		{name: "truncated JSON is invalid_json", in: `{"type":"ping"`, wantCode: CodeInvalidJSON},
		{name: "a JSON array is invalid_json", in: `["ping"]`, wantCode: CodeInvalidJSON},
		{name: "an empty frame is invalid_json", in: ``, wantCode: CodeInvalidJSON},
		{name: "a missing type is invalid_payload", in: `{"request_id":"r2"}`, wantReqID: "r2", wantCode: CodeInvalidPayload},
		{name: "a numeric type is invalid_payload and keeps the request id", in: `{"type":5,"request_id":"r3"}`, wantReqID: "r3", wantCode: CodeInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeClient([]byte(tt.in))
			if tt.wantCode != "" {
				var perr *ProtocolError
				if !errors.As(err, &perr) || perr.Code != tt.wantCode {
					t.Fatalf("err = %v, want code %s", err, tt.wantCode)
				}
			} else if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if m.Type != tt.wantType && tt.wantCode == "" {
				t.Errorf("type = %q, want %q", m.Type, tt.wantType)
			}
			if m.RequestID != tt.wantReqID {
				t.Errorf("request_id = %q, want %q", m.RequestID, tt.wantReqID)
			}
		})
	}
}

func TestDecodePayload(t *testing.T) {
	var p SubscribePayload
	if err := DecodePayload(json.RawMessage(`{"rooms":"global"}`), &p); err == nil || !strings.Contains(err.Error(), "rooms") {
		t.Errorf("rooms as a string: err = %v, want a wrong-type error naming rooms", err)
	}
	if err := DecodePayload(nil, &p); err == nil {
		t.Error("missing payload: want an error")
	}
	if err := DecodePayload(json.RawMessage(`{"rooms":["a"],"since":{"a":7},"latest":true}`), &p); err != nil || p.Since["a"] != 7 || !p.Latest {
		t.Errorf("full payload: %+v, %v", p, err)
	}
}

func TestRoomFrameRendersTelemetryAsTheContractSays(t *testing.T) {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)
	env := &envelopev1.Envelope{Body: &envelopev1.Envelope_Telemetry{Telemetry: &envelopev1.Telemetry{
		DeviceId:  "sensor-001",
		Timestamp: timestamppb.New(ts),
		Fields: map[string]*envelopev1.FieldValue{
			"temperature": {Kind: &envelopev1.FieldValue_Number{Number: 28.7}},
			"door":        {Kind: &envelopev1.FieldValue_Flag{Flag: true}},
			"mode":        {Kind: &envelopev1.FieldValue_Text{Text: "eco \"quoted\"\n\x01<é>\u2028"}},
			"big":         {Kind: &envelopev1.FieldValue_Number{Number: 1e21}},
			"tiny":        {Kind: &envelopev1.FieldValue_Number{Number: 1e-9}},
			"count":       {Kind: &envelopev1.FieldValue_Number{Number: 42}},
		},
		Tags: map[string]string{"site": "a", "bad": "\xff"},
	}}}
	frame, err := RoomFrame("device:sensor-001", 1041, env, ts)
	if err != nil {
		t.Fatal(err)
	}
	payload := unframe(t, frame)
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatalf("frame payload is not JSON: %v\n%s", err, payload)
	}
	if got["type"] != "telemetry" || got["room"] != "device:sensor-001" || got["seq"] != 1041.0 || got["timestamp"] != "2026-11-22T10:00:00.123Z" {
		t.Errorf("envelope fields wrong: %s", payload)
	}
	p := got["payload"].(map[string]any)
	fields := p["fields"].(map[string]any)
	if p["device_id"] != "sensor-001" || fields["temperature"] != 28.7 || fields["door"] != true || fields["count"] != 42.0 ||
		fields["big"] != 1e21 || fields["tiny"] != 1e-9 || fields["mode"] != "eco \"quoted\"\n\x01<é>\u2028" {
		t.Errorf("payload wrong: %s", payload)
	}
	if tags := p["tags"].(map[string]any); tags["site"] != "a" || tags["bad"] != "\ufffd" {
		t.Errorf("tags wrong: %s", payload)
	}
	// Same reading, same bytes: keys are sorted.
	again, _ := RoomFrame("device:sensor-001", 1041, env, ts)
	if string(again) != string(frame) {
		t.Error("rendering is not deterministic")
	}
}

func TestRoomFrameRendersAlerts(t *testing.T) {
	ts := time.Date(2025, 6, 1, 12, 0, 7, 0, time.UTC)
	env := &envelopev1.Envelope{Body: &envelopev1.Envelope_Alert{Alert: &envelopev1.Alert{
		AlertId: "a-17", DeviceId: "sensor-001", RuleId: "rule-1", RuleName: "too hot",
		Severity: envelopev1.AlertSeverity_ALERT_SEVERITY_CRITICAL, Field: "temperature",
		Value: 41.2, Threshold: 40, State: envelopev1.AlertState_ALERT_STATE_FIRING, Timestamp: timestamppb.New(ts),
	}}}
	frame, err := RoomFrame("group:building-a", 9, env, ts)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"alert","room":"group:building-a","seq":9,"payload":{"alert_id":"a-17","device_id":"sensor-001","rule_id":"rule-1","rule_name":"too hot","severity":"critical","field":"temperature","value":41.2,"threshold":40,"state":"firing","timestamp":"2025-06-01T12:00:07.000Z"},"timestamp":"2025-06-01T12:00:07.000Z"}`
	if got := string(unframe(t, frame)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	env.GetAlert().State = envelopev1.AlertState_ALERT_STATE_RESOLVED
	env.GetAlert().Severity = envelopev1.AlertSeverity_ALERT_SEVERITY_INFO
	frame, _ = RoomFrame("global", 10, env, ts)
	var got struct {
		Payload struct{ State, Severity string } `json:"payload"`
	}
	if err := json.Unmarshal(unframe(t, frame), &got); err != nil || got.Payload.State != "resolved" || got.Payload.Severity != "info" {
		t.Errorf("resolved alert: %+v, %v", got, err)
	}
}

func TestRoomFrameRendersDeviceStatus(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	env := &envelopev1.Envelope{Body: &envelopev1.Envelope_DeviceStatus{DeviceStatus: &envelopev1.DeviceStatus{
		DeviceId: "d1", Status: envelopev1.Status_STATUS_OFFLINE, Timestamp: timestamppb.New(ts),
	}}}
	frame, err := RoomFrame("global", 7, env, ts)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"device_status","room":"global","seq":7,"payload":{"device_id":"d1","status":"offline","timestamp":"2026-01-02T03:04:05.000Z"},"timestamp":"2026-01-02T03:04:05.000Z"}`
	if got := string(unframe(t, frame)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A snapshot (latest state) has no sequence.
	snapshot, _ := RoomFrame("global", 0, env, ts)
	if got := string(unframe(t, snapshot)); strings.Contains(got, `"seq"`) {
		t.Errorf("snapshot frame has a seq: %s", got)
	}
	if _, err := RoomFrame("global", 0, &envelopev1.Envelope{}, ts); !errors.Is(err, ErrUnknownBody) {
		t.Errorf("empty envelope: err = %v, want ErrUnknownBody", err)
	}
}

func TestFramesHaveTheRightHeaderForEverySize(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		b := NewBuilder(n)
		b.buf = append(b.buf, strings.Repeat("x", n)...)
		if got := unframe(t, b.Frame()); len(got) != n {
			t.Errorf("size %d: payload length %d", n, len(got))
		}
		if got := unframe(t, TextFrame(make([]byte, n))); len(got) != n {
			t.Errorf("TextFrame size %d: payload length %d", n, len(got))
		}
	}
	c := CloseFrame(1013, "slow consumer")
	if c[0] != 0x88 || binary.BigEndian.Uint16(c[2:]) != 1013 || string(c[4:]) != "slow consumer" {
		t.Errorf("close frame = %x", c)
	}
	if long := CloseFrame(1000, strings.Repeat("r", 300)); len(long) != 2+125 {
		t.Errorf("close frame with long reason is %d bytes, want 127", len(long))
	}
}

func TestNumbersRenderLikeEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, -0.5, 1, 28.7, 1e20, 1e21, 123456789e15, 1e-6, 1e-7, -2.5e-10, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		want, _ := json.Marshal(f)
		if got := appendNumber(nil, f); string(got) != string(want) {
			t.Errorf("%v: got %s, want %s", f, got, want)
		}
	}
	if got := appendNumber(nil, math.NaN()); string(got) != "null" {
		t.Errorf("NaN renders %s", got)
	}
}

// unframe checks a server frame's header and returns its payload.
func unframe(t *testing.T, f []byte) []byte {
	t.Helper()
	if f[0] != 0x81 {
		t.Fatalf("first byte %x, want FIN+text", f[0])
	}
	n, h := int(f[1]&0x7F), 2
	switch n {
	case 126:
		n, h = int(binary.BigEndian.Uint16(f[2:])), 4
	case 127:
		n, h = int(binary.BigEndian.Uint64(f[2:])), 10
	}
	if f[1]&0x80 != 0 {
		t.Fatal("server frames must not be masked")
	}
	if len(f)-h != n {
		t.Fatalf("header says %d bytes, frame holds %d", n, len(f)-h)
	}
	return f[h:]
}

func BenchmarkRoomFrame(b *testing.B) {
	ts := time.Now()
	env := &envelopev1.Envelope{Body: &envelopev1.Envelope_Telemetry{Telemetry: &envelopev1.Telemetry{
		DeviceId: "sensor-001", Timestamp: timestamppb.New(ts),
		Fields: map[string]*envelopev1.FieldValue{
			"temperature": {Kind: &envelopev1.FieldValue_Number{Number: 28.7}},
			"humidity":    {Kind: &envelopev1.FieldValue_Number{Number: 64.3}},
			"battery":     {Kind: &envelopev1.FieldValue_Number{Number: 87}},
		},
		Tags: map[string]string{"site": "a"},
	}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RoomFrame("device:sensor-001", 1041, env, ts); err != nil {
			b.Fatal(err)
		}
	}
}
