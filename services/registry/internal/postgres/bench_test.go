package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sensorcast/sensorcast/services/internal/pgtest"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
	"github.com/sensorcast/sensorcast/services/registry/internal/postgres"
)

// BenchmarkFleet1M measures reads among a million devices: Get of a random
// device, and List of a page of 100 after a random device with the total
// count of the query's matches, for several filters. Loading the fleet
// takes a minute or two, once for all the sub-benchmarks:
//
//   - ids dev-0000000 … dev-0999999, names "sensor 0000000" …;
//   - group g000 … g999 by id modulo 1000 (1,000 members each), and every
//     even device also in group "even" (500,000 members);
//   - labels site=s00 … s49 by id modulo 50 (20,000 each), tier=test for
//     every tenth device and tier=prod for the rest;
//   - one device in a hundred disabled.
func BenchmarkFleet1M(b *testing.B) {
	url := pgtest.Shared(b).URL()
	start := time.Now()
	if err := loadFleet(url); err != nil {
		b.Fatalf("loading %d devices: %v", fleetSize, err)
	}
	b.Logf("loaded %d devices in %v", fleetSize, time.Since(start).Round(time.Second))
	s := open(b, postgres.Options{URL: url})
	b.Run("Get", func(b *testing.B) { benchmarkGet(b, s) })
	b.Run("List", func(b *testing.B) { benchmarkList(b, s) })
}

const fleetSize = 1_000_000

func loadFleet(url string) error {
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Options{URL: url}) // migrates
	if err != nil {
		return err
	}
	defer s.Close()
	for g := range 1000 {
		if _, err := s.CreateGroup(ctx, device.Group{ID: fmt.Sprintf("g%03d", g)}); err != nil {
			return err
		}
	}
	if _, err := s.CreateGroup(ctx, device.Group{ID: "even"}); err != nil {
		return err
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	now := time.Now().UTC().Truncate(time.Microsecond)
	// Straight into the table with COPY, bypassing the store (and the
	// change log): the triggers still fill device_groups and the counts.
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"devices"},
		[]string{"id", "name", "type", "groups", "labels", "attributes", "enabled", "secret_hash", "created_at", "updated_at", "version"},
		pgx.CopyFromSlice(fleetSize, func(i int) ([]any, error) {
			groups := []string{fmt.Sprintf("g%03d", i%1000)}
			if i%2 == 0 {
				groups = append([]string{"even"}, groups...)
			}
			tier := "prod"
			if i%10 == 0 {
				tier = "test"
			}
			return []any{
				fmt.Sprintf("dev-%07d", i), fmt.Sprintf("sensor %07d", i), "esp32", groups,
				map[string]string{"site": fmt.Sprintf("s%02d", i%50), "tier": tier},
				map[string]string{"firmware": "1.2.3"},
				i%100 != 0, nil, now, now, int64(1),
			}, nil
		}))
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return err
	}
	return nil
}

// randomID returns the id of a random device of the fleet.
func randomID(r *rand.Rand) string { return fmt.Sprintf("dev-%07d", r.IntN(fleetSize)) }

func benchmarkGet(b *testing.B, s *postgres.Store) {
	r := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if _, err := s.GetDevice(b.Context(), randomID(r)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkList(b *testing.B, s *postgres.Store) {
	for _, bc := range []struct {
		name     string
		query    device.DeviceQuery
		selector string
	}{
		{name: "all", query: device.DeviceQuery{}},
		{name: "group of 1k", query: device.DeviceQuery{Group: "g123"}},
		{name: "group of 500k", query: device.DeviceQuery{Group: "even"}},
		{name: "selector", selector: "site=s07,tier!=test"},
		{name: "group of 1k and selector", query: device.DeviceQuery{Group: "g123"}, selector: "site in (s23,s24),tier!=test"},
		{name: "group of 500k and selector", query: device.DeviceQuery{Group: "even"}, selector: "site=s08,tier!=test"},
		{name: "disabled", query: device.DeviceQuery{Enabled: new(false)}},
		{name: "name prefix", query: device.DeviceQuery{NamePrefix: "sensor 01234"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := bc.query
			var err error
			if q.Selector, err = device.ParseSelector(bc.selector); err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			var total int
			for b.Loop() {
				q.PageToken = device.EncodePageToken(q.Key(), randomID(r))
				page, err := s.ListDevices(b.Context(), q)
				if err != nil {
					b.Fatal(err)
				}
				total = page.TotalSize
			}
			b.ReportMetric(float64(total), "matches")
		})
	}
}

// BenchmarkWrites measures a single-device update (one write transaction,
// its change appended) and an import of 10,000 new devices in one batch.
func BenchmarkWrites(b *testing.B) {
	s := open(b, postgres.Options{URL: pgtest.Shared(b).URL()})
	ctx := b.Context()
	if _, err := s.CreateGroup(ctx, device.Group{ID: "g"}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.CreateDevice(ctx, device.Device{ID: "d", Groups: []string{"g"}}); err != nil {
		b.Fatal(err)
	}
	b.Run("UpdateDevice", func(b *testing.B) {
		for b.Loop() {
			_, err := s.UpdateDevice(ctx, "d", func(d *device.Device) error { d.Name = "renamed"; return nil }, 0)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UpsertDevices 10k", func(b *testing.B) {
		batch := make([]device.Device, 10_000)
		round := 0
		for b.Loop() {
			round++
			for i := range batch {
				batch[i] = device.Device{
					ID:     fmt.Sprintf("r%d-%05d", round, i),
					Name:   fmt.Sprintf("sensor %d", i),
					Groups: []string{"g"},
					Labels: map[string]string{"site": fmt.Sprintf("s%d", i%50)},
				}
			}
			if _, _, err := s.UpsertDevices(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
