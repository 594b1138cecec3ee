package registryv1

// NATS subjects of the registry, spelled here and nowhere else (the room
// subjects are beside the envelope, in sensorcast/envelope/v1/subjects.go).
const (
	// ChangesSubject carries the registry's change announcements: every
	// committed change to a device, group or alert rule is published there,
	// after it commits, as one serialized Change message (protobuf binary).
	// Its consumers are the caches of ingest and edge (device admission,
	// group rooms, alert rules) and WatchChanges on the other registry
	// replicas.
	ChangesSubject = "sensorcast.registry.changes"
)
