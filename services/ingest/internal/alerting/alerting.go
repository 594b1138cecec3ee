// Package alerting decides when an alert rule fires and resolves for one
// device, one reading at a time.
//
// Step is a pure function of a rule, the (rule, device) state and a
// reading, so the state can live wherever every ingest replica sees it (a
// key-value store updated with compare-and-set): whichever replica receives
// a device's next reading continues from the same state, and only the one
// whose update wins publishes the alert.
package alerting

import (
	"time"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
)

// Rule is what evaluation needs of a registry alert rule.
type Rule struct {
	Operator  registryv1.Operator
	Threshold float64
	// Hold is how long the condition must hold, across consecutive
	// readings, before the rule fires; 0 fires on the first one.
	Hold time.Duration
	// Cooldown is how long after firing the rule may not fire again.
	Cooldown time.Duration
}

// Matches reports whether a value meets the rule's condition.
func (r Rule) Matches(v float64) bool {
	switch r.Operator {
	case registryv1.Operator_OPERATOR_GT:
		return v > r.Threshold
	case registryv1.Operator_OPERATOR_GTE:
		return v >= r.Threshold
	case registryv1.Operator_OPERATOR_LT:
		return v < r.Threshold
	case registryv1.Operator_OPERATOR_LTE:
		return v <= r.Threshold
	case registryv1.Operator_OPERATOR_EQ:
		return v == r.Threshold
	case registryv1.Operator_OPERATOR_NEQ:
		return v != r.Threshold
	default:
		return false
	}
}

// State is one rule's state for one device. Its zero value is a rule that
// has seen nothing.
type State struct {
	// Last is the time of the last reading taken into account; older
	// readings (delivered late, or by another replica) are ignored.
	Last time.Time `json:"last,omitzero"`
	// Since is when the condition started to hold without a break; zero
	// while it does not hold.
	Since time.Time `json:"since,omitzero"`
	// Firing is set from firing until the condition stops holding.
	Firing bool `json:"firing,omitempty"`
	// AlertID identifies the current (or last) firing.
	AlertID string `json:"alert_id,omitempty"`
	// FiredAt is when the rule last fired, for the cooldown.
	FiredAt time.Time `json:"fired_at,omitzero"`
}

// Transition is what a reading did to the rule.
type Transition int

// Transitions of Step.
const (
	None Transition = iota
	Fired
	Resolved
)

// Step takes one reading of the rule's field, taken at at, and returns the
// new state and whether the rule fired or resolved. newID names a firing.
func Step(r Rule, s State, value float64, at time.Time, newID func() string) (State, Transition) {
	if !s.Last.IsZero() && at.Before(s.Last) {
		return s, None
	}
	s.Last = at
	if !r.Matches(value) {
		s.Since = time.Time{}
		if s.Firing {
			s.Firing = false
			return s, Resolved
		}
		return s, None
	}
	if s.Since.IsZero() {
		s.Since = at
	}
	if s.Firing || at.Sub(s.Since) < r.Hold {
		return s, None
	}
	if !s.FiredAt.IsZero() && at.Sub(s.FiredAt) < r.Cooldown {
		return s, None
	}
	s.Firing = true
	s.FiredAt = at
	s.AlertID = newID()
	return s, Fired
}
