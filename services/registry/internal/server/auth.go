package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sensorcast/sensorcast/services/internal/auth"
)

// AdminRole is the value of the `role` claim the registry's callers need.
const AdminRole = auth.RegistryAdminRole

// Authenticator checks the bearer tokens of callers: JWTs signed with the
// shared HS256 secret (the same verification as the edge's dashboard
// tokens), with an exp and a sub claim, whose role claim is AdminRole.
type Authenticator struct {
	verifier *auth.Verifier
}

// NewAuthenticator returns an Authenticator for tokens signed with secret.
func NewAuthenticator(secret []byte) (*Authenticator, error) {
	if len(secret) == 0 {
		return nil, errors.New("server: a JWT secret is required")
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return &Authenticator{verifier: v}, nil
}

// MintToken signs a token for subject with role, valid for ttl.
func MintToken(secret []byte, subject, role string, ttl time.Duration, now time.Time) (string, error) {
	return auth.MintHS256(secret, auth.Claims{Subject: subject, Role: role}, ttl, now)
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
	c, err := a.verifier.Verify(strings.TrimSpace(token))
	if err != nil {
		reason := "not valid"
		if r := (*auth.RefusedError)(nil); errors.As(err, &r) {
			reason = r.Reason
		}
		return "", status.Error(codes.Unauthenticated, "invalid token: "+reason)
	}
	if c.Role != AdminRole {
		return c.Subject, status.Errorf(codes.PermissionDenied, "role %q may not use the registry; it needs role %q", c.Role, AdminRole)
	}
	return c.Subject, nil
}
