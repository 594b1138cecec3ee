package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// sampleDevice is a device with every caller field set.
func sampleDevice(id string, groups ...string) device.Device {
	return device.Device{
		ID:         id,
		Name:       "Sensor " + id,
		Type:       "esp32",
		Groups:     groups,
		Labels:     map[string]string{"site": "a", "tier": "prod"},
		Attributes: map[string]string{"firmware": "1.2.3", "note": "on the roof, north side"},
		Enabled:    true,
	}
}

// testHash is a valid HashSecret result, computed once: hashing is slow on
// purpose.
var testHash = func() []byte {
	h, err := device.HashSecret("correct horse battery staple")
	if err != nil {
		panic(err)
	}
	return h
}()

func testDevices(t *testing.T, newStore NewStore) {
	run(t, newStore, "a created device has version 1 and equal timestamps and reads back exactly", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "roof")
		in := sampleDevice("sensor-001", "roof")
		in.SecretHash = testHash
		before := time.Now().Add(-time.Second)
		got := mustCreateDevice(t, s, in)
		want := in
		want.Version = 1
		want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.CreatedAt
		wantDevice(t, "CreateDevice", got, want)
		if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("CreatedAt = %v, want about now", got.CreatedAt)
		}
		if got.CreatedAt.Location() != time.UTC || !got.CreatedAt.Equal(got.CreatedAt.Truncate(time.Microsecond)) {
			t.Errorf("CreatedAt = %v, want UTC truncated to microseconds", got.CreatedAt)
		}
		wantDevice(t, "GetDevice", mustGetDevice(t, s, "sensor-001"), got)
	})

	run(t, newStore, "a created device's groups are sorted and without duplicates", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "b", "a", "c")
		got := mustCreateDevice(t, s, sampleDevice("d1", "c", "a", "b", "a"))
		if want := []string{"a", "b", "c"}; strings.Join(got.Groups, ",") != strings.Join(want, ",") {
			t.Errorf("Groups = %v, want %v", got.Groups, want)
		}
		if g := mustGetDevice(t, s, "d1").Groups; strings.Join(g, ",") != "a,b,c" {
			t.Errorf("GetDevice Groups = %v, want [a b c]", g)
		}
	})

	run(t, newStore, "a device with only an id is valid", func(t *testing.T, s device.Store) {
		got := mustCreateDevice(t, s, device.Device{ID: "bare"})
		wantDevice(t, "GetDevice", mustGetDevice(t, s, "bare"), got)
	})

	run(t, newStore, "creating a device whose id is taken fails with ErrAlreadyExists and changes nothing", func(t *testing.T, s device.Store) {
		first := mustCreateDevice(t, s, sampleDevice("d1"))
		seq := mustLatestSeq(t, s)
		other := sampleDevice("d1")
		other.Name = "impostor"
		_, err := s.CreateDevice(t.Context(), other)
		wantErr(t, "CreateDevice of a taken id", err, device.ErrAlreadyExists)
		wantDevice(t, "GetDevice", mustGetDevice(t, s, "d1"), first)
		wantNothingWritten(t, s, seq)
	})

	run(t, newStore, "creating an invalid device fails with a ValidationError naming the field", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g")
		many := func(n int, value string) map[string]string {
			m := make(map[string]string, n)
			for i := range n {
				m["k"+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = value
			}
			return m
		}
		manyGroups := make([]string, device.MaxGroups+1)
		for i := range manyGroups {
			manyGroups[i] = "g" + strings.Repeat("x", i)
		}
		tests := []struct {
			name   string
			mutate func(*device.Device)
			field  string
		}{
			{"an empty id", func(d *device.Device) { d.ID = "" }, "id"},
			{"an id with a dot", func(d *device.Device) { d.ID = "a.b" }, "id"},
			{"an id with a space", func(d *device.Device) { d.ID = "a b" }, "id"},
			{"an id of 129 characters", func(d *device.Device) { d.ID = strings.Repeat("a", 129) }, "id"},
			{"a name of 201 characters", func(d *device.Device) { d.Name = strings.Repeat("é", 201) }, "name"},
			{"a name with a newline", func(d *device.Device) { d.Name = "a\nb" }, "name"},
			{"a name that is not UTF-8", func(d *device.Device) { d.Name = "\xff" }, "name"},
			{"a type of 65 characters", func(d *device.Device) { d.Type = strings.Repeat("t", 65) }, "type"},
			{"65 groups", func(d *device.Device) { d.Groups = manyGroups }, "groups"},
			{"a group id with a star", func(d *device.Device) { d.Groups = []string{"g", "*"} }, "groups[0]"},
			{"65 labels", func(d *device.Device) { d.Labels = many(65, "v") }, "labels"},
			{"a label key with a space", func(d *device.Device) { d.Labels = map[string]string{"a b": "v"} }, "labels"},
			{"an empty label key", func(d *device.Device) { d.Labels = map[string]string{"": "v"} }, "labels"},
			{"a label key of 64 characters", func(d *device.Device) { d.Labels = map[string]string{strings.Repeat("k", 64): "v"} }, "labels"},
			{"a label value with a comma", func(d *device.Device) { d.Labels = map[string]string{"k": "a,b"} }, "labels"},
			{"a label value of 257 characters", func(d *device.Device) { d.Labels = map[string]string{"k": strings.Repeat("v", 257)} }, "labels"},
			{"65 attributes", func(d *device.Device) { d.Attributes = many(65, "v") }, "attributes"},
			{"an attribute key with a comma", func(d *device.Device) { d.Attributes = map[string]string{"a,b": "v"} }, "attributes"},
			{"an attribute value of 1025 bytes", func(d *device.Device) { d.Attributes = map[string]string{"k": strings.Repeat("v", 1025)} }, "attributes"},
			{"a secret hash that HashSecret did not make", func(d *device.Device) { d.SecretHash = []byte("plaintext") }, "secret_hash"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				d := sampleDevice("d1")
				tt.mutate(&d)
				_, err := s.CreateDevice(t.Context(), d)
				wantViolation(t, "CreateDevice", err, device.ErrInvalid, tt.field)
			})
		}
		// The "a group id with a star" case sorts "*" first.
		wantNothingWritten(t, s, 1)
	})

	run(t, newStore, "the longest valid values are accepted", func(t *testing.T, s device.Store) {
		d := device.Device{
			ID:         strings.Repeat("a", 128),
			Name:       strings.Repeat("é", 200),
			Type:       strings.Repeat("t", 64),
			Labels:     map[string]string{strings.Repeat("k", 63): strings.Repeat("v", 256), "a.b/c_d-e": "A:b.c/d_e-f", "empty": ""},
			Attributes: map[string]string{"k": strings.Repeat("é", 512), "free": "any text, even = and ,"},
		}
		got := mustCreateDevice(t, s, d)
		wantDevice(t, "GetDevice", mustGetDevice(t, s, d.ID), got)
	})

	run(t, newStore, "creating a device in a group that does not exist fails with ErrFailedPrecondition on field groups", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "exists")
		seq := mustLatestSeq(t, s)
		_, err := s.CreateDevice(t.Context(), sampleDevice("d1", "exists", "missing"))
		wantViolation(t, "CreateDevice", err, device.ErrFailedPrecondition, "groups")
		if !strings.Contains(err.Error(), "missing") {
			t.Errorf("error %q does not name the missing group", err)
		}
		_, err = s.GetDevice(t.Context(), "d1")
		wantErr(t, "GetDevice", err, device.ErrNotFound)
		wantNothingWritten(t, s, seq)
	})

	run(t, newStore, "getting a device that does not exist fails with ErrNotFound", func(t *testing.T, s device.Store) {
		_, err := s.GetDevice(t.Context(), "nobody")
		wantErr(t, "GetDevice", err, device.ErrNotFound)
	})

	run(t, newStore, "an update applies the mutation, bumps the version and keeps CreatedAt", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "roof", "yard")
		created := mustCreateDevice(t, s, sampleDevice("d1", "roof"))
		got, err := s.UpdateDevice(t.Context(), "d1", func(d *device.Device) error {
			d.Name = "renamed"
			d.Groups = append(d.Groups, "yard", "roof")
			d.Labels["tier"] = "test"
			delete(d.Attributes, "note")
			d.Enabled = false
			return nil
		}, 0)
		if err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
		want := created.Clone()
		want.Name = "renamed"
		want.Groups = []string{"roof", "yard"}
		want.Labels["tier"] = "test"
		delete(want.Attributes, "note")
		want.Enabled = false
		want.Version = 2
		want.UpdatedAt = got.UpdatedAt
		wantDevice(t, "UpdateDevice", got, want)
		if got.UpdatedAt.Before(created.UpdatedAt) {
			t.Errorf("UpdatedAt went back from %v to %v", created.UpdatedAt, got.UpdatedAt)
		}
		wantDevice(t, "GetDevice", mustGetDevice(t, s, "d1"), got)
	})

	run(t, newStore, "an update that changes nothing still bumps the version", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		got, err := s.UpdateDevice(t.Context(), "d1", func(*device.Device) error { return nil }, 1)
		if err != nil || got.Version != 2 {
			t.Fatalf("UpdateDevice = version %d, %v; want 2, nil", got.Version, err)
		}
	})

	run(t, newStore, "an update expecting the current version succeeds and one expecting a stale version fails with ErrConflict", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		rename := func(name string) func(*device.Device) error {
			return func(d *device.Device) error { d.Name = name; return nil }
		}
		if _, err := s.UpdateDevice(t.Context(), "d1", rename("v2"), 1); err != nil {
			t.Fatalf("UpdateDevice expecting 1: %v", err)
		}
		seq := mustLatestSeq(t, s)
		_, err := s.UpdateDevice(t.Context(), "d1", rename("stale"), 1)
		wantErr(t, "UpdateDevice expecting 1 at version 2", err, device.ErrConflict)
		_, err = s.UpdateDevice(t.Context(), "d1", rename("future"), 3)
		wantErr(t, "UpdateDevice expecting 3 at version 2", err, device.ErrConflict)
		wantNothingWritten(t, s, seq)
		if got := mustGetDevice(t, s, "d1"); got.Name != "v2" || got.Version != 2 {
			t.Fatalf("GetDevice = %q version %d, want v2 version 2", got.Name, got.Version)
		}
	})

	run(t, newStore, "updating a device that does not exist fails with ErrNotFound without calling the mutation", func(t *testing.T, s device.Store) {
		called := false
		_, err := s.UpdateDevice(t.Context(), "nobody", func(*device.Device) error { called = true; return nil }, 0)
		wantErr(t, "UpdateDevice", err, device.ErrNotFound)
		if called {
			t.Error("mutate was called for a device that does not exist")
		}
	})

	run(t, newStore, "an error from the mutation is returned unchanged and nothing is written", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		seq := mustLatestSeq(t, s)
		errStop := errors.New("stop")
		_, err := s.UpdateDevice(t.Context(), "d1", func(d *device.Device) error { d.Name = "half"; return errStop }, 0)
		if err != errStop {
			t.Fatalf("UpdateDevice error = %v, want errStop itself", err)
		}
		if got := mustGetDevice(t, s, "d1"); got.Name == "half" || got.Version != 1 {
			t.Fatalf("GetDevice = %q version %d: the failed mutation was written", got.Name, got.Version)
		}
		wantNothingWritten(t, s, seq)
	})

	run(t, newStore, "the mutation is called exactly once", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		calls := 0
		if _, err := s.UpdateDevice(t.Context(), "d1", func(*device.Device) error { calls++; return nil }, 0); err != nil {
			t.Fatal(err)
		}
		if calls != 1 {
			t.Fatalf("mutate called %d times, want 1", calls)
		}
	})

	run(t, newStore, "changing the id in a mutation fails with ErrInvalid on field id", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		_, err := s.UpdateDevice(t.Context(), "d1", func(d *device.Device) error { d.ID = "d2"; return nil }, 0)
		wantViolation(t, "UpdateDevice", err, device.ErrInvalid, "id")
		_, err = s.GetDevice(t.Context(), "d2")
		wantErr(t, "GetDevice(d2)", err, device.ErrNotFound)
	})

	run(t, newStore, "a mutation that makes the device invalid fails with ErrInvalid and nothing is written", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		seq := mustLatestSeq(t, s)
		_, err := s.UpdateDevice(t.Context(), "d1", func(d *device.Device) error { d.Labels["bad key"] = "v"; return nil }, 0)
		wantViolation(t, "UpdateDevice", err, device.ErrInvalid, "labels")
		wantNothingWritten(t, s, seq)
	})

	run(t, newStore, "an update into a group that does not exist fails with ErrFailedPrecondition", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		_, err := s.UpdateDevice(t.Context(), "d1", func(d *device.Device) error { d.Groups = []string{"missing"}; return nil }, 0)
		wantViolation(t, "UpdateDevice", err, device.ErrFailedPrecondition, "groups")
	})

	run(t, newStore, "changes a mutation makes to store-owned fields are ignored", func(t *testing.T, s device.Store) {
		created := mustCreateDevice(t, s, sampleDevice("d1"))
		got, err := s.UpdateDevice(t.Context(), "d1", func(d *device.Device) error {
			d.Version = 99
			d.CreatedAt = time.Unix(0, 0)
			d.UpdatedAt = time.Unix(0, 0)
			return nil
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 2 || !got.CreatedAt.Equal(created.CreatedAt) || got.UpdatedAt.Before(created.UpdatedAt) {
			t.Fatalf("UpdateDevice = version %d created %v updated %v; want 2, %v, ≥ %v",
				got.Version, got.CreatedAt, got.UpdatedAt, created.CreatedAt, created.UpdatedAt)
		}
	})

	run(t, newStore, "a mutation may set and clear the secret hash", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		got, err := s.UpdateDevice(t.Context(), "d1", func(d *device.Device) error { d.SecretHash = testHash; return nil }, 0)
		if err != nil || string(got.SecretHash) != string(testHash) {
			t.Fatalf("UpdateDevice setting the hash = %q, %v", got.SecretHash, err)
		}
		got, err = s.UpdateDevice(t.Context(), "d1", func(d *device.Device) error { d.SecretHash = nil; return nil }, 0)
		if err != nil || got.SecretHash != nil {
			t.Fatalf("UpdateDevice clearing the hash = %q, %v", got.SecretHash, err)
		}
	})

	run(t, newStore, "a deleted device is gone and deleting it again fails with ErrNotFound", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		if err := s.DeleteDevice(t.Context(), "d1", 0); err != nil {
			t.Fatalf("DeleteDevice: %v", err)
		}
		_, err := s.GetDevice(t.Context(), "d1")
		wantErr(t, "GetDevice after delete", err, device.ErrNotFound)
		wantErr(t, "DeleteDevice again", s.DeleteDevice(t.Context(), "d1", 0), device.ErrNotFound)
		_, err = s.UpdateDevice(t.Context(), "d1", func(*device.Device) error { return nil }, 0)
		wantErr(t, "UpdateDevice after delete", err, device.ErrNotFound)
	})

	run(t, newStore, "a delete expecting a stale version fails with ErrConflict and keeps the device", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		if _, err := s.UpdateDevice(t.Context(), "d1", func(*device.Device) error { return nil }, 0); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "DeleteDevice expecting 1", s.DeleteDevice(t.Context(), "d1", 1), device.ErrConflict)
		mustGetDevice(t, s, "d1")
		if err := s.DeleteDevice(t.Context(), "d1", 2); err != nil {
			t.Fatalf("DeleteDevice expecting 2: %v", err)
		}
	})

	run(t, newStore, "a device created again after its deletion starts again at version 1", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		if _, err := s.UpdateDevice(t.Context(), "d1", func(*device.Device) error { return nil }, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDevice(t.Context(), "d1", 0); err != nil {
			t.Fatal(err)
		}
		if got := mustCreateDevice(t, s, sampleDevice("d1")); got.Version != 1 {
			t.Fatalf("Version = %d, want 1", got.Version)
		}
	})

	run(t, newStore, "the store keeps its own copies of what it is given and returns", func(t *testing.T, s device.Store) {
		mustCreateGroup(t, s, "g1", "g2")
		in := sampleDevice("d1", "g1")
		in.SecretHash = append([]byte(nil), testHash...)
		created := mustCreateDevice(t, s, in)
		want := created.Clone()
		// Change the input and the result; the stored device must not move.
		in.Labels["site"] = "changed"
		in.Groups[0] = "g2"
		in.SecretHash[0] = 'X'
		created.Labels["site"] = "changed"
		created.Attributes["firmware"] = "changed"
		created.Groups[0] = "g2"
		created.SecretHash[0] = 'X'
		got := mustGetDevice(t, s, "d1")
		wantDevice(t, "GetDevice after editing the input and the result", got, want)
		got.Labels["site"] = "changed"
		page, err := s.ListDevices(t.Context(), device.DeviceQuery{})
		if err != nil {
			t.Fatal(err)
		}
		page.Devices[0].Labels["tier"] = "changed"
		wantDevice(t, "GetDevice after editing a get and a list result", mustGetDevice(t, s, "d1"), want)
	})

	run(t, newStore, "setting a secret stores the hash unconditionally and bumps the version", func(t *testing.T, s device.Store) {
		mustCreateDevice(t, s, sampleDevice("d1"))
		got, err := s.SetDeviceSecret(t.Context(), "d1", testHash)
		if err != nil {
			t.Fatalf("SetDeviceSecret: %v", err)
		}
		if got.Version != 2 || string(got.SecretHash) != string(testHash) {
			t.Fatalf("SetDeviceSecret = version %d hash %q", got.Version, got.SecretHash)
		}
		stored := mustGetDevice(t, s, "d1")
		if !device.VerifySecret(stored.SecretHash, "correct horse battery staple") {
			t.Error("the stored hash does not verify the secret")
		}
		if device.VerifySecret(stored.SecretHash, "wrong horse battery staple") {
			t.Error("the stored hash verifies a wrong secret")
		}
		got, err = s.SetDeviceSecret(t.Context(), "d1", nil)
		if err != nil || got.SecretHash != nil || got.Version != 3 {
			t.Fatalf("SetDeviceSecret(nil) = version %d hash %q, %v", got.Version, got.SecretHash, err)
		}
		_, err = s.SetDeviceSecret(t.Context(), "nobody", testHash)
		wantErr(t, "SetDeviceSecret of a missing device", err, device.ErrNotFound)
		_, err = s.SetDeviceSecret(t.Context(), "d1", []byte("plaintext"))
		wantViolation(t, "SetDeviceSecret of a plaintext", err, device.ErrInvalid, "secret_hash")
	})
}
