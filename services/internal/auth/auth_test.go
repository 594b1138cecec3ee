package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

const secret = "0123456789abcdef0123"

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func valid(extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "rooms": []string{"global", "device:*"}, "commands": []string{"group:a"}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func TestHS256Tokens(t *testing.T) {
	v, err := NewVerifier(context.Background(), Config{HMACSecret: []byte(secret)}, discard)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(secret), "", valid(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "alice" || !claims.MayJoin("device:x") || claims.MayJoin("group:a") || !claims.MayCommand("group:a") {
		t.Errorf("claims = %+v", claims)
	}

	minted, err := MintHS256([]byte(secret), Claims{Subject: "bob", Rooms: []string{"global"}, Role: "admin"}, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(minted); err != nil || c.Subject != "bob" || c.Role != "admin" || !c.MayJoin("global") {
		t.Errorf("minted token: %+v, %v", c, err)
	}

	for name, tc := range map[string]struct{ token, reason string }{
		"a missing token":     {"", "missing token"},
		"garbage":             {"not.a.jwt", "malformed"},
		"an expired token":    {sign(t, jwt.SigningMethodHS256, []byte(secret), "", valid(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), "expired"},
		"a token without exp": {sign(t, jwt.SigningMethodHS256, []byte(secret), "", jwt.MapClaims{"sub": "a"}), "exp"},
		"a token without sub": {sign(t, jwt.SigningMethodHS256, []byte(secret), "", valid(map[string]any{"sub": ""})), "sub"},
		"another secret":      {sign(t, jwt.SigningMethodHS256, []byte("some-other-secret-value"), "", valid(nil)), "signature"},
		"alg none":            {sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", valid(nil)), "invalid"},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			_, err := v.Verify(tc.token)
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("err = %v, want unauthorized mentioning %q", err, tc.reason)
			}
		})
	}
}

func TestRS256FromPEMAndRefusesHMACWithoutSecret(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(context.Background(), Config{PublicKeyFiles: []string{path}}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, key, "", valid(nil))); err != nil {
		t.Errorf("RS256: %v", err)
	}
	// The classic confusion attack: HS256 signed with the public key bytes.
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), "", valid(nil))); err == nil {
		t.Error("an HS256 token was accepted without a configured secret")
	}
	if _, err := NewVerifier(context.Background(), Config{PublicKeyFiles: []string{filepath.Join(t.TempDir(), "missing.pem")}}, discard); err == nil {
		t.Error("a missing key file must fail at start")
	}
}

func TestES256FromJWKS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.FillBytes(make([]byte, 32))) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "EC", "kid": "k1", "use": "sig", "crv": "P-256", "x": b64(key.X), "y": b64(key.Y)},
			{"kty": "oct", "kid": "ignored"},
		}})
	}))
	defer srv.Close()
	v, err := NewVerifier(context.Background(), Config{JWKSURL: srv.URL}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodES256, key, "k1", valid(nil))); err != nil {
		t.Errorf("ES256 with kid: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := v.Verify(sign(t, jwt.SigningMethodES256, other, "k1", valid(nil))); err == nil {
		t.Error("a token signed by another key was accepted")
	}
}

func TestNoKeysIsAStartError(t *testing.T) {
	if _, err := NewVerifier(context.Background(), Config{}, discard); err == nil {
		t.Fatal("want an error")
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, room string
		want          bool
	}{
		{"global", "global", true},
		{"global", "global2", false},
		{"device:*", "device:abc", true},
		{"device:*", "device:", false},
		{"device:*", "group:abc", false},
		{"device:sensor-*", "device:sensor-01", true},
		{"device:sensor-*", "device:other", false},
		{"*", "global", true},
		{"group:a", "group:ab", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.room); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.room, got, tt.want)
		}
	}
}
