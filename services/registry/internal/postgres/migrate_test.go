package postgres

import (
	"database/sql"
	"log/slog"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/sensorcast/sensorcast/services/internal/pgtest"
)

// Every migration can be undone, and done again.
func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	url := pgtest.Shared(t).URL()
	s, err := Open(t.Context(), Options{URL: url, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	migrator, err := newMigrator(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrator.DownTo(t.Context(), 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	var tables []string
	rows, err := db.QueryContext(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'goose_db_version'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if len(tables) > 0 {
		t.Errorf("tables left after migrating down: %v", tables)
	}
	if _, err := migrator.Up(t.Context()); err != nil {
		t.Fatalf("up again: %v", err)
	}
}
