package storetest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

func allChanges(t *testing.T, s device.Store, after int64) []device.Change {
	t.Helper()
	var all []device.Change
	for {
		batch, err := s.Changes(t.Context(), after, 0)
		if err != nil {
			t.Fatalf("Changes(%d): %v", after, err)
		}
		if len(batch) == 0 {
			return all
		}
		all = append(all, batch...)
		after = batch[len(batch)-1].Seq
	}
}

func testChanges(t *testing.T, newStore NewStore) {
	run(t, newStore, "an empty store has no changes and latest seq 0", func(t *testing.T, s device.Store) {
		if seq := mustLatestSeq(t, s); seq != 0 {
			t.Fatalf("LatestSeq = %d, want 0", seq)
		}
		if changes := allChanges(t, s, 0); len(changes) != 0 {
			t.Fatalf("Changes = %d, want none", len(changes))
		}
	})

	run(t, newStore, "every mutation appends one change per object with its kind, id, version and new state", func(t *testing.T, s device.Store) {
		ctx := t.Context()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		mustCreateGroup(t, s, "g")
		d1 := mustCreateDevice(t, s, sampleDevice("d1", "g"))
		d1v2, err := s.UpdateDevice(ctx, "d1", func(d *device.Device) error { d.Name = "two"; return nil }, 0)
		must(err)
		_, err = s.SetDeviceSecret(ctx, "d1", testHash)
		must(err)
		_, err = s.UpdateGroup(ctx, "g", func(g *device.Group) error { g.Description = "d"; return nil }, 0)
		must(err)
		_, _, err = s.UpsertDevices(ctx, []device.Device{{ID: "d2"}, {ID: "d1", Groups: []string{"g"}}})
		must(err)
		_, err = s.CreateRule(ctx, sampleRule("r1", device.TargetGroup, "g"))
		must(err)
		_, err = s.UpdateRule(ctx, "r1", func(r *device.AlertRule) error { r.Threshold = 1; return nil }, 0)
		must(err)
		must(s.DeleteRule(ctx, "r1", 0))
		must(s.DeleteGroup(ctx, "g", true))
		must(s.DeleteDevice(ctx, "d2", 0))
		must(s.DeleteDevice(ctx, "d1", 0))

		want := []string{
			"group_created g v1 group",
			"device_created d1 v1 device",
			"device_updated d1 v2 device",
			"device_updated d1 v3 device",
			"group_updated g v2 group",
			"device_created d2 v1 device",
			"device_updated d1 v4 device",
			"rule_created r1 v1 rule",
			"rule_updated r1 v2 rule",
			"rule_deleted r1 v2 -",
			"device_updated d1 v5 device",
			"group_deleted g v2 -",
			"device_deleted d2 v1 -",
			"device_deleted d1 v5 -",
		}
		changes := allChanges(t, s, 0)
		var got []string
		for i, c := range changes {
			state := "-"
			switch {
			case c.Device != nil && c.Group == nil && c.Rule == nil:
				state = "device"
				if c.Device.ID != c.ID || c.Device.Version != c.Version || !c.At.Equal(c.Device.UpdatedAt) {
					t.Errorf("change %s carries device %s v%d updated %v, want its own id, version and At %v", describe(c), c.Device.ID, c.Device.Version, c.Device.UpdatedAt, c.At)
				}
			case c.Group != nil && c.Device == nil && c.Rule == nil:
				state = "group"
				if c.Group.ID != c.ID || c.Group.Version != c.Version || !c.At.Equal(c.Group.UpdatedAt) {
					t.Errorf("change %s carries group %s v%d, want its own id and version", describe(c), c.Group.ID, c.Group.Version)
				}
			case c.Rule != nil && c.Device == nil && c.Group == nil:
				state = "rule"
				if c.Rule.ID != c.ID || c.Rule.Version != c.Version || !c.At.Equal(c.Rule.UpdatedAt) {
					t.Errorf("change %s carries rule %s v%d, want its own id and version", describe(c), c.Rule.ID, c.Rule.Version)
				}
			case c.Device != nil || c.Group != nil || c.Rule != nil:
				state = "several"
			}
			if c.Seq != int64(i)+1 {
				t.Errorf("change %d has seq %d, want %d", i, c.Seq, i+1)
			}
			if c.At.IsZero() {
				t.Errorf("change %s has no time", describe(c))
			}
			if i > 0 && c.At.Before(changes[i-1].At) {
				t.Errorf("change %s committed at %v, before the previous one at %v", describe(c), c.At, changes[i-1].At)
			}
			got = append(got, fmt.Sprintf("%s %s v%d %s", c.Kind, c.ID, c.Version, state))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("change log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if seq := mustLatestSeq(t, s); seq != int64(len(want)) {
			t.Errorf("LatestSeq = %d, want %d", seq, len(want))
		}
		// The state in a change is a snapshot: later updates do not alter it.
		if c := changes[2]; c.Device.Name != "two" || c.Device.SecretHash != nil {
			t.Errorf("change 3 shows device name %q, hash %q: want the state of version 2 (%q, no hash)", c.Device.Name, c.Device.SecretHash, d1v2.Name)
		}
		if c := changes[1]; diffDevice(*c.Device, d1) != "" {
			t.Errorf("change 2 device: %s", diffDevice(*c.Device, d1))
		}
		if c := changes[3]; string(c.Device.SecretHash) != string(testHash) {
			t.Errorf("the secret change does not carry the hash")
		}
		if c := changes[4]; c.Group.MemberCount != 1 || c.Group.Description != "d" {
			t.Errorf("group update change = %+v, want description d and 1 member", *c.Group)
		}
	})

	run(t, newStore, "reading changes after a seq resumes exactly where the reader stopped, within the limit", func(t *testing.T, s device.Store) {
		mustUpsert(t, s, numbered("dev-", 25))
		for after := int64(0); after <= 25; after += 5 {
			for _, limit := range []int{1, 7, 100} {
				batch, err := s.Changes(t.Context(), after, limit)
				if err != nil {
					t.Fatalf("Changes(%d, %d): %v", after, limit, err)
				}
				want := min(limit, 25-int(after))
				if len(batch) != want {
					t.Fatalf("Changes(%d, %d) = %d changes, want %d", after, limit, len(batch), want)
				}
				for i, c := range batch {
					if c.Seq != after+int64(i)+1 {
						t.Fatalf("Changes(%d, %d)[%d].Seq = %d, want %d", after, limit, i, c.Seq, after+int64(i)+1)
					}
				}
			}
		}
		batch, err := s.Changes(t.Context(), 1000, 10)
		if err != nil || len(batch) != 0 {
			t.Fatalf("Changes after the latest seq = %d changes, %v; want none, nil", len(batch), err)
		}
	})

	run(t, newStore, "a change limit of 0 means the default and a large one is clamped", func(t *testing.T, s device.Store) {
		mustUpsert(t, s, numbered("dev-", device.MaxChangesLimit+5))
		batch, err := s.Changes(t.Context(), 0, 0)
		if err != nil || len(batch) != device.DefaultChangesLimit {
			t.Fatalf("Changes(0, 0) = %d changes, %v; want %d", len(batch), err, device.DefaultChangesLimit)
		}
		batch, err = s.Changes(t.Context(), 0, 1<<30)
		if err != nil || len(batch) != device.MaxChangesLimit {
			t.Fatalf("Changes(0, huge) = %d changes, %v; want %d", len(batch), err, device.MaxChangesLimit)
		}
	})

	run(t, newStore, "negative change arguments fail with ErrInvalid", func(t *testing.T, s device.Store) {
		_, err := s.Changes(t.Context(), -1, 10)
		wantViolation(t, "Changes(-1, 10)", err, device.ErrInvalid, "after_seq")
		_, err = s.Changes(t.Context(), 0, -1)
		wantViolation(t, "Changes(0, -1)", err, device.ErrInvalid, "limit")
	})

	run(t, newStore, "failed mutations append no change", func(t *testing.T, s device.Store) {
		ctx := t.Context()
		mustCreateGroup(t, s, "g")
		mustCreateDevice(t, s, sampleDevice("d1", "g"))
		seq := mustLatestSeq(t, s)
		s.CreateDevice(ctx, sampleDevice("d1"))
		s.CreateDevice(ctx, sampleDevice("bad id"))
		s.UpdateDevice(ctx, "d1", func(*device.Device) error { return nil }, 7)
		s.DeleteDevice(ctx, "nobody", 0)
		s.DeleteGroup(ctx, "g", false)
		s.SetDeviceSecret(ctx, "nobody", nil)
		s.CreateRule(ctx, device.AlertRule{ID: "r"})
		s.UpsertDevices(ctx, []device.Device{{ID: "ok"}, {ID: "not ok"}})
		wantNothingWritten(t, s, seq)
	})
}
