package envelopev1

import "strings"

// NATS subjects are spelled here and nowhere else, so publishers and
// subscribers cannot drift apart.
//
// Every room message is stored in the JetStream stream RoomStream under a
// subject made of the room and the message kind:
//
//	global        -> sensorcast.room.global.<kind>
//	device:<id>   -> sensorcast.room.device.<id>.<kind>
//	group:<id>    -> sensorcast.room.group.<id>.<kind>
//
// The stream republishes each stored message, with its stream sequence in
// the Nats-Sequence header, under the same tokens with "live" instead of
// "room"; edges subscribe to those. So the live path costs one server hop
// and no JetStream round trip, and every message an edge sees already has
// the sequence a client resumes from.
//
// The kind token lets one stream answer "the last telemetry and the last
// status of this device" (latest state on join) without a second store.
//
// Contract ids use only [A-Za-z0-9_:-], none of which is special in a NATS
// subject, so the mapping is one-to-one.
const (
	// RoomStream is the JetStream stream that retains room messages.
	RoomStream = "SENSORCAST_ROOMS"
	// RoomSubjectPrefix starts every stored room subject; RoomSubjectWildcard matches them all.
	RoomSubjectPrefix   = "sensorcast.room."
	RoomSubjectWildcard = RoomSubjectPrefix + ">"
	// LiveSubjectPrefix starts every republished room subject; LiveSubjectWildcard matches them all.
	LiveSubjectPrefix   = "sensorcast.live."
	LiveSubjectWildcard = LiveSubjectPrefix + ">"
)

// Message kinds: the last subject token, and the dashboard message type.
const (
	KindTelemetry    = "telemetry"
	KindDeviceStatus = "device_status"
	KindAlert        = "alert"
)

// RoomSubject returns the stored subject of a message of kind in a room
// name that the caller has already validated against the contract.
func RoomSubject(room, kind string) string {
	return RoomSubjectPrefix + roomTokens(room) + "." + kind
}

// RoomFilter matches every stored message of a room, of any kind.
func RoomFilter(room string) string {
	return RoomSubjectPrefix + roomTokens(room) + ".*"
}

// LiveFilter matches every republished message of a room, of any kind.
func LiveFilter(room string) string {
	return LiveSubjectPrefix + roomTokens(room) + ".*"
}

// KindOfSubject returns the kind token of a room subject (stored or live).
func KindOfSubject(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}

// SubjectTemplate returns a room subject (stored or live) with its room id
// as {device_id} or {group_id}: a name of bounded cardinality, as span
// names need. Other subjects come back as they are.
func SubjectTemplate(subject string) string {
	tokens := strings.Split(subject, ".")
	if len(tokens) == 5 && tokens[0] == "sensorcast" && (tokens[1] == "room" || tokens[1] == "live") {
		switch tokens[2] {
		case "device":
			tokens[3] = "{device_id}"
		case "group":
			tokens[3] = "{group_id}"
		}
		return strings.Join(tokens, ".")
	}
	return subject
}

func roomTokens(room string) string {
	kind, id, found := strings.Cut(room, ":")
	if !found {
		return room
	}
	return kind + "." + id
}

// Edge pods say on PresenceSubject(room) that a room's members may have
// changed (a user's first connection to the room on that pod came or its
// last went), so that pods whose clients watch the room's presence read
// it again. The message has no body: presence itself lives in Redis.
const PresenceSubjectPrefix = "sensorcast.presence."

// PresenceSubject is where changes of a room's members are announced.
func PresenceSubject(room string) string {
	return PresenceSubjectPrefix + roomTokens(room)
}

// NATS headers on every envelope message.
const (
	// HeaderTraceparent and HeaderTracestate carry W3C trace context.
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
	// HeaderMsgID is JetStream's de-duplication id: a publish retried after
	// a lost acknowledgement is stored once.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderSequence is the stream sequence JetStream adds to republished
	// and directly fetched messages.
	HeaderSequence = "Nats-Sequence"
)

// SubjectInRoom reports whether a stored subject belongs to a room.
func SubjectInRoom(subject, room string) bool {
	prefix := RoomSubjectPrefix + roomTokens(room) + "."
	rest, ok := strings.CutPrefix(subject, prefix)
	return ok && rest != "" && !strings.Contains(rest, ".")
}

// Device messages that do not come over MQTT (devices on the edge's
// WebSocket) enter ingest as NATS requests on IngressSubject, in one queue
// group (IngressQueue), so they take the very path MQTT messages take:
// validation, admission, rooms and alert rules. The payload is the device's
// JSON as is; the answer is empty when the message is stored, or an
// IngressError.
const (
	IngressSubjectPrefix = "sensorcast.ingress."
	IngressWildcard      = IngressSubjectPrefix + "*.*"
	IngressQueue         = "sensorcast-ingest"
)

// IngressSubject is where a message of device deviceID enters ingest;
// level is the last level of the message's MQTT topic ("telemetry" or
// "status").
func IngressSubject(deviceID, level string) string {
	return IngressSubjectPrefix + deviceID + "." + level
}

// ParseIngressSubject returns the device id and topic level of an
// ingress subject.
func ParseIngressSubject(subject string) (deviceID, level string, ok bool) {
	rest, ok := strings.CutPrefix(subject, IngressSubjectPrefix)
	if !ok {
		return "", "", false
	}
	deviceID, level, ok = strings.Cut(rest, ".")
	return deviceID, level, ok && deviceID != "" && !strings.Contains(level, ".")
}

// IngressError is the JSON answer to an ingress request that was not
// stored: Reason is the rejection's reason ("invalid_fields", ...) or
// "unavailable" when ingest could not take it now (send it again).
type IngressError struct {
	Reason string `json:"reason"`
	Error  string `json:"error"`
}
