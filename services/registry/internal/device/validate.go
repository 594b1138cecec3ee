package device

import (
	"fmt"
	"math"
	"sort"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sensorcast/sensorcast/services/internal/room"
)

// Limits on what the registry stores. Lengths of names and descriptions
// count characters (runes); keys, values and ids count bytes, which are
// ASCII for them.
const (
	MaxNameLen           = 200
	MaxTypeLen           = 64
	MaxDescriptionLen    = 2000
	MaxGroups            = 64
	MaxLabels            = 64
	MaxKeyLen            = 63
	MaxLabelValueLen     = 256
	MaxAttributes        = 64
	MaxAttributeValueLen = 1024
	MaxFieldLen          = 64
	MaxRuleDuration      = 24 * time.Hour
	// MaxUpsertBatch is the most devices one UpsertDevices call takes.
	MaxUpsertBatch = 100_000
)

// ValidateID returns a ValidationError on field if id is not a contract id.
func ValidateID(field, id string) error {
	if err := room.CheckID(id); err != nil {
		return InvalidField(field, "%s", idProblem(id))
	}
	return nil
}

// idProblem says in words why id is not a contract id (room.CheckID's
// reason without its "invalid room" prefix).
func idProblem(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case len(id) > room.MaxIDLen:
		return fmt.Sprintf("must be at most %d characters, got %d", room.MaxIDLen, len(id))
	default:
		return "may only hold A-Z a-z 0-9 _ - :"
	}
}

func (vs *violations) id(field, id string) {
	if !room.ValidID(id) {
		vs.add(field, "%s", idProblem(id))
	}
}

func (vs *violations) text(field, s string, max int) {
	switch {
	case !utf8.ValidString(s):
		vs.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		vs.add(field, "must be at most %d characters", max)
	case hasControl(s, field == "description"):
		vs.add(field, "must not hold control characters")
	}
}

// hasControl reports whether s holds a control character other than, when
// multiline, newlines and tabs.
func hasControl(s string, multiline bool) bool {
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')) {
			return true
		}
	}
	return false
}

// ValidKey reports whether k is a valid label or attribute key: 1–63 of
// A–Z a–z 0–9 . _ / -.
func ValidKey(k string) bool {
	if k == "" || len(k) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isKeyByte(k[i]) {
			return false
		}
	}
	return true
}

func isKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '/' || c == '-'
}

// ValidLabelValue reports whether v is a valid label value: 0–256 of
// A–Z a–z 0–9 . _ / - :. Labels are for selecting, so their values are
// restricted to what a selector can spell; free text goes in attributes.
func ValidLabelValue(v string) bool {
	if len(v) > MaxLabelValueLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !isValueByte(v[i]) {
			return false
		}
	}
	return true
}

func isValueByte(c byte) bool { return isKeyByte(c) || c == ':' }

func (vs *violations) labels(field string, labels map[string]string) {
	if len(labels) > MaxLabels {
		vs.add(field, "at most %d labels, got %d", MaxLabels, len(labels))
		return
	}
	for _, k := range sortedKeys(labels) {
		if !ValidKey(k) {
			vs.add(field, "key %q must be 1-%d characters of A-Z a-z 0-9 . _ / -", truncate(k), MaxKeyLen)
		} else if v := labels[k]; !ValidLabelValue(v) {
			vs.add(field, "value of %q must be at most %d characters of A-Z a-z 0-9 . _ / - :", k, MaxLabelValueLen)
		}
	}
}

func (vs *violations) attributes(field string, attrs map[string]string) {
	if len(attrs) > MaxAttributes {
		vs.add(field, "at most %d attributes, got %d", MaxAttributes, len(attrs))
		return
	}
	for _, k := range sortedKeys(attrs) {
		v := attrs[k]
		switch {
		case !ValidKey(k):
			vs.add(field, "key %q must be 1-%d characters of A-Z a-z 0-9 . _ / -", truncate(k), MaxKeyLen)
		case !utf8.ValidString(v):
			vs.add(field, "value of %q must be valid UTF-8", k)
		case len(v) > MaxAttributeValueLen:
			vs.add(field, "value of %q must be at most %d bytes", k, MaxAttributeValueLen)
		}
	}
}

// ValidateDevice checks every field a caller sets (not the store's
// CreatedAt, UpdatedAt, Version) and returns a ValidationError listing all
// problems, or nil. Call Normalize first: duplicate groups count once.
// Whether the groups exist is the store's check (MissingGroupsError).
func ValidateDevice(d *Device) error {
	var vs violations
	vs.id("id", d.ID)
	vs.text("name", d.Name, MaxNameLen)
	vs.text("type", d.Type, MaxTypeLen)
	if len(d.Groups) > MaxGroups {
		vs.add("groups", "at most %d groups, got %d", MaxGroups, len(d.Groups))
	} else {
		for i, g := range d.Groups {
			vs.id(fmt.Sprintf("groups[%d]", i), g)
		}
	}
	vs.labels("labels", d.Labels)
	vs.attributes("attributes", d.Attributes)
	if d.SecretHash != nil && !validHashFormat(d.SecretHash) {
		vs.add("secret_hash", "is not a hash made by HashSecret")
	}
	return vs.err()
}

// ValidateGroup checks the caller's fields of g.
func ValidateGroup(g *Group) error {
	var vs violations
	vs.id("id", g.ID)
	vs.text("display_name", g.DisplayName, MaxNameLen)
	vs.text("description", g.Description, MaxDescriptionLen)
	vs.labels("labels", g.Labels)
	return vs.err()
}

// ValidField reports whether f is a valid telemetry field name for a rule:
// 1–64 of A–Z a–z 0–9 _ . -.
func ValidField(f string) bool {
	if f == "" || len(f) > MaxFieldLen {
		return false
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateRule checks the caller's fields of r.
func ValidateRule(r *AlertRule) error {
	var vs violations
	vs.id("id", r.ID)
	if r.Name == "" {
		vs.add("name", "must not be empty")
	} else {
		vs.text("name", r.Name, MaxNameLen)
	}
	switch r.Target.Kind {
	case TargetDevice, TargetGroup:
	default:
		vs.add("target.kind", "must be %q or %q, got %q", TargetDevice, TargetGroup, truncate(string(r.Target.Kind)))
	}
	vs.id("target.id", r.Target.ID)
	if !ValidField(r.Field) {
		vs.add("field", "must be 1-%d characters of A-Z a-z 0-9 _ . -", MaxFieldLen)
	}
	if !validOperator(r.Operator) {
		vs.add("operator", "must be one of > >= < <= == !=, got %q", truncate(string(r.Operator)))
	}
	if math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0) {
		vs.add("threshold", "must be a finite number")
	}
	switch r.Severity {
	case SeverityInfo, SeverityWarning, SeverityCritical:
	default:
		vs.add("severity", "must be info, warning or critical, got %q", truncate(string(r.Severity)))
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"hold", r.Hold}, {"cooldown", r.Cooldown}} {
		if d.v < 0 || d.v > MaxRuleDuration {
			vs.add(d.field, "must be between 0 and %s, got %s", MaxRuleDuration, d.v)
		}
	}
	return vs.err()
}

func validOperator(op Operator) bool {
	for _, o := range Operators {
		if op == o {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// truncate keeps error messages short when a caller sends a huge value.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	// Cut on a rune boundary so the message stays valid UTF-8.
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
