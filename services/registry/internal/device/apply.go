package device

import (
	"fmt"
	"time"
)

// The helpers in this file are for Store implementations, so that every
// store applies the same rules in the same way: each takes the store's
// clock reading and returns the object exactly as it must be stored.

// Timestamp returns t as stores keep it: UTC, truncated to microseconds
// (PostgreSQL's precision), so that every store round-trips it exactly.
func Timestamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// later returns Timestamp(now), or prev if the clock went backwards, so
// UpdatedAt never decreases.
func later(now, prev time.Time) time.Time {
	now = Timestamp(now)
	if now.Before(prev) {
		return prev
	}
	return now
}

// CheckVersion returns ErrConflict when expect is not 0 and differs from
// current.
func CheckVersion(kind, id string, current, expect int64) error {
	if expect != 0 && expect != current {
		return fmt.Errorf("%w: %s %q is at version %d, not %d", ErrConflict, kind, id, current, expect)
	}
	return nil
}

// NewDevice returns d prepared for CreateDevice: a normalized, validated
// copy with CreatedAt = UpdatedAt = now and Version 1.
func NewDevice(d Device, now time.Time) (Device, error) {
	d = d.Clone()
	d.Normalize()
	if err := ValidateDevice(&d); err != nil {
		return Device{}, err
	}
	d.CreatedAt = Timestamp(now)
	d.UpdatedAt = d.CreatedAt
	d.Version = 1
	return d, nil
}

// UpdatedDevice runs UpdateDevice's mutate on a copy of cur and returns the
// device to store: normalized, validated, with cur's ID, CreatedAt,
// Version+1 and UpdatedAt now. mutate's error is returned unchanged.
func UpdatedDevice(cur Device, mutate func(*Device) error, now time.Time) (Device, error) {
	next := cur.Clone()
	if err := mutate(&next); err != nil {
		return Device{}, err
	}
	if next.ID != cur.ID {
		return Device{}, InvalidField("id", "cannot be changed")
	}
	next = next.Clone() // mutate may have stored the caller's own maps or slices
	next.Normalize()
	if err := ValidateDevice(&next); err != nil {
		return Device{}, err
	}
	next.CreatedAt = cur.CreatedAt
	next.UpdatedAt = later(now, cur.UpdatedAt)
	next.Version = cur.Version + 1
	return next, nil
}

// UpsertedDevice returns what UpsertDevices stores for in (already
// prepared by PrepareUpsert) when cur is the existing device, or nil.
func UpsertedDevice(cur *Device, in Device, now time.Time) Device {
	in = in.Clone()
	if cur == nil {
		in.CreatedAt = Timestamp(now)
		in.UpdatedAt = in.CreatedAt
		in.Version = 1
		return in
	}
	if in.SecretHash == nil {
		in.SecretHash = append([]byte(nil), cur.SecretHash...)
		in.Normalize()
	}
	in.CreatedAt = cur.CreatedAt
	in.UpdatedAt = later(now, cur.UpdatedAt)
	in.Version = cur.Version + 1
	return in
}

// PrepareUpsert normalizes and validates an UpsertDevices batch and returns
// normalized copies. Errors name the element ("devices[i].name") and also
// cover duplicate ids and batches larger than MaxUpsertBatch. Whether the
// groups exist is left to the store.
func PrepareUpsert(devices []Device) ([]Device, error) {
	if len(devices) > MaxUpsertBatch {
		return nil, InvalidField("devices", "at most %d devices per batch, got %d", MaxUpsertBatch, len(devices))
	}
	out := make([]Device, len(devices))
	seen := make(map[string]int, len(devices))
	var all []FieldViolation
	for i, d := range devices {
		d = d.Clone()
		d.Normalize()
		prefix := fmt.Sprintf("devices[%d].", i)
		if err := ValidateDevice(&d); err != nil {
			all = append(all, WithPrefix(prefix, err).(*ValidationError).Violations...)
		} else if j, dup := seen[d.ID]; dup {
			all = append(all, FieldViolation{Field: prefix + "id", Description: fmt.Sprintf("duplicates devices[%d].id %q", j, d.ID)})
		} else {
			seen[d.ID] = i
		}
		out[i] = d
		if len(all) >= 100 {
			// Enough for a person to start fixing the file.
			break
		}
	}
	if len(all) > 0 {
		return nil, &ValidationError{Violations: all}
	}
	return out, nil
}

// NewGroup returns g prepared for CreateGroup.
func NewGroup(g Group, now time.Time) (Group, error) {
	g = g.Clone()
	g.Normalize()
	if err := ValidateGroup(&g); err != nil {
		return Group{}, err
	}
	g.MemberCount = 0
	g.CreatedAt = Timestamp(now)
	g.UpdatedAt = g.CreatedAt
	g.Version = 1
	return g, nil
}

// UpdatedGroup runs UpdateGroup's mutate on a copy of cur and returns the
// group to store (MemberCount as in cur).
func UpdatedGroup(cur Group, mutate func(*Group) error, now time.Time) (Group, error) {
	next := cur.Clone()
	if err := mutate(&next); err != nil {
		return Group{}, err
	}
	if next.ID != cur.ID {
		return Group{}, InvalidField("id", "cannot be changed")
	}
	next = next.Clone()
	next.Normalize()
	if err := ValidateGroup(&next); err != nil {
		return Group{}, err
	}
	next.MemberCount = cur.MemberCount
	next.CreatedAt = cur.CreatedAt
	next.UpdatedAt = later(now, cur.UpdatedAt)
	next.Version = cur.Version + 1
	return next, nil
}

// NewRule returns r prepared for CreateRule.
func NewRule(r AlertRule, now time.Time) (AlertRule, error) {
	if err := ValidateRule(&r); err != nil {
		return AlertRule{}, err
	}
	r.CreatedAt = Timestamp(now)
	r.UpdatedAt = r.CreatedAt
	r.Version = 1
	return r, nil
}

// UpdatedRule runs UpdateRule's mutate on a copy of cur and returns the
// rule to store.
func UpdatedRule(cur AlertRule, mutate func(*AlertRule) error, now time.Time) (AlertRule, error) {
	next := cur
	if err := mutate(&next); err != nil {
		return AlertRule{}, err
	}
	if next.ID != cur.ID {
		return AlertRule{}, InvalidField("id", "cannot be changed")
	}
	if err := ValidateRule(&next); err != nil {
		return AlertRule{}, err
	}
	next.CreatedAt = cur.CreatedAt
	next.UpdatedAt = later(now, cur.UpdatedAt)
	next.Version = cur.Version + 1
	return next, nil
}
