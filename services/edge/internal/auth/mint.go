package auth

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintHS256 signs a dashboard token with a shared secret; `sensorcast token`
// and `sensorcast run` use it to hand out development tokens.
func MintHS256(secret []byte, subject string, rooms, commands []string, ttl time.Duration, now time.Time) (string, error) {
	if subject == "" {
		return "", fmt.Errorf("mint token: subject is required")
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Rooms:    rooms,
		Commands: commands,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return signed, nil
}
