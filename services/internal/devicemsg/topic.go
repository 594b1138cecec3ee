package devicemsg

import (
	"strings"

	"github.com/sensorcast/sensorcast/services/internal/room"
)

// Kind is what a device message carries, named by the last level of its topic.
type Kind uint8

// Kinds of device message.
const (
	KindTelemetry Kind = iota + 1
	KindStatus
)

const topicPrefix = "devices/"

// String returns the topic level of k ("telemetry" or "status"); it doubles
// as a metric label.
func (k Kind) String() string {
	switch k {
	case KindTelemetry:
		return "telemetry"
	case KindStatus:
		return "status"
	}
	return "unknown"
}

// Topic returns the MQTT topic a device with a valid id publishes k on.
func Topic(deviceID string, k Kind) string {
	return topicPrefix + deviceID + "/" + k.String()
}

// Filter returns the MQTT topic filter that matches k from every device.
func (k Kind) Filter() string {
	return topicPrefix + "+/" + k.String()
}

// ParseTopic splits devices/<id>/telemetry or devices/<id>/status into the
// device id and the kind, checking the id against the contract.
func ParseTopic(topic string) (deviceID string, kind Kind, err error) {
	rest, ok := strings.CutPrefix(topic, topicPrefix)
	if !ok {
		return "", 0, Reject(ReasonInvalidTopic, "topic %s does not start with %q", quote(topic), topicPrefix)
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", 0, Reject(ReasonInvalidTopic, "topic %s is not devices/<id>/telemetry or devices/<id>/status", quote(topic))
	}
	deviceID, last := rest[:i], rest[i+1:]
	switch last {
	case "telemetry":
		kind = KindTelemetry
	case "status":
		kind = KindStatus
	default:
		return "", 0, Reject(ReasonInvalidTopic, "topic %s is not devices/<id>/telemetry or devices/<id>/status", quote(topic))
	}
	if strings.IndexByte(deviceID, '/') >= 0 {
		return "", 0, Reject(ReasonInvalidTopic, "topic %s has too many levels", quote(topic))
	}
	if err := checkDeviceID(deviceID); err != nil {
		return "", 0, err
	}
	return deviceID, kind, nil
}

func checkDeviceID(id string) error {
	if err := room.CheckID(id); err != nil {
		return &Error{Reason: ReasonInvalidDeviceID, Detail: "bad device id", Err: err}
	}
	return nil
}
