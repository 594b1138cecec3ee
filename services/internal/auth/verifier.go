package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config says which keys tokens may be signed with. Any combination may be
// set; at least one is required.
type Config struct {
	// HMACSecret verifies HS256/HS384/HS512 tokens.
	HMACSecret []byte
	// PublicKeyFiles are PEM files of RSA or ECDSA public keys (RS*, PS*, ES*).
	PublicKeyFiles []string
	// JWKSURL serves a JSON Web Key Set; it is fetched at start and
	// refreshed every JWKSRefresh, and sooner when an unknown key id shows up.
	JWKSURL     string
	JWKSRefresh time.Duration
	HTTPClient  *http.Client
}

// Verifier checks token signatures and expiry and extracts Claims.
type Verifier struct {
	hmacSecret []byte
	staticKeys []crypto.PublicKey
	jwks       *jwks
	parser     *jwt.Parser
}

// ErrUnauthorized is what every refusal of a token matches (errors.Is).
var ErrUnauthorized = errors.New("unauthorized")

// RefusedError says why a token was refused, in words fit for a client.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string        { return "unauthorized: " + e.Reason }
func (e *RefusedError) Is(target error) bool { return target == ErrUnauthorized }

func refused(reason string) error { return &RefusedError{Reason: reason} }

// NewVerifier loads the configured keys. With a JWKS URL it fetches the set
// once now, so a wrong URL fails the start-up instead of every connection.
func NewVerifier(ctx context.Context, cfg Config, logger *slog.Logger) (*Verifier, error) {
	v := &Verifier{
		hmacSecret: cfg.HMACSecret,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(30*time.Second),
		),
	}
	for _, path := range cfg.PublicKeyFiles {
		key, err := loadPublicKey(path)
		if err != nil {
			return nil, err
		}
		v.staticKeys = append(v.staticKeys, key)
	}
	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		refresh := cfg.JWKSRefresh
		if refresh <= 0 {
			refresh = 10 * time.Minute
		}
		v.jwks = &jwks{url: cfg.JWKSURL, client: client, refresh: refresh, logger: logger}
		if err := v.jwks.fetch(ctx); err != nil {
			return nil, err
		}
	}
	if len(v.hmacSecret) == 0 && len(v.staticKeys) == 0 && v.jwks == nil {
		return nil, errors.New("no token keys configured: set a JWT secret, public key files or a JWKS URL")
	}
	return v, nil
}

// Run keeps the JWKS fresh until ctx ends; without a JWKS URL it returns at once.
func (v *Verifier) Run(ctx context.Context) {
	if v.jwks != nil {
		v.jwks.run(ctx)
	}
}

type tokenClaims struct {
	jwt.RegisteredClaims
	Rooms    []string `json:"rooms,omitempty"`
	Commands []string `json:"commands,omitempty"`
	Role     string   `json:"role,omitempty"`
	DeviceID string   `json:"device_id,omitempty"`
}

// Verify checks a token and returns its claims. Errors are *RefusedError
// (matching ErrUnauthorized) and say why in words fit for the 401 body.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, refused("missing token")
	}
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, v.keyFor)
	if err != nil {
		return nil, refused(reason(err))
	}
	if tc.Subject == "" && tc.DeviceID == "" {
		return nil, refused("token has no sub claim")
	}
	return &Claims{Subject: tc.Subject, ExpiresAt: tc.ExpiresAt.Time, Rooms: tc.Rooms, Commands: tc.Commands, Role: tc.Role, DeviceID: tc.DeviceID}, nil
}

func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token has no exp claim"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "invalid token signature"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	default:
		return "invalid token"
	}
}

// keyFor picks the verification key by the token's algorithm and key id.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(v.hmacSecret) == 0 {
			return nil, errors.New("HMAC tokens are not accepted")
		}
		return v.hmacSecret, nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS, *jwt.SigningMethodECDSA:
	default:
		return nil, fmt.Errorf("unsupported algorithm %v", t.Header["alg"])
	}
	wantEC := false
	if _, ok := t.Method.(*jwt.SigningMethodECDSA); ok {
		wantEC = true
	}
	var keys []any
	if v.jwks != nil {
		kid, _ := t.Header["kid"].(string)
		keys = append(keys, v.jwks.keys(kid)...)
	}
	for _, k := range v.staticKeys {
		keys = append(keys, k)
	}
	var candidates []jwt.VerificationKey
	for _, k := range keys {
		switch k.(type) {
		case *ecdsa.PublicKey:
			if wantEC {
				candidates = append(candidates, k)
			}
		case *rsa.PublicKey:
			if !wantEC {
				candidates = append(candidates, k)
			}
		}
	}
	if len(candidates) == 0 {
		return nil, errors.New("no key for this token")
	}
	return jwt.VerificationKeySet{Keys: candidates}, nil
}

func loadPublicKey(path string) (crypto.PublicKey, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWT public key: %w", err)
	}
	if key, err := jwt.ParseRSAPublicKeyFromPEM(pemBytes); err == nil {
		return key, nil
	}
	if key, err := jwt.ParseECPublicKeyFromPEM(pemBytes); err == nil {
		return key, nil
	}
	return nil, fmt.Errorf("JWT public key %s: not a PEM RSA or ECDSA public key", path)
}
