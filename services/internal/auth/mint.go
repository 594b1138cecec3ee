package auth

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintHS256 signs a token for c (its ExpiresAt is ignored: the token is
// valid for ttl from now) with a shared secret; `sensorcast token`,
// `sensorcast run` and the CLI use it.
func MintHS256(secret []byte, c Claims, ttl time.Duration, now time.Time) (string, error) {
	if c.Subject == "" && c.DeviceID == "" {
		return "", fmt.Errorf("mint token: subject or device id is required")
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Rooms:    c.Rooms,
		Commands: c.Commands,
		Role:     c.Role,
		DeviceID: c.DeviceID,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return signed, nil
}
