package pb

import "time"

// RevokedAt returns when each listed subject was revoked, the form
// auth.Revocations takes.
func (x *TokenRevocations) RevokedAt() map[string]time.Time {
	m := make(map[string]time.Time, len(x.GetRevocations()))
	for _, r := range x.GetRevocations() {
		m[r.GetSubject()] = r.GetRevokedAt().AsTime()
	}
	return m
}
