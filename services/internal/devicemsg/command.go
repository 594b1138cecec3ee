package devicemsg

import (
	"encoding/json"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
)

// Commands travel platform → device on devices/<id>/commands and come
// back as acknowledgements on devices/<id>/commands/ack (protocol.md
// section 2).
const (
	commandsLevel = "/commands"
	ackLevel      = commandsLevel + "/ack"
)

// CommandTopic is the topic a device receives its commands on.
func CommandTopic(deviceID string) string { return topicPrefix + deviceID + commandsLevel }

// AckTopic is the topic a device acknowledges its commands on.
func AckTopic(deviceID string) string { return topicPrefix + deviceID + ackLevel }

// AckFilter matches the acknowledgements of every device.
const AckFilter = topicPrefix + "+" + ackLevel

// IsAckTopic reports whether topic has the shape of an acknowledgement
// topic; ParseAckTopic then checks it in full.
func IsAckTopic(topic string) bool {
	return strings.HasPrefix(topic, topicPrefix) && strings.HasSuffix(topic, ackLevel)
}

// ParseAckTopic returns the device id of devices/<id>/commands/ack.
func ParseAckTopic(topic string) (string, error) {
	rest, ok := strings.CutPrefix(topic, topicPrefix)
	if !ok {
		return "", Reject(ReasonInvalidTopic, "topic %s does not start with %q", quote(topic), topicPrefix)
	}
	deviceID, ok := strings.CutSuffix(rest, ackLevel)
	if !ok {
		return "", Reject(ReasonInvalidTopic, "topic %s is not devices/<id>/commands/ack", quote(topic))
	}
	if strings.IndexByte(deviceID, '/') >= 0 {
		return "", Reject(ReasonInvalidTopic, "topic %s has too many levels", quote(topic))
	}
	if err := checkDeviceID(deviceID); err != nil {
		return "", err
	}
	return deviceID, nil
}

// MaxCommandIDLen bounds a command id in an acknowledgement; the platform
// makes ids far shorter.
const MaxCommandIDLen = 128

// ParseCommandAck validates an acknowledgement of device deviceID,
// {"command_id", "status": "delivered"|"succeeded"|"failed", "result": {}
// (optional)}, and returns it as the Result the platform relays. A result
// that is not an object is kept under "value", so nothing the device said
// is lost. Other keys are ignored.
func ParseCommandAck(deviceID string, payload []byte) (*commandv1.Result, error) {
	if len(payload) > MaxPayloadBytes {
		return nil, Reject(ReasonTooLarge, "payload is %d bytes, more than %d", len(payload), MaxPayloadBytes)
	}
	if err := checkDeviceID(deviceID); err != nil {
		return nil, err
	}
	var p struct {
		CommandID *string         `json:"command_id"`
		Status    *string         `json:"status"`
		Result    json.RawMessage `json:"result"`
	}
	if err := unmarshalObject(payload, &p, func(key string) *Error {
		return Reject(ReasonInvalidAck, "%q has the wrong type", key)
	}); err != nil {
		return nil, err
	}
	switch {
	case p.CommandID == nil || *p.CommandID == "":
		return nil, Reject(ReasonInvalidAck, `"command_id" is missing`)
	case len(*p.CommandID) > MaxCommandIDLen:
		return nil, Reject(ReasonInvalidAck, `"command_id" is longer than %d bytes`, MaxCommandIDLen)
	case p.Status == nil:
		return nil, Reject(ReasonInvalidAck, `"status" is missing`)
	}
	status, ok := ackStatuses[*p.Status]
	if !ok {
		return nil, Reject(ReasonInvalidAck, `"status" must be "delivered", "succeeded" or "failed", got %s`, quote(*p.Status))
	}
	r := &commandv1.Result{CommandId: *p.CommandID, DeviceId: deviceID, Status: status}
	if len(p.Result) > 0 && string(p.Result) != "null" {
		var v any
		if err := json.Unmarshal(p.Result, &v); err != nil {
			return nil, Reject(ReasonInvalidAck, `"result" is not valid JSON`)
		}
		obj, isObject := v.(map[string]any)
		if !isObject {
			obj = map[string]any{"value": v}
		}
		s, err := structpb.NewStruct(obj)
		if err != nil {
			return nil, &Error{Reason: ReasonInvalidAck, Detail: `"result" cannot be carried`, Err: err}
		}
		r.Result = s
	}
	return r, nil
}

var ackStatuses = map[string]commandv1.Status{
	"delivered": commandv1.Status_STATUS_DELIVERED,
	"succeeded": commandv1.Status_STATUS_SUCCEEDED,
	"failed":    commandv1.Status_STATUS_FAILED,
}

// CommandPayload is a command as a device receives it.
type CommandPayload struct {
	CommandID string         `json:"command_id"`
	Name      string         `json:"name"`
	Params    map[string]any `json:"params"`
	IssuedAt  string         `json:"issued_at"`
}

// EncodeCommand renders a command as the device's JSON payload.
func EncodeCommand(c *commandv1.Command) ([]byte, error) {
	params := c.GetParams().AsMap()
	if params == nil {
		params = map[string]any{}
	}
	issued := time.Now()
	if c.GetIssuedAt() != nil {
		issued = c.GetIssuedAt().AsTime()
	}
	return json.Marshal(CommandPayload{
		CommandID: c.GetCommandId(), Name: c.GetName(), Params: params,
		IssuedAt: issued.UTC().Format(time.RFC3339Nano),
	})
}
