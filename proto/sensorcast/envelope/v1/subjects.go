package envelopev1

import "strings"

// NATS subjects are spelled here and nowhere else, so publishers and
// subscribers cannot drift apart.
//
// A room of the wire contract maps to one subject:
//
//	global            -> sensorcast.room.global
//	device:<id>       -> sensorcast.room.device.<id>
//	group:<id>        -> sensorcast.room.group.<id>
//
// Contract ids use only [A-Za-z0-9_:-], none of which is special in a NATS
// subject, so the mapping is one-to-one.
const (
	// RoomSubjectPrefix starts every room subject; RoomSubjectWildcard matches them all.
	RoomSubjectPrefix   = "sensorcast.room."
	RoomSubjectWildcard = RoomSubjectPrefix + ">"
)

// RoomSubject returns the NATS subject of a room name that the caller has
// already validated against the contract.
func RoomSubject(room string) string {
	kind, id, found := strings.Cut(room, ":")
	if !found {
		return RoomSubjectPrefix + room
	}
	return RoomSubjectPrefix + kind + "." + id
}

// NATS headers on every envelope message.
const (
	// HeaderKind names the envelope's body without decoding it; its values
	// are the dashboard message types ("telemetry", "device_status").
	HeaderKind = "Sensorcast-Kind"
	// HeaderTraceparent and HeaderTracestate carry W3C trace context.
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)
