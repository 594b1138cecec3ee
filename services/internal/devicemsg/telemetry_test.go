package devicemsg_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))

func num(n float64) *envelopev1.FieldValue {
	return &envelopev1.FieldValue{Kind: &envelopev1.FieldValue_Number{Number: n}}
}

func text(s string) *envelopev1.FieldValue {
	return &envelopev1.FieldValue{Kind: &envelopev1.FieldValue_Text{Text: s}}
}

func flag(b bool) *envelopev1.FieldValue {
	return &envelopev1.FieldValue{Kind: &envelopev1.FieldValue_Flag{Flag: b}}
}

// manyPairs returns n JSON members "<prefix><i>": value, comma-separated.
func manyPairs(n int, prefix, value string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%q: %s", fmt.Sprintf("%s%d", prefix, i), value)
	}
	return strings.Join(parts, ", ")
}

func TestParseTelemetryAccepts(t *testing.T) {
	nowTS := timestamppb.New(testNow)
	tests := []struct {
		name    string
		payload string
		want    *envelopev1.Telemetry
	}{
		{
			name:    "the contract example with all three kinds of value",
			payload: `{"fields": {"temperature": 28.7, "humidity": 64, "mode": "eco", "door_open": false, "ok": true}, "tags": {"site": "a"}, "timestamp": "2025-01-02T03:04:05Z"}`,
			want: &envelopev1.Telemetry{
				DeviceId:  "dev-1",
				Timestamp: timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
				Fields:    map[string]*envelopev1.FieldValue{"temperature": num(28.7), "humidity": num(64), "mode": text("eco"), "door_open": flag(false), "ok": flag(true)},
				Tags:      map[string]string{"site": "a"},
			},
		},
		{
			name:    "a missing timestamp becomes now",
			payload: `{"fields": {"t": 1}}`,
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: nowTS, Fields: map[string]*envelopev1.FieldValue{"t": num(1)}},
		},
		{
			name:    "a null timestamp and null tags count as absent",
			payload: `{"fields": {"t": 1}, "tags": null, "timestamp": null}`,
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: nowTS, Fields: map[string]*envelopev1.FieldValue{"t": num(1)}},
		},
		{
			name:    "a timestamp with offset and fraction keeps its instant",
			payload: `{"fields": {"t": 1}, "timestamp": "2025-01-02T05:04:05.123456789+02:00"}`,
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)), Fields: map[string]*envelopev1.FieldValue{"t": num(1)}},
		},
		{
			name:    "unknown top-level keys are ignored",
			payload: `{"fields": {"t": 1}, "firmware": {"version": [1, 2]}, "seq": 7}`,
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: nowTS, Fields: map[string]*envelopev1.FieldValue{"t": num(1)}},
		},
		{
			name:    "numbers in every JSON form are accepted",
			payload: `{"fields": {"a": -0.5, "b": 1e3, "c": 2E-2, "d": 0, "e": 1.7976931348623157e308}}`,
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: nowTS, Fields: map[string]*envelopev1.FieldValue{"a": num(-0.5), "b": num(1000), "c": num(0.02), "d": num(0), "e": num(1.7976931348623157e308)}},
		},
		{
			name:    "escaped strings are decoded",
			payload: `{"fields": {"msg": "a\"b\\c\u00e9\n"}, "tags": {"site": "caf\u00e9"}}`,
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: nowTS, Fields: map[string]*envelopev1.FieldValue{"msg": text("a\"b\\cé\n")}, Tags: map[string]string{"site": "café"}},
		},
		{
			name:    "invalid UTF-8 in strings becomes U+FFFD",
			payload: "{\"fields\": {\"msg\": \"a\xffb\"}}",
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: nowTS, Fields: map[string]*envelopev1.FieldValue{"msg": text("a\uFFFDb")}},
		},
		{
			name:    "names may use letters, digits, underscore, dot and dash",
			payload: `{"fields": {"Zone_1.temp-c": 1}, "tags": {"Site.Name_x-1": "a"}}`,
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: nowTS, Fields: map[string]*envelopev1.FieldValue{"Zone_1.temp-c": num(1)}, Tags: map[string]string{"Site.Name_x-1": "a"}},
		},
		{
			name:    "an empty tags object gives no tags",
			payload: `{"fields": {"t": 1}, "tags": {}}`,
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: nowTS, Fields: map[string]*envelopev1.FieldValue{"t": num(1)}},
		},
		{
			name:    "a duplicate field keeps the last value",
			payload: `{"fields": {"t": 1, "t": 2}}`,
			want:    &envelopev1.Telemetry{DeviceId: "dev-1", Timestamp: nowTS, Fields: map[string]*envelopev1.FieldValue{"t": num(2)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := devicemsg.ParseTelemetry("dev-1", []byte(tt.payload), testNow)
			if err != nil {
				t.Fatalf("ParseTelemetry: %v", err)
			}
			if !proto.Equal(got, tt.want) {
				t.Fatalf("ParseTelemetry =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestParseTelemetryAcceptsTheLimits(t *testing.T) {
	long := strings.Repeat("x", devicemsg.MaxTextLen)
	name := strings.Repeat("n", devicemsg.MaxNameLen)
	payloads := map[string]string{
		"64 fields":                  "{\"fields\": {" + manyPairs(devicemsg.MaxFields, "f", "1") + "}}",
		"32 tags":                    "{\"fields\": {\"t\": 1}, \"tags\": {" + manyPairs(devicemsg.MaxTags, "t", `"v"`) + "}}",
		"256-byte values":            `{"fields": {"s": "` + long + `"}, "tags": {"s": "` + long + `"}}`,
		"64-character names":         `{"fields": {"` + name + `": 1}, "tags": {"` + name + `": "v"}}`,
		"a payload of exactly 8 KiB": `{"fields": {"t": 1}, "pad": "` + strings.Repeat(" ", devicemsg.MaxPayloadBytes-len(`{"fields": {"t": 1}, "pad": ""}`)) + `"}`,
	}
	for name, payload := range payloads {
		t.Run(name, func(t *testing.T) {
			if _, err := devicemsg.ParseTelemetry("dev-1", []byte(payload), testNow); err != nil {
				t.Fatalf("ParseTelemetry: %v", err)
			}
		})
	}
}

func TestParseTelemetryRejects(t *testing.T) {
	long := strings.Repeat("x", devicemsg.MaxTextLen+1)
	tests := []struct {
		name     string
		deviceID string
		payload  string
		want     devicemsg.Reason
	}{
		{name: "a payload over 8 KiB", payload: `{"fields": {"t": 1}, "pad": "` + strings.Repeat(" ", devicemsg.MaxPayloadBytes) + `"}`, want: devicemsg.ReasonTooLarge},
		{name: "an invalid device id", deviceID: "a/b", payload: `{"fields": {"t": 1}}`, want: devicemsg.ReasonInvalidDeviceID},
		{name: "an empty device id", deviceID: "-", payload: `{"fields": {"t": 1}}`, want: devicemsg.ReasonInvalidDeviceID},
		{name: "an empty payload", payload: ``, want: devicemsg.ReasonInvalidJSON},
		{name: "truncated JSON", payload: `{"fields": {"t": 1}`, want: devicemsg.ReasonInvalidJSON},
		{name: "trailing garbage", payload: `{"fields": {"t": 1}} x`, want: devicemsg.ReasonInvalidJSON},
		{name: "a JSON array", payload: `[{"fields": {"t": 1}}]`, want: devicemsg.ReasonInvalidJSON},
		{name: "a JSON string", payload: `"fields"`, want: devicemsg.ReasonInvalidJSON},
		{name: "JSON null", payload: `null`, want: devicemsg.ReasonInvalidFields},
		{name: "missing fields", payload: `{"tags": {"site": "a"}}`, want: devicemsg.ReasonInvalidFields},
		{name: "null fields", payload: `{"fields": null}`, want: devicemsg.ReasonInvalidFields},
		{name: "fields as an array", payload: `{"fields": [1, 2]}`, want: devicemsg.ReasonInvalidFields},
		{name: "fields as a number", payload: `{"fields": 1}`, want: devicemsg.ReasonInvalidFields},
		{name: "empty fields", payload: `{"fields": {}}`, want: devicemsg.ReasonInvalidFields},
		{name: "65 fields", payload: "{\"fields\": {" + manyPairs(devicemsg.MaxFields+1, "f", "1") + "}}", want: devicemsg.ReasonInvalidFields},
		{name: "an empty field name", payload: `{"fields": {"": 1}}`, want: devicemsg.ReasonInvalidFields},
		{name: "a field name with a space", payload: `{"fields": {"a b": 1}}`, want: devicemsg.ReasonInvalidFields},
		{name: "a field name with a slash", payload: `{"fields": {"a/b": 1}}`, want: devicemsg.ReasonInvalidFields},
		{name: "a 65-character field name", payload: `{"fields": {"` + strings.Repeat("n", 65) + `": 1}}`, want: devicemsg.ReasonInvalidFields},
		{name: "a null field", payload: `{"fields": {"t": null}}`, want: devicemsg.ReasonInvalidFieldType},
		{name: "an array field", payload: `{"fields": {"t": [1]}}`, want: devicemsg.ReasonInvalidFieldType},
		{name: "an object field", payload: `{"fields": {"t": {"v": 1}}}`, want: devicemsg.ReasonInvalidFieldType},
		{name: "one bad field among good ones", payload: `{"fields": {"a": 1, "b": [], "c": "x"}}`, want: devicemsg.ReasonInvalidFieldType},
		{name: "a 257-byte string field", payload: `{"fields": {"s": "` + long + `"}}`, want: devicemsg.ReasonInvalidFieldValue},
		{name: "a number beyond float64", payload: `{"fields": {"t": 1e309}}`, want: devicemsg.ReasonInvalidFieldValue},
		{name: "a negative number beyond float64", payload: `{"fields": {"t": -1e309}}`, want: devicemsg.ReasonInvalidFieldValue},
		{name: "tags as a string", payload: `{"fields": {"t": 1}, "tags": "site=a"}`, want: devicemsg.ReasonInvalidTags},
		{name: "tags as an array", payload: `{"fields": {"t": 1}, "tags": ["a"]}`, want: devicemsg.ReasonInvalidTags},
		{name: "a number tag", payload: `{"fields": {"t": 1}, "tags": {"floor": 3}}`, want: devicemsg.ReasonInvalidTags},
		{name: "a null tag", payload: `{"fields": {"t": 1}, "tags": {"floor": null}}`, want: devicemsg.ReasonInvalidTags},
		{name: "a bool tag", payload: `{"fields": {"t": 1}, "tags": {"floor": true}}`, want: devicemsg.ReasonInvalidTags},
		{name: "33 tags", payload: "{\"fields\": {\"t\": 1}, \"tags\": {" + manyPairs(devicemsg.MaxTags+1, "t", `"v"`) + "}}", want: devicemsg.ReasonInvalidTags},
		{name: "a 257-byte tag", payload: `{"fields": {"t": 1}, "tags": {"s": "` + long + `"}}`, want: devicemsg.ReasonInvalidTags},
		{name: "a bad tag name", payload: `{"fields": {"t": 1}, "tags": {"a b": "v"}}`, want: devicemsg.ReasonInvalidTags},
		{name: "a numeric timestamp", payload: `{"fields": {"t": 1}, "timestamp": 1735787045}`, want: devicemsg.ReasonInvalidTimestamp},
		{name: "a timestamp without zone", payload: `{"fields": {"t": 1}, "timestamp": "2025-01-02T03:04:05"}`, want: devicemsg.ReasonInvalidTimestamp},
		{name: "a date-only timestamp", payload: `{"fields": {"t": 1}, "timestamp": "2025-01-02"}`, want: devicemsg.ReasonInvalidTimestamp},
		{name: "a timestamp in year zero", payload: `{"fields": {"t": 1}, "timestamp": "0000-01-01T00:00:00Z"}`, want: devicemsg.ReasonInvalidTimestamp},
		{name: "an impossible date", payload: `{"fields": {"t": 1}, "timestamp": "2025-02-30T00:00:00Z"}`, want: devicemsg.ReasonInvalidTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.deviceID
			if id == "" {
				id = "dev-1"
			} else if id == "-" {
				id = ""
			}
			got, err := devicemsg.ParseTelemetry(id, []byte(tt.payload), testNow)
			if got != nil {
				t.Errorf("ParseTelemetry returned %v with its error", got)
			}
			assertReason(t, err, tt.want)
		})
	}
}

func TestParseTelemetryErrorNamesTheFirstBadField(t *testing.T) {
	_, err := devicemsg.ParseTelemetry("dev-1", []byte(`{"fields": {"zz": null, "bb": [], "aa": 1}}`), testNow)
	assertReason(t, err, devicemsg.ReasonInvalidFieldType)
	if !strings.Contains(err.Error(), `"bb"`) {
		t.Errorf("error %q does not name field \"bb\"", err)
	}
}

func BenchmarkParseTelemetry(b *testing.B) {
	payload := []byte(`{"fields": {"temperature": 23.61, "humidity": 52.4, "battery": 87.5, "rssi": -67, "door_open": false}, "tags": {"site": "building-a", "model": "esp32-s3"}, "timestamp": "2025-01-02T03:04:05.123Z"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := devicemsg.ParseTelemetry("sim-001", payload, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseStatus(b *testing.B) {
	payload := []byte(`{"status": "online", "timestamp": "2025-01-02T03:04:05Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := devicemsg.ParseStatus("sim-001", payload, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
