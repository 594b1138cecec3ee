package device

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Device secrets are hashed with Argon2id and stored in the PHC string
// format, so the parameters travel with the hash and can be raised later
// without invalidating stored secrets:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64>$<key, base64>
//
// The parameters are OWASP's baseline for Argon2id (19 MiB, 2 passes, 1
// lane): about 20–40 ms per check, paid when a device connects, not per
// message.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16

	// Bounds a stored hash's parameters must respect for VerifySecret to
	// run it, so a corrupted or hostile row cannot make a check take
	// gigabytes or minutes.
	maxArgonMemoryKiB = 256 * 1024
	maxArgonTime      = 10
	maxArgonThreads   = 16

	// MinSecretLen and MaxSecretLen bound a device secret, in bytes.
	MinSecretLen = 16
	MaxSecretLen = 1024
)

var b64 = base64.RawStdEncoding

// HashSecret returns the Argon2id hash of a device secret with a fresh
// random salt. A secret shorter than MinSecretLen or longer than
// MaxSecretLen is ErrInvalid on field "secret".
func HashSecret(secret string) ([]byte, error) {
	if len(secret) < MinSecretLen || len(secret) > MaxSecretLen {
		return nil, InvalidField("secret", "must be %d to %d bytes long", MinSecretLen, MaxSecretLen)
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("reading a salt: %w", err)
	}
	key := argon2.IDKey([]byte(secret), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemoryKiB, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifySecret reports whether secret matches a hash made by HashSecret.
// The comparison takes constant time in the secret; a malformed hash or
// one with out-of-bounds parameters never matches.
func VerifySecret(hash []byte, secret string) bool {
	p, ok := parseHash(hash)
	if !ok || len(secret) > MaxSecretLen {
		return false
	}
	key := argon2.IDKey([]byte(secret), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1
}

// GenerateSecret returns a new random device secret: 32 random bytes,
// base64url, 43 characters.
func GenerateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading a secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

type argonParams struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parseHash(hash []byte) (argonParams, bool) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := bytes.Split(hash, []byte("$"))
	if len(parts) != 6 || len(parts[0]) != 0 || string(parts[1]) != "argon2id" {
		return argonParams{}, false
	}
	var version int
	if _, err := fmt.Sscanf(string(parts[2]), "v=%d", &version); err != nil || version != argon2.Version {
		return argonParams{}, false
	}
	var p argonParams
	var threads uint32
	if n, err := fmt.Sscanf(string(parts[3]), "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.memory, p.time, threads) != string(parts[3]) {
		return argonParams{}, false
	}
	if p.time < 1 || p.time > maxArgonTime || threads < 1 || threads > maxArgonThreads ||
		p.memory < 8*threads || p.memory > maxArgonMemoryKiB {
		return argonParams{}, false
	}
	p.threads = uint8(threads)
	var err error
	if p.salt, err = b64.DecodeString(string(parts[4])); err != nil || len(p.salt) < 8 {
		return argonParams{}, false
	}
	if p.key, err = b64.DecodeString(string(parts[5])); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return argonParams{}, false
	}
	return p, true
}

// validHashFormat reports whether h looks like a hash from HashSecret.
func validHashFormat(h []byte) bool {
	_, ok := parseHash(h)
	return ok
}

// NewRuleID returns a new alert rule id for a rule created without one:
// "rule-" and 26 characters of Crockford base32 (a ULID: 48 bits of
// milliseconds, then 80 random bits), so ids sort roughly by creation
// time. It is a contract id.
func NewRuleID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never returns an error.
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var out strings.Builder
	out.WriteString("rule-")
	// 128 bits as 26 base32 digits, most significant first (the first digit
	// holds the top 3 bits).
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
		uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	for i := 25; i >= 0; i-- {
		shift := uint(5 * i)
		var digit uint64
		switch {
		case shift >= 64:
			digit = hi >> (shift - 64)
		case shift == 0:
			digit = lo
		default:
			digit = lo>>shift | hi<<(64-shift)
		}
		out.WriteByte(alphabet[digit&31])
	}
	return out.String()
}
