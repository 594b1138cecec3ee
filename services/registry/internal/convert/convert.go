// Package convert maps the registry's domain types (package device) to and
// from their protobuf form (registryv1). It is shared by the gRPC server and
// the change announcer, so both put the same bytes on the wire.
//
// Nothing here copies a device's SecretHash: the protobuf Device has no
// field for it (only has_secret), so a secret cannot leave the registry
// through these functions.
package convert

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// Device returns the protobuf form of d, without its secret.
func Device(d *device.Device) *registryv1.Device {
	return &registryv1.Device{
		Id:          d.ID,
		DisplayName: d.Name,
		Type:        d.Type,
		Groups:      d.Groups,
		Labels:      d.Labels,
		Attributes:  d.Attributes,
		Enabled:     d.Enabled,
		HasSecret:   len(d.SecretHash) > 0,
		CreateTime:  timestamp(d.CreatedAt),
		UpdateTime:  timestamp(d.UpdatedAt),
		Version:     d.Version,
	}
}

// Devices returns the protobuf form of ds.
func Devices(ds []device.Device) []*registryv1.Device {
	out := make([]*registryv1.Device, len(ds))
	for i := range ds {
		out[i] = Device(&ds[i])
	}
	return out
}

// DeviceFromProto returns the caller fields of p (output-only fields are
// ignored). A nil p is the zero device.
func DeviceFromProto(p *registryv1.Device) device.Device {
	return device.Device{
		ID:         p.GetId(),
		Name:       p.GetDisplayName(),
		Type:       p.GetType(),
		Groups:     p.GetGroups(),
		Labels:     p.GetLabels(),
		Attributes: p.GetAttributes(),
		Enabled:    p.GetEnabled(),
	}
}

// Group returns the protobuf form of g.
func Group(g *device.Group) *registryv1.Group {
	return &registryv1.Group{
		Id:          g.ID,
		DisplayName: g.DisplayName,
		Description: g.Description,
		Labels:      g.Labels,
		MemberCount: int64(g.MemberCount),
		CreateTime:  timestamp(g.CreatedAt),
		UpdateTime:  timestamp(g.UpdatedAt),
		Version:     g.Version,
	}
}

// GroupFromProto returns the caller fields of p.
func GroupFromProto(p *registryv1.Group) device.Group {
	return device.Group{
		ID:          p.GetId(),
		DisplayName: p.GetDisplayName(),
		Description: p.GetDescription(),
		Labels:      p.GetLabels(),
	}
}

// Rule returns the protobuf form of r.
func Rule(r *device.AlertRule) *registryv1.AlertRule {
	p := &registryv1.AlertRule{
		Id:         r.ID,
		Name:       r.Name,
		Field:      r.Field,
		Operator:   operatorToProto[r.Operator],
		Threshold:  r.Threshold,
		Severity:   severityToProto[r.Severity],
		Hold:       durationpb.New(r.Hold),
		Cooldown:   durationpb.New(r.Cooldown),
		Enabled:    r.Enabled,
		CreateTime: timestamp(r.CreatedAt),
		UpdateTime: timestamp(r.UpdatedAt),
		Version:    r.Version,
	}
	switch r.Target.Kind {
	case device.TargetDevice:
		p.Target = &registryv1.AlertRule_DeviceId{DeviceId: r.Target.ID}
	case device.TargetGroup:
		p.Target = &registryv1.AlertRule_GroupId{GroupId: r.Target.ID}
	}
	return p
}

// RuleFromProto returns the caller fields of p. Problems the domain cannot
// see after conversion (a malformed duration) are returned as a
// *device.ValidationError with paths relative to the rule ("hold").
// An unset target, operator or severity converts to the zero value, which
// device.ValidateRule rejects.
func RuleFromProto(p *registryv1.AlertRule) (device.AlertRule, error) {
	r := device.AlertRule{
		ID:        p.GetId(),
		Name:      p.GetName(),
		Target:    TargetFromProto(p),
		Field:     p.GetField(),
		Operator:  operatorFromProto[p.GetOperator()],
		Threshold: p.GetThreshold(),
		Severity:  severityFromProto[p.GetSeverity()],
		Enabled:   p.GetEnabled(),
	}
	var bad []device.FieldViolation
	for _, d := range []struct {
		field string
		in    *durationpb.Duration
		out   *time.Duration
	}{{"hold", p.GetHold(), &r.Hold}, {"cooldown", p.GetCooldown(), &r.Cooldown}} {
		if d.in == nil {
			continue
		}
		if err := d.in.CheckValid(); err != nil {
			bad = append(bad, device.FieldViolation{Field: d.field, Description: "is not a valid duration"})
			continue
		}
		*d.out = d.in.AsDuration()
	}
	if len(bad) > 0 {
		return device.AlertRule{}, &device.ValidationError{Violations: bad}
	}
	return r, nil
}

// TargetFromProto returns the target of p; the zero Target if it has none.
func TargetFromProto(p *registryv1.AlertRule) device.Target {
	switch t := p.GetTarget().(type) {
	case *registryv1.AlertRule_DeviceId:
		return device.Target{Kind: device.TargetDevice, ID: t.DeviceId}
	case *registryv1.AlertRule_GroupId:
		return device.Target{Kind: device.TargetGroup, ID: t.GroupId}
	}
	return device.Target{}
}

// Change returns the protobuf form of c, its snapshot without a secret.
func Change(c *device.Change) *registryv1.Change {
	p := &registryv1.Change{
		Sequence: c.Seq,
		Kind:     ChangeKind(c.Kind),
		Id:       c.ID,
		Version:  c.Version,
		Time:     timestamp(c.At),
	}
	switch {
	case c.Device != nil:
		p.Snapshot = &registryv1.Change_Device{Device: Device(c.Device)}
	case c.Group != nil:
		g := Group(c.Group)
		g.MemberCount = 0 // not set in snapshots (see the proto)
		p.Snapshot = &registryv1.Change_Group{Group: g}
	case c.Rule != nil:
		p.Snapshot = &registryv1.Change_AlertRule{AlertRule: Rule(c.Rule)}
	}
	return p
}

// ChangeKind returns the protobuf form of k (UNSPECIFIED if unknown).
func ChangeKind(k device.ChangeKind) registryv1.ChangeKind { return kindToProto[k] }

// ChangeKindFromProto returns the domain form of k, and false for
// UNSPECIFIED and unknown values.
func ChangeKindFromProto(k registryv1.ChangeKind) (device.ChangeKind, bool) {
	d, ok := kindFromProto[k]
	return d, ok
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

var (
	operatorToProto = map[device.Operator]registryv1.Operator{
		device.OpGreater:      registryv1.Operator_OPERATOR_GT,
		device.OpGreaterEqual: registryv1.Operator_OPERATOR_GTE,
		device.OpLess:         registryv1.Operator_OPERATOR_LT,
		device.OpLessEqual:    registryv1.Operator_OPERATOR_LTE,
		device.OpEqual:        registryv1.Operator_OPERATOR_EQ,
		device.OpNotEqual:     registryv1.Operator_OPERATOR_NEQ,
	}
	operatorFromProto = invert(operatorToProto)

	severityToProto = map[device.Severity]registryv1.Severity{
		device.SeverityInfo:     registryv1.Severity_SEVERITY_INFO,
		device.SeverityWarning:  registryv1.Severity_SEVERITY_WARNING,
		device.SeverityCritical: registryv1.Severity_SEVERITY_CRITICAL,
	}
	severityFromProto = invert(severityToProto)

	kindToProto = map[device.ChangeKind]registryv1.ChangeKind{
		device.DeviceCreated: registryv1.ChangeKind_CHANGE_KIND_DEVICE_CREATED,
		device.DeviceUpdated: registryv1.ChangeKind_CHANGE_KIND_DEVICE_UPDATED,
		device.DeviceDeleted: registryv1.ChangeKind_CHANGE_KIND_DEVICE_DELETED,
		device.GroupCreated:  registryv1.ChangeKind_CHANGE_KIND_GROUP_CREATED,
		device.GroupUpdated:  registryv1.ChangeKind_CHANGE_KIND_GROUP_UPDATED,
		device.GroupDeleted:  registryv1.ChangeKind_CHANGE_KIND_GROUP_DELETED,
		device.RuleCreated:   registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_CREATED,
		device.RuleUpdated:   registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_UPDATED,
		device.RuleDeleted:   registryv1.ChangeKind_CHANGE_KIND_ALERT_RULE_DELETED,
	}
	kindFromProto = invert(kindToProto)
)

func invert[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}
