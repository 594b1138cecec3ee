// Package storetest is the contract suite every device.Store must pass:
// the executable form of the rules written on device.Store. A store's test
// calls Run with a constructor of empty stores:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) device.Store { return memstore.New(memstore.Options{}) })
//	}
//
// newStore is called once per subtest and must return an empty store (no
// objects, LatestSeq 0); it registers its own cleanup with t.Cleanup.
// Subtests do not run in parallel with each other, so stores sharing one
// database may reset it in newStore. Some subtests write 10,000 devices.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// NewStore returns an empty store for one subtest.
type NewStore func(t *testing.T) device.Store

// Run runs the whole contract suite against the stores newStore makes.
func Run(t *testing.T, newStore NewStore) {
	t.Run("devices", func(t *testing.T) { testDevices(t, newStore) })
	t.Run("device lists", func(t *testing.T) { testDeviceLists(t, newStore) })
	t.Run("upserts", func(t *testing.T) { testUpserts(t, newStore) })
	t.Run("groups", func(t *testing.T) { testGroups(t, newStore) })
	t.Run("rules", func(t *testing.T) { testRules(t, newStore) })
	t.Run("change log", func(t *testing.T) { testChanges(t, newStore) })
	t.Run("concurrency", func(t *testing.T) { testConcurrency(t, newStore) })
}

// run runs one subtest on a fresh store.
func run(t *testing.T, newStore NewStore, name string, f func(t *testing.T, s device.Store)) {
	t.Helper()
	t.Run(name, func(t *testing.T) { f(t, newStore(t)) })
}

func mustCreateDevice(t *testing.T, s device.Store, d device.Device) device.Device {
	t.Helper()
	got, err := s.CreateDevice(t.Context(), d)
	if err != nil {
		t.Fatalf("CreateDevice(%q): %v", d.ID, err)
	}
	return got
}

func mustGetDevice(t *testing.T, s device.Store, id string) device.Device {
	t.Helper()
	got, err := s.GetDevice(t.Context(), id)
	if err != nil {
		t.Fatalf("GetDevice(%q): %v", id, err)
	}
	return got
}

func mustCreateGroup(t *testing.T, s device.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := s.CreateGroup(t.Context(), device.Group{ID: id, DisplayName: "Group " + id}); err != nil {
			t.Fatalf("CreateGroup(%q): %v", id, err)
		}
	}
}

func mustLatestSeq(t *testing.T, s device.Store) int64 {
	t.Helper()
	seq, err := s.LatestSeq(t.Context())
	if err != nil {
		t.Fatalf("LatestSeq: %v", err)
	}
	return seq
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error = %v, want %v", what, err, target)
	}
}

// wantViolation fails unless err is a *device.ValidationError wrapping
// target with a violation on field.
func wantViolation(t *testing.T, what string, err, target error, field string) {
	t.Helper()
	wantErr(t, what, err, target)
	var ve *device.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%s: error %v (%T) is not a *device.ValidationError", what, err, err)
	}
	for _, v := range ve.Violations {
		if v.Field == field {
			return
		}
	}
	t.Fatalf("%s: violations %+v, want one on field %q", what, ve.Violations, field)
}

// wantNothingWritten fails if the store's change log moved past seq.
func wantNothingWritten(t *testing.T, s device.Store, seq int64) {
	t.Helper()
	if got := mustLatestSeq(t, s); got != seq {
		t.Fatalf("LatestSeq = %d after a failed call, want %d: something was written", got, seq)
	}
}

// diffDevice describes how got differs from want, or returns "". nil and
// empty collections are equal.
func diffDevice(got, want device.Device) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.Name != want.Name {
		add("Name", got.Name, want.Name)
	}
	if got.Type != want.Type {
		add("Type", got.Type, want.Type)
	}
	if !slices.Equal(got.Groups, want.Groups) {
		add("Groups", got.Groups, want.Groups)
	}
	if !maps.Equal(got.Labels, want.Labels) {
		add("Labels", got.Labels, want.Labels)
	}
	if !maps.Equal(got.Attributes, want.Attributes) {
		add("Attributes", got.Attributes, want.Attributes)
	}
	if got.Enabled != want.Enabled {
		add("Enabled", got.Enabled, want.Enabled)
	}
	if !bytes.Equal(got.SecretHash, want.SecretHash) {
		add("SecretHash", string(got.SecretHash), string(want.SecretHash))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		add("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	if got.Version != want.Version {
		add("Version", got.Version, want.Version)
	}
	return strings.Join(d, "; ")
}

func wantDevice(t *testing.T, what string, got, want device.Device) {
	t.Helper()
	if diff := diffDevice(got, want); diff != "" {
		t.Fatalf("%s: %s", what, diff)
	}
}

func diffGroup(got, want device.Group) string {
	if got.ID != want.ID || got.DisplayName != want.DisplayName || got.Description != want.Description ||
		!maps.Equal(got.Labels, want.Labels) || got.MemberCount != want.MemberCount ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) || got.Version != want.Version {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func wantGroup(t *testing.T, what string, got, want device.Group) {
	t.Helper()
	if diff := diffGroup(got, want); diff != "" {
		t.Fatalf("%s: %s", what, diff)
	}
}

func diffRule(got, want device.AlertRule) string {
	g, w := got, want
	// Compare times with Equal, everything else with ==.
	g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if g != w || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func wantRule(t *testing.T, what string, got, want device.AlertRule) {
	t.Helper()
	if diff := diffRule(got, want); diff != "" {
		t.Fatalf("%s: %s", what, diff)
	}
}

// listAllDevices pages through q with pageSize and returns every device.
func listAllDevices(t *testing.T, s device.Store, q device.DeviceQuery) []device.Device {
	t.Helper()
	var all []device.Device
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			t.Fatal("ListDevices never returned an empty NextPageToken")
		}
		page, err := s.ListDevices(t.Context(), q)
		if err != nil {
			t.Fatalf("ListDevices(%+v): %v", q, err)
		}
		all = append(all, page.Devices...)
		if page.NextPageToken == "" {
			return all
		}
		q.PageToken = page.NextPageToken
	}
}

func ids(devices []device.Device) []string {
	out := make([]string, len(devices))
	for i, d := range devices {
		out[i] = d.ID
	}
	return out
}

func ptr[T any](v T) *T { return &v }
