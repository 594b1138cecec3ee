package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream key-value bucket that holds every (rule, device)
// state, shared by all ingest replicas.
const Bucket = "SENSORCAST_ALERT_STATE"

// maxConflicts bounds the compare-and-set retries of one Apply: each
// conflict means another replica moved the same state at the same moment.
const maxConflicts = 16

// Store keeps rule states in the bucket and updates them with
// compare-and-set, so replicas evaluating the same device never both fire.
type Store struct {
	kv jetstream.KeyValue
}

// OpenStore creates the bucket if needed. States of rules that see no
// reading for idle are dropped (a new reading starts from scratch).
func OpenStore(ctx context.Context, js jetstream.JetStream, idle time.Duration) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Sensorcast alert rule state per device",
		History:     1,
		TTL:         idle,
	})
	if err != nil {
		return nil, fmt.Errorf("alert state bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// Key is the bucket key of a rule's state for a device. Key characters
// are [-/_=.A-Za-z0-9]; ids use [A-Za-z0-9_:-], so ':' becomes '='.
func Key(ruleID, deviceID string) string {
	return strings.ReplaceAll(ruleID, ":", "=") + "." + strings.ReplaceAll(deviceID, ":", "=")
}

// Apply runs step on the current state of key and stores the result, again
// on a fresh state if another replica changed it meanwhile. The transition
// returned is the one that was stored: at most one caller ever sees a given
// Fired or Resolved.
func (s *Store) Apply(ctx context.Context, key string, step func(State) (State, Transition)) (State, Transition, error) {
	for range maxConflicts {
		var cur State
		var rev uint64
		entry, err := s.kv.Get(ctx, key)
		switch {
		case err == nil:
			if err := json.Unmarshal(entry.Value(), &cur); err != nil {
				return State{}, None, fmt.Errorf("alert state %s: %w", key, err)
			}
			rev = entry.Revision()
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return State{}, None, fmt.Errorf("alert state %s: %w", key, err)
		}
		next, tr := step(cur)
		if next == cur {
			return next, tr, nil // nothing to store (a late reading)
		}
		data, err := json.Marshal(next)
		if err != nil {
			return State{}, None, fmt.Errorf("alert state %s: %w", key, err)
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, data)
		} else {
			_, err = s.kv.Update(ctx, key, data, rev)
		}
		switch {
		case err == nil:
			return next, tr, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another replica got there first: start again from its state
		default:
			return State{}, None, fmt.Errorf("alert state %s: %w", key, err)
		}
	}
	return State{}, None, fmt.Errorf("alert state %s: %d conflicting updates in a row", key, maxConflicts)
}
