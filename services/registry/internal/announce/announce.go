// Package announce publishes the registry's committed changes on NATS
// (registryv1.ChangesSubject), so the caches of ingest and edge, and the
// WatchChanges streams of other replicas, learn of them within a second.
//
// Each registry process runs one Announcer. It follows the store's change
// log, the source of truth, in sequence order from the latest change when
// it starts, and publishes each change once, as a serialized
// registryv1.Change whose device snapshot carries no secret.
//
// With several replicas on one database, each replica announces every
// change, so subscribers see each change once per replica: they must
// tolerate duplicates, keying on (id, version) and ignoring a change whose
// version they already hold. A change committed while no replica runs is
// not announced; subscribers that must not miss one use WatchChanges,
// which resumes from a sequence.
package announce

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/registry/internal/convert"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// ChangeLog is the part of device.Store the Announcer reads.
type ChangeLog interface {
	Changes(ctx context.Context, afterSeq int64, limit int) ([]device.Change, error)
	LatestSeq(ctx context.Context) (int64, error)
}

// Publisher publishes one message; *nats.Conn is one.
type Publisher interface {
	Publish(subject string, data []byte) error
}

// DefaultInterval is how often the Announcer reads the change log when
// Notify does not wake it sooner.
const DefaultInterval = 100 * time.Millisecond

// batch is how many changes the Announcer reads at once.
const batch = 1000

// Options configure an Announcer. The zero value works.
type Options struct {
	// Interval between reads of the change log (0: DefaultInterval).
	Interval time.Duration
	// Logger (nil: discard).
	Logger *slog.Logger
	// Registry receives the announcer's metrics (nil: unregistered).
	Registry prometheus.Registerer
}

// Announcer publishes the changes of a ChangeLog.
type Announcer struct {
	log      ChangeLog
	pub      Publisher
	interval time.Duration
	logger   *slog.Logger
	wake     chan struct{} // one pending wake-up at most

	announced prometheus.Counter
	failures  *prometheus.CounterVec
}

// New returns an Announcer of log's changes on pub.
func New(log ChangeLog, pub Publisher, opts Options) *Announcer {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Announcer{
		log:      log,
		pub:      pub,
		interval: opts.Interval,
		logger:   opts.Logger,
		wake:     make(chan struct{}, 1),
		announced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sensorcast_registry_changes_announced_total",
			Help: "Registry changes published on NATS by this process.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_registry_announce_failures_total",
			Help: "Failed attempts to announce changes, by reason: read (the change log), publish (NATS; retried), expired (changes dropped from the log before they were announced; skipped).",
		}, []string{"reason"}),
	}
	if opts.Registry != nil {
		opts.Registry.MustRegister(a.announced, a.failures)
	}
	return a
}

// Notify wakes the Announcer to read the change log now; it never blocks.
func (a *Announcer) Notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run announces changes until ctx ends, then returns nil. It starts after
// the latest change committed before it started. A failed read or publish
// is logged, counted and retried after Interval, so changes go out in
// order and none is skipped, unless the store dropped them first.
func (a *Announcer) Run(ctx context.Context) error {
	after, err := a.start(ctx)
	if err != nil {
		return nil // ctx ended
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		case <-timer.C:
		}
		after = a.announce(ctx, after)
		timer.Reset(a.interval)
	}
}

// start returns LatestSeq, retrying until it succeeds or ctx ends.
func (a *Announcer) start(ctx context.Context) (int64, error) {
	for {
		seq, err := a.log.LatestSeq(ctx)
		if err == nil {
			return seq, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		a.failures.WithLabelValues("read").Inc()
		a.logger.Warn("cannot read the change log; retrying", "err", err)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(a.interval):
		}
	}
}

// announce publishes the changes after seq, batch by batch, and returns the
// sequence of the last one published.
func (a *Announcer) announce(ctx context.Context, after int64) int64 {
	for {
		changes, err := a.log.Changes(ctx, after, batch)
		switch {
		case errors.Is(err, device.ErrChangesExpired):
			latest, lerr := a.log.LatestSeq(ctx)
			if lerr != nil {
				return after
			}
			a.failures.WithLabelValues("expired").Inc()
			a.logger.Error("changes were dropped from the change log before they were announced; caches may be stale until they resync",
				"after", after, "resuming_after", latest)
			return latest
		case err != nil:
			if ctx.Err() == nil {
				a.failures.WithLabelValues("read").Inc()
				a.logger.Warn("cannot read the change log; retrying", "err", err)
			}
			return after
		}
		for i := range changes {
			data, err := proto.Marshal(convert.Change(&changes[i]))
			if err == nil {
				err = a.pub.Publish(registryv1.ChangesSubject, data)
			}
			if err != nil {
				a.failures.WithLabelValues("publish").Inc()
				a.logger.Warn("cannot announce a change; retrying", "seq", changes[i].Seq, "err", err)
				return after
			}
			after = changes[i].Seq
			a.announced.Inc()
		}
		if len(changes) < batch {
			return after
		}
	}
}
