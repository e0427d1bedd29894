// Package store holds the object-key rule shared by the faceauth.Store
// implementations, so that a key valid in one backend is valid in all.
package store

import (
	"strings"

	"github.com/xplore/faceauth"
)

// MaxKeyLen is the longest key accepted, in bytes. S3 allows 1024; the
// margin leaves room for a configured key prefix.
const MaxKeyLen = 900

// ValidateKey reports whether key may name an object. A key is one or more
// '/'-separated segments; each segment is non-empty, does not start with
// '.', and holds only ASCII letters, digits and the characters ". _ - @ = +".
// The rule rules out absolute paths, "." and "..", empty segments and
// backslashes, so no key can leave its directory or prefix, and it leaves
// names starting with '.' free for a backend's own temporary and lock
// files.
func ValidateKey(key string) error {
	if key == "" {
		return invalid(key, "it is empty")
	}
	if len(key) > MaxKeyLen {
		return invalid(key, "it is longer than 900 bytes")
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" {
			return invalid(key, "it has an empty segment (a leading, trailing or doubled '/')")
		}
		if seg[0] == '.' {
			return invalid(key, "a segment starts with '.'")
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			case c == '.' || c == '_' || c == '-' || c == '@' || c == '=' || c == '+':
			default:
				return invalid(key, "it contains a character other than letters, digits, '/', '.', '_', '-', '@', '=' and '+'")
			}
		}
	}
	return nil
}

func invalid(key, why string) error {
	return faceauth.E(faceauth.KindInvalid, "invalid_key", "The object key %q is not valid: %s.", key, why)
}
