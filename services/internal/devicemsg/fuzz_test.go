package devicemsg_test

import (
	"encoding/json"
	"testing"
	"time"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"google.golang.org/protobuf/proto"
)

// The fuzz targets check that no input panics and that whatever is accepted
// is valid by itself: encoded back to JSON, it parses to the same message.

func FuzzParseTelemetry(f *testing.F) {
	for _, seed := range []string{
		`{"fields": {"temperature": 28.7, "humidity": 64.3}, "tags": {"site": "a"}, "timestamp": "2025-01-02T03:04:05Z"}`,
		`{"fields": {"door_open": true, "mode": "eco\u00e9", "n": -1e-7}}`,
		`{"fields": {"t": null}}`,
		`{"fields": {"t": [1, {"a": 2}]}, "tags": {"x": 1}}`,
		`{"fields": {"t": 1e400}}`,
		`{"fields": {}, "timestamp": "2025-01-02T03:04:05.999999999+14:00"}`,
		`{"FIELDS": {"a": "\ud800"}}`,
		"{\"fields\": {\"s\": \"\xff\xfe\"}}",
		`[]`, `null`, `"x"`, ``, `{`,
	} {
		f.Add("dev-1", []byte(seed))
	}
	f.Fuzz(func(t *testing.T, deviceID string, payload []byte) {
		got, err := devicemsg.ParseTelemetry(deviceID, payload, testNow)
		if err != nil {
			if got != nil || devicemsg.ReasonOf(err) == devicemsg.ReasonUnknown {
				t.Fatalf("rejected with result %v and error %v", got, err)
			}
			return
		}
		if _, err := proto.Marshal(got); err != nil {
			t.Fatalf("accepted telemetry does not marshal: %v", err)
		}
		again, err := devicemsg.ParseTelemetry(got.GetDeviceId(), encodeTelemetry(t, got), time.Time{})
		if err != nil {
			t.Fatalf("accepted %q, but its re-encoding is rejected: %v", payload, err)
		}
		if !proto.Equal(got, again) {
			t.Fatalf("re-encoding of %q parses differently:\n%v\n%v", payload, got, again)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	for _, seed := range []string{
		`{"status": "online", "timestamp": "2025-01-02T03:04:05Z"}`,
		`{"status": "offline"}`,
		`{"status": "\u006fffline", "x": {}}`,
		`{"status": "sleeping"}`,
		`{"status": 1}`,
		`{"timestamp": "2025-01-02T03:04:05Z"}`,
		`null`, ``, `{"status"`,
	} {
		f.Add("dev-1", []byte(seed))
	}
	f.Fuzz(func(t *testing.T, deviceID string, payload []byte) {
		got, err := devicemsg.ParseStatus(deviceID, payload, testNow)
		if err != nil {
			if got != nil || devicemsg.ReasonOf(err) == devicemsg.ReasonUnknown {
				t.Fatalf("rejected with result %v and error %v", got, err)
			}
			return
		}
		status := map[envelopev1.Status]string{envelopev1.Status_STATUS_ONLINE: "online", envelopev1.Status_STATUS_OFFLINE: "offline"}[got.GetStatus()]
		encoded, err := json.Marshal(map[string]string{
			"status":    status,
			"timestamp": got.GetTimestamp().AsTime().Format(time.RFC3339Nano),
		})
		if err != nil {
			t.Fatal(err)
		}
		again, err := devicemsg.ParseStatus(got.GetDeviceId(), encoded, time.Time{})
		if err != nil {
			t.Fatalf("accepted %q, but its re-encoding %s is rejected: %v", payload, encoded, err)
		}
		if !proto.Equal(got, again) {
			t.Fatalf("re-encoding of %q parses differently:\n%v\n%v", payload, got, again)
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	for _, seed := range []string{
		"devices/sensor-001/telemetry", "devices/sensor-001/status", "devices//status",
		"devices/a/b/status", "devices/+/telemetry", "devices/#", "devices/x/commands/ack", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		id, kind, err := devicemsg.ParseTopic(topic)
		if err != nil {
			if id != "" || kind != 0 || devicemsg.ReasonOf(err) == devicemsg.ReasonUnknown {
				t.Fatalf("rejected %q with %q, %v, %v", topic, id, kind, err)
			}
			return
		}
		if got := devicemsg.Topic(id, kind); got != topic {
			t.Fatalf("accepted %q as %q, %v, which rebuilds as %q", topic, id, kind, got)
		}
	})
}

// encodeTelemetry writes t back as a contract payload.
func encodeTelemetry(tb testing.TB, t *envelopev1.Telemetry) []byte {
	tb.Helper()
	fields := map[string]any{}
	for name, v := range t.GetFields() {
		switch k := v.GetKind().(type) {
		case *envelopev1.FieldValue_Number:
			fields[name] = k.Number
		case *envelopev1.FieldValue_Text:
			fields[name] = k.Text
		case *envelopev1.FieldValue_Flag:
			fields[name] = k.Flag
		default:
			tb.Fatalf("field %q has no value", name)
		}
	}
	b, err := json.Marshal(map[string]any{
		"fields":    fields,
		"tags":      t.GetTags(),
		"timestamp": t.GetTimestamp().AsTime().Format(time.RFC3339Nano),
	})
	if err != nil {
		tb.Fatalf("encode %v: %v", t, err)
	}
	return b
}

func FuzzParseCommandAck(f *testing.F) {
	for _, seed := range []string{
		`{"command_id": "e-1", "status": "delivered"}`,
		`{"command_id": "e-1", "status": "succeeded", "result": {"a": [1, {"b": null}]}}`,
		`{"command_id": "e-1", "status": "failed", "result": "x"}`,
		`{"command_id": "e-1", "status": "done"}`,
		`{"command_id": 1}`, `{"result": 1e400}`, `null`, ``, `{`,
	} {
		f.Add("dev-1", []byte(seed))
	}
	f.Fuzz(func(t *testing.T, deviceID string, payload []byte) {
		r, err := devicemsg.ParseCommandAck(deviceID, payload)
		if err != nil {
			if r != nil || devicemsg.ReasonOf(err) == devicemsg.ReasonUnknown {
				t.Fatalf("rejected with %v and %v", r, err)
			}
			return
		}
		if r.GetCommandId() == "" || r.GetDeviceId() != deviceID || r.GetStatus() == 0 {
			t.Fatalf("accepted %q as %v", payload, r)
		}
		if _, err := proto.Marshal(r); err != nil {
			t.Fatalf("accepted %q as a result that does not encode: %v", payload, err)
		}
	})
}
