package ingest

import (
	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

// W3C trace context travels from the device's MQTT v5 user properties to
// NATS headers under the same names, so a trace can start on the device.
//
// maxTracestateLen is the W3C limit on tracestate.
const maxTracestateLen = 512

// copyTraceContext copies a device's traceparent (and tracestate with it)
// into h. Values come from devices and end up in headers every consumer
// parses, so a malformed traceparent is dropped, as W3C asks of receivers,
// and tracestate must be short printable ASCII.
func copyTraceContext(h nats.Header, props *paho.PublishProperties) {
	if props == nil {
		return
	}
	tp := props.User.Get(envelopev1.HeaderTraceparent)
	if !validTraceparent(tp) {
		return
	}
	h.Set(envelopev1.HeaderTraceparent, tp)
	if ts := props.User.Get(envelopev1.HeaderTracestate); ts != "" && len(ts) <= maxTracestateLen && printableASCII(ts) {
		h.Set(envelopev1.HeaderTracestate, ts)
	}
}

// validTraceparent checks the W3C shape version-traceid-parentid-flags
// (2-32-16-2 lowercase hex digits). Future versions may append fields
// after another dash; version ff and all-zero ids are invalid.
func validTraceparent(s string) bool {
	const size = 55
	if len(s) < size || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	version, traceID, parentID, flags := s[0:2], s[3:35], s[36:52], s[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(traceID) || !lowerHex(parentID) || !lowerHex(flags) {
		return false
	}
	if allZero(traceID) || allZero(parentID) {
		return false
	}
	if len(s) > size {
		return version != "00" && s[size] == '-' && len(s) <= 256 && printableASCII(s)
	}
	return true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
