package harness

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims are a dashboard token's claims as the contract defines them.
type claims struct {
	Rooms    []string `json:"rooms"`
	Commands []string `json:"commands"`
	jwt.RegisteredClaims
}

// Token signs an HS256 dashboard token for user sub that grants the room
// patterns rooms and expires after ttl (a negative ttl gives an expired
// token).
func Token(t testing.TB, secret, sub string, ttl time.Duration, rooms ...string) string {
	t.Helper()
	return CommandToken(t, secret, sub, ttl, rooms, nil)
}

// CommandToken is Token that also grants commands to the devices of the
// device and group room patterns commands.
func CommandToken(t testing.TB, secret, sub string, ttl time.Duration, rooms, commands []string) string {
	t.Helper()
	if commands == nil {
		commands = []string{}
	}
	now := time.Now()
	c := claims{
		Rooms:    rooms,
		Commands: commands,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(now.Add(min(ttl, 0) - time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return signed
}

// AdminToken signs an HS256 token with the registry's admin role.
func AdminToken(t testing.TB, secret string) string {
	t.Helper()
	c := jwt.MapClaims{"sub": "e2e-admin", "role": "admin", "exp": time.Now().Add(time.Hour).Unix()}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return signed
}
