package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrations are the schema's versions, applied in order by goose, which
// records the applied ones in the goose_db_version table. A released
// migration is never edited: a change to the schema is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Lock retries while another replica migrates: every second, for up to
// five minutes.
const (
	migrateLockPeriodSeconds = 1
	migrateLockAttempts      = 300
)

// migrate brings the database's schema up to the newest migration. It is
// safe to run from several replicas starting at once: a session advisory
// lock lets one migrate while the others wait, then find nothing to do.
func migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := newMigrator(db)
	if err != nil {
		return err
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrating the schema: %w", err)
	}
	for _, r := range results {
		logger.Info("applied schema migration", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// newMigrator returns goose's migrator of the schema in db.
func newMigrator(db *sql.DB) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(migrateLockPeriodSeconds, migrateLockAttempts))
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
}
