package devicecache

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
)

// BenchmarkLookup1M is ingest's per-message admission cost: one lookup in
// a cache of a million devices, from parallel goroutines.
func BenchmarkLookup1M(b *testing.B) {
	c := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ids := make([]string, 1_000_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("device-%07d", i)
		c.devices[ids[i]] = Device{Enabled: true, Groups: []string{"g1"}, Version: 1}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Lookup(ids[i%len(ids)]); !ok {
				b.Fatal("missing")
			}
			i += 7919
		}
	})
}

// BenchmarkDevicesSearch100k is a dashboard's device list request: one
// page of a search over 100,000 devices (a full scan, to count matches).
func BenchmarkDevicesSearch100k(b *testing.B) {
	c := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 100_000 {
		id := fmt.Sprintf("device-%06d", i)
		c.devices[id] = fromProto(&registryv1.Device{Id: id, DisplayName: fmt.Sprintf("Sensor %d", i), Enabled: true, Groups: []string{fmt.Sprintf("g%d", i%100)}, Version: 1})
	}
	all := func(Device) bool { return true }
	c.Devices("", 1, "", all) // the listing is built once, at the first request
	b.ReportAllocs()
	for b.Loop() {
		if page, total := c.Devices("", 200, "Sensor 4", all); len(page) != 200 || total != 11111 {
			b.Fatalf("%d of %d", len(page), total)
		}
	}
}
