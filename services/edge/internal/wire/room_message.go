package wire

import (
	"errors"
	"slices"
	"strconv"
	"time"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

// ErrUnknownBody is returned for an envelope whose body this edge cannot render
// (a newer ingest, or an empty envelope).
var ErrUnknownBody = errors.New("envelope has no body this edge can render")

// RoomFrame renders one stored envelope as the contract's room message for
// room, at sequence seq of the room's stream (0: none, for a snapshot), and
// returns it as a complete WebSocket text frame, ready to be written as is
// to every recipient in the room.
func RoomFrame(room string, seq uint64, env *envelopev1.Envelope, now time.Time) ([]byte, error) {
	b := NewBuilder(256)
	var err error
	b.buf, err = appendRoomMessage(b.buf, room, seq, env, now)
	if err != nil {
		return nil, err
	}
	return b.Frame(), nil
}

func appendRoomMessage(dst []byte, room string, seq uint64, env *envelopev1.Envelope, now time.Time) ([]byte, error) {
	switch body := env.GetBody().(type) {
	case *envelopev1.Envelope_Telemetry:
		dst = append(dst, `{"type":"telemetry","room":`...)
		dst = appendString(dst, room)
		dst = appendSeq(dst, seq)
		dst = append(dst, `,"payload":`...)
		dst = appendTelemetry(dst, body.Telemetry)
	case *envelopev1.Envelope_DeviceStatus:
		dst = append(dst, `{"type":"device_status","room":`...)
		dst = appendString(dst, room)
		dst = appendSeq(dst, seq)
		dst = append(dst, `,"payload":`...)
		dst = appendDeviceStatus(dst, body.DeviceStatus)
	case *envelopev1.Envelope_Alert:
		dst = append(dst, `{"type":"alert","room":`...)
		dst = appendString(dst, room)
		dst = appendSeq(dst, seq)
		dst = append(dst, `,"payload":`...)
		dst = appendAlert(dst, body.Alert)
	default:
		return dst, ErrUnknownBody
	}
	dst = append(dst, `,"timestamp":`...)
	dst = appendTime(dst, now)
	return append(dst, '}'), nil
}

func appendSeq(dst []byte, seq uint64) []byte {
	if seq == 0 {
		return dst
	}
	dst = append(dst, `,"seq":`...)
	return strconv.AppendUint(dst, seq, 10)
}

func appendTelemetry(dst []byte, t *envelopev1.Telemetry) []byte {
	dst = append(dst, `{"device_id":`...)
	dst = appendString(dst, t.GetDeviceId())
	dst = append(dst, `,"timestamp":`...)
	dst = appendTime(dst, t.GetTimestamp().AsTime())
	dst = append(dst, `,"fields":{`...)
	for i, k := range sortedKeys(t.GetFields()) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		switch v := t.Fields[k].GetKind().(type) {
		case *envelopev1.FieldValue_Number:
			dst = appendNumber(dst, v.Number)
		case *envelopev1.FieldValue_Text:
			dst = appendString(dst, v.Text)
		case *envelopev1.FieldValue_Flag:
			if v.Flag {
				dst = append(dst, "true"...)
			} else {
				dst = append(dst, "false"...)
			}
		default:
			dst = append(dst, "null"...)
		}
	}
	dst = append(dst, `},"tags":{`...)
	for i, k := range sortedKeys(t.GetTags()) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendString(dst, t.Tags[k])
	}
	return append(dst, "}}"...)
}

func appendDeviceStatus(dst []byte, s *envelopev1.DeviceStatus) []byte {
	dst = append(dst, `{"device_id":`...)
	dst = appendString(dst, s.GetDeviceId())
	dst = append(dst, `,"status":`...)
	switch s.GetStatus() {
	case envelopev1.Status_STATUS_ONLINE:
		dst = append(dst, `"online"`...)
	case envelopev1.Status_STATUS_OFFLINE:
		dst = append(dst, `"offline"`...)
	default:
		dst = append(dst, `"unknown"`...)
	}
	dst = append(dst, `,"timestamp":`...)
	dst = appendTime(dst, s.GetTimestamp().AsTime())
	return append(dst, '}')
}

func appendAlert(dst []byte, a *envelopev1.Alert) []byte {
	dst = append(dst, `{"alert_id":`...)
	dst = appendString(dst, a.GetAlertId())
	dst = append(dst, `,"device_id":`...)
	dst = appendString(dst, a.GetDeviceId())
	dst = append(dst, `,"rule_id":`...)
	dst = appendString(dst, a.GetRuleId())
	dst = append(dst, `,"rule_name":`...)
	dst = appendString(dst, a.GetRuleName())
	dst = append(dst, `,"severity":`...)
	switch a.GetSeverity() {
	case envelopev1.AlertSeverity_ALERT_SEVERITY_INFO:
		dst = append(dst, `"info"`...)
	case envelopev1.AlertSeverity_ALERT_SEVERITY_WARNING:
		dst = append(dst, `"warning"`...)
	case envelopev1.AlertSeverity_ALERT_SEVERITY_CRITICAL:
		dst = append(dst, `"critical"`...)
	default:
		dst = append(dst, `"unknown"`...)
	}
	dst = append(dst, `,"field":`...)
	dst = appendString(dst, a.GetField())
	dst = append(dst, `,"value":`...)
	dst = appendNumber(dst, a.GetValue())
	dst = append(dst, `,"threshold":`...)
	dst = appendNumber(dst, a.GetThreshold())
	dst = append(dst, `,"state":`...)
	switch a.GetState() {
	case envelopev1.AlertState_ALERT_STATE_FIRING:
		dst = append(dst, `"firing"`...)
	case envelopev1.AlertState_ALERT_STATE_RESOLVED:
		dst = append(dst, `"resolved"`...)
	default:
		dst = append(dst, `"unknown"`...)
	}
	dst = append(dst, `,"timestamp":`...)
	dst = appendTime(dst, a.GetTimestamp().AsTime())
	return append(dst, '}')
}

// sortedKeys gives maps a stable order so identical readings render identically.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
