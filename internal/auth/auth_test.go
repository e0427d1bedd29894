package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xplore/faceauth"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustSigner(t *testing.T, secret string) *Signer {
	t.Helper()
	s, err := SignerFromSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssueCheck(t *testing.T) {
	s := mustSigner(t, "correct horse battery staple")
	other := mustSigner(t, "another secret of enough length")
	tok, err := s.Issue("door-3", RoleVerify, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	never, err := s.Issue("ops", RoleAdmin, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	// A verifier built from only the public key accepts the token: that is
	// what an edge holds.
	edge := NewVerifier(s.PublicKey())

	// tamper flips one character of the payload.
	parts := strings.Split(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(raw), `"verify"`, `"admin"`, 1)
	forgedTok := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]

	tests := []struct {
		name     string
		v        *Verifier
		token    string
		now      time.Time
		wantCode string // "" = valid
		wantRole Role
	}{
		{"valid", s.Verifier, tok, t0.Add(time.Minute), "", RoleVerify},
		{"valid at edge", edge, tok, t0.Add(59 * time.Minute), "", RoleVerify},
		{"never expires", edge, never, t0.Add(10 * 365 * 24 * time.Hour), "", RoleAdmin},
		{"expired", edge, tok, t0.Add(time.Hour + time.Second), "token_expired", ""},
		{"other key", other.Verifier, tok, t0, "invalid_token", ""},
		{"forged role", edge, forgedTok, t0, "invalid_token", ""},
		{"missing", edge, "", t0, "missing_token", ""},
		{"garbage", edge, "hello", t0, "invalid_token", ""},
		{"old version", edge, "fa0" + tok[3:], t0, "invalid_token", ""},
		{"extra part", edge, tok + ".x", t0, "invalid_token", ""},
		{"bad base64 sig", edge, parts[0] + "." + parts[1] + ".!!!", t0, "invalid_token", ""},
		{"huge", edge, "fa1." + strings.Repeat("A", MaxTokenLen) + ".x", t0, "invalid_token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.v.Check(tt.token, tt.now)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if c.Role != tt.wantRole || c.KeyID != s.KeyID() {
					t.Fatalf("claims = %+v", c)
				}
				return
			}
			var fe *faceauth.Error
			if err == nil || !asError(err, &fe) || fe.Kind != faceauth.KindUnauthenticated || fe.Code != tt.wantCode {
				t.Fatalf("Check error = %v, want unauthenticated %s", err, tt.wantCode)
			}
		})
	}
}

func asError(err error, fe **faceauth.Error) bool {
	e, ok := err.(*faceauth.Error)
	*fe = e
	return ok
}

func TestPayloadFields(t *testing.T) {
	s := mustSigner(t, "correct horse battery staple")
	tok, err := s.Issue("alice", RoleAdmin, 90*time.Second, t0)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"sub": "alice", "role": "admin", "iat": float64(t0.Unix()), "exp": float64(t0.Unix() + 90), "kid": s.KeyID()}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("payload[%q] = %v, want %v", k, p[k], v)
		}
	}
}

func TestIssueRefuses(t *testing.T) {
	s := mustSigner(t, "correct horse battery staple")
	if _, err := s.Issue("x", Role("root"), 0, t0); faceauth.KindOf(err) != faceauth.KindInvalid {
		t.Errorf("unknown role: %v", err)
	}
	if _, err := s.Issue("", RoleAdmin, 0, t0); faceauth.KindOf(err) != faceauth.KindInvalid {
		t.Errorf("empty subject: %v", err)
	}
}

func TestRoleAllows(t *testing.T) {
	tests := []struct {
		have, need Role
		want       bool
	}{
		{RoleAdmin, RoleAdmin, true},
		{RoleAdmin, RoleVerify, true},
		{RoleVerify, RoleVerify, true},
		{RoleVerify, RoleAdmin, false},
	}
	for _, tt := range tests {
		if got := tt.have.Allows(tt.need); got != tt.want {
			t.Errorf("%s.Allows(%s) = %v", tt.have, tt.need, got)
		}
	}
}

func TestSecretDerivation(t *testing.T) {
	a := mustSigner(t, "correct horse battery staple")
	b := mustSigner(t, "correct horse battery staple")
	c := mustSigner(t, "correct horse battery stapl3")
	if !a.PublicKey().Equal(b.PublicKey()) {
		t.Error("the same secret gave two keys: replicas would not accept each other's tokens")
	}
	if a.PublicKey().Equal(c.PublicKey()) {
		t.Error("different secrets gave the same key")
	}
	if _, err := SignerFromSecret("short"); faceauth.KindOf(err) != faceauth.KindInvalid {
		t.Errorf("short secret: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", KeyFileName)
	s1, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	s2, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created {
		t.Fatalf("reload: %v created=%v", err, created)
	}
	if !s1.PublicKey().Equal(s2.PublicKey()) {
		t.Fatal("reloading the key file gave another key")
	}
	tok, _ := s1.Issue("a", RoleAdmin, time.Hour, t0)
	if _, err := s2.Check(tok, t0); err != nil {
		t.Fatal(err)
	}

	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("# comment\nnot base64!\n"), 0o600)
	if _, err := LoadKeyFile(bad); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Errorf("bad key file: %v", err)
	}
	if _, _, err := LoadSigner(KeyConfig{KeyFile: filepath.Join(dir, "missing.key")}); err == nil {
		t.Error("LoadSigner without Create made a key file")
	}
	ss, _, err := LoadSigner(KeyConfig{Secret: "correct horse battery staple", KeyFile: path, Create: true})
	if err != nil || !ss.PublicKey().Equal(mustSigner(t, "correct horse battery staple").PublicKey()) {
		t.Errorf("SECRET_KEY did not win over the key file: %v", err)
	}
}

// TestKeyFileRace: processes starting at once must agree on one key.
func TestKeyFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFileName)
	const n = 8
	keys := make([]ed25519.PublicKey, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, _, err := LoadOrCreateKeyFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = s.PublicKey()
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if !keys[i].Equal(keys[0]) {
			t.Fatal("concurrent creators ended with different keys")
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := map[string]string{
		"Bearer abc":     "abc",
		"bearer  abc ":   "abc",
		"Basic abc":      "",
		"":               "",
		"Bearer":         "",
		"BEARER fa1.x.y": "fa1.x.y",
	}
	for in, want := range tests {
		if got := BearerToken(in); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}
