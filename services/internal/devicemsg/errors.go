package devicemsg

import (
	"errors"
	"fmt"
)

// Reason says in one stable snake_case word why a message was rejected. The
// set is small and fixed, so it is safe as a Prometheus label value.
type Reason string

// Reasons for rejecting a device message.
const (
	ReasonTooLarge          Reason = "too_large"
	ReasonInvalidJSON       Reason = "invalid_json"
	ReasonInvalidFields     Reason = "invalid_fields"
	ReasonInvalidFieldType  Reason = "invalid_field_type"
	ReasonInvalidFieldValue Reason = "invalid_field_value"
	ReasonInvalidTags       Reason = "invalid_tags"
	ReasonInvalidTimestamp  Reason = "invalid_timestamp"
	ReasonInvalidStatus     Reason = "invalid_status"
	ReasonInvalidTopic      Reason = "invalid_topic"
	ReasonInvalidDeviceID   Reason = "invalid_device_id"
	ReasonInvalidAck        Reason = "invalid_ack"
	// ReasonUnknownDevice and ReasonDisabledDevice come from admission
	// against the registry, not from parsing.
	ReasonUnknownDevice  Reason = "unknown_device"
	ReasonDisabledDevice Reason = "disabled_device"
	// ReasonUnknown is what ReasonOf returns for an error that did not come
	// from this package.
	ReasonUnknown Reason = "unknown"
)

// Reasons lists every Reason this package returns, so callers can create
// their metric series up front and dashboards show zeros, not gaps.
func Reasons() []Reason {
	return []Reason{
		ReasonTooLarge, ReasonInvalidJSON, ReasonInvalidFields, ReasonInvalidFieldType,
		ReasonInvalidFieldValue, ReasonInvalidTags, ReasonInvalidTimestamp, ReasonInvalidStatus,
		ReasonInvalidTopic, ReasonInvalidDeviceID, ReasonInvalidAck, ReasonUnknownDevice, ReasonDisabledDevice,
	}
}

// Error is the error of every rejected topic or payload.
type Error struct {
	// Reason is the machine-readable cause, for metrics and protocol codes.
	Reason Reason
	// Detail is for humans reading logs; it may quote (truncated) input.
	Detail string
	// Err is the underlying cause, if there is one.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Reason, e.Detail, e.Err)
	}
	return string(e.Reason) + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of err, or ReasonUnknown when err is not (or
// does not wrap) an *Error.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonUnknown
}

// Reject returns an *Error with a reason and a description; checks made
// outside this package (device admission) use it too.
func Reject(reason Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// quote shortens s for an error message, so a hostile payload cannot make
// log lines arbitrarily long.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
