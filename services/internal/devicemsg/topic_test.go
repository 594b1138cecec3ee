package devicemsg_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
)

func TestParseTopic(t *testing.T) {
	tests := []struct {
		name       string
		topic      string
		wantID     string
		wantKind   devicemsg.Kind
		wantReason devicemsg.Reason
	}{
		{name: "telemetry topic gives id and kind", topic: "devices/sensor-001/telemetry", wantID: "sensor-001", wantKind: devicemsg.KindTelemetry},
		{name: "status topic gives id and kind", topic: "devices/sensor-001/status", wantID: "sensor-001", wantKind: devicemsg.KindStatus},
		{name: "id may hold every contract character", topic: "devices/Az09_-:x/status", wantID: "Az09_-:x", wantKind: devicemsg.KindStatus},
		{name: "id of 128 characters is accepted", topic: "devices/" + strings.Repeat("a", 128) + "/telemetry", wantID: strings.Repeat("a", 128), wantKind: devicemsg.KindTelemetry},
		{name: "other prefix is rejected", topic: "device/sensor-001/telemetry", wantReason: devicemsg.ReasonInvalidTopic},
		{name: "empty topic is rejected", topic: "", wantReason: devicemsg.ReasonInvalidTopic},
		{name: "prefix alone is rejected", topic: "devices/", wantReason: devicemsg.ReasonInvalidTopic},
		{name: "missing kind is rejected", topic: "devices/sensor-001", wantReason: devicemsg.ReasonInvalidTopic},
		{name: "unknown kind is rejected", topic: "devices/sensor-001/commands", wantReason: devicemsg.ReasonInvalidTopic},
		{name: "commands ack is rejected", topic: "devices/sensor-001/commands/ack", wantReason: devicemsg.ReasonInvalidTopic},
		{name: "trailing slash is rejected", topic: "devices/sensor-001/telemetry/", wantReason: devicemsg.ReasonInvalidTopic},
		{name: "extra level is rejected", topic: "devices/a/b/telemetry", wantReason: devicemsg.ReasonInvalidTopic},
		{name: "empty id is rejected", topic: "devices//telemetry", wantReason: devicemsg.ReasonInvalidDeviceID},
		{name: "wildcard id is rejected", topic: "devices/+/telemetry", wantReason: devicemsg.ReasonInvalidDeviceID},
		{name: "id with a dot is rejected", topic: "devices/a.b/status", wantReason: devicemsg.ReasonInvalidDeviceID},
		{name: "id of 129 characters is rejected", topic: "devices/" + strings.Repeat("a", 129) + "/telemetry", wantReason: devicemsg.ReasonInvalidDeviceID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, kind, err := devicemsg.ParseTopic(tt.topic)
			if tt.wantReason != "" {
				assertReason(t, err, tt.wantReason)
				return
			}
			if err != nil {
				t.Fatalf("ParseTopic(%q): %v", tt.topic, err)
			}
			if id != tt.wantID || kind != tt.wantKind {
				t.Fatalf("ParseTopic(%q) = %q, %v; want %q, %v", tt.topic, id, kind, tt.wantID, tt.wantKind)
			}
		})
	}
}

func TestTopicAndFilterMatchParseTopic(t *testing.T) {
	for _, kind := range []devicemsg.Kind{devicemsg.KindTelemetry, devicemsg.KindStatus} {
		id, got, err := devicemsg.ParseTopic(devicemsg.Topic("dev-1", kind))
		if err != nil || id != "dev-1" || got != kind {
			t.Errorf("ParseTopic(Topic(dev-1, %v)) = %q, %v, %v", kind, id, got, err)
		}
		if want := "devices/+/" + kind.String(); kind.Filter() != want {
			t.Errorf("%v.Filter() = %q, want %q", kind, kind.Filter(), want)
		}
	}
}

// assertReason fails t unless err is a *devicemsg.Error with reason want.
func assertReason(t *testing.T, err error, want devicemsg.Reason) {
	t.Helper()
	var e *devicemsg.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want a *devicemsg.Error with reason %q", err, err, want)
	}
	if e.Reason != want {
		t.Fatalf("reason = %q (%v), want %q", e.Reason, err, want)
	}
	if got := devicemsg.ReasonOf(err); got != want {
		t.Fatalf("ReasonOf = %q, want %q", got, want)
	}
}
