package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// jwks holds the keys of a JSON Web Key Set and refreshes them.
type jwks struct {
	url     string
	client  *http.Client
	refresh time.Duration
	logger  *slog.Logger

	mu        sync.RWMutex
	byKID     map[string]any
	all       []any
	lastFetch time.Time
	// kick asks run for an early refresh (an unknown kid arrived); at most
	// one pending ask, so a flood of bad tokens costs one fetch.
	kick chan struct{}
}

// minRefetch bounds how often unknown key ids can trigger a fetch.
const minRefetch = 30 * time.Second

// keys returns the keys for kid, or every key when kid is empty or unknown
// (an unknown kid also asks for an early refresh: the issuer may have rotated).
func (j *jwks) keys(kid string) []any {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if kid != "" {
		if k, ok := j.byKID[kid]; ok {
			return []any{k}
		}
		if j.kick != nil {
			select {
			case j.kick <- struct{}{}:
			default:
			}
		}
	}
	return j.all
}

func (j *jwks) run(ctx context.Context) {
	j.mu.Lock()
	j.kick = make(chan struct{}, 1)
	j.mu.Unlock()
	ticker := time.NewTicker(j.refresh)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-j.kick:
			j.mu.RLock()
			recent := time.Since(j.lastFetch) < minRefetch
			j.mu.RUnlock()
			if recent {
				continue
			}
		}
		if err := j.fetch(ctx); err != nil {
			// Keep serving the keys we have; the next tick tries again.
			j.logger.Warn("jwks refresh failed", "url", j.url, "err", err)
		}
	}
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (j *jwks) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return fmt.Errorf("jwks request: %w", err)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch jwks %s: %w", j.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch jwks %s: HTTP %d", j.url, resp.StatusCode)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("decode jwks %s: %w", j.url, err)
	}
	byKID := map[string]any{}
	var all []any
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		key, err := k.publicKey()
		if err != nil {
			j.logger.Warn("skipping jwks key", "kid", k.Kid, "err", err)
			continue
		}
		all = append(all, key)
		if k.Kid != "" {
			byKID[k.Kid] = key
		}
	}
	if len(all) == 0 {
		return fmt.Errorf("jwks %s holds no usable signing key", j.url)
	}
	j.mu.Lock()
	j.byKID, j.all, j.lastFetch = byKID, all, time.Now()
	j.mu.Unlock()
	return nil
}

func (k jwk) publicKey() (any, error) {
	switch k.Kty {
	case "RSA":
		n, err := b64int(k.N)
		if err != nil {
			return nil, fmt.Errorf("rsa n: %w", err)
		}
		e, err := b64int(k.E)
		if err != nil || !e.IsInt64() || e.Int64() < 3 {
			return nil, errors.New("rsa e: invalid exponent")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, errX := b64int(k.X)
		y, errY := b64int(k.Y)
		if errX != nil || errY != nil {
			return nil, errors.New("ec point: invalid coordinates")
		}
		key := &ecdsa.PublicKey{Curve: curve, X: x, Y: y}
		if !curve.IsOnCurve(x, y) { //nolint:staticcheck // validating untrusted input is its purpose
			return nil, errors.New("ec point not on curve")
		}
		return key, nil
	default:
		return nil, fmt.Errorf("unsupported key type %q", k.Kty)
	}
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("not base64url")
	}
	return new(big.Int).SetBytes(b), nil
}
