package devicemsg_test

import (
	"strings"
	"testing"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
)

func TestParseCommandAck(t *testing.T) {
	for _, tc := range []struct {
		payload string
		status  commandv1.Status
		result  map[string]any
		reason  devicemsg.Reason
	}{
		{payload: `{"command_id":"e-1","status":"delivered"}`, status: commandv1.Status_STATUS_DELIVERED},
		{payload: `{"command_id":"e-1","status":"succeeded","result":{"blinked":3}}`, status: commandv1.Status_STATUS_SUCCEEDED, result: map[string]any{"blinked": 3.0}},
		{payload: `{"command_id":"e-1","status":"failed","result":"no such led"}`, status: commandv1.Status_STATUS_FAILED, result: map[string]any{"value": "no such led"}},
		{payload: `{"command_id":"e-1","status":"failed","result":null,"extra":1}`, status: commandv1.Status_STATUS_FAILED},
		{payload: `[]`, reason: devicemsg.ReasonInvalidJSON},
		{payload: `{"command_id":"e-1"`, reason: devicemsg.ReasonInvalidJSON},
		{payload: `{"status":"failed"}`, reason: devicemsg.ReasonInvalidAck},
		{payload: `{"command_id":"","status":"failed"}`, reason: devicemsg.ReasonInvalidAck},
		{payload: `{"command_id":7,"status":"failed"}`, reason: devicemsg.ReasonInvalidAck},
		{payload: `{"command_id":"e-1"}`, reason: devicemsg.ReasonInvalidAck},
		{payload: `{"command_id":"e-1","status":"accepted"}`, reason: devicemsg.ReasonInvalidAck},
		{payload: `{"command_id":"` + strings.Repeat("x", 129) + `","status":"failed"}`, reason: devicemsg.ReasonInvalidAck},
		{payload: `{"command_id":"e-1","status":"failed","result":"` + strings.Repeat("x", devicemsg.MaxPayloadBytes) + `"}`, reason: devicemsg.ReasonTooLarge},
	} {
		r, err := devicemsg.ParseCommandAck("dev-1", []byte(tc.payload))
		if tc.reason != "" {
			if got := devicemsg.ReasonOf(err); got != tc.reason {
				t.Errorf("%.80s: reason %q (%v), want %q", tc.payload, got, err, tc.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.payload, err)
			continue
		}
		if r.GetStatus() != tc.status || r.GetCommandId() != "e-1" || r.GetDeviceId() != "dev-1" {
			t.Errorf("%s: got %v", tc.payload, r)
		}
		got := r.GetResult().AsMap()
		if len(got) != len(tc.result) {
			t.Errorf("%s: result %v, want %v", tc.payload, got, tc.result)
		}
		for k, v := range tc.result {
			if got[k] != v {
				t.Errorf("%s: result %v, want %v", tc.payload, got, tc.result)
			}
		}
	}
}

func TestParseAckTopic(t *testing.T) {
	for topic, want := range map[string]devicemsg.Reason{
		"devices/d-1/commands/ack":   "",
		"devices/a/b/commands/ack":   devicemsg.ReasonInvalidTopic,
		"devices//commands/ack":      devicemsg.ReasonInvalidDeviceID,
		"devices/d 1/commands/ack":   devicemsg.ReasonInvalidDeviceID,
		"things/d-1/commands/ack":    devicemsg.ReasonInvalidTopic,
		"devices/d-1/commands/acked": devicemsg.ReasonInvalidTopic,
	} {
		id, err := devicemsg.ParseAckTopic(topic)
		if got := devicemsg.ReasonOf(err); err != nil && got != want || err == nil && want != "" {
			t.Errorf("%s: %q, %v; want reason %q", topic, id, err, want)
		}
		if err == nil && id != "d-1" {
			t.Errorf("%s: device %q", topic, id)
		}
	}
	if !devicemsg.IsAckTopic(devicemsg.AckTopic("d-1")) || devicemsg.IsAckTopic(devicemsg.CommandTopic("d-1")) {
		t.Error("IsAckTopic does not tell acknowledgements from commands")
	}
}
