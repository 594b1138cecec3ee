package commandv1

import "strings"

// NATS subjects of commands, spelled here and nowhere else.
const (
	// SendSubjectPrefix + device id is where an edge sends a Command as a
	// request; ingest replicas answer it in one queue group (SendQueue), so
	// exactly one publishes it to the device.
	SendSubjectPrefix = "sensorcast.command.send."
	SendWildcard      = SendSubjectPrefix + "*"
	SendQueue         = "sensorcast-ingest"
	// ResultSubjectPrefix + edge token is where the device's
	// acknowledgements go back, to the edge whose client sent the command.
	ResultSubjectPrefix = "sensorcast.command.result."
)

// DeviceSubjectPrefix + device id is where the edge that holds a device's
// WebSocket takes its commands: the ingest replica that took a command
// tries it first, and sends it over MQTT when no edge answers.
const DeviceSubjectPrefix = "sensorcast.command.device."

// DeviceSubject is the subject a WebSocket device's edge takes its
// commands on.
func DeviceSubject(deviceID string) string { return DeviceSubjectPrefix + deviceID }

// SendSubject is the subject a command for a device is sent on.
func SendSubject(deviceID string) string { return SendSubjectPrefix + deviceID }

// ResultSubject is the subject an edge with this token reads results on.
func ResultSubject(edgeToken string) string { return ResultSubjectPrefix + edgeToken }

// NewCommandID returns a command id that routes results to edgeToken.
// unique must not contain '-'.
func NewCommandID(edgeToken, unique string) string { return edgeToken + "-" + unique }

// ResultSubjectOf returns the result subject of a command id, or false for
// an id no edge made.
func ResultSubjectOf(commandID string) (string, bool) {
	token, _, ok := strings.Cut(commandID, "-")
	if !ok || token == "" || strings.ContainsAny(token, ".*> \t") {
		return "", false
	}
	return ResultSubject(token), true
}
