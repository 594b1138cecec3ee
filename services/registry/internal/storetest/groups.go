package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

func memberCount(t *testing.T, s device.Store, id string) int {
	t.Helper()
	g, err := s.GetGroup(t.Context(), id)
	if err != nil {
		t.Fatalf("GetGroup(%q): %v", id, err)
	}
	return g.MemberCount
}

func testGroups(t *testing.T, newStore NewStore) {
	run(t, newStore, "a created group has version 1 and no members and reads back exactly", func(t *testing.T, s device.Store) {
		in := device.Group{ID: "building-a", DisplayName: "Building A", Description: "North campus.\nThree floors.", Labels: map[string]string{"campus": "north"}}
		got, err := s.CreateGroup(t.Context(), in)
		if err != nil {
			t.Fatalf("CreateGroup: %v", err)
		}
		want := in
		want.Version = 1
		want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.CreatedAt
		wantGroup(t, "CreateGroup", got, want)
		back, err := s.GetGroup(t.Context(), "building-a")
		if err != nil {
			t.Fatal(err)
		}
		wantGroup(t, "GetGroup", back, got)
	})

	run(t, newStore, "creating a group whose id is taken fails with ErrAlreadyExists", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		_, err := s.CreateGroup(t.Context(), device.Group{ID: "g"})
		wantErr(t, "CreateGroup", err, device.ErrAlreadyExists)
	})

	run(t, newStore, "creating an invalid group fails with a ValidationError naming the field", func(t *testing.T, s device.Store) {
		for _, tt := range []struct {
			name  string
			g     device.Group
			field string
		}{
			{"an id with a slash", device.Group{ID: "a/b"}, "id"},
			{"a display name of 201 characters", device.Group{ID: "g", DisplayName: strings.Repeat("n", 201)}, "display_name"},
			{"a description of 2001 characters", device.Group{ID: "g", Description: strings.Repeat("d", 2001)}, "description"},
			{"a bad label", device.Group{ID: "g", Labels: map[string]string{"k": "a b"}}, "labels"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateGroup(t.Context(), tt.g)
				wantViolation(t, "CreateGroup", err, device.ErrInvalid, tt.field)
			})
		}
		wantNothingWritten(t, s, 0)
	})

	run(t, newStore, "getting a group that does not exist fails with ErrNotFound", func(t *testing.T, s device.Store) {
		_, err := s.GetGroup(t.Context(), "nowhere")
		wantErr(t, "GetGroup", err, device.ErrNotFound)
	})

	run(t, newStore, "member counts follow devices joining and leaving", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g1", "g2")
		mustCreateDevice(t, s, sampleDevice("d1", "g1"))
		mustCreateDevice(t, s, sampleDevice("d2", "g1", "g2"))
		mustCreateDevice(t, s, sampleDevice("d3"))
		if a, b := memberCount(t, s, "g1"), memberCount(t, s, "g2"); a != 2 || b != 1 {
			t.Fatalf("member counts = %d, %d; want 2, 1", a, b)
		}
		if _, err := s.UpdateDevice(t.Context(), "d3", func(d *device.Device) error { d.Groups = []string{"g2"}; return nil }, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateDevice(t.Context(), "d2", func(d *device.Device) error { d.Groups = nil; return nil }, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDevice(t.Context(), "d1", 0); err != nil {
			t.Fatal(err)
		}
		if a, b := memberCount(t, s, "g1"), memberCount(t, s, "g2"); a != 0 || b != 1 {
			t.Fatalf("member counts = %d, %d; want 0, 1", a, b)
		}
		g2, _ := s.GetGroup(t.Context(), "g2")
		if g2.Version != 1 {
			t.Errorf("g2 Version = %d: members joining and leaving must not change it", g2.Version)
		}
	})

	run(t, newStore, "deleting a group with members fails with ErrFailedPrecondition and changes nothing", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		mustCreateDevice(t, s, sampleDevice("d1", "g"))
		seq := mustLatestSeq(t, s)
		err := s.DeleteGroup(t.Context(), "g", false)
		wantErr(t, "DeleteGroup", err, device.ErrFailedPrecondition)
		wantNothingWritten(t, s, seq)
		if memberCount(t, s, "g") != 1 {
			t.Fatal("the group lost its member")
		}
	})

	run(t, newStore, "deleting an empty group without force succeeds", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		if err := s.DeleteGroup(t.Context(), "g", false); err != nil {
			t.Fatalf("DeleteGroup: %v", err)
		}
		_, err := s.GetGroup(t.Context(), "g")
		wantErr(t, "GetGroup after delete", err, device.ErrNotFound)
		_, err = s.CreateDevice(t.Context(), sampleDevice("d1", "g"))
		wantErr(t, "CreateDevice into the deleted group", err, device.ErrFailedPrecondition)
	})

	run(t, newStore, "deleting a group by force removes it from every member and bumps their versions", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g", "keep")
		mustCreateDevice(t, s, sampleDevice("d2", "g", "keep"))
		mustCreateDevice(t, s, sampleDevice("d1", "g"))
		mustCreateDevice(t, s, sampleDevice("d3", "keep"))
		seq := mustLatestSeq(t, s)
		if err := s.DeleteGroup(t.Context(), "g", true); err != nil {
			t.Fatalf("DeleteGroup(force): %v", err)
		}
		if d := mustGetDevice(t, s, "d1"); len(d.Groups) != 0 || d.Version != 2 {
			t.Errorf("d1 = groups %v version %d, want none, 2", d.Groups, d.Version)
		}
		if d := mustGetDevice(t, s, "d2"); strings.Join(d.Groups, ",") != "keep" || d.Version != 2 {
			t.Errorf("d2 = groups %v version %d, want [keep], 2", d.Groups, d.Version)
		}
		if d := mustGetDevice(t, s, "d3"); d.Version != 1 {
			t.Errorf("d3 version %d, want 1: it was not a member", d.Version)
		}
		changes, err := s.Changes(t.Context(), seq, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range changes {
			got = append(got, fmt.Sprintf("%s %s v%d", c.Kind, c.ID, c.Version))
			if c.Kind == device.DeviceUpdated && (c.Device == nil || c.Device.InGroup("g")) {
				t.Errorf("change %s does not carry the device without the group", describe(c))
			}
		}
		want := "device_updated d1 v2, device_updated d2 v2, group_deleted g v1"
		if strings.Join(got, ", ") != want {
			t.Fatalf("changes = %s; want %s", strings.Join(got, ", "), want)
		}
	})

	run(t, newStore, "deleting a group that does not exist fails with ErrNotFound", func(t *testing.T, s device.Store) {
		wantErr(t, "DeleteGroup", s.DeleteGroup(t.Context(), "nowhere", false), device.ErrNotFound)
		wantErr(t, "DeleteGroup(force)", s.DeleteGroup(t.Context(), "nowhere", true), device.ErrNotFound)
	})

	run(t, newStore, "deleting a group keeps the rules that target it", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		r := sampleRule("r1", device.TargetGroup, "g")
		if _, err := s.CreateRule(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteGroup(t.Context(), "g", false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRule(t.Context(), "r1"); err != nil {
			t.Fatalf("GetRule after deleting its group: %v", err)
		}
	})

	run(t, newStore, "an update applies the mutation, bumps the version and keeps the member count", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		mustCreateDevice(t, s, sampleDevice("d1", "g"))
		got, err := s.UpdateGroup(t.Context(), "g", func(g *device.Group) error {
			g.DisplayName = "Renamed"
			g.Labels = map[string]string{"k": "v"}
			g.MemberCount = 99
			g.Version = 99
			return nil
		}, 1)
		if err != nil {
			t.Fatalf("UpdateGroup: %v", err)
		}
		if got.DisplayName != "Renamed" || got.Labels["k"] != "v" || got.Version != 2 || got.MemberCount != 1 {
			t.Fatalf("UpdateGroup = %+v; want Renamed, k=v, version 2, 1 member", got)
		}
		back, _ := s.GetGroup(t.Context(), "g")
		wantGroup(t, "GetGroup", back, got)
	})

	run(t, newStore, "group updates fail with ErrConflict, ErrNotFound, ErrInvalid or the mutation's error", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		seq := mustLatestSeq(t, s)
		noop := func(*device.Group) error { return nil }
		_, err := s.UpdateGroup(t.Context(), "g", noop, 2)
		wantErr(t, "UpdateGroup expecting 2", err, device.ErrConflict)
		_, err = s.UpdateGroup(t.Context(), "nowhere", noop, 0)
		wantErr(t, "UpdateGroup of a missing group", err, device.ErrNotFound)
		_, err = s.UpdateGroup(t.Context(), "g", func(g *device.Group) error { g.ID = "h"; return nil }, 0)
		wantViolation(t, "UpdateGroup changing the id", err, device.ErrInvalid, "id")
		_, err = s.UpdateGroup(t.Context(), "g", func(g *device.Group) error { g.DisplayName = "\x00"; return nil }, 0)
		wantViolation(t, "UpdateGroup to an invalid name", err, device.ErrInvalid, "display_name")
		errStop := errors.New("stop")
		if _, err = s.UpdateGroup(t.Context(), "g", func(*device.Group) error { return errStop }, 0); err != errStop {
			t.Fatalf("UpdateGroup error = %v, want errStop itself", err)
		}
		wantNothingWritten(t, s, seq)
	})

	run(t, newStore, "groups are listed in id order with their member counts, page by page", func(t *testing.T, s device.Store) {
		for i := 24; i >= 0; i-- {
			mustCreateGroup(t, s, fmt.Sprintf("g%02d", i))
		}
		mustCreateDevice(t, s, sampleDevice("d1", "g03", "g17"))
		mustCreateDevice(t, s, sampleDevice("d2", "g17"))
		var got []device.Group
		q := device.GroupQuery{PageSize: 10}
		for {
			page, err := s.ListGroups(t.Context(), q)
			if err != nil {
				t.Fatalf("ListGroups: %v", err)
			}
			if page.TotalSize != 25 {
				t.Fatalf("TotalSize = %d, want 25", page.TotalSize)
			}
			got = append(got, page.Groups...)
			if page.NextPageToken == "" {
				break
			}
			q.PageToken = page.NextPageToken
		}
		if len(got) != 25 {
			t.Fatalf("listed %d groups, want 25", len(got))
		}
		for i, g := range got {
			want := 0
			switch i {
			case 3:
				want = 1
			case 17:
				want = 2
			}
			if g.ID != fmt.Sprintf("g%02d", i) || g.MemberCount != want {
				t.Errorf("group %d = %s with %d members, want g%02d with %d", i, g.ID, g.MemberCount, i, want)
			}
		}
		_, err := s.ListGroups(t.Context(), device.GroupQuery{PageSize: -1})
		wantViolation(t, "ListGroups with a negative page size", err, device.ErrInvalid, "page_size")
	})

	run(t, newStore, "a group lists exactly its members, page by page", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g", "other", "empty")
		devices := numbered("dev-", 250)
		for i := range devices {
			if i%5 == 0 {
				devices[i].Groups = []string{"g", "other"}
			} else {
				devices[i].Groups = []string{"other"}
			}
		}
		mustUpsert(t, s, devices)
		var got []string
		q := device.MembersQuery{GroupID: "g", PageSize: 20}
		for {
			page, err := s.ListGroupMembers(t.Context(), q)
			if err != nil {
				t.Fatalf("ListGroupMembers: %v", err)
			}
			if page.TotalSize != 50 {
				t.Fatalf("TotalSize = %d, want 50", page.TotalSize)
			}
			got = append(got, ids(page.Devices)...)
			if page.NextPageToken == "" {
				break
			}
			q.PageToken = page.NextPageToken
		}
		if len(got) != 50 {
			t.Fatalf("listed %d members, want 50", len(got))
		}
		for i, id := range got {
			if want := fmt.Sprintf("dev-%05d", 5*i); id != want {
				t.Fatalf("member %d = %s, want %s", i, id, want)
			}
		}
		page, err := s.ListGroupMembers(t.Context(), device.MembersQuery{GroupID: "empty"})
		if err != nil || len(page.Devices) != 0 || page.TotalSize != 0 || page.NextPageToken != "" {
			t.Fatalf("members of an empty group = %+v, %v", page, err)
		}
		_, err = s.ListGroupMembers(t.Context(), device.MembersQuery{GroupID: "nowhere"})
		wantErr(t, "ListGroupMembers of a missing group", err, device.ErrNotFound)
		_, err = s.ListGroupMembers(t.Context(), device.MembersQuery{GroupID: "bad id"})
		wantViolation(t, "ListGroupMembers of an invalid id", err, device.ErrInvalid, "group_id")
	})
}
