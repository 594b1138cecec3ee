package storetest

import (
	"fmt"
	"testing"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

func testUpserts(t *testing.T, newStore NewStore) {
	run(t, newStore, "upserting 10,000 devices in one call creates them all", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "fleet")
		devices := numbered("dev-", 10_000)
		for i := range devices {
			devices[i].Groups = []string{"fleet"}
			devices[i].Labels = map[string]string{"batch": "1"}
		}
		seq := mustLatestSeq(t, s)
		created, updated, err := s.UpsertDevices(t.Context(), devices)
		if err != nil || created != 10_000 || updated != 0 {
			t.Fatalf("UpsertDevices = %d created, %d updated, %v; want 10000, 0, nil", created, updated, err)
		}
		page, err := s.ListDevices(t.Context(), device.DeviceQuery{Selector: mustSelector(t, "batch=1"), PageSize: 1})
		if err != nil || page.TotalSize != 10_000 {
			t.Fatalf("ListDevices TotalSize = %d, %v; want 10000", page.TotalSize, err)
		}
		g, err := s.GetGroup(t.Context(), "fleet")
		if err != nil || g.MemberCount != 10_000 {
			t.Fatalf("GetGroup MemberCount = %d, %v; want 10000", g.MemberCount, err)
		}
		d := mustGetDevice(t, s, "dev-09999")
		if d.Version != 1 || d.Name != "Device 9999" || !d.CreatedAt.Equal(d.UpdatedAt) {
			t.Fatalf("GetDevice = %+v; want version 1, name Device 9999, CreatedAt = UpdatedAt", d)
		}
		if got := mustLatestSeq(t, s); got != seq+10_000 {
			t.Fatalf("LatestSeq = %d after the batch, want %d (one change per device)", got, seq+10_000)
		}
	})

	run(t, newStore, "upserting existing devices replaces their fields, keeps CreatedAt and the secret, and bumps the version", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g1", "g2")
		withSecret := sampleDevice("old-1", "g1")
		withSecret.SecretHash = testHash
		old1 := mustCreateDevice(t, s, withSecret)
		old2 := mustCreateDevice(t, s, sampleDevice("old-2", "g1"))
		if _, err := s.UpdateDevice(t.Context(), "old-2", func(*device.Device) error { return nil }, 0); err != nil {
			t.Fatal(err)
		}
		otherHash, err := device.HashSecret("another secret of some length")
		if err != nil {
			t.Fatal(err)
		}
		batch := []device.Device{
			{ID: "old-1", Name: "replaced", Groups: []string{"g2"}, Labels: map[string]string{"new": "yes"}},
			{ID: "new-1", Name: "fresh", Enabled: true},
			{ID: "old-2", Name: "re-keyed", SecretHash: otherHash},
		}
		created, updated, err := s.UpsertDevices(t.Context(), batch)
		if err != nil || created != 1 || updated != 2 {
			t.Fatalf("UpsertDevices = %d created, %d updated, %v; want 1, 2, nil", created, updated, err)
		}
		got1 := mustGetDevice(t, s, "old-1")
		want1 := batch[0]
		want1.SecretHash = testHash
		want1.CreatedAt, want1.UpdatedAt, want1.Version = old1.CreatedAt, got1.UpdatedAt, 2
		wantDevice(t, "old-1 (secret kept, every other field replaced)", got1, want1)
		got2 := mustGetDevice(t, s, "old-2")
		want2 := batch[2]
		want2.CreatedAt, want2.UpdatedAt, want2.Version = old2.CreatedAt, got2.UpdatedAt, 3
		wantDevice(t, "old-2 (secret replaced)", got2, want2)
		gotNew := mustGetDevice(t, s, "new-1")
		if gotNew.Version != 1 || gotNew.Name != "fresh" {
			t.Fatalf("new-1 = %+v, want version 1 named fresh", gotNew)
		}
		if g, _ := s.GetGroup(t.Context(), "g1"); g.MemberCount != 0 {
			t.Errorf("g1 MemberCount = %d after its members moved out, want 0", g.MemberCount)
		}
	})

	run(t, newStore, "a batch of 10,000 with one invalid device writes nothing", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("dev-00001"))
		before := mustGetDevice(t, s, "dev-00001")
		seq := mustLatestSeq(t, s)
		devices := numbered("dev-", 10_000)
		devices[7777].Labels = map[string]string{"bad key": "v"}
		created, updated, err := s.UpsertDevices(t.Context(), devices)
		wantViolation(t, "UpsertDevices", err, device.ErrInvalid, "devices[7777].labels")
		if created != 0 || updated != 0 {
			t.Errorf("UpsertDevices counted %d created, %d updated on failure, want 0, 0", created, updated)
		}
		wantNothingWritten(t, s, seq)
		page, err := s.ListDevices(t.Context(), device.DeviceQuery{})
		if err != nil || page.TotalSize != 1 {
			t.Fatalf("ListDevices TotalSize = %d, %v; want 1", page.TotalSize, err)
		}
		wantDevice(t, "the existing device", mustGetDevice(t, s, "dev-00001"), before)
	})

	run(t, newStore, "a batch naming a group that does not exist fails with ErrFailedPrecondition and writes nothing", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		seq := mustLatestSeq(t, s)
		devices := numbered("dev-", 100)
		for i := range devices {
			devices[i].Groups = []string{"g"}
		}
		devices[42].Groups = []string{"g", "missing"}
		_, _, err := s.UpsertDevices(t.Context(), devices)
		wantViolation(t, "UpsertDevices", err, device.ErrFailedPrecondition, "devices[42].groups")
		wantNothingWritten(t, s, seq)
	})

	run(t, newStore, "a batch holding one id twice fails with ErrInvalid", func(t *testing.T, s device.Store) {
		devices := numbered("dev-", 10)
		devices[9].ID = devices[3].ID
		_, _, err := s.UpsertDevices(t.Context(), devices)
		wantViolation(t, "UpsertDevices", err, device.ErrInvalid, "devices[9].id")
		wantNothingWritten(t, s, 0)
	})

	run(t, newStore, "a batch larger than the limit fails with ErrInvalid", func(t *testing.T, s device.Store) {
		_, _, err := s.UpsertDevices(t.Context(), make([]device.Device, device.MaxUpsertBatch+1))
		wantViolation(t, "UpsertDevices", err, device.ErrInvalid, "devices")
	})

	run(t, newStore, "an empty batch does nothing", func(t *testing.T, s device.Store) {
		created, updated, err := s.UpsertDevices(t.Context(), nil)
		if err != nil || created != 0 || updated != 0 {
			t.Fatalf("UpsertDevices(nil) = %d, %d, %v", created, updated, err)
		}
		wantNothingWritten(t, s, 0)
	})

	run(t, newStore, "a batch's changes take consecutive seqs in input order", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, device.Device{ID: "m"})
		seq := mustLatestSeq(t, s)
		batch := []device.Device{{ID: "z"}, {ID: "m", Name: "again"}, {ID: "a"}}
		mustUpsert(t, s, batch)
		changes, err := s.Changes(t.Context(), seq, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			kind    device.ChangeKind
			id      string
			version int64
		}{{device.DeviceCreated, "z", 1}, {device.DeviceUpdated, "m", 2}, {device.DeviceCreated, "a", 1}}
		if len(changes) != len(want) {
			t.Fatalf("%d changes, want %d", len(changes), len(want))
		}
		for i, w := range want {
			c := changes[i]
			if c.Seq != seq+int64(i)+1 || c.Kind != w.kind || c.ID != w.id || c.Version != w.version || c.Device == nil || c.Device.ID != w.id {
				t.Errorf("change %d = %s, want seq %d %s %s v%d", i, describe(c), seq+int64(i)+1, w.kind, w.id, w.version)
			}
		}
	})
}

func describe(c device.Change) string {
	return fmt.Sprintf("seq %d %s %s v%d (device %v group %v rule %v)", c.Seq, c.Kind, c.ID, c.Version, c.Device != nil, c.Group != nil, c.Rule != nil)
}
