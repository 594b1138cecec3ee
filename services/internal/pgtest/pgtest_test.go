package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestStartedServerAcceptsQueriesInItsOwnDatabase(t *testing.T) {
	srv := Start(t)
	conn := connect(t, srv.URL())
	var db string
	if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db != srv.db {
		t.Errorf("connected to database %q, want %q", db, srv.db)
	}
}

func TestSharedGivesEachTestAnEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	a := connect(t, Shared(t).URL())
	if _, err := a.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	b := connect(t, Shared(t).URL())
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 't'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("a second database sees the first one's table")
	}
}

func TestServerRunsWithDurabilityOffAndByteOrderedText(t *testing.T) {
	conn := connect(t, Shared(t).URL())
	for setting, want := range map[string]string{
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"lc_collate":         "C",
		"server_encoding":    "UTF8",
	} {
		var got string
		if err := conn.QueryRow(context.Background(), "SELECT current_setting($1)", setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
}

func TestCompareVersionsOrdersNumerically(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int // sign
	}{
		{"9.6", "15", -1},
		{"15", "16", -1},
		{"16", "16", 0},
		{"16.1", "16", 1},
		{"17", "9", 1},
	} {
		got := compareVersions(tc.a, tc.b)
		if sign(got) != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
