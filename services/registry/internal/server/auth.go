package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// AdminRole is the value of the `role` claim the registry's callers need.
const AdminRole = "admin"

// Authenticator checks the bearer tokens of callers: HS256 JWTs signed with
// the shared secret, with an exp and a sub claim, whose role claim is
// AdminRole.
type Authenticator struct {
	secret []byte
	parser *jwt.Parser
}

// NewAuthenticator returns an Authenticator for tokens signed with secret.
func NewAuthenticator(secret []byte) (*Authenticator, error) {
	if len(secret) == 0 {
		return nil, errors.New("server: a JWT secret is required")
	}
	return &Authenticator{
		secret: secret,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"HS256"}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(30*time.Second),
		),
	}, nil
}

type claims struct {
	jwt.RegisteredClaims
	Role string `json:"role"`
}

// MintToken signs a token for subject with role, valid for ttl.
func MintToken(secret []byte, subject, role string, ttl time.Duration, now time.Time) (string, error) {
	if subject == "" {
		return "", errors.New("mint token: subject is required")
	}
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Role: role,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return signed, nil
}

// authenticate returns the caller's subject, or UNAUTHENTICATED (no or bad
// token) or PERMISSION_DENIED (a valid token without the admin role).
func (a *Authenticator) authenticate(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) == 0 {
		return "", status.Error(codes.Unauthenticated, "missing bearer token: send metadata authorization: Bearer <jwt>")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return "", status.Error(codes.Unauthenticated, "authorization metadata must be Bearer <jwt>")
	}
	var c claims
	if _, err := a.parser.ParseWithClaims(strings.TrimSpace(token), &c, func(*jwt.Token) (any, error) { return a.secret, nil }); err != nil {
		return "", status.Error(codes.Unauthenticated, "invalid token: "+reason(err))
	}
	if c.Subject == "" {
		return "", status.Error(codes.Unauthenticated, "invalid token: no sub claim")
	}
	if c.Role != AdminRole {
		return c.Subject, status.Errorf(codes.PermissionDenied, "role %q may not use the registry; it needs role %q", c.Role, AdminRole)
	}
	return c.Subject, nil
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
		return "invalid signature or algorithm"
	}
	return "token not valid"
}
