package devicemsg

import (
	"time"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

// ParseStatus validates a status payload of device deviceID,
// {"status": "online"|"offline", "timestamp": "RFC 3339" (optional)}, and
// returns it as the envelope's DeviceStatus. Devices publish it retained
// and set the offline one as their MQTT last will. Other keys are ignored.
func ParseStatus(deviceID string, payload []byte, now time.Time) (*envelopev1.DeviceStatus, error) {
	if len(payload) > MaxPayloadBytes {
		return nil, Reject(ReasonTooLarge, "payload is %d bytes, more than %d", len(payload), MaxPayloadBytes)
	}
	if err := checkDeviceID(deviceID); err != nil {
		return nil, err
	}
	var p struct {
		Status    statusJSON    `json:"status"`
		Timestamp timestampJSON `json:"timestamp"`
	}
	if err := unmarshalObject(payload, &p, nil); err != nil {
		return nil, err
	}
	if p.Status.s == envelopev1.Status_STATUS_UNSPECIFIED {
		return nil, Reject(ReasonInvalidStatus, `"status" is missing`)
	}
	return &envelopev1.DeviceStatus{
		DeviceId:  deviceID,
		Status:    p.Status.s,
		Timestamp: p.Timestamp.orNow(now),
	}, nil
}

// statusJSON decodes "status", which must be exactly "online" or "offline".
type statusJSON struct {
	s envelopev1.Status
}

func (s *statusJSON) UnmarshalJSON(b []byte) error {
	var text string
	if b[0] == '"' {
		var err error
		if text, err = unquote(b); err != nil {
			return err
		}
	}
	switch text {
	case "online":
		s.s = envelopev1.Status_STATUS_ONLINE
	case "offline":
		s.s = envelopev1.Status_STATUS_OFFLINE
	default:
		return Reject(ReasonInvalidStatus, `"status" must be "online" or "offline", got %s`, quote(string(b)))
	}
	return nil
}
