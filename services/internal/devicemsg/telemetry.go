package devicemsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ParseTelemetry validates a telemetry payload of device deviceID and
// returns it as the envelope's Telemetry:
//
//	{"fields": {"temperature": 28.7, "door_open": false, "mode": "eco"},
//	 "tags": {"site": "a"}, "timestamp": "2025-01-02T03:04:05Z"}
//
// fields is required and holds 1–MaxFields numbers, strings or booleans;
// tags is optional and holds up to MaxTags strings; timestamp is optional
// RFC 3339 and defaults to now. Names of fields and tags are 1–MaxNameLen
// characters of A–Z a–z 0–9 _ . -. Other top-level keys are ignored, so
// devices may send more than this version knows about. As with
// encoding/json everywhere, top-level keys match case-insensitively.
func ParseTelemetry(deviceID string, payload []byte, now time.Time) (*envelopev1.Telemetry, error) {
	if len(payload) > MaxPayloadBytes {
		return nil, Reject(ReasonTooLarge, "payload is %d bytes, more than %d", len(payload), MaxPayloadBytes)
	}
	if err := checkDeviceID(deviceID); err != nil {
		return nil, err
	}
	// One decode straight into these types, whose values check themselves,
	// keeps it to a single pass of encoding/json and no map[string]any.
	var p struct {
		Fields    map[string]fieldJSON `json:"fields"`
		Tags      map[string]tagJSON   `json:"tags"`
		Timestamp timestampJSON        `json:"timestamp"`
	}
	if err := unmarshalObject(payload, &p, telemetryTypeError); err != nil {
		return nil, err
	}
	fields, err := checkFields(p.Fields)
	if err != nil {
		return nil, err
	}
	tags, err := checkTags(p.Tags)
	if err != nil {
		return nil, err
	}
	return &envelopev1.Telemetry{
		DeviceId:  deviceID,
		Timestamp: p.Timestamp.orNow(now),
		Fields:    fields,
		Tags:      tags,
	}, nil
}

// telemetryTypeError is the rejection of a top-level key whose value has
// the wrong JSON type.
func telemetryTypeError(key string) *Error {
	switch key {
	case "fields":
		return Reject(ReasonInvalidFields, `"fields" must be an object`)
	case "tags":
		return Reject(ReasonInvalidTags, `"tags" must be an object of strings`)
	}
	return nil
}

// unmarshalObject decodes a payload that must be a JSON object into v.
// Values that check themselves report an *Error; a top-level key whose
// value has the wrong JSON type gets the error typeError returns for it.
func unmarshalObject(payload []byte, v any, typeError func(key string) *Error) error {
	err := json.Unmarshal(payload, v)
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return Reject(ReasonInvalidJSON, "payload is a JSON %s, not an object", typeErr.Value)
		}
		if typeError != nil {
			if e := typeError(typeErr.Field); e != nil {
				return e
			}
		}
	}
	return &Error{Reason: ReasonInvalidJSON, Detail: "payload is not valid JSON", Err: err}
}

// checkFields checks the decoded "fields" object and returns its values.
func checkFields(raw map[string]fieldJSON) (map[string]*envelopev1.FieldValue, error) {
	switch {
	case raw == nil:
		return nil, Reject(ReasonInvalidFields, `"fields" is missing`)
	case len(raw) == 0:
		return nil, Reject(ReasonInvalidFields, `"fields" is empty`)
	case len(raw) > MaxFields:
		return nil, Reject(ReasonInvalidFields, "%d fields, more than %d", len(raw), MaxFields)
	}
	// Report the first bad field in name order, so the same payload always
	// gets the same error.
	var bad []string
	for name, v := range raw {
		if !validName(name) || v.err != nil {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		name := slices.Min(bad)
		if !validName(name) {
			return nil, Reject(ReasonInvalidFields, "field name %s is not 1-%d characters of A-Z a-z 0-9 _ . -", quote(name), MaxNameLen)
		}
		e := raw[name].err
		return nil, Reject(e.Reason, "field %s: %s", quote(name), e.Detail)
	}
	fields := make(map[string]*envelopev1.FieldValue, len(raw))
	for name, v := range raw {
		fields[name] = v.v
	}
	return fields, nil
}

// fieldJSON is one field value. A bad value records its problem instead of
// failing the decode, because only the enclosing object knows its name.
type fieldJSON struct {
	v   *envelopev1.FieldValue
	err *Error
}

func (f *fieldJSON) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case '"':
		s, err := unquote(b)
		if err != nil {
			return err
		}
		if len(s) > MaxTextLen {
			f.err = Reject(ReasonInvalidFieldValue, "string of %d bytes, more than %d", len(s), MaxTextLen)
			return nil
		}
		f.v = &envelopev1.FieldValue{Kind: &envelopev1.FieldValue_Text{Text: s}}
	case 't', 'f':
		f.v = &envelopev1.FieldValue{Kind: &envelopev1.FieldValue_Flag{Flag: b[0] == 't'}}
	case 'n':
		f.err = Reject(ReasonInvalidFieldType, "null is not a number, string or boolean")
	case '[':
		f.err = Reject(ReasonInvalidFieldType, "an array is not a number, string or boolean")
	case '{':
		f.err = Reject(ReasonInvalidFieldType, "an object is not a number, string or boolean")
	default:
		// encoding/json has already checked the number's syntax.
		n, err := strconv.ParseFloat(string(b), 64)
		if err != nil || math.IsInf(n, 0) {
			f.err = Reject(ReasonInvalidFieldValue, "number %s is out of range", quote(string(b)))
			return nil
		}
		f.v = &envelopev1.FieldValue{Kind: &envelopev1.FieldValue_Number{Number: n}}
	}
	return nil
}

// checkTags checks the decoded "tags" object, which may be absent.
func checkTags(raw map[string]tagJSON) (map[string]string, error) {
	if len(raw) > MaxTags {
		return nil, Reject(ReasonInvalidTags, "%d tags, more than %d", len(raw), MaxTags)
	}
	var bad []string
	for name, v := range raw {
		if !validName(name) || v.problem != "" {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		name := slices.Min(bad)
		if !validName(name) {
			return nil, Reject(ReasonInvalidTags, "tag name %s is not 1-%d characters of A-Z a-z 0-9 _ . -", quote(name), MaxNameLen)
		}
		return nil, Reject(ReasonInvalidTags, "tag %s: %s", quote(name), raw[name].problem)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	tags := make(map[string]string, len(raw))
	for name, v := range raw {
		tags[name] = v.s
	}
	return tags, nil
}

// tagJSON is one tag value, which must be a string. Like fieldJSON it
// records a problem for the enclosing object to report with the name.
type tagJSON struct {
	s       string
	problem string
}

func (t *tagJSON) UnmarshalJSON(b []byte) error {
	if b[0] != '"' {
		t.problem = "value must be a string"
		return nil
	}
	s, err := unquote(b)
	if err != nil {
		return err
	}
	if len(s) > MaxTextLen {
		t.problem = fmt.Sprintf("value is %d bytes, more than %d", len(s), MaxTextLen)
		return nil
	}
	t.s = s
	return nil
}

// timestampJSON decodes an optional RFC 3339 "timestamp"; null counts as
// absent.
type timestampJSON struct {
	t *timestamppb.Timestamp
}

func (t *timestampJSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if b[0] != '"' {
		return Reject(ReasonInvalidTimestamp, `"timestamp" must be an RFC 3339 string`)
	}
	s, err := unquote(b)
	if err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return &Error{Reason: ReasonInvalidTimestamp, Detail: `"timestamp" must be an RFC 3339 string`, Err: err}
	}
	ts := timestamppb.New(parsed)
	if err := ts.CheckValid(); err != nil {
		return &Error{Reason: ReasonInvalidTimestamp, Detail: `"timestamp" is out of range`, Err: err}
	}
	t.t = ts
	return nil
}

// orNow returns the device's timestamp, or now when it sent none.
func (t timestampJSON) orNow(now time.Time) *timestamppb.Timestamp {
	if t.t != nil {
		return t.t
	}
	return timestamppb.New(now.UTC())
}

// unquote returns the string of a JSON string literal. Most device strings
// are plain ASCII or UTF-8 without escapes, which are copied directly;
// the rest go through encoding/json, which also turns invalid UTF-8 into
// U+FFFD (protobuf strings must be valid UTF-8).
func unquote(b []byte) (string, error) {
	inner := b[1 : len(b)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", &Error{Reason: ReasonInvalidJSON, Detail: "bad string", Err: err}
	}
	return s, nil
}
