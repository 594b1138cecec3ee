// Package scaling decides how many edge pods to run from the connections they
// report, and which of them to remove or relieve. It is pure: no clock, no
// API calls, so every rule is table-tested.
package scaling

import (
	"fmt"
	"math"
	"time"
)

// Policy is an EdgeAutoscaler's spec, in the units the decision uses.
type Policy struct {
	MinReplicas, MaxReplicas int32
	TargetPerPod             int32
	UpWindow, DownWindow     time.Duration
	UpMaxStep, DownMaxStep   int32
}

// Observation is what the controller saw this round.
type Observation struct {
	// Current is the target's replicas.
	Current int32
	// Known holds the connections of each ready pod with a fresh report.
	Known []int64
	// Unknown counts ready pods whose report is missing or stale. Each counts
	// at the average of the known ones.
	Unknown int
	// Starting counts pods that became ready so recently they have not
	// reported yet. They count as empty (a pod cannot hold connections it has
	// had no time to take; at the average, a scale-up's new pods would ask for
	// more pods still), but their load is not known, so no scale-down either.
	Starting int
}

// Recommendation is one round's raw (unstabilised) replica count.
type Recommendation struct {
	At       time.Time
	Replicas int32
	// Seed marks the stand-in for a history lost to a restart: it holds
	// scale-downs back for the down window, and scale-ups never.
	Seed bool
}

// Decision is the outcome of one round.
type Decision struct {
	// Desired is what the target should run now.
	Desired int32
	// Recommended is this round's raw recommendation, before stabilisation and
	// step limits (but within the bounds).
	Recommended int32
	// Total is the connections the recommendation is based on: the known
	// reports plus, for each unknown pod, the average of the known ones.
	Total int64
	// Reason says in a sentence why Desired is what it is.
	Reason string
	// Limited is set when bounds or step limits held Desired back from what the
	// load asks for; LimitedReason says which.
	Limited       bool
	LimitedReason string
	// Stale is set when some pod's load is unknown or starting, which forbids
	// scaling down.
	Stale bool
	// History is the recommendations to keep for the next round: this one and
	// those still inside the longer window.
	History []Recommendation
}

// Decide computes the replicas for this round. history holds the earlier
// rounds' recommendations (Decision.History of the previous round); when it
// is empty, as after an operator restart, the current replica count stands in
// for the missing past, so a restart never triggers an early scale-down (nor
// delays a scale-up).
func Decide(p Policy, obs Observation, history []Recommendation, now time.Time) Decision {
	var d Decision
	if len(history) == 0 {
		history = []Recommendation{{At: now, Replicas: obs.Current, Seed: true}}
	}

	if len(obs.Known) == 0 {
		// Nothing is known about the load: keep what runs, within the bounds.
		d.Stale = obs.Unknown+obs.Starting > 0
		d.Desired = clamp(obs.Current, p.MinReplicas, p.MaxReplicas)
		d.Recommended = d.Desired
		d.Reason = "no pod reports its connections; keeping the current replicas"
		if d.Desired != obs.Current {
			d.Reason = fmt.Sprintf("replicas %d are outside the bounds [%d, %d]", obs.Current, p.MinReplicas, p.MaxReplicas)
		}
		d.History = trim(append(history, Recommendation{At: now, Replicas: d.Recommended}), p, now)
		return d
	}

	d.Total = estimate(obs.Known, obs.Unknown)
	d.Stale = obs.Unknown+obs.Starting > 0
	raw := ceilDiv(d.Total, int64(p.TargetPerPod))
	d.Recommended = clamp(raw, p.MinReplicas, p.MaxReplicas)
	if d.Recommended != raw {
		d.Limited = true
		d.LimitedReason = fmt.Sprintf("%d connections ask for %d replicas, bounded to [%d, %d]", d.Total, raw, p.MinReplicas, p.MaxReplicas)
	}
	d.History = trim(append(history, Recommendation{At: now, Replicas: d.Recommended}), p, now)

	// Scale up only as far as every recommendation in the up window agrees;
	// down only as far as every one in the down window agrees.
	upTo := lowestSince(d.History, now.Add(-p.UpWindow))
	downTo := highestSince(d.History, now.Add(-p.DownWindow))

	current := obs.Current
	switch {
	case current < p.MinReplicas || current > p.MaxReplicas:
		// Out of bounds (someone scaled it by hand, or the bounds changed):
		// the bounds win at once, without stabilisation or step limits.
		d.Desired = clamp(current, p.MinReplicas, p.MaxReplicas)
		d.Reason = fmt.Sprintf("replicas %d are outside the bounds [%d, %d]", current, p.MinReplicas, p.MaxReplicas)
	case upTo > current:
		d.Desired = upTo
		d.Reason = fmt.Sprintf("%d connections need %d pods of %d", d.Total, upTo, p.TargetPerPod)
		if upTo > current+p.UpMaxStep {
			d.Desired = current + p.UpMaxStep
			d.limit(fmt.Sprintf("scale-up limited to %d replicas per change", p.UpMaxStep))
		}
	case downTo < current && d.Stale:
		d.Desired = current
		d.Reason = fmt.Sprintf("%d pods have no fresh report; not scaling down on unknown load", obs.Unknown+obs.Starting)
	case downTo < current:
		d.Desired = downTo
		d.Reason = fmt.Sprintf("%d connections need only %d pods of %d", d.Total, downTo, p.TargetPerPod)
		if downTo < current-p.DownMaxStep {
			d.Desired = current - p.DownMaxStep
			d.limit(fmt.Sprintf("scale-down limited to %d replicas per change", p.DownMaxStep))
		}
	default:
		d.Desired = current
		d.Reason = fmt.Sprintf("%d connections fit %d pods of %d", d.Total, current, p.TargetPerPod)
		if d.Recommended != current {
			d.Reason += "; waiting out the stabilisation window"
		}
	}
	return d
}

func (d *Decision) limit(reason string) {
	d.Limited = true
	if d.LimitedReason != "" {
		d.LimitedReason += "; "
	}
	d.LimitedReason += reason
}

// estimate sums the known loads and counts each unknown pod at their average:
// unknown is never zero, and a pod without a report is most likely as busy as
// its siblings.
func estimate(known []int64, unknown int) int64 {
	var sum int64
	for _, c := range known {
		sum += max(c, 0)
	}
	if unknown > 0 {
		sum += ceilDiv64(sum*int64(unknown), int64(len(known)))
	}
	return sum
}

// trim keeps the recommendations still inside the longer window, and always
// the newest.
func trim(h []Recommendation, p Policy, now time.Time) []Recommendation {
	keep := max(p.UpWindow, p.DownWindow)
	out := h[:0:0]
	for i, r := range h {
		if i == len(h)-1 || !r.At.Before(now.Add(-keep)) {
			out = append(out, r)
		}
	}
	return out
}

func lowestSince(h []Recommendation, since time.Time) int32 {
	low := int32(math.MaxInt32)
	for _, r := range h {
		if !r.At.Before(since) && !r.Seed {
			low = min(low, r.Replicas)
		}
	}
	return low
}

func highestSince(h []Recommendation, since time.Time) int32 {
	high := int32(math.MinInt32)
	for _, r := range h {
		if !r.At.Before(since) {
			high = max(high, r.Replicas)
		}
	}
	return high
}

func ceilDiv(total, per int64) int32 {
	n := ceilDiv64(total, per)
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n)
}

func ceilDiv64(a, b int64) int64 { return (a + b - 1) / b }

func clamp(n, lo, hi int32) int32 { return max(lo, min(n, hi)) }
