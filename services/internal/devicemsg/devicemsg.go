// Package devicemsg parses and validates what devices send, as the wire
// contract (protocol.md section 2) defines it: the MQTT topics
// devices/<id>/telemetry and devices/<id>/status and their JSON payloads.
//
// It is shared by every path a device can take into the platform (MQTT
// through ingest, WebSocket through the edge), so a payload is accepted or
// rejected the same way wherever it arrives. Every rejection is an *Error
// whose Reason is a short, fixed word that can label a metric.
package devicemsg

// Limits of a device payload. They keep one device from making the platform
// carry (and every dashboard render) arbitrarily large readings.
const (
	// MaxPayloadBytes is the largest payload accepted; larger ones are
	// rejected before any parsing, so a flood of them costs little.
	MaxPayloadBytes = 8192
	// MaxFields is the most fields one telemetry message may carry.
	MaxFields = 64
	// MaxTags is the most tags one telemetry message may carry.
	MaxTags = 32
	// MaxNameLen is the longest field or tag name.
	MaxNameLen = 64
	// MaxTextLen is the longest string field value or tag value, in bytes
	// of UTF-8.
	MaxTextLen = 256
)

// validName reports whether s may name a field or tag: 1–MaxNameLen
// characters of A–Z a–z 0–9 _ . -, which are safe as column names, metric
// labels and JSON keys alike.
func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
