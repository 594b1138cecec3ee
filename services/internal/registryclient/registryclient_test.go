package registryclient

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/internal/auth"
)

func TestMintedTokensAreAdminAndRenewedBeforeTheyExpire(t *testing.T) {
	secret := []byte("0123456789abcdef")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	m := newMinter(secret, func() time.Time { return now })
	token := func() string {
		t.Helper()
		md, err := m.GetRequestMetadata(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(md["authorization"], "Bearer ")
	}
	first := token()
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The verifier checks expiry against the real clock; mint one for now.
	live := newMinter(secret, time.Now)
	md, _ := live.GetRequestMetadata(context.Background())
	c, err := v.Verify(strings.TrimPrefix(md["authorization"], "Bearer "))
	if err != nil || c.Role != auth.RegistryAdminRole {
		t.Fatalf("minted token: %+v, %v", c, err)
	}

	now = now.Add(mintedTTL - mintedRenew - time.Second)
	if token() != first {
		t.Error("token replaced while more than mintedRenew of it was left")
	}
	now = now.Add(2 * time.Second)
	if token() == first {
		t.Error("token not replaced with less than mintedRenew left")
	}
}
