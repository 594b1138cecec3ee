package memstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// fleet returns a store of n devices over 10 sites and 4 tiers, each in
// one of 50 groups.
func fleet(b *testing.B, n int) *Store {
	b.Helper()
	s := New(Options{})
	ctx := context.Background()
	groups := make([]device.Group, 50)
	for i := range groups {
		if _, err := s.CreateGroup(ctx, device.Group{ID: fmt.Sprintf("g%02d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	devices := make([]device.Device, n)
	for i := range devices {
		devices[i] = device.Device{
			ID:      fmt.Sprintf("sensor-%07d", i),
			Name:    fmt.Sprintf("Sensor %d", i),
			Groups:  []string{fmt.Sprintf("g%02d", i%50)},
			Labels:  map[string]string{"site": fmt.Sprintf("s%d", i%10), "tier": []string{"prod", "test", "dev", "edge"}[i%4]},
			Enabled: i%7 != 0,
		}
	}
	if _, _, err := s.UpsertDevices(ctx, devices); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkMemstoreList lists pages of 100 of 100,000 devices with a
// selector matching 1 in 10 of them, walking the pages in turn.
func BenchmarkMemstoreList(b *testing.B) {
	s := fleet(b, 100_000)
	sel, err := device.ParseSelector("site=s3,tier!=test")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("walking pages (total cached)", func(b *testing.B) {
		q := device.DeviceQuery{Selector: sel, PageSize: 100}
		for b.Loop() {
			page, err := s.ListDevices(ctx, q)
			if err != nil || len(page.Devices) == 0 {
				b.Fatalf("ListDevices = %d devices, %v", len(page.Devices), err)
			}
			q.PageToken = page.NextPageToken
		}
	})
	b.Run("first page after a write (total recounted)", func(b *testing.B) {
		q := device.DeviceQuery{Selector: sel, PageSize: 100}
		for b.Loop() {
			s.mu.Lock()
			s.gen++ // what any device write does
			s.mu.Unlock()
			if _, err := s.ListDevices(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("a group's first page (half its 2,000 members match)", func(b *testing.B) {
		q := device.DeviceQuery{Group: "g03", Selector: sel, PageSize: 100}
		for b.Loop() {
			if _, err := s.ListDevices(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMemstoreGet(b *testing.B) {
	s := fleet(b, 100_000)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := s.GetDevice(ctx, fmt.Sprintf("sensor-%07d", i%100_000)); err != nil {
			b.Fatal(err)
		}
	}
}
