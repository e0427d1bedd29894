package auth

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth"
)

// FuzzCheck feeds arbitrary Authorization headers through BearerToken and
// Check: nothing may panic, every refusal is a 401-kind error with a
// code, and only tokens the test key signed are accepted, with their
// claims intact.
func FuzzCheck(f *testing.F) {
	signer, err := NewSigner(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	good, _ := signer.Issue("door-1", RoleVerify, time.Hour, now)
	admin, _ := signer.Issue("ops", RoleAdmin, 0, now)
	expired, _ := signer.Issue("door-2", RoleVerify, time.Second, now.Add(-time.Hour))
	other, _ := NewSigner(bytes.Repeat([]byte{9}, 32))
	forged, _ := other.Issue("door-1", RoleAdmin, time.Hour, now)
	// The same signature spelt differently: the last character of its
	// encoding carries 4 unused bits.
	last := good[len(good)-1]
	respelt := good[:len(good)-1] + string(b64alphabet[(strings.IndexByte(b64alphabet, last)^1)])
	for _, h := range []string{
		"Bearer " + respelt,
		"Bearer " + good, "bearer  " + admin + " ", "Bearer " + expired, "Bearer " + forged,
		"Bearer " + good[:len(good)-3], "Bearer " + good + ".x", "Bearer fa1..", "Bearer fa2.e30.AAAA",
		"Basic dXNlcjpwYXNz", "", "Bearer",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok := BearerToken(header)
		c, err := signer.Check(tok, now)
		if err != nil {
			fe, ok := err.(*faceauth.Error)
			if !ok || fe.Kind != faceauth.KindUnauthenticated || fe.Code == "" {
				t.Fatalf("refusal %v (%T) is not a 401 with a code", err, err)
			}
			return
		}
		if c.KeyID != signer.KeyID() || c.Subject == "" || (c.Role != RoleAdmin && c.Role != RoleVerify) {
			t.Fatalf("accepted claims %+v", c)
		}
		// Only the seeds' genuine tokens carry a valid signature.
		if tok != good && tok != admin {
			t.Fatalf("accepted a token the test key did not sign: %q", tok)
		}
	})
}

const b64alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
