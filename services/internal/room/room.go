// Package room parses and checks the room names of the wire contract:
// "global", "device:<id>" and "group:<id>", where an id is 1–128 characters
// of A–Z a–z 0–9 _ - :.
package room

import (
	"errors"
	"fmt"
	"strings"
)

// MaxIDLen is the longest device or group id the contract allows.
const MaxIDLen = 128

// Global is the room every device message goes to.
const Global = "global"

// Kinds of room.
const (
	KindGlobal = "global"
	KindDevice = "device"
	KindGroup  = "group"
)

// ErrInvalid is wrapped by every error about a malformed room or id.
var ErrInvalid = errors.New("invalid room")

// ValidID reports whether id is a contract device or group id.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == ':':
		default:
			return false
		}
	}
	return true
}

// CheckID returns an error that says why id is not a valid id, or nil.
func CheckID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty id", ErrInvalid)
	case len(id) > MaxIDLen:
		return fmt.Errorf("%w: id longer than %d characters", ErrInvalid, MaxIDLen)
	case !ValidID(id):
		return fmt.Errorf("%w: id %q may only hold A-Z a-z 0-9 _ - :", ErrInvalid, id)
	}
	return nil
}

// Parse splits a room name into its kind and id ("" for global) and checks it.
func Parse(name string) (kind, id string, err error) {
	if name == Global {
		return KindGlobal, "", nil
	}
	kind, id, found := strings.Cut(name, ":")
	if !found || (kind != KindDevice && kind != KindGroup) {
		return "", "", fmt.Errorf("%w: %q is not global, device:<id> or group:<id>", ErrInvalid, truncate(name))
	}
	if err := CheckID(id); err != nil {
		return "", "", err
	}
	return kind, id, nil
}

// Device returns the room of a device.
func Device(id string) string { return KindDevice + ":" + id }

// Group returns the room of a group.
func Group(id string) string { return KindGroup + ":" + id }

// truncate keeps error messages short when a client sends a huge name.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
