// Package auth verifies the JWTs that dashboards connect to the edge with
// and that callers of the registry's API send, and answers what they grant:
// which rooms a user may join, which devices it may command, and its role.
package auth

import (
	"strings"
	"time"
)

// Claims is what the edge needs from a verified token.
// RegistryAdminRole is the role claim the device registry's callers need.
const RegistryAdminRole = "admin"

type Claims struct {
	Subject   string
	ExpiresAt time.Time
	// Rooms and Commands are grant patterns: an exact room name, or a
	// prefix ending in "*" ("device:*", "group:site-a-*", "*").
	Rooms    []string
	Commands []string
	// Role is the caller's role for APIs (the registry needs "admin").
	Role string
	// DeviceID is set in a device's token (the device_id claim): it lets
	// the device connect as itself to the device WebSocket.
	DeviceID string
}

// MayJoin reports whether the token grants watching room.
func (c *Claims) MayJoin(room string) bool { return matchAny(c.Rooms, room) }

// MayCommand reports whether the token grants commanding devices of room.
func (c *Claims) MayCommand(room string) bool { return matchAny(c.Commands, room) }

func matchAny(patterns []string, room string) bool {
	for _, p := range patterns {
		if Match(p, room) {
			return true
		}
	}
	return false
}

// Match reports whether a grant pattern covers a room. A trailing "*"
// matches any non-empty rest, so "device:*" covers every device room but
// not a room literally named "device:".
func Match(pattern, room string) bool {
	prefix, wildcard := strings.CutSuffix(pattern, "*")
	if !wildcard {
		return pattern == room
	}
	return len(room) > len(prefix) && strings.HasPrefix(room, prefix)
}
