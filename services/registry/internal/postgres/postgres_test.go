package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sensorcast/sensorcast/services/internal/pgtest"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
	"github.com/sensorcast/sensorcast/services/registry/internal/postgres"
	"github.com/sensorcast/sensorcast/services/registry/internal/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open returns a store on url, closed when t ends.
func open(t testing.TB, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestStoreContract(t *testing.T) {
	// One database for the whole suite, emptied before each subtest:
	// creating a database copies its template and costs more than the
	// subtest itself.
	url := pgtest.Shared(t).URL()
	first := true
	storetest.Run(t, func(t *testing.T) device.Store {
		if !first {
			reset(t, url)
		}
		first = false
		return open(t, postgres.Options{URL: url})
	})
}

// reset empties every table of the store's schema in the database at url.
func reset(t testing.TB, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		TRUNCATE devices, groups, device_groups, alert_rules, changes;
		UPDATE change_log SET last_seq = 0, dropped_through = 0;
		UPDATE device_total SET devices = 0`)
	if err != nil {
		t.Fatalf("reset the database: %v", err)
	}
}

func TestOpeningAgainAppliesNoMigrationAndKeepsTheData(t *testing.T) {
	url := pgtest.Shared(t).URL()
	s := open(t, postgres.Options{URL: url})
	if _, err := s.CreateDevice(t.Context(), device.Device{ID: "d1"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	versions := func() []int64 {
		t.Helper()
		conn := connect(t, url)
		rows, _ := conn.Query(t.Context(), `SELECT version_id FROM goose_db_version WHERE is_applied ORDER BY id`)
		v, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := versions()
	again := open(t, postgres.Options{URL: url})
	if after := versions(); !slices.Equal(after, before) {
		t.Fatalf("applied migrations %v after opening again, want %v as before", after, before)
	}
	if _, err := again.GetDevice(t.Context(), "d1"); err != nil {
		t.Fatalf("GetDevice after opening again: %v", err)
	}
}

func TestReplicasOpeningAnEmptyDatabaseAtOnceMigrateItOnce(t *testing.T) {
	url := pgtest.Shared(t).URL()
	const replicas = 4
	errs := make(chan error, replicas)
	for range replicas {
		go func() {
			s, err := postgres.Open(t.Context(), postgres.Options{URL: url})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Fatalf("Open: %v", err)
		}
	}
	var applied int
	if err := connect(t, url).QueryRow(t.Context(), `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Fatalf("%d migrations recorded, want 1", applied)
	}
}

func TestChangesBeyondTheCapacityAreDroppedOldestFirst(t *testing.T) {
	s := open(t, postgres.Options{URL: pgtest.Shared(t).URL(), ChangeLogCapacity: 5})
	for i := range 12 {
		if _, err := s.CreateDevice(t.Context(), device.Device{ID: fmt.Sprintf("d%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if seq, err := s.LatestSeq(t.Context()); err != nil || seq != 12 {
		t.Fatalf("LatestSeq = %d, %v; want 12", seq, err)
	}
	for _, after := range []int64{0, 6} {
		if _, err := s.Changes(t.Context(), after, 0); !errors.Is(err, device.ErrChangesExpired) {
			t.Errorf("Changes(%d): %v, want ErrChangesExpired", after, err)
		}
	}
	changes, err := s.Changes(t.Context(), 7, 0)
	if err != nil {
		t.Fatalf("Changes(7): %v", err)
	}
	if len(changes) != 5 || changes[0].Seq != 8 || changes[4].ID != "d11" {
		t.Fatalf("Changes(7) = %d changes from seq %d, want the 5 latest from seq 8", len(changes), changes[0].Seq)
	}
}

// Memberships live in devices.groups and are derived into device_groups and
// groups.member_count by triggers, as is device_total from devices; after
// any mix of writes they agree.
func TestTriggerKeptTablesFollowDevices(t *testing.T) {
	url := pgtest.Shared(t).URL()
	s := open(t, postgres.Options{URL: url})
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []string{"a", "b", "c"} {
		_, err := s.CreateGroup(ctx, device.Group{ID: g})
		must(err)
	}
	var batch []device.Device
	for i := range 300 {
		batch = append(batch, device.Device{ID: fmt.Sprintf("d%03d", i), Groups: [][]string{{"a"}, {"a", "b"}, {"c"}, nil}[i%4]})
	}
	_, _, err := s.UpsertDevices(ctx, batch)
	must(err)
	for i := range batch {
		batch[i].Groups = [][]string{{"b"}, {"b", "c"}, nil}[i%3]
	}
	_, _, err = s.UpsertDevices(ctx, batch[:200])
	must(err)
	_, err = s.UpdateDevice(ctx, "d250", func(d *device.Device) error { d.Groups = []string{"a", "b", "c"}; return nil }, 0)
	must(err)
	must(s.DeleteDevice(ctx, "d001", 0))
	must(s.DeleteGroup(ctx, "c", true))

	conn := connect(t, url)
	var mismatches int
	must(conn.QueryRow(ctx, `
		SELECT count(*) FROM (
			(SELECT g, d.id FROM devices d, unnest(d.groups) g EXCEPT SELECT group_id, device_id FROM device_groups)
			UNION ALL
			(SELECT group_id, device_id FROM device_groups EXCEPT SELECT g, d.id FROM devices d, unnest(d.groups) g)
		) AS diff`).Scan(&mismatches))
	if mismatches != 0 {
		t.Errorf("device_groups differs from devices.groups in %d rows", mismatches)
	}
	must(conn.QueryRow(ctx, `
		SELECT count(*) FROM groups g
		WHERE member_count <> (SELECT count(*) FROM device_groups m WHERE m.group_id = g.id)`).Scan(&mismatches))
	if mismatches != 0 {
		t.Errorf("%d groups have a member_count that is not their number of members", mismatches)
	}
	var total, counted int
	must(conn.QueryRow(ctx, `SELECT (SELECT devices FROM device_total), (SELECT count(*) FROM devices)`).Scan(&total, &counted))
	if total != counted || counted != 299 {
		t.Errorf("device_total says %d devices, there are %d (want 299)", total, counted)
	}
}

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// ListDevices counts the matches in a group of more than 10,000 devices
// (the size up to which it looks each member up) another way; both agree.
func TestListCountsMatchesInSmallAndLargeGroups(t *testing.T) {
	s := open(t, postgres.Options{URL: pgtest.Shared(t).URL()})
	ctx := t.Context()
	for _, g := range []string{"small", "large"} {
		if _, err := s.CreateGroup(ctx, device.Group{ID: g}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 10_500
	batch := make([]device.Device, n)
	for i := range batch {
		batch[i] = device.Device{
			ID:      fmt.Sprintf("d%05d", i),
			Groups:  []string{"large"},
			Labels:  map[string]string{"site": fmt.Sprintf("s%d", i%3)},
			Enabled: i%7 != 0,
		}
		if i%2 == 0 {
			batch[i].Groups = append(batch[i].Groups, "small")
		}
	}
	if _, _, err := s.UpsertDevices(ctx, batch); err != nil {
		t.Fatal(err)
	}
	sel, err := device.ParseSelector("site=s1")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []device.DeviceQuery{
		{Group: "small", Selector: sel},
		{Group: "large", Selector: sel},
		{Group: "large", Enabled: new(false)},
		{Group: "large", Selector: sel, Enabled: new(true)},
		{Group: "nobody", Selector: sel},
	} {
		want := 0
		for i := range batch {
			if q.Matches(&batch[i]) {
				want++
			}
		}
		page, err := s.ListDevices(ctx, q)
		if err != nil {
			t.Fatalf("ListDevices(%s): %v", q.Key(), err)
		}
		if page.TotalSize != want {
			t.Errorf("ListDevices(%q).TotalSize = %d, want %d", q.Key(), page.TotalSize, want)
		}
	}
}

func TestNamePrefixMatchesLikeWildcardsLiterally(t *testing.T) {
	s := open(t, postgres.Options{URL: pgtest.Shared(t).URL()})
	for id, name := range map[string]string{"a": `50%_off\now`, "b": "500 units", "c": "50x_off", "d": `50%_off\x`} {
		if _, err := s.CreateDevice(t.Context(), device.Device{ID: id, Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	for prefix, want := range map[string]string{`50%`: "a d", `50%_`: "a d", `50%_off\n`: "a", `50`: "a b c d", `5_`: ""} {
		page, err := s.ListDevices(t.Context(), device.DeviceQuery{NamePrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range page.Devices {
			got = append(got, d.ID)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("name prefix %q lists %v, want %s", prefix, got, want)
		}
	}
}
