package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/auth"
)

// TokenChecker checks a bearer token; *auth.Verifier and *auth.Signer
// implement it.
type TokenChecker interface {
	Check(token string, now time.Time) (*auth.Claims, error)
}

type claimsKey struct{}

// ClaimsFrom returns the claims of the request's token, or nil on a route
// without authentication.
func ClaimsFrom(ctx context.Context) *auth.Claims {
	c, _ := ctx.Value(claimsKey{}).(*auth.Claims)
	return c
}

// RequireRole lets a request through to next only with a valid bearer token
// whose role allows need: no token or a bad one gets 401 with a
// WWW-Authenticate challenge, a token of the wrong role gets 403.
func RequireRole(tc TokenChecker, need auth.Role, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := tc.Check(auth.BearerToken(r.Header.Get("Authorization")), time.Now())
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="faceauth"`)
			WriteError(w, r, log, err)
			return
		}
		if !claims.Role.Allows(need) {
			WriteError(w, r, log, faceauth.E(faceauth.KindForbidden, "forbidden",
				"This token has the %s role; this endpoint needs an %s token.", claims.Role, need))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
	})
}

// WithRevocations returns a TokenChecker that also refuses the tokens that
// revoked, called for each check, lists; revoked may return nil.
func WithRevocations(tc TokenChecker, revoked func() auth.Revocations) TokenChecker {
	return revoking{tc, revoked}
}

type revoking struct {
	tc      TokenChecker
	revoked func() auth.Revocations
}

func (r revoking) Check(token string, now time.Time) (*auth.Claims, error) {
	c, err := r.tc.Check(token, now)
	if err != nil {
		return nil, err
	}
	if err := r.revoked().Check(c); err != nil {
		return nil, err
	}
	return c, nil
}
