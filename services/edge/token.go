package edge

import (
	"time"

	"github.com/sensorcast/sensorcast/services/internal/auth"
)

// DevSecret signs tokens when no secret is configured in `sensorcast run`.
// It is public, so anything signed with it is for development only.
const DevSecret = "sensorcast-dev-secret-do-not-use-in-production"

// MintToken signs an HS256 dashboard token: subject, the room patterns it
// may watch and the device/group patterns it may command.
func MintToken(secret, subject string, rooms, commands []string, ttl time.Duration) (string, error) {
	return auth.MintHS256([]byte(secret), auth.Claims{Subject: subject, Rooms: rooms, Commands: commands}, ttl, time.Now())
}
