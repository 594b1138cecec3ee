// Package edgestats spells the Redis keys through which edge pods report their
// load and the operator asks them to shed connections. The edges write the pod
// reports and read the shed requests; the operator does the opposite. Both
// import these names so neither side can drift.
package edgestats

const (
	// PodKeyPrefix + pod name: a hash with the fields below, rewritten on every
	// presence heartbeat and expiring with the pod's presence lease, so a pod that
	// died without cleaning up disappears on its own.
	PodKeyPrefix = "sensorcast:edge:pod:"
	// PodsKey is a sorted set of pod names scored by their last heartbeat (unix ms).
	PodsKey = "sensorcast:edge:pods"

	// FieldConnections is the pod's open WebSocket connections (dashboards and devices).
	FieldConnections = "connections"
	// FieldRooms is the number of rooms the pod holds a NATS subscription for.
	FieldRooms = "rooms"
	// FieldUpdatedMs is when the pod wrote the report, in unix milliseconds.
	FieldUpdatedMs = "updated_ms"

	// ShedKeyPrefix + pod name: a hash asking that pod to close some of its
	// connections (with close code 1012, so clients reconnect at once, most of
	// them to other pods). The pod takes and deletes it on its next heartbeat;
	// it expires by itself if the pod never does.
	ShedKeyPrefix = "sensorcast:edge:shed:"
	// FieldShedConnections is how many connections to close.
	FieldShedConnections = "connections"
	// FieldShedPerSecond is how many to close per second at most.
	FieldShedPerSecond = "per_second"
)

// PodKey is the key of pod's load report.
func PodKey(pod string) string { return PodKeyPrefix + pod }

// ShedKey is the key of a shed request addressed to pod.
func ShedKey(pod string) string { return ShedKeyPrefix + pod }
