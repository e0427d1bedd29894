package auth

import (
	"time"

	"github.com/xplore/faceauth"
)

// Revocations maps a token subject to the moment its tokens were revoked:
// a token of that subject issued at or before it is refused, one issued
// later is valid. Revoking by subject and time needs no token id, so it
// also reaches tokens issued before revocation existed. A token's issue
// time has whole seconds, so a token issued in the second of the
// revocation is revoked too. The zero value revokes nothing.
type Revocations map[string]time.Time

// Check returns a KindUnauthenticated error when c was revoked.
func (r Revocations) Check(c *Claims) error {
	at, ok := r[c.Subject]
	if !ok || c.IssuedAt.After(at) {
		return nil
	}
	return faceauth.E(faceauth.KindUnauthenticated, "token_revoked",
		"This token was revoked at %s; ask an administrator for a new one.", at.UTC().Format(time.RFC3339))
}
