package device

import (
	"errors"
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	const secret = "a device secret of some length"
	hash, err := HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the hash is PHC-encoded Argon2id and holds no plaintext", func(t *testing.T) {
		if !strings.HasPrefix(string(hash), "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(string(hash), secret) {
			t.Fatalf("hash = %q", hash)
		}
	})
	t.Run("the right secret verifies and others do not", func(t *testing.T) {
		if !VerifySecret(hash, secret) {
			t.Fatal("the right secret does not verify")
		}
		for _, wrong := range []string{"", secret + "x", strings.ToUpper(secret), secret[:len(secret)-1]} {
			if VerifySecret(hash, wrong) {
				t.Fatalf("VerifySecret(%q) = true", wrong)
			}
		}
	})
	t.Run("two hashes of one secret differ by their salt", func(t *testing.T) {
		again, err := HashSecret(secret)
		if err != nil || string(again) == string(hash) || !VerifySecret(again, secret) {
			t.Fatalf("second hash %q, %v", again, err)
		}
	})
	t.Run("a malformed hash or one with hostile parameters never verifies", func(t *testing.T) {
		parts := strings.Split(string(hash), "$")
		salt, key := parts[4], parts[5]
		for _, bad := range []string{
			"",
			secret,
			"$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
			"$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
			"$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + key,
			"$argon2id$v=19$m=19456,t=1000,p=1$" + salt + "$" + key,
			"$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key,
			"$argon2id$v=19$m=19456,t=2,p=1,x=1$" + salt + "$" + key,
			"$argon2id$v=19$m=19456,t=2,p=1$!!$" + key,
			"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key[:10],
			"$argon2id$v=19$m=19456,t=2,p=1$" + salt,
		} {
			if VerifySecret([]byte(bad), secret) || validHashFormat([]byte(bad)) {
				t.Errorf("hash %q is accepted", bad)
			}
		}
	})
	t.Run("secrets too short or too long are refused", func(t *testing.T) {
		for _, s := range []string{"", "short", strings.Repeat("s", MaxSecretLen+1)} {
			if _, err := HashSecret(s); !errors.Is(err, ErrInvalid) {
				t.Errorf("HashSecret(%d bytes) = %v, want ErrInvalid", len(s), err)
			}
		}
	})
	t.Run("generated secrets are long enough and distinct", func(t *testing.T) {
		a, err1 := GenerateSecret()
		b, err2 := GenerateSecret()
		if err1 != nil || err2 != nil || a == b || len(a) != 43 || len(a) < MinSecretLen {
			t.Fatalf("GenerateSecret = %q, %q, %v, %v", a, b, err1, err2)
		}
	})
}
