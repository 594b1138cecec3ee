// Package device is the registry's domain: devices, groups and alert rules,
// the rules that make them valid, label selectors, device secrets, and the
// Store interface the registry needs from its storage (implemented by the
// embedded memstore and by the PostgreSQL store, both held to the contract
// suite in package storetest).
//
// Nothing here knows about protobuf or gRPC: the server maps these types and
// errors to and from the wire.
package device

import (
	"maps"
	"slices"
	"time"
)

// Device is one registered device.
type Device struct {
	// ID is the contract id (1–128 of A–Z a–z 0–9 _ - :). It never changes.
	ID string
	// Name is a human name, at most 200 characters; may be empty.
	Name string
	// Type is a free-form kind of hardware, at most 64 characters; may be empty.
	Type string
	// Groups are the ids of the groups the device belongs to, sorted and
	// without duplicates (Normalize). Every group must exist in the store.
	Groups []string
	// Labels are selectable key/values (see ParseSelector).
	Labels map[string]string
	// Attributes are free-form key/values, not selectable.
	Attributes map[string]string
	// Enabled devices may send telemetry; disabled ones are dropped by ingest.
	Enabled bool
	// SecretHash is the device secret as encoded by HashSecret, or nil when
	// the device has none. It never leaves the store and the server.
	SecretHash []byte

	// Set by the store.
	CreatedAt, UpdatedAt time.Time
	// Version is 1 after creation and grows by one on every committed change.
	Version int64
}

// Group is a first-class set of devices: a device can only join a group
// that exists, and a group with members is only deleted on request (force).
type Group struct {
	ID          string
	DisplayName string
	Description string
	Labels      map[string]string
	// MemberCount is computed by the store when the group is read. Members
	// joining or leaving do not change the group's Version.
	MemberCount int

	CreatedAt, UpdatedAt time.Time
	Version              int64
}

// AlertRule raises an alert when a telemetry field of the target crosses a
// threshold for at least Hold, then stays quiet for Cooldown.
type AlertRule struct {
	ID        string
	Name      string
	Target    Target
	Field     string
	Operator  Operator
	Threshold float64
	Severity  Severity
	Hold      time.Duration
	Cooldown  time.Duration
	Enabled   bool

	CreatedAt, UpdatedAt time.Time
	Version              int64
}

// Target is what a rule watches: one device, or every device of a group.
// The target need not exist: rules are configuration that may be written
// before the fleet is imported, and a rule whose target is gone matches
// nothing.
type Target struct {
	Kind TargetKind
	ID   string
}

// TargetKind says whether a Target is a device or a group.
type TargetKind string

// Target kinds.
const (
	TargetDevice TargetKind = "device"
	TargetGroup  TargetKind = "group"
)

// Operator compares a field value (left) with a rule threshold (right).
type Operator string

// Operators.
const (
	OpGreater      Operator = ">"
	OpGreaterEqual Operator = ">="
	OpLess         Operator = "<"
	OpLessEqual    Operator = "<="
	OpEqual        Operator = "=="
	OpNotEqual     Operator = "!="
)

// Operators lists every valid Operator.
var Operators = []Operator{OpGreater, OpGreaterEqual, OpLess, OpLessEqual, OpEqual, OpNotEqual}

// Compare reports whether value op threshold holds. An unknown operator
// never holds.
func (op Operator) Compare(value, threshold float64) bool {
	switch op {
	case OpGreater:
		return value > threshold
	case OpGreaterEqual:
		return value >= threshold
	case OpLess:
		return value < threshold
	case OpLessEqual:
		return value <= threshold
	case OpEqual:
		return value == threshold
	case OpNotEqual:
		return value != threshold
	}
	return false
}

// Severity is how loud an alert is.
type Severity string

// Severities.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// ChangeKind says what a Change did to which kind of object.
type ChangeKind string

// Change kinds.
const (
	DeviceCreated ChangeKind = "device_created"
	DeviceUpdated ChangeKind = "device_updated"
	DeviceDeleted ChangeKind = "device_deleted"
	GroupCreated  ChangeKind = "group_created"
	GroupUpdated  ChangeKind = "group_updated"
	GroupDeleted  ChangeKind = "group_deleted"
	RuleCreated   ChangeKind = "rule_created"
	RuleUpdated   ChangeKind = "rule_updated"
	RuleDeleted   ChangeKind = "rule_deleted"
)

// Change is one entry of the store's durable change log: one committed
// change to one object.
type Change struct {
	// Seq is the change's position in the store-wide log: the first change
	// of an empty store is 1 and every commit takes the next numbers, with
	// no gaps, in commit order.
	Seq  int64
	Kind ChangeKind
	// ID is the id of the changed device, group or rule.
	ID string
	// Version is the object's version after the change; for a delete, the
	// version it had when it was deleted.
	Version int64
	// At is when the change was committed (the object's UpdatedAt, or the
	// time of the delete).
	At time.Time
	// The object's state right after the change, for the kind that changed;
	// all nil on a delete. Device.SecretHash is included: strip it before
	// the change leaves the process.
	Device *Device
	Group  *Group
	Rule   *AlertRule
}

// Clone returns a deep copy of d.
func (d Device) Clone() Device {
	d.Groups = slices.Clone(d.Groups)
	d.Labels = maps.Clone(d.Labels)
	d.Attributes = maps.Clone(d.Attributes)
	d.SecretHash = slices.Clone(d.SecretHash)
	return d
}

// Clone returns a deep copy of g.
func (g Group) Clone() Group {
	g.Labels = maps.Clone(g.Labels)
	return g
}

// Clone returns a deep copy of c (and of the state it carries).
func (c Change) Clone() Change {
	if c.Device != nil {
		d := c.Device.Clone()
		c.Device = &d
	}
	if c.Group != nil {
		g := c.Group.Clone()
		c.Group = &g
	}
	if c.Rule != nil {
		r := *c.Rule
		c.Rule = &r
	}
	return c
}

// Normalize puts d in the form the store keeps: Groups sorted and without
// duplicates, empty collections nil. Stores call it before validating;
// readers must not tell nil and empty collections apart.
func (d *Device) Normalize() {
	if len(d.Groups) == 0 {
		d.Groups = nil
	} else {
		d.Groups = slices.Compact(slices.Sorted(slices.Values(d.Groups)))
	}
	if len(d.Labels) == 0 {
		d.Labels = nil
	}
	if len(d.Attributes) == 0 {
		d.Attributes = nil
	}
	if len(d.SecretHash) == 0 {
		d.SecretHash = nil
	}
}

// Normalize puts g in the form the store keeps (empty Labels nil).
func (g *Group) Normalize() {
	if len(g.Labels) == 0 {
		g.Labels = nil
	}
}

// InGroup reports whether d is a member of group id.
func (d *Device) InGroup(id string) bool {
	_, found := slices.BinarySearch(d.Groups, id)
	return found
}
