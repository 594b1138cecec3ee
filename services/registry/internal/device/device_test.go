package device

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/internal/room"
)

func fields(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, v := range ve.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestValidateDeviceListsEveryProblem(t *testing.T) {
	d := Device{
		ID:         "bad id",
		Name:       strings.Repeat("n", MaxNameLen+1),
		Groups:     []string{"ok", "not ok"},
		Labels:     map[string]string{"k": "v v"},
		Attributes: map[string]string{"": "v"},
	}
	d.Normalize()
	err := ValidateDevice(&d)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("ValidateDevice = %v, want ErrInvalid", err)
	}
	want := []string{"id", "name", "groups[0]", "labels", "attributes"}
	if got := fields(err); !slices.Equal(got, want) {
		t.Fatalf("fields = %q, want %q", got, want)
	}
	if msg := err.Error(); !strings.Contains(msg, "id: may only hold A-Z a-z 0-9 _ - :") {
		t.Errorf("message %q does not explain the id", msg)
	}
}

func TestValidateDeviceUsesTheContractIDRules(t *testing.T) {
	for _, id := range []string{"a", "sensor-001", "site:a:1", "A_b-C:9", strings.Repeat("x", room.MaxIDLen)} {
		if err := ValidateDevice(&Device{ID: id}); err != nil {
			t.Errorf("ValidateDevice(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", "a.b", "a b", "a*", "café", strings.Repeat("x", room.MaxIDLen+1)} {
		if err := ValidateDevice(&Device{ID: id}); err == nil || room.ValidID(id) {
			t.Errorf("ValidateDevice(%q) = %v, want an error as room.ValidID says", id, err)
		}
	}
}

func TestNormalize(t *testing.T) {
	d := Device{Groups: []string{"b", "a", "b"}, Labels: map[string]string{}, SecretHash: []byte{}}
	d.Normalize()
	if !slices.Equal(d.Groups, []string{"a", "b"}) || d.Labels != nil || d.SecretHash != nil {
		t.Fatalf("Normalize = %+v", d)
	}
	if !d.InGroup("a") || d.InGroup("c") {
		t.Fatal("InGroup is wrong")
	}
}

func TestValidateRule(t *testing.T) {
	ok := AlertRule{ID: "r", Name: "n", Target: Target{TargetGroup, "g"}, Field: "temperature", Operator: OpLessEqual, Severity: SeverityCritical, Hold: 24 * time.Hour}
	if err := ValidateRule(&ok); err != nil {
		t.Fatalf("ValidateRule(valid) = %v", err)
	}
	bad := AlertRule{Threshold: math.NaN(), Hold: -1, Cooldown: 25 * time.Hour}
	want := []string{"id", "name", "target.kind", "target.id", "field", "operator", "threshold", "severity", "hold", "cooldown"}
	if got := fields(ValidateRule(&bad)); !slices.Equal(got, want) {
		t.Fatalf("fields = %q, want %q", got, want)
	}
}

func TestOperatorCompare(t *testing.T) {
	tests := []struct {
		op   Operator
		v    float64
		want bool
	}{
		{OpGreater, 2, true}, {OpGreater, 1, false},
		{OpGreaterEqual, 1, true}, {OpGreaterEqual, 0, false},
		{OpLess, 0, true}, {OpLess, 1, false},
		{OpLessEqual, 1, true}, {OpLessEqual, 2, false},
		{OpEqual, 1, true}, {OpEqual, 2, false},
		{OpNotEqual, 2, true}, {OpNotEqual, 1, false},
		{"~", 1, false},
	}
	for _, tt := range tests {
		if got := tt.op.Compare(tt.v, 1); got != tt.want {
			t.Errorf("%v %s 1 = %v, want %v", tt.v, tt.op, got, tt.want)
		}
	}
}

func TestErrorsWrapTheirCause(t *testing.T) {
	if err := MissingGroupsError("devices[3].", []string{"a", "b"}); !errors.Is(err, ErrFailedPrecondition) || errors.Is(err, ErrInvalid) ||
		!slices.Equal(fields(err), []string{"devices[3].groups", "devices[3].groups"}) {
		t.Errorf("MissingGroupsError = %v, fields %q", err, fields(err))
	}
	if err := GroupHasMembersError("g", 2); !errors.Is(err, ErrFailedPrecondition) {
		t.Errorf("GroupHasMembersError = %v", err)
	}
	err := WithPrefix("devices[1].", InvalidField("name", "too long"))
	if !errors.Is(err, ErrInvalid) || !slices.Equal(fields(err), []string{"devices[1].name"}) {
		t.Errorf("WithPrefix = %v", err)
	}
	if err := CheckVersion("device", "d", 2, 1); !errors.Is(err, ErrConflict) {
		t.Errorf("CheckVersion(2, 1) = %v, want ErrConflict", err)
	}
	if CheckVersion("device", "d", 2, 0) != nil || CheckVersion("device", "d", 2, 2) != nil {
		t.Error("CheckVersion refuses 0 or the current version")
	}
}

func TestPageTokens(t *testing.T) {
	q := DeviceQuery{Group: "g", Enabled: new(bool)}
	c, err := q.Cursor()
	if err != nil || c.Size != DefaultPageSize || c.After != "" {
		t.Fatalf("Cursor = %+v, %v", c, err)
	}
	q.PageToken = c.Next("dev-42")
	q.PageSize = 5000
	c, err = q.Cursor()
	if err != nil || c.After != "dev-42" || c.Size != MaxPageSize {
		t.Fatalf("Cursor with a token = %+v, %v", c, err)
	}
	other := q
	other.Enabled = nil
	if _, err := other.Cursor(); !slices.Equal(fields(err), []string{"page_token"}) {
		t.Fatalf("another query's Cursor = %v, want a page_token error", err)
	}
	sel, _ := ParseSelector("b=1,a=2")
	same, _ := ParseSelector(" a=2 , b=1")
	if (DeviceQuery{Selector: sel}).Key() != (DeviceQuery{Selector: same}).Key() {
		t.Error("equal selectors spelled differently have different keys")
	}
	for _, bad := range []string{"x", "cDE", EncodePageToken(q.Key(), "")[:4], EncodePageToken(q.Key(), "not an id")} {
		if _, err := DecodePageToken(bad, q.Key()); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodePageToken(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestResolveChangesLimit(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{0, DefaultChangesLimit}, {5, 5}, {MaxChangesLimit + 1, MaxChangesLimit}} {
		if got, err := ResolveChangesLimit(0, tt.in); err != nil || got != tt.want {
			t.Errorf("ResolveChangesLimit(0, %d) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	if _, err := ResolveChangesLimit(-1, -1); !slices.Equal(fields(err), []string{"after_seq", "limit"}) {
		t.Errorf("ResolveChangesLimit(-1, -1) = %v", err)
	}
}

func TestUpdatedDevice(t *testing.T) {
	created := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cur := Device{ID: "d", Labels: map[string]string{"a": "1"}, CreatedAt: created, UpdatedAt: created, Version: 3}
	t.Run("the clock going backwards does not move UpdatedAt back", func(t *testing.T) {
		next, err := UpdatedDevice(cur, func(*Device) error { return nil }, created.Add(-time.Hour))
		if err != nil || !next.UpdatedAt.Equal(created) || next.Version != 4 {
			t.Fatalf("UpdatedDevice = %+v, %v", next, err)
		}
	})
	t.Run("the mutation works on a copy", func(t *testing.T) {
		_, _ = UpdatedDevice(cur, func(d *Device) error { d.Labels["a"] = "2"; return errors.New("no") }, created)
		if cur.Labels["a"] != "1" {
			t.Fatal("the mutation changed the current device")
		}
	})
	t.Run("the result does not share the mutation's maps", func(t *testing.T) {
		mine := map[string]string{"k": "v"}
		next, _ := UpdatedDevice(cur, func(d *Device) error { d.Labels = mine; return nil }, created)
		mine["k"] = "changed"
		if next.Labels["k"] != "v" {
			t.Fatal("the result shares the caller's map")
		}
	})
}

func TestTimestamp(t *testing.T) {
	local := time.Date(2030, 1, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	got := Timestamp(local)
	if got.Location() != time.UTC || got.Nanosecond() != 123456000 || !got.Equal(local.Truncate(time.Microsecond)) {
		t.Fatalf("Timestamp = %v", got)
	}
}

func TestNewRuleID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		id := NewRuleID()
		if !room.ValidID(id) || len(id) != len("rule-")+26 || !strings.HasPrefix(id, "rule-") {
			t.Fatalf("NewRuleID() = %q, not a 31-character contract id", id)
		}
		if seen[id] {
			t.Fatalf("NewRuleID() repeated %q", id)
		}
		seen[id] = true
		// The first 10 digits are the millisecond time: they never go back.
		if id[:15] < prev {
			t.Fatalf("NewRuleID() time part %q sorts before the previous %q", id[:15], prev)
		}
		prev = id[:15]
	}
}
