package store

import (
	"strings"
	"testing"

	"github.com/xplore/faceauth"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"records/alice.pb", true},
		{"images/a.b_c-d@e/0123abcdef.jpg", true},
		{"meta/revision", true},
		{"deletions/00000000000000000042.pb", true},
		{"x", true},
		{"a=b+c", true},
		{strings.Repeat("a", MaxKeyLen), true},
		{strings.Repeat("a", MaxKeyLen+1), false},
		{"", false},
		{"/etc/passwd", false},
		{"records/", false},
		{"a//b", false},
		{"..", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/./b", false},
		{".", false},
		{".hidden", false},
		{"a/.tmp-123", false},
		{`a\b`, false},
		{`..\x`, false},
		{"a b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"é", false},
		{"a:b", false},
		{"a*b", false},
	}
	for _, tt := range tests {
		err := ValidateKey(tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
			continue
		}
		if err != nil && faceauth.KindOf(err) != faceauth.KindInvalid {
			t.Errorf("ValidateKey(%q) kind = %v, want invalid", tt.key, faceauth.KindOf(err))
		}
	}
}

// Every valid user id must make valid keys in the layout of
// docs/storage.md.
func TestUserIDKeys(t *testing.T) {
	ids := []string{"alice", "A", "a.b_c-d@e.f", "0", strings.Repeat("z", faceauth.MaxUserIDLen), "x..y", "a@@b", "a_"}
	for _, id := range ids {
		if err := faceauth.ValidateUserID(id); err != nil {
			t.Fatalf("test id %q is not a valid user id: %v", id, err)
		}
		for _, key := range []string{"records/" + id + ".pb", "images/" + id + "/" + strings.Repeat("f", 64) + ".jpg"} {
			if err := ValidateKey(key); err != nil {
				t.Errorf("ValidateKey(%q) = %v for valid user id %q", key, err, id)
			}
		}
	}
}
