package scaling

import "math"

// PodLoad is one ready pod and what it reported.
type PodLoad struct {
	Name        string
	Connections int64
	// Unknown is empty when Connections is a fresh report, else why it is not.
	Unknown string
	// Starting: the pod became ready too recently to have reported (Unknown
	// says so too).
	Starting bool
}

// Known says whether Connections can be trusted.
func (p PodLoad) Known() bool { return p.Unknown == "" }

// DeletionCosts gives each pod a controller.kubernetes.io/pod-deletion-cost
// from its connections, so the ReplicaSet controller removes the emptiest pods
// first. A pod whose load is unknown gets the highest cost of the known ones:
// it may be full, so it is never picked before a pod known to be emptier.
func DeletionCosts(pods []PodLoad) map[string]int32 {
	var highest int64
	for _, p := range pods {
		if p.Known() {
			highest = max(highest, p.Connections)
		}
	}
	costs := make(map[string]int32, len(pods))
	for _, p := range pods {
		c := highest
		if p.Known() {
			c = p.Connections
		}
		costs[p.Name] = int32(min(max(c, 0), math.MaxInt32))
	}
	return costs
}

// OverloadFactor: a pod holding more than this times the target is overloaded.
const OverloadFactor = 1.5

// Shed asks one pod to close some connections.
type Shed struct {
	Pod         string
	Connections int64
}

// Sheds picks the overloaded pods (over OverloadFactor × target) and how many
// connections each should close: down to the target, or to the average when
// every pod is above target anyway (moving load between full pods helps no one).
// It asks nothing while replicas are still coming (ready < desired: the new
// pods must be there to take the load) or while any load is unknown.
func Sheds(target int32, desired int32, pods []PodLoad) []Shed {
	if int32(len(pods)) < desired || len(pods) < 2 {
		return nil
	}
	var total int64
	for _, p := range pods {
		if !p.Known() {
			return nil
		}
		total += p.Connections
	}
	average := ceilDiv64(total, int64(len(pods)))
	keep := max(int64(target), average)
	var sheds []Shed
	for _, p := range pods {
		if float64(p.Connections) > OverloadFactor*float64(target) && p.Connections > keep {
			sheds = append(sheds, Shed{Pod: p.Name, Connections: p.Connections - keep})
		}
	}
	return sheds
}
