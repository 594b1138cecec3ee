package ingest_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/mqtttest"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
)

// ingress sends a device message the way the edge's device WebSocket
// does and returns ingest's verdict (nil: stored).
func ingress(t *testing.T, nc *nats.Conn, deviceID, level, payload string) *envelopev1.IngressError {
	t.Helper()
	msg, err := nc.Request(envelopev1.IngressSubject(deviceID, level), []byte(payload), 5*time.Second)
	if err != nil {
		t.Fatalf("device message of %s: %v", deviceID, err)
	}
	if len(msg.Data) == 0 {
		return nil
	}
	var ie envelopev1.IngressError
	if err := json.Unmarshal(msg.Data, &ie); err != nil {
		t.Fatalf("answer %q: %v", msg.Data, err)
	}
	return &ie
}

func TestDeviceMessagesFromTheEdgeTakeTheMQTTPath(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, _ := mqtttest.Start(t)
	devices := staticDevices{
		"esp-1":    {Enabled: true, Groups: []string{"g1"}, Version: 1},
		"disabled": {Enabled: false, Version: 1},
	}
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-ingress", ingest.WithDevices(devices))
	group := subscribe(t, in.nc, "sensorcast.live.group.g1.*")

	if ie := ingress(t, in.nc, "esp-1", "status", `{"status":"online"}`); ie != nil {
		t.Fatalf("online status: %+v", ie)
	}
	if ie := ingress(t, in.nc, "esp-1", "telemetry", `{"fields":{"t":21.5}}`); ie != nil {
		t.Fatalf("reading: %+v", ie)
	}
	if env, _ := next(t, group); env.GetDeviceStatus().GetStatus() != envelopev1.Status_STATUS_ONLINE {
		t.Errorf("first in the group room: %v", env)
	}
	if env, _ := next(t, group); env.GetTelemetry().GetFields()["t"].GetNumber() != 21.5 {
		t.Errorf("second in the group room: %v", env)
	}
	for _, tc := range []struct{ device, level, payload, reason string }{
		{"esp-1", "telemetry", `{"fields":{}}`, "invalid_fields"},
		{"esp-1", "telemetry", `{`, "invalid_json"},
		{"esp-1", "commands", `{}`, "invalid_topic"},
		{"stranger", "telemetry", `{"fields":{"t":1}}`, "unknown_device"},
		{"disabled", "status", `{"status":"online"}`, "disabled_device"},
	} {
		ie := ingress(t, in.nc, tc.device, tc.level, tc.payload)
		if ie == nil || ie.Reason != tc.reason || ie.Error == "" {
			t.Errorf("%s %s %s: answer %+v, want %s", tc.device, tc.level, tc.payload, ie, tc.reason)
		}
	}
	expectNothing(t, group, 100*time.Millisecond)
	waitFor(t, 5*time.Second, "rejections counted", func() bool {
		return counter(t, in.reg, "sensorcast_ingest_rejected_total", "reason=unknown_device") == 1 &&
			counter(t, in.reg, "sensorcast_ingest_rejected_total", "reason=invalid_fields") == 1
	})
}
