package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// reading is a room message reduced to what the scenarios compare.
type reading struct {
	Room   string
	Type   string
	Device string
	Time   string // the device's timestamp, normalized to UTC
	Status string // device_status only
	Fields string // telemetry only: canonical JSON
	Tags   string // telemetry only: canonical JSON
}

func (r reading) in(room string) reading { r.Room = room; return r }

// readingOf reduces m, failing t if it lacks what every room message has.
func readingOf(t testing.TB, m harness.Message) reading {
	t.Helper()
	if _, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil {
		t.Errorf("room message without a valid timestamp: %s", m)
	}
	r := reading{Room: m.Room, Type: m.Type}
	switch m.Type {
	case "telemetry":
		var p harness.Telemetry
		m.Decode(t, &p)
		r.Device, r.Time = p.DeviceID, utc(t, p.Timestamp)
		r.Fields, r.Tags = canonical(t, p.Fields), canonical(t, p.Tags)
	case "device_status":
		var p harness.DeviceStatus
		m.Decode(t, &p)
		r.Device, r.Time, r.Status = p.DeviceID, utc(t, p.Timestamp), p.Status
	default:
		t.Errorf("unexpected room message type: %s", m)
	}
	return r
}

func utc(t testing.TB, s string) string {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Errorf("payload timestamp %q is not RFC 3339", s)
		return s
	}
	return ts.UTC().Format(time.RFC3339Nano)
}

// canonical renders a map as JSON with sorted keys; nil and empty are "{}".
func canonical[V any](t testing.TB, m map[string]V) string {
	t.Helper()
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("encode %v: %v", m, err)
	}
	return string(b)
}

// expectReadings waits for len(want) room messages on c and checks that
// they are exactly want, in any order.
func expectReadings(t testing.TB, c *harness.Client, want ...reading) {
	t.Helper()
	var got []reading
	for _, m := range c.ExpectRoomMessages(t, len(want)) {
		got = append(got, readingOf(t, m))
	}
	sortReadings(got)
	want = slices.Clone(want)
	sortReadings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s received:\n%s\nwant:\n%s", c.Name, listReadings(got), listReadings(want))
	}
}

func sortReadings(rs []reading) {
	slices.SortFunc(rs, func(a, b reading) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
}

func listReadings(rs []reading) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\t%+v\n", r)
	}
	return b.String()
}

func testRoomRouting(t *testing.T, e *env) {
	d1A := dial(t, e.edgeA, "ann")
	d1B := dial(t, e.edgeB, "ben")
	d2B := dial(t, e.edgeB, "cai")
	globalA := dial(t, e.edgeA, "dee")
	d1A.MustSubscribe(t, "device:d1")
	d1B.MustSubscribe(t, "device:d1")
	d2B.MustSubscribe(t, "device:d2")
	globalA.MustSubscribe(t, "global")

	e.mqtt.Publish(t, "devices/d1/telemetry",
		[]byte(`{"fields":{"temperature":21.5,"door":"open","armed":true},"tags":{"site":"a","floor":"2"},"timestamp":"2025-05-01T12:00:00+02:00"}`), false)
	e.mqtt.Publish(t, "devices/d2/telemetry",
		[]byte(`{"fields":{"humidity":40,"battery":-1.25e-3},"timestamp":"2025-05-01T10:00:01.5Z"}`), false)
	e.mqtt.Publish(t, "devices/d1/status", []byte(`{"status":"online","timestamp":"2025-05-01T09:59:58Z"}`), true)
	e.mqtt.Publish(t, "devices/d2/status", []byte(`{"status":"online","timestamp":"2025-05-01T09:59:59Z"}`), true)

	d1Telemetry := reading{Type: "telemetry", Device: "d1", Time: "2025-05-01T10:00:00Z",
		Fields: `{"armed":true,"door":"open","temperature":21.5}`, Tags: `{"floor":"2","site":"a"}`}
	d2Telemetry := reading{Type: "telemetry", Device: "d2", Time: "2025-05-01T10:00:01.5Z",
		Fields: `{"battery":-0.00125,"humidity":40}`, Tags: `{}`}
	d1Online := reading{Type: "device_status", Device: "d1", Time: "2025-05-01T09:59:58Z", Status: "online"}
	d2Online := reading{Type: "device_status", Device: "d2", Time: "2025-05-01T09:59:59Z", Status: "online"}

	expectReadings(t, d1A, d1Telemetry.in("device:d1"), d1Online.in("device:d1"))
	expectReadings(t, d1B, d1Telemetry.in("device:d1"), d1Online.in("device:d1"))
	expectReadings(t, d2B, d2Telemetry.in("device:d2"), d2Online.in("device:d2"))
	expectReadings(t, globalA, d1Telemetry.in("global"), d1Online.in("global"),
		d2Telemetry.in("global"), d2Online.in("global"))
	harness.ExpectNoRoomMessages(t, quiet, d1A, d1B, d2B, globalA)
}

func testDeviceOffline(t *testing.T, e *env) {
	d1 := dial(t, e.edgeA, "eve")
	global := dial(t, e.edgeB, "fay")
	d1.MustSubscribe(t, "device:d1")
	global.MustSubscribe(t, "global")

	before := time.Now()
	e.mqtt.Publish(t, "devices/d1/status", []byte(`{"status":"offline"}`), true)

	for c, room := range map[*harness.Client]string{d1: "device:d1", global: "global"} {
		m := c.ExpectRoomMessages(t, 1)[0]
		r := readingOf(t, m)
		if r.Room != room || r.Type != "device_status" || r.Device != "d1" || r.Status != "offline" {
			t.Errorf("%s received %s; want device_status offline of d1 in %s", c.Name, m, room)
		}
		// Without a device timestamp the platform stamps it on arrival.
		if ts, _ := time.Parse(time.RFC3339Nano, r.Time); ts.Before(before.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: status timestamp %s is not the time of arrival (%s)", c.Name, r.Time, before.UTC().Format(time.RFC3339Nano))
		}
	}
	harness.ExpectNoRoomMessages(t, quiet, d1, global)
}

func testBadDevicePayloads(t *testing.T, e *env) {
	dashboard := dial(t, e.edgeA, "gus")
	dashboard.MustSubscribe(t, "global", "device:m1")

	good := `{"fields":{"t":1}}`
	bad := []struct{ why, topic, payload string }{
		{"not JSON", "devices/m1/telemetry", `temperature=21.5`},
		{"truncated JSON", "devices/m1/telemetry", `{"fields":{"t":1`},
		{"a JSON array", "devices/m1/telemetry", `[{"fields":{"t":1}}]`},
		{"fields that are not an object", "devices/m1/telemetry", `{"fields":"hot"}`},
		{"no fields", "devices/m1/telemetry", `{"tags":{"site":"a"}}`},
		{"an array field", "devices/m1/telemetry", `{"fields":{"t":[1,2]}}`},
		{"an object field", "devices/m1/telemetry", `{"fields":{"t":{"c":1}}}`},
		{"a null field", "devices/m1/telemetry", `{"fields":{"t":null}}`},
		{"a tag that is not a string", "devices/m1/telemetry", `{"fields":{"t":1},"tags":{"site":7}}`},
		{"a timestamp that is not RFC 3339", "devices/m1/telemetry", `{"fields":{"t":1},"timestamp":"yesterday"}`},
		{"an unknown status", "devices/m1/status", `{"status":"sleeping"}`},
		{"a device id with a dot", "devices/m1.x/telemetry", good},
		{"a device id with a space", "devices/m 1/telemetry", good},
		{"a device id of 129 characters", "devices/" + strings.Repeat("m", 129) + "/telemetry", good},
		// Valid JSON, but more than the contract's 8192 bytes.
		{"a payload of 9000 bytes", "devices/m1/telemetry", `{"fields":{"t":1}` + strings.Repeat(" ", 9000-len(good)) + `}`},
	}
	for _, b := range bad {
		e.mqtt.Publish(t, b.topic, []byte(b.payload), false)
	}
	e.mqtt.Publish(t, "devices/m1/telemetry", []byte(`{"fields":{"t":2},"tags":{"after":"bad"},"timestamp":"2025-05-01T10:00:00Z"}`), false)

	after := reading{Type: "telemetry", Device: "m1", Time: "2025-05-01T10:00:00Z", Fields: `{"t":2}`, Tags: `{"after":"bad"}`}
	expectReadings(t, dashboard, after.in("device:m1"), after.in("global"))
	harness.ExpectNoRoomMessages(t, quiet, dashboard)
	if t.Failed() {
		var whys []string
		for _, b := range bad {
			whys = append(whys, b.why)
		}
		t.Logf("bad payloads published before the good one: %s", strings.Join(whys, "; "))
	}
}
