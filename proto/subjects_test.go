package pb_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

// TestUserToken: a user token is a keyed hash of the id, stable, different
// per id and per key, 22 characters, a valid subject token that does not
// contain the id; UserSubject puts it before the scope.
func TestUserToken(t *testing.T) {
	k1, k2 := []byte("subject key one, 32 bytes long!!"), []byte("subject key two, 32 bytes long!!")
	seen := map[string]string{}
	for _, id := range append([]string{"alice", "alicf", "a.b@c", "YWxpY2U", "a.b.", "a_b", "ab", "a-b"}, natstest.TrickyIDs...) {
		if slices.Contains(slices.Collect(maps.Values(seen)), id) { // TrickyIDs repeats some
			continue
		}
		tok := pb.UserToken(k1, id)
		if len(tok) != pb.UserTokenLen || strings.ContainsAny(tok, ".*> \t") || (len(id) > 4 && strings.Contains(tok, id)) {
			t.Errorf("UserToken(%q) = %q: not a 22-character subject token without the id", id, tok)
		}
		if again := pb.UserToken(append([]byte(nil), k1...), id); again != tok {
			t.Errorf("UserToken(%q) is not stable: %q then %q", id, tok, again)
		}
		if other := pb.UserToken(k2, id); other == tok {
			t.Errorf("UserToken(%q) is the same under two keys", id)
		}
		if prev, ok := seen[tok]; ok {
			t.Errorf("UserToken(%q) = UserToken(%q)", id, prev)
		}
		seen[tok] = id
		for _, site := range []string{"", "site-a"} {
			subj := pb.UserSubject(k1, id, site)
			if subj != pb.UsersPrefix+tok+"."+pb.Scope(site) {
				t.Errorf("UserSubject(%q, %q) = %q", id, site, subj)
			}
			if gtok, gsite, err := pb.ParseUserSubject(subj); err != nil || gtok != tok || gsite != site {
				t.Errorf("ParseUserSubject(%q) = %q, %q, %v", subj, gtok, gsite, err)
			}
		}
	}
}

func TestSiteSubjects(t *testing.T) {
	signer := natstest.Signer()
	for _, tt := range []struct {
		id, site, scope string
	}{
		{"alice", "", "_all"},
		{"alice", "site-a", "site-a"},
		{"a.b@c", "hq_2", "hq_2"},
	} {
		subject := signer.UserSubject(tt.id, tt.site)
		if !strings.HasPrefix(subject, pb.UsersPrefix) || !strings.HasSuffix(subject, "."+tt.scope) {
			t.Errorf("UserSubject(%q, %q) = %q, want faceauth.users.<token>.%s", tt.id, tt.site, subject, tt.scope)
		}
		if _, site, err := pb.ParseUserSubject(subject); err != nil || site != tt.site {
			t.Errorf("ParseUserSubject(%q) = %q, %v", subject, site, err)
		}
		if pb.IsScopelessUserSubject(subject) {
			t.Errorf("IsScopelessUserSubject(%q) = true", subject)
		}
		up := &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: tt.id, Revision: 1, Site: tt.site}}}
		del := &pb.UserChange{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{UserId: tt.id, Revision: 2, Site: tt.site}}}
		if signer.ChangeSubject(up) != subject || signer.ChangeSubject(del) != subject {
			t.Errorf("ChangeSubject of %q in %q: %q, %q", tt.id, tt.site, signer.ChangeSubject(up), signer.ChangeSubject(del))
		}
		if _, err := pb.DecodeChange(subject, mustMarshal(t, up)); err != nil {
			t.Errorf("a change of %q in %q refused on its subject: %v", tt.id, tt.site, err)
		}
		if _, err := pb.DecodeChange(signer.UserSubject(tt.id, "other"), mustMarshal(t, up)); err == nil {
			t.Errorf("a change of %q in %q decoded on another site's subject", tt.id, tt.site)
		}
	}
	// The scopeless form of releases before scopes is no user subject
	// any more (central migrates it), nor is any other scope '_' begins,
	// nor the plain base64 id of releases before keyed tokens.
	tok := pb.UserToken([]byte("k"), "alice")
	for _, bad := range []string{"faceauth.users.YWxpY2U._all", "faceauth.users." + tok, "faceauth.users." + tok + ".",
		"faceauth.users." + tok + ".a.b", "faceauth.users." + tok + ".a*", "faceauth.users." + tok + ".>",
		"faceauth.users." + tok + "._x", "faceauth.users.", "faceauth.users.*._all", "faceauth.users." + tok[:21] + "!._all"} {
		if _, _, err := pb.ParseUserSubject(bad); err == nil {
			t.Errorf("ParseUserSubject(%q) accepted", bad)
		}
	}
	for subj, want := range map[string]bool{"faceauth.users.YWxpY2U": true, "faceauth.users.YWxpY2U._all": false, "faceauth.users.*": false, "faceauth.users.": false, "faceauth.config.YWxpY2U": false} {
		if got := pb.IsScopelessUserSubject(subj); got != want {
			t.Errorf("IsScopelessUserSubject(%q) = %v, want %v", subj, got, want)
		}
	}
	if got, want := pb.EdgeFilterSubjects([]string{"a", "b"}), []string{"faceauth.users.*._all", "faceauth.users.*.a", "faceauth.users.*.b"}; !slices.Equal(got, want) {
		t.Errorf("EdgeFilterSubjects = %v, want %v", got, want)
	}
	if got := pb.EdgeFilterSubjects(nil); !slices.Equal(got, []string{"faceauth.users.*._all"}) {
		t.Errorf("an edge of no site reads %v, want only the users of no site", got)
	}
}

func TestParseSites(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{"b, a,b", []string{"a", "b"}, true},
		{"hq", []string{"hq"}, true},
		{"a.b", nil, false},
		{"a b", nil, false},
		{"*", nil, false},
		{"_all", nil, false},
		{"a,_b", nil, false},
		{"a_b", []string{"a_b"}, true},
	} {
		got, err := pb.ParseSites(tt.in)
		if (err == nil) != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("ParseSites(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func mustMarshal(t *testing.T, c *pb.UserChange) []byte {
	t.Helper()
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateEdgeID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"site-1", true},
		{"Lobby_2", true},
		{strings.Repeat("e", pb.MaxEdgeIDLen), true},
		{"", false},
		{strings.Repeat("e", pb.MaxEdgeIDLen+1), false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"é", false},
	}
	for _, tc := range tests {
		if err := pb.ValidateEdgeID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidateEdgeID(%q) = %v, want ok = %v", tc.id, err, tc.ok)
		}
	}
}

func TestReceiptSubject(t *testing.T) {
	for _, id := range natstest.TrickyIDs {
		e, u, ok := pb.ParseReceiptSubject(pb.ReceiptSubject("site-1", id))
		if !ok || e != "site-1" || u != id {
			t.Errorf("round trip of %q gave %q, %q, %v", id, e, u, ok)
		}
	}
	for _, bad := range []string{"faceauth.receipts.site-1", "faceauth.receipts.a.b.c", "faceauth.receipts..YQ", "faceauth.edges.x.status"} {
		if _, _, ok := pb.ParseReceiptSubject(bad); ok {
			t.Errorf("parseReceiptSubject(%q) accepted", bad)
		}
	}
}
