// Package roomstream owns the JetStream stream that retains room messages:
// its configuration (which ingest applies) and the reads the edge makes to
// resume clients (replay after a sequence, the message at a sequence, the
// last messages of given subjects).
//
// Reads use JetStream's direct get API in batches, answered by any server
// holding the stream, so a resuming client costs no consumer on the server.
package roomstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

// Retention is how much of each room the stream keeps.
type Retention struct {
	// MaxAge drops messages older than this.
	MaxAge time.Duration
	// MaxPerRoom keeps at most this many messages per room and kind.
	MaxPerRoom int64
	// MaxBytes bounds the whole stream (-1: no bound but MaxAge).
	MaxBytes int64
	// Replicas is the stream's replication factor in a NATS cluster.
	Replicas int
	// Memory stores the stream in memory instead of files (tests, demos).
	Memory bool
}

// DefaultRetention keeps an hour of every room, up to 10,000 messages per
// room and kind: enough for a dashboard to ride out a deploy or a laptop lid.
var DefaultRetention = Retention{MaxAge: time.Hour, MaxPerRoom: 10_000, MaxBytes: -1, Replicas: 1}

// duplicateWindow is how long JetStream remembers message ids: a publish
// retried within it (after a lost acknowledgement) is stored once.
const duplicateWindow = 2 * time.Minute

// StreamConfig is the stream's full configuration under r.
func StreamConfig(r Retention) jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if r.Memory {
		storage = jetstream.MemoryStorage
	}
	replicas := max(r.Replicas, 1)
	window := duplicateWindow
	if r.MaxAge > 0 && r.MaxAge < window {
		window = r.MaxAge
	}
	return jetstream.StreamConfig{
		Name:              envelopev1.RoomStream,
		Description:       "Sensorcast room messages, retained for clients that resume",
		Subjects:          []string{envelopev1.RoomSubjectWildcard},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            r.MaxAge,
		MaxMsgsPerSubject: r.MaxPerRoom,
		MaxBytes:          r.MaxBytes,
		Storage:           storage,
		Replicas:          replicas,
		Duplicates:        window,
		AllowDirect:       true,
		RePublish: &jetstream.RePublish{
			Source:      envelopev1.RoomSubjectWildcard,
			Destination: envelopev1.LiveSubjectWildcard,
		},
	}
}

// Ensure creates the stream, or updates it to r, until it succeeds or ctx
// ends: JetStream may still be starting (or electing) when a service starts.
func Ensure(ctx context.Context, nc *nats.Conn, r Retention) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	cfg := StreamConfig(r)
	backoff := 100 * time.Millisecond
	for {
		attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = js.CreateOrUpdateStream(attempt, cfg)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || isConfigError(err) {
			return fmt.Errorf("configure stream %s: %w", cfg.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("configure stream %s: %w (last error: %v)", cfg.Name, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// errCodeStreamInvalidConfig is JetStream's JSStreamInvalidConfigF, which
// nats.go does not name.
const errCodeStreamInvalidConfig jetstream.ErrorCode = 10052

// isConfigError tells a configuration JetStream refuses (which retrying
// cannot fix, such as changing the storage type of an existing stream)
// from JetStream being unavailable for now.
func isConfigError(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.Code == 400 || apiErr.ErrorCode == errCodeStreamInvalidConfig)
}
