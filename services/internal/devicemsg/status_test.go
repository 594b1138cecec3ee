package devicemsg_test

import (
	"strings"
	"testing"
	"time"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestParseStatusAccepts(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    *envelopev1.DeviceStatus
	}{
		{
			name:    "online with a timestamp",
			payload: `{"status": "online", "timestamp": "2025-01-02T03:04:05Z"}`,
			want:    &envelopev1.DeviceStatus{DeviceId: "dev-1", Status: envelopev1.Status_STATUS_ONLINE, Timestamp: timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))},
		},
		{
			name:    "offline without a timestamp gets now",
			payload: `{"status": "offline"}`,
			want:    &envelopev1.DeviceStatus{DeviceId: "dev-1", Status: envelopev1.Status_STATUS_OFFLINE, Timestamp: timestamppb.New(testNow)},
		},
		{
			name:    "an escaped status string",
			payload: `{"status": "\u006fnline", "extra": [1]}`,
			want:    &envelopev1.DeviceStatus{DeviceId: "dev-1", Status: envelopev1.Status_STATUS_ONLINE, Timestamp: timestamppb.New(testNow)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := devicemsg.ParseStatus("dev-1", []byte(tt.payload), testNow)
			if err != nil {
				t.Fatalf("ParseStatus: %v", err)
			}
			if !proto.Equal(got, tt.want) {
				t.Fatalf("ParseStatus =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestParseStatusRejects(t *testing.T) {
	tests := []struct {
		name     string
		deviceID string
		payload  string
		want     devicemsg.Reason
	}{
		{name: "a payload over 8 KiB", payload: `{"status": "online", "pad": "` + strings.Repeat(" ", devicemsg.MaxPayloadBytes) + `"}`, want: devicemsg.ReasonTooLarge},
		{name: "an invalid device id", deviceID: "a b", payload: `{"status": "online"}`, want: devicemsg.ReasonInvalidDeviceID},
		{name: "not JSON", payload: `online`, want: devicemsg.ReasonInvalidJSON},
		{name: "a JSON string", payload: `"online"`, want: devicemsg.ReasonInvalidJSON},
		{name: "a missing status", payload: `{"timestamp": "2025-01-02T03:04:05Z"}`, want: devicemsg.ReasonInvalidStatus},
		{name: "a null status", payload: `{"status": null}`, want: devicemsg.ReasonInvalidStatus},
		{name: "an unknown status", payload: `{"status": "sleeping"}`, want: devicemsg.ReasonInvalidStatus},
		{name: "a status in capitals", payload: `{"status": "ONLINE"}`, want: devicemsg.ReasonInvalidStatus},
		{name: "a boolean status", payload: `{"status": true}`, want: devicemsg.ReasonInvalidStatus},
		{name: "a bad timestamp", payload: `{"status": "online", "timestamp": "yesterday"}`, want: devicemsg.ReasonInvalidTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.deviceID
			if id == "" {
				id = "dev-1"
			}
			got, err := devicemsg.ParseStatus(id, []byte(tt.payload), testNow)
			if got != nil {
				t.Errorf("ParseStatus returned %v with its error", got)
			}
			assertReason(t, err, tt.want)
		})
	}
}
