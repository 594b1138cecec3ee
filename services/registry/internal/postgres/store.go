// Package postgres is the registry's device.Store on PostgreSQL (pgx),
// held to the same contract suite (storetest) as the embedded memstore.
//
// Open applies the schema migrations (migrations/*.sql, embedded) before
// it returns. Every write runs in one transaction that first locks the head
// of the change log, so writers take turns: change Seqs are then gap-free
// and in commit order, as Watch needs, and writers cannot deadlock. Reads
// never wait for writers. Lists are keyset pages over indexes chosen for a
// million devices (see the comments on each index in the migrations).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// DefaultChangeLogCapacity is how many of the latest changes the store keeps
// for Changes when Options.ChangeLogCapacity is 0: enough for a Watch to
// resume after a restart of a few minutes, even during a large import.
const DefaultChangeLogCapacity = 1_000_000

// Options configure Open.
type Options struct {
	// URL is a PostgreSQL connection URL or keyword/value string, as pgx
	// reads it (postgres://user:password@host:5432/db?sslmode=...), with
	// pgxpool's pool settings (pool_max_conns, ...).
	URL string
	// ChangeLogCapacity is how many of the latest changes are kept; older
	// ones are dropped as new ones are written (Changes then returns
	// ErrChangesExpired for them). 0 means DefaultChangeLogCapacity.
	ChangeLogCapacity int
	// Logger receives the store's few log lines (migrations applied).
	// nil discards them.
	Logger *slog.Logger
}

// Store is a device.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	capacity int64 // of the change log
}

var _ device.Store = (*Store)(nil)

// Open connects to PostgreSQL, migrates the schema to the newest version
// and returns the store. Close releases its connections.
func Open(ctx context.Context, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	capacity := int64(opts.ChangeLogCapacity)
	switch {
	case capacity == 0:
		capacity = DefaultChangeLogCapacity
	case capacity < 0:
		return nil, fmt.Errorf("postgres: ChangeLogCapacity must not be negative, got %d", capacity)
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool, logger); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool, capacity: capacity}, nil
}

// Close closes the store's connections, waiting for calls in progress.
func (s *Store) Close() { s.pool.Close() }

// writer is one write transaction: it holds the change log's lock, knows
// the store's clock reading for this transaction, and collects the changes
// to append when it commits.
type writer struct {
	tx      pgx.Tx
	now     time.Time
	changes []device.Change
}

// change records a change to append at commit, in call order.
func (w *writer) change(c device.Change) { w.changes = append(w.changes, c) }

// write runs f in a transaction holding the change log's lock and, if f
// succeeds, appends the changes it recorded and commits. When f fails
// nothing is written and its error is returned unchanged.
func (s *Store) write(ctx context.Context, f func(ctx context.Context, w *writer) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbError(ctx, "begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // a no-op after Commit

	w := &writer{tx: tx}
	var lastSeq, droppedThrough int64
	// One round trip: wait for the writer before us, then read the clock,
	// so that a later Seq never gets an earlier time.
	lock := &pgx.Batch{}
	lock.Queue(`SELECT last_seq, dropped_through FROM change_log FOR UPDATE`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&lastSeq, &droppedThrough)
	})
	lock.Queue(`SELECT clock_timestamp()`).QueryRow(func(row pgx.Row) error { return row.Scan(&w.now) })
	if err := tx.SendBatch(ctx, lock).Close(); err != nil {
		return dbError(ctx, "lock the change log", err)
	}
	w.now = device.Timestamp(w.now)

	if err := f(ctx, w); err != nil {
		return err
	}
	if len(w.changes) > 0 {
		// Append, drop what is beyond capacity, advance the head: one
		// round trip, plus a COPY for a large batch of changes.
		appendBatch := &pgx.Batch{}
		if err := appendChanges(ctx, tx, appendBatch, lastSeq, w.changes); err != nil {
			return err
		}
		lastSeq += int64(len(w.changes))
		if keepFrom := lastSeq - s.capacity; keepFrom > droppedThrough {
			appendBatch.Queue(`DELETE FROM changes WHERE seq <= $1`, keepFrom)
			droppedThrough = keepFrom
		}
		appendBatch.Queue(`UPDATE change_log SET last_seq = $1, dropped_through = $2`, lastSeq, droppedThrough)
		if err := tx.SendBatch(ctx, appendBatch).Close(); err != nil {
			return dbError(ctx, "append changes", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError(ctx, "commit", err)
	}
	return nil
}

// readTx begins read's transactions: one snapshot for all statements, and
// every query planned for its parameters. How selective a group, a label
// or a name prefix is varies by orders of magnitude between calls, and
// LIKE 'prefix%' only uses the name index in a plan that sees the prefix;
// planning a list query costs tens of microseconds. (Not for the whole
// session: the foreign-key checks of a 10,000-device import would be
// planned 20,000 times.)
var readTx = pgx.TxOptions{BeginQuery: `
	BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
	SET LOCAL plan_cache_mode = force_custom_plan`}

// read runs f in a read-only transaction with one snapshot for all its
// statements, so that a page and its total count agree.
func (s *Store) read(ctx context.Context, f func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, readTx)
	if err != nil {
		return dbError(ctx, "begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError(ctx, "commit", err)
	}
	return nil
}

// dbError wraps an error of the database driver with what was being done,
// and with ctx.Err() when the context ended (pgx's own error then says
// little more than that).
func dbError(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("postgres: %s: %w", what, ctxErr)
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// notFound returns ErrNotFound about the object of kind with id.
func notFound(kind, id string) error {
	return fmt.Errorf("%w: %s %q", device.ErrNotFound, kind, id)
}

// alreadyExists returns ErrAlreadyExists about the object of kind with id.
func alreadyExists(kind, id string) error {
	return fmt.Errorf("%w: %s %q", device.ErrAlreadyExists, kind, id)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// isNoRows reports whether err says a single-row query found nothing.
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
