package room

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, kind, id string
		ok                 bool
	}{
		{"global", "global", KindGlobal, "", true},
		{"a device room", "device:sensor-001", KindDevice, "sensor-001", true},
		{"a group room", "group:building_a", KindGroup, "building_a", true},
		{"an id holding colons", "device:site:a:1", KindDevice, "site:a:1", true},
		{"the longest id", "device:" + strings.Repeat("a", 128), KindDevice, strings.Repeat("a", 128), true},
		{"an id one too long", "device:" + strings.Repeat("a", 129), "", "", false},
		{"an empty id", "device:", "", "", false},
		{"an unknown kind", "user:bob", "", "", false},
		{"no kind", "sensor-001", "", "", false},
		{"a space", "device:a b", "", "", false},
		{"a dot, which would split the NATS subject", "device:a.b", "", "", false},
		{"a NATS wildcard", "device:*", "", "", false},
		{"non-ASCII", "device:café", "", "", false},
		{"Global in capitals", "GLOBAL", "", "", false},
		{"empty", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, id, err := Parse(tt.in)
			if tt.ok != (err == nil) || kind != tt.kind || id != tt.id {
				t.Errorf("Parse(%q) = %q, %q, %v", tt.in, kind, id, err)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestLongNamesAreCutInErrors(t *testing.T) {
	_, _, err := Parse(strings.Repeat("x", 10000))
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error for a huge name is %d bytes", len(err.Error()))
	}
}
