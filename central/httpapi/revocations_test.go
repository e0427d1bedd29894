package httpapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/internal/auth"
)

// TestRevocationAPI: a revoked subject's token is refused on every route,
// a token issued for it afterwards works, and the list is served.
func TestRevocationAPI(t *testing.T) {
	signer, err := auth.SignerFromSecret("central server test secret")
	if err != nil {
		t.Fatal(err)
	}
	var revs *central.Revocations
	fs := &centraltest.FaultyStore{Store: centraltest.Backends[0].Open(t)}
	ts := newTestServerOn(t, fs, func(c *Config) {
		revs = central.NewRevocations(central.RevocationsConfig{Store: fs, Log: quiet})
		c.Revocations = revs
	})
	probe := func(token string) response {
		t.Helper()
		return ts.do(t, "GET", "/api/users", token)
	}
	if r := probe(ts.admin); r.status != 200 {
		t.Fatalf("before: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "POST", "/api/revocations", ts.verify, part{name: "subject", value: "test-admin"}); r.status != 403 {
		t.Fatalf("revoke with a verify token: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "POST", "/api/revocations", ts.admin, part{name: "reason", value: "no subject"}); r.status != 400 || r.str("code") != "missing_subject" {
		t.Fatalf("revoke without a subject: %d %s", r.status, r.raw)
	}
	r := ts.do(t, "POST", "/api/revocations", ts.admin, part{name: "subject", value: "test-door"}, part{name: "reason", value: "lost"})
	if r.status != 200 || r.str("subject") != "test-door" || r.str("reason") != "lost" || r.str("revoked_at") == "" {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "POST", "/api/verify", ts.verify, part{name: "user_id", value: "nobody"}); r.status != 401 || r.str("code") != "token_revoked" {
		t.Fatalf("verify with the revoked token: %d %s", r.status, r.raw)
	}
	// A token issued after the revocation's second is valid.
	fresh, _ := signer.Issue("test-door", auth.RoleAdmin, time.Hour, time.Now().Add(time.Second))
	if r := probe(fresh); r.status != 200 {
		t.Fatalf("token issued after the revocation: %d %s", r.status, r.raw)
	}
	var list RevocationsResponse
	r = ts.do(t, "GET", "/api/revocations", ts.admin)
	if err := json.Unmarshal(r.raw, &list); err != nil || r.status != 200 || list.Version == 0 || len(list.Revocations) != 1 || list.Revocations[0].Subject != "test-door" {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	// An admin may revoke its own subject; its token then stops working.
	if r := ts.do(t, "POST", "/api/revocations", ts.admin, part{name: "subject", value: "test-admin"}); r.status != 200 {
		t.Fatalf("revoke own subject: %d %s", r.status, r.raw)
	}
	if r := probe(ts.admin); r.status != 401 || r.str("code") != "token_revoked" {
		t.Fatalf("admin token after revoking its subject: %d %s", r.status, r.raw)
	}
	if revs.List().Version <= list.Version {
		t.Fatalf("version %d after %d", revs.List().Version, list.Version)
	}

	// Without a revocation list the endpoints say so.
	plain := newTestServer(t, nil)
	if r := plain.do(t, "GET", "/api/revocations", plain.admin); r.status != 503 || r.str("code") != "revocations_unavailable" {
		t.Fatalf("no list: %d %s", r.status, r.raw)
	}
}
