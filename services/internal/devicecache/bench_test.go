package devicecache

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
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
