package storetest

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

func sampleRule(id string, kind device.TargetKind, target string) device.AlertRule {
	return device.AlertRule{
		ID:        id,
		Name:      "Too hot",
		Target:    device.Target{Kind: kind, ID: target},
		Field:     "temperature",
		Operator:  device.OpGreater,
		Threshold: 28.5,
		Severity:  device.SeverityWarning,
		Hold:      30 * time.Second,
		Cooldown:  5 * time.Minute,
		Enabled:   true,
	}
}

func testRules(t *testing.T, newStore NewStore) {
	run(t, newStore, "a created rule has version 1 and reads back exactly", func(t *testing.T, s device.Store) {
		in := sampleRule("r1", device.TargetDevice, "sensor-001")
		in.Threshold = -0.1 // not exact in binary: must round-trip as a float64
		in.Hold = 1500 * time.Millisecond
		got, err := s.CreateRule(t.Context(), in)
		if err != nil {
			t.Fatalf("CreateRule: %v", err)
		}
		want := in
		want.Version = 1
		want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.CreatedAt
		wantRule(t, "CreateRule", got, want)
		back, err := s.GetRule(t.Context(), "r1")
		if err != nil {
			t.Fatal(err)
		}
		wantRule(t, "GetRule", back, got)
	})

	run(t, newStore, "a rule may target a device or group that does not exist", func(t *testing.T, s device.Store) {
		for _, r := range []device.AlertRule{sampleRule("r1", device.TargetDevice, "later"), sampleRule("r2", device.TargetGroup, "later")} {
			if _, err := s.CreateRule(t.Context(), r); err != nil {
				t.Fatalf("CreateRule(%s): %v", r.ID, err)
			}
		}
	})

	run(t, newStore, "every operator and severity is stored", func(t *testing.T, s device.Store) {
		for i, op := range device.Operators {
			r := sampleRule("r"+string(rune('a'+i)), device.TargetDevice, "d")
			r.Operator = op
			r.Severity = []device.Severity{device.SeverityInfo, device.SeverityWarning, device.SeverityCritical}[i%3]
			got, err := s.CreateRule(t.Context(), r)
			if err != nil {
				t.Fatalf("CreateRule with %s: %v", op, err)
			}
			back, _ := s.GetRule(t.Context(), r.ID)
			wantRule(t, "GetRule", back, got)
		}
	})

	run(t, newStore, "creating a rule whose id is taken fails with ErrAlreadyExists", func(t *testing.T, s device.Store) {
		if _, err := s.CreateRule(t.Context(), sampleRule("r1", device.TargetDevice, "d")); err != nil {
			t.Fatal(err)
		}
		_, err := s.CreateRule(t.Context(), sampleRule("r1", device.TargetGroup, "g"))
		wantErr(t, "CreateRule", err, device.ErrAlreadyExists)
	})

	run(t, newStore, "creating an invalid rule fails with a ValidationError naming the field", func(t *testing.T, s device.Store) {
		for _, tt := range []struct {
			name   string
			mutate func(*device.AlertRule)
			field  string
		}{
			{"an empty id", func(r *device.AlertRule) { r.ID = "" }, "id"},
			{"an empty name", func(r *device.AlertRule) { r.Name = "" }, "name"},
			{"a name of 201 characters", func(r *device.AlertRule) { r.Name = strings.Repeat("n", 201) }, "name"},
			{"an unknown target kind", func(r *device.AlertRule) { r.Target.Kind = "room" }, "target.kind"},
			{"an invalid target id", func(r *device.AlertRule) { r.Target.ID = "a b" }, "target.id"},
			{"an empty field", func(r *device.AlertRule) { r.Field = "" }, "field"},
			{"a field with a space", func(r *device.AlertRule) { r.Field = "air temp" }, "field"},
			{"a field of 65 characters", func(r *device.AlertRule) { r.Field = strings.Repeat("f", 65) }, "field"},
			{"an unknown operator", func(r *device.AlertRule) { r.Operator = "=>" }, "operator"},
			{"a NaN threshold", func(r *device.AlertRule) { r.Threshold = math.NaN() }, "threshold"},
			{"an infinite threshold", func(r *device.AlertRule) { r.Threshold = math.Inf(1) }, "threshold"},
			{"an unknown severity", func(r *device.AlertRule) { r.Severity = "fatal" }, "severity"},
			{"a negative hold", func(r *device.AlertRule) { r.Hold = -time.Second }, "hold"},
			{"a cooldown over 24 hours", func(r *device.AlertRule) { r.Cooldown = 24*time.Hour + 1 }, "cooldown"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := sampleRule("r1", device.TargetDevice, "d")
				tt.mutate(&r)
				_, err := s.CreateRule(t.Context(), r)
				wantViolation(t, "CreateRule", err, device.ErrInvalid, tt.field)
			})
		}
		wantNothingWritten(t, s, 0)
	})

	run(t, newStore, "getting a rule that does not exist fails with ErrNotFound", func(t *testing.T, s device.Store) {
		_, err := s.GetRule(t.Context(), "nothing")
		wantErr(t, "GetRule", err, device.ErrNotFound)
	})

	run(t, newStore, "a rule update applies the mutation and bumps the version", func(t *testing.T, s device.Store) {
		created, err := s.CreateRule(t.Context(), sampleRule("r1", device.TargetDevice, "d"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.UpdateRule(t.Context(), "r1", func(r *device.AlertRule) error {
			r.Threshold = 40
			r.Operator = device.OpGreaterEqual
			r.Target = device.Target{Kind: device.TargetGroup, ID: "g"}
			r.Enabled = false
			return nil
		}, 1)
		if err != nil {
			t.Fatalf("UpdateRule: %v", err)
		}
		want := created
		want.Threshold, want.Operator, want.Target, want.Enabled = 40, device.OpGreaterEqual, device.Target{Kind: device.TargetGroup, ID: "g"}, false
		want.Version, want.UpdatedAt = 2, got.UpdatedAt
		wantRule(t, "UpdateRule", got, want)
		back, _ := s.GetRule(t.Context(), "r1")
		wantRule(t, "GetRule", back, got)
	})

	run(t, newStore, "rule updates fail with ErrConflict, ErrNotFound, ErrInvalid or the mutation's error", func(t *testing.T, s device.Store) {
		if _, err := s.CreateRule(t.Context(), sampleRule("r1", device.TargetDevice, "d")); err != nil {
			t.Fatal(err)
		}
		seq := mustLatestSeq(t, s)
		noop := func(*device.AlertRule) error { return nil }
		_, err := s.UpdateRule(t.Context(), "r1", noop, 5)
		wantErr(t, "UpdateRule expecting 5", err, device.ErrConflict)
		_, err = s.UpdateRule(t.Context(), "nothing", noop, 0)
		wantErr(t, "UpdateRule of a missing rule", err, device.ErrNotFound)
		_, err = s.UpdateRule(t.Context(), "r1", func(r *device.AlertRule) error { r.ID = "r2"; return nil }, 0)
		wantViolation(t, "UpdateRule changing the id", err, device.ErrInvalid, "id")
		_, err = s.UpdateRule(t.Context(), "r1", func(r *device.AlertRule) error { r.Severity = ""; return nil }, 0)
		wantViolation(t, "UpdateRule to an invalid severity", err, device.ErrInvalid, "severity")
		errStop := errors.New("stop")
		if _, err = s.UpdateRule(t.Context(), "r1", func(*device.AlertRule) error { return errStop }, 0); err != errStop {
			t.Fatalf("UpdateRule error = %v, want errStop itself", err)
		}
		wantNothingWritten(t, s, seq)
	})

	run(t, newStore, "a deleted rule is gone; deleting fails with ErrConflict on a stale version and ErrNotFound when missing", func(t *testing.T, s device.Store) {
		if _, err := s.CreateRule(t.Context(), sampleRule("r1", device.TargetDevice, "d")); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "DeleteRule expecting 2", s.DeleteRule(t.Context(), "r1", 2), device.ErrConflict)
		if err := s.DeleteRule(t.Context(), "r1", 1); err != nil {
			t.Fatalf("DeleteRule: %v", err)
		}
		_, err := s.GetRule(t.Context(), "r1")
		wantErr(t, "GetRule after delete", err, device.ErrNotFound)
		wantErr(t, "DeleteRule again", s.DeleteRule(t.Context(), "r1", 0), device.ErrNotFound)
	})

	run(t, newStore, "rules are listed in id order, filtered by target kind and id", func(t *testing.T, s device.Store) {
		for _, r := range []device.AlertRule{
			sampleRule("r4", device.TargetGroup, "x"),
			sampleRule("r1", device.TargetDevice, "x"),
			sampleRule("r3", device.TargetDevice, "y"),
			sampleRule("r2", device.TargetGroup, "y"),
			sampleRule("r5", device.TargetGroup, "x"),
		} {
			if _, err := s.CreateRule(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		for _, tt := range []struct {
			name string
			q    device.RuleQuery
			want string
		}{
			{"no filter", device.RuleQuery{}, "r1 r2 r3 r4 r5"},
			{"devices", device.RuleQuery{TargetKind: device.TargetDevice}, "r1 r3"},
			{"groups", device.RuleQuery{TargetKind: device.TargetGroup}, "r2 r4 r5"},
			{"a target id of either kind", device.RuleQuery{TargetID: "x"}, "r1 r4 r5"},
			{"a group", device.RuleQuery{TargetKind: device.TargetGroup, TargetID: "x"}, "r4 r5"},
			{"a target without rules", device.RuleQuery{TargetKind: device.TargetDevice, TargetID: "z"}, ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var got []string
				q := tt.q
				q.PageSize = 2
				for {
					page, err := s.ListRules(t.Context(), q)
					if err != nil {
						t.Fatalf("ListRules: %v", err)
					}
					if want := len(strings.Fields(tt.want)); page.TotalSize != want {
						t.Errorf("TotalSize = %d, want %d", page.TotalSize, want)
					}
					for _, r := range page.Rules {
						got = append(got, r.ID)
					}
					if page.NextPageToken == "" {
						break
					}
					q.PageToken = page.NextPageToken
				}
				if strings.Join(got, " ") != tt.want {
					t.Errorf("ListRules = %q, want %q", strings.Join(got, " "), tt.want)
				}
			})
		}
		first, err := s.ListRules(t.Context(), device.RuleQuery{TargetKind: device.TargetGroup, PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.ListRules(t.Context(), device.RuleQuery{TargetKind: device.TargetDevice, PageSize: 1, PageToken: first.NextPageToken})
		wantViolation(t, "ListRules with another filter's token", err, device.ErrInvalid, "page_token")
		_, err = s.ListRules(t.Context(), device.RuleQuery{TargetKind: "room"})
		wantViolation(t, "ListRules with an unknown kind", err, device.ErrInvalid, "target_kind")
	})
}
