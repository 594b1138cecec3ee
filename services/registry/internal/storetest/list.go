package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

func mustSelector(t *testing.T, s string) device.Selector {
	t.Helper()
	sel, err := device.ParseSelector(s)
	if err != nil {
		t.Fatalf("ParseSelector(%q): %v", s, err)
	}
	return sel
}

// mustUpsert writes devices in one batch.
func mustUpsert(t *testing.T, s device.Store, devices []device.Device) {
	t.Helper()
	if _, _, err := s.UpsertDevices(t.Context(), devices); err != nil {
		t.Fatalf("UpsertDevices(%d devices): %v", len(devices), err)
	}
}

func numbered(prefix string, n int) []device.Device {
	out := make([]device.Device, n)
	for i := range out {
		out[i] = device.Device{ID: fmt.Sprintf("%s%05d", prefix, i), Name: fmt.Sprintf("Device %d", i), Enabled: true}
	}
	return out
}

func testDeviceLists(t *testing.T, newStore NewStore) {
	// fleet is a small fleet that exercises every filter.
	fleet := func(t *testing.T, s device.Store) {
		t.Helper()
		mustCreateGroup(t, s, "roof", "yard", "empty")
		for _, d := range []device.Device{
			{ID: "a1", Name: "alpha one", Groups: []string{"roof"}, Labels: map[string]string{"site": "a", "tier": "prod"}, Enabled: true},
			{ID: "a2", Name: "alpha two", Groups: []string{"roof", "yard"}, Labels: map[string]string{"site": "a", "tier": "test"}, Enabled: false},
			{ID: "b1", Name: "beta one", Groups: []string{"yard"}, Labels: map[string]string{"site": "b", "tier": "prod"}, Enabled: true},
			{ID: "b2", Name: "beta two", Labels: map[string]string{"site": "b"}, Enabled: true},
			{ID: "c1", Name: "gamma", Labels: map[string]string{"site": "c", "tier": "prod", "owner": "ops"}, Enabled: false},
			{ID: "n1", Name: "", Enabled: true},
		} {
			mustCreateDevice(t, s, d)
		}
	}
	run(t, newStore, "filters select exactly the matching devices, in id order", func(t *testing.T, s device.Store) {
		fleet(t, s)
		tests := []struct {
			name string
			q    device.DeviceQuery
			want string
		}{
			{"no filter", device.DeviceQuery{}, "a1 a2 b1 b2 c1 n1"},
			{"a group", device.DeviceQuery{Group: "roof"}, "a1 a2"},
			{"another group", device.DeviceQuery{Group: "yard"}, "a2 b1"},
			{"a group without members", device.DeviceQuery{Group: "empty"}, ""},
			{"a group that does not exist", device.DeviceQuery{Group: "nowhere"}, ""},
			{"label equals", device.DeviceQuery{Selector: mustSelector(t, "site=a")}, "a1 a2"},
			{"label equals with ==", device.DeviceQuery{Selector: mustSelector(t, "site==b")}, "b1 b2"},
			{"label not equal also matches devices without the label", device.DeviceQuery{Selector: mustSelector(t, "tier!=test")}, "a1 b1 b2 c1 n1"},
			{"label in", device.DeviceQuery{Selector: mustSelector(t, "site in (a,c)")}, "a1 a2 c1"},
			{"label notin also matches devices without the label", device.DeviceQuery{Selector: mustSelector(t, "site notin (a,b)")}, "c1 n1"},
			{"label exists", device.DeviceQuery{Selector: mustSelector(t, "owner")}, "c1"},
			{"label does not exist", device.DeviceQuery{Selector: mustSelector(t, "!tier")}, "b2 n1"},
			{"two requirements", device.DeviceQuery{Selector: mustSelector(t, "site=a,tier!=test")}, "a1"},
			{"a selector nothing matches", device.DeviceQuery{Selector: mustSelector(t, "site=z")}, ""},
			{"enabled", device.DeviceQuery{Enabled: ptr(true)}, "a1 b1 b2 n1"},
			{"disabled", device.DeviceQuery{Enabled: ptr(false)}, "a2 c1"},
			{"a name prefix", device.DeviceQuery{NamePrefix: "alpha"}, "a1 a2"},
			{"a name prefix is case sensitive", device.DeviceQuery{NamePrefix: "Alpha"}, ""},
			{"a name prefix with LIKE wildcards matches them literally", device.DeviceQuery{NamePrefix: "al%"}, ""},
			{"a name prefix with an underscore matches it literally", device.DeviceQuery{NamePrefix: "alph_"}, ""},
			{"every filter at once", device.DeviceQuery{Group: "yard", Selector: mustSelector(t, "tier=prod"), Enabled: ptr(true), NamePrefix: "beta"}, "b1"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				page, err := s.ListDevices(t.Context(), tt.q)
				if err != nil {
					t.Fatalf("ListDevices: %v", err)
				}
				if got := strings.Join(ids(page.Devices), " "); got != tt.want {
					t.Errorf("ListDevices = %q, want %q", got, tt.want)
				}
				if want := len(strings.Fields(tt.want)); page.TotalSize != want {
					t.Errorf("TotalSize = %d, want %d", page.TotalSize, want)
				}
				if page.NextPageToken != "" {
					t.Errorf("NextPageToken = %q on the only page", page.NextPageToken)
				}
			})
		}
	})

	run(t, newStore, "listed devices are complete and equal to what get returns", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "roof")
		d := sampleDevice("d1", "roof")
		d.SecretHash = testHash
		created := mustCreateDevice(t, s, d)
		page, err := s.ListDevices(t.Context(), device.DeviceQuery{})
		if err != nil || len(page.Devices) != 1 {
			t.Fatalf("ListDevices = %d devices, %v", len(page.Devices), err)
		}
		wantDevice(t, "listed device", page.Devices[0], created)
	})

	run(t, newStore, "devices are ordered by id compared bytewise", func(t *testing.T, s device.Store) {
		in := []string{"b", "a", "B", "A", "_", "-", ":", "0", "a-b", "a:b", "a_b", "aB", "ab", "Z9"}
		for _, id := range in {
			mustCreateDevice(t, s, device.Device{ID: id})
		}
		want := slices.Clone(in)
		slices.Sort(want) // Go compares strings bytewise.
		got := ids(listAllDevices(t, s, device.DeviceQuery{PageSize: 3}))
		if !slices.Equal(got, want) {
			t.Fatalf("order = %q, want %q", got, want)
		}
	})

	run(t, newStore, "paging through 2,500 devices 100 at a time returns each once in order with the total on every page", func(t *testing.T, s device.Store) {
		mustUpsert(t, s, numbered("dev-", 2500))
		q := device.DeviceQuery{PageSize: 100}
		var got []string
		for pages := 1; ; pages++ {
			page, err := s.ListDevices(t.Context(), q)
			if err != nil {
				t.Fatalf("page %d: %v", pages, err)
			}
			if len(page.Devices) != 100 {
				t.Fatalf("page %d has %d devices, want 100", pages, len(page.Devices))
			}
			if page.TotalSize != 2500 {
				t.Fatalf("page %d TotalSize = %d, want 2500", pages, page.TotalSize)
			}
			got = append(got, ids(page.Devices)...)
			if page.NextPageToken == "" {
				if pages != 25 {
					t.Fatalf("%d pages, want 25", pages)
				}
				break
			}
			q.PageToken = page.NextPageToken
		}
		if want := ids(numbered("dev-", 2500)); !slices.Equal(got, want) {
			t.Fatalf("paging returned %d ids, not the 2,500 in order", len(got))
		}
	})

	run(t, newStore, "paging with a filter pages through the matches only", func(t *testing.T, s device.Store) {
		devices := numbered("dev-", 1000)
		for i := range devices {
			devices[i].Labels = map[string]string{"parity": []string{"even", "odd"}[i%2]}
		}
		mustUpsert(t, s, devices)
		q := device.DeviceQuery{Selector: mustSelector(t, "parity=odd"), PageSize: 7}
		got := listAllDevices(t, s, q)
		if len(got) != 500 {
			t.Fatalf("got %d devices, want 500", len(got))
		}
		for i, d := range got {
			if want := fmt.Sprintf("dev-%05d", 2*i+1); d.ID != want {
				t.Fatalf("device %d = %s, want %s", i, d.ID, want)
			}
		}
	})

	run(t, newStore, "paging while devices are inserted concurrently returns every existing device exactly once", func(t *testing.T, s device.Store) {
		originals := numbered("dev-", 2500)
		mustUpsert(t, s, originals)
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		inserted := 0
		go func() {
			defer wg.Done()
			// Insert between existing ids, all over the id space, until the
			// walk is over.
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := fmt.Sprintf("dev-%05d-new", (i*7919)%2500)
				if i >= 2500 {
					id = fmt.Sprintf("dev-%05d-new%d", (i*7919)%2500, i)
				}
				if _, err := s.CreateDevice(t.Context(), device.Device{ID: id}); err != nil {
					t.Errorf("CreateDevice(%s): %v", id, err)
					return
				}
				inserted++
			}
		}()
		q := device.DeviceQuery{PageSize: 100}
		seen := map[string]int{}
		var last string
		for {
			page, err := s.ListDevices(t.Context(), q)
			if err != nil {
				close(done)
				wg.Wait()
				t.Fatalf("ListDevices: %v", err)
			}
			if page.TotalSize < 2500 {
				t.Errorf("TotalSize = %d, want at least 2500", page.TotalSize)
			}
			for _, d := range page.Devices {
				if d.ID <= last {
					t.Errorf("id %s after %s: not in increasing order", d.ID, last)
				}
				last = d.ID
				seen[d.ID]++
			}
			if page.NextPageToken == "" {
				break
			}
			q.PageToken = page.NextPageToken
		}
		close(done)
		wg.Wait()
		for _, d := range originals {
			if seen[d.ID] != 1 {
				t.Fatalf("device %s seen %d times, want once", d.ID, seen[d.ID])
			}
		}
		t.Logf("%d devices inserted during the walk, %d of them seen", inserted, len(seen)-len(originals))
	})

	run(t, newStore, "a page token is only valid for the query that produced it", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		devices := numbered("dev-", 10)
		for i := range devices {
			devices[i].Groups = []string{"g"}
			devices[i].Labels = map[string]string{"site": "a"}
		}
		mustUpsert(t, s, devices)
		first, err := s.ListDevices(t.Context(), device.DeviceQuery{Group: "g", PageSize: 2})
		if err != nil || first.NextPageToken == "" {
			t.Fatalf("ListDevices = %+v, %v; want a next page", first, err)
		}
		token := first.NextPageToken
		// The same query with the token goes on.
		next, err := s.ListDevices(t.Context(), device.DeviceQuery{Group: "g", PageSize: 2, PageToken: token})
		if err != nil || len(next.Devices) != 2 || next.Devices[0].ID != "dev-00002" {
			t.Fatalf("next page = %v, %v; want dev-00002 and dev-00003", ids(next.Devices), err)
		}
		// So does the same query with another page size.
		if _, err := s.ListDevices(t.Context(), device.DeviceQuery{Group: "g", PageSize: 5, PageToken: token}); err != nil {
			t.Fatalf("same query, other page size: %v", err)
		}
		for _, tt := range []struct {
			name string
			q    device.DeviceQuery
		}{
			{"no filter", device.DeviceQuery{PageToken: token}},
			{"another group", device.DeviceQuery{Group: "h", PageToken: token}},
			{"the same group and a selector", device.DeviceQuery{Group: "g", Selector: mustSelector(t, "site=a"), PageToken: token}},
			{"the same group and enabled", device.DeviceQuery{Group: "g", Enabled: ptr(true), PageToken: token}},
			{"the same group and a name prefix", device.DeviceQuery{Group: "g", NamePrefix: "D", PageToken: token}},
			{"a garbage token", device.DeviceQuery{Group: "g", PageToken: "not a token"}},
			{"a truncated token", device.DeviceQuery{Group: "g", PageToken: token[:len(token)/2]}},
		} {
			t.Run(tt.name+" rejects it with ErrInvalid", func(t *testing.T) {
				_, err := s.ListDevices(t.Context(), tt.q)
				wantViolation(t, "ListDevices", err, device.ErrInvalid, "page_token")
			})
		}
		t.Run("a group members list rejects it with ErrInvalid", func(t *testing.T) {
			_, err := s.ListGroupMembers(t.Context(), device.MembersQuery{GroupID: "g", PageToken: token})
			wantViolation(t, "ListGroupMembers", err, device.ErrInvalid, "page_token")
		})
		t.Run("a group list rejects it with ErrInvalid", func(t *testing.T) {
			_, err := s.ListGroups(t.Context(), device.GroupQuery{PageToken: token})
			wantViolation(t, "ListGroups", err, device.ErrInvalid, "page_token")
		})
		t.Run("a rule list rejects it with ErrInvalid", func(t *testing.T) {
			_, err := s.ListRules(t.Context(), device.RuleQuery{PageToken: token})
			wantViolation(t, "ListRules", err, device.ErrInvalid, "page_token")
		})
	})

	run(t, newStore, "page size 0 means the default, sizes above the maximum are clamped, negative ones fail", func(t *testing.T, s device.Store) {
		mustUpsert(t, s, numbered("dev-", device.MaxPageSize+10))
		for _, tt := range []struct{ size, want int }{
			{0, device.DefaultPageSize},
			{1, 1},
			{device.MaxPageSize, device.MaxPageSize},
			{device.MaxPageSize + 1, device.MaxPageSize},
			{1 << 30, device.MaxPageSize},
		} {
			page, err := s.ListDevices(t.Context(), device.DeviceQuery{PageSize: tt.size})
			if err != nil || len(page.Devices) != tt.want || page.NextPageToken == "" {
				t.Errorf("PageSize %d: %d devices, token %q, %v; want %d devices and a token", tt.size, len(page.Devices), page.NextPageToken, err, tt.want)
			}
		}
		_, err := s.ListDevices(t.Context(), device.DeviceQuery{PageSize: -1})
		wantViolation(t, "PageSize -1", err, device.ErrInvalid, "page_size")
	})

	run(t, newStore, "a page that ends exactly at the last device has no next token", func(t *testing.T, s device.Store) {
		mustUpsert(t, s, numbered("dev-", 10))
		page, err := s.ListDevices(t.Context(), device.DeviceQuery{PageSize: 10})
		if err != nil || len(page.Devices) != 10 || page.NextPageToken != "" {
			t.Fatalf("ListDevices = %d devices, token %q, %v; want 10 and no token", len(page.Devices), page.NextPageToken, err)
		}
	})

	run(t, newStore, "an empty store lists an empty page without a token", func(t *testing.T, s device.Store) {
		page, err := s.ListDevices(t.Context(), device.DeviceQuery{})
		if err != nil || len(page.Devices) != 0 || page.NextPageToken != "" || page.TotalSize != 0 {
			t.Fatalf("ListDevices = %+v, %v", page, err)
		}
	})

	run(t, newStore, "a page token survives the deletion of the device it ends at", func(t *testing.T, s device.Store) {
		mustUpsert(t, s, numbered("dev-", 5))
		page, err := s.ListDevices(t.Context(), device.DeviceQuery{PageSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDevice(t.Context(), "dev-00001", 0); err != nil {
			t.Fatal(err)
		}
		next, err := s.ListDevices(t.Context(), device.DeviceQuery{PageSize: 2, PageToken: page.NextPageToken})
		if err != nil || strings.Join(ids(next.Devices), " ") != "dev-00002 dev-00003" {
			t.Fatalf("next page = %v, %v; want dev-00002 dev-00003", ids(next.Devices), err)
		}
	})

	run(t, newStore, "invalid filters fail with ErrInvalid naming the field", func(t *testing.T, s device.Store) {
		_, err := s.ListDevices(t.Context(), device.DeviceQuery{Group: "not a group"})
		wantViolation(t, "ListDevices by an invalid group", err, device.ErrInvalid, "group")
		_, err = s.ListDevices(t.Context(), device.DeviceQuery{NamePrefix: strings.Repeat("n", device.MaxNameLen+1)})
		wantViolation(t, "ListDevices by a too-long prefix", err, device.ErrInvalid, "name_prefix")
	})
}
