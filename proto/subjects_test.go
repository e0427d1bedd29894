package pb_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/xplore/faceauth/internal/natstest"
	pb "github.com/xplore/faceauth/proto"
)

func TestSiteSubjects(t *testing.T) {
	for _, tt := range []struct {
		id, site, subject string
	}{
		{"alice", "", "faceauth.users.YWxpY2U._all"},
		{"alice", "site-a", "faceauth.users.YWxpY2U.site-a"},
		{"a.b@c", "hq_2", "faceauth.users.YS5iQGM.hq_2"},
	} {
		if got := pb.UserSubject(tt.id, tt.site); got != tt.subject {
			t.Errorf("UserSubject(%q, %q) = %q, want %q", tt.id, tt.site, got, tt.subject)
		}
		if id, site, err := pb.ParseUserSubject(tt.subject); err != nil || id != tt.id || site != tt.site {
			t.Errorf("ParseUserSubject(%q) = %q, %q, %v", tt.subject, id, site, err)
		}
		if pb.IsScopelessUserSubject(tt.subject) {
			t.Errorf("IsScopelessUserSubject(%q) = true", tt.subject)
		}
		up := &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: tt.id, Revision: 1, Site: tt.site}}}
		del := &pb.UserChange{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{UserId: tt.id, Revision: 2, Site: tt.site}}}
		if pb.ChangeSubject(up) != tt.subject || pb.ChangeSubject(del) != tt.subject {
			t.Errorf("ChangeSubject of %q in %q: %q, %q", tt.id, tt.site, pb.ChangeSubject(up), pb.ChangeSubject(del))
		}
		if _, err := pb.DecodeChange(pb.UserSubject(tt.id, "other"), mustMarshal(t, up)); err == nil {
			t.Errorf("a change of %q in %q decoded on another site's subject", tt.id, tt.site)
		}
	}
	// The scopeless form of releases before scopes is no user subject
	// any more (central migrates it), nor is any other scope '_' begins.
	for _, bad := range []string{"faceauth.users.YWxpY2U", "faceauth.users.YWxpY2U.", "faceauth.users.YWxpY2U.a.b",
		"faceauth.users.YWxpY2U.a*", "faceauth.users.YWxpY2U.>", "faceauth.users.YWxpY2U._x", "faceauth.users.", "faceauth.users.*._all"} {
		if _, err := pb.UserIDFromSubject(bad); err == nil {
			t.Errorf("UserIDFromSubject(%q) accepted", bad)
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

func TestUserSubject(t *testing.T) {
	for _, id := range natstest.TrickyIDs {
		t.Run(id, func(t *testing.T) {
			subj := pb.UserSubject(id, "")
			tok, ok := strings.CutSuffix(strings.TrimPrefix(subj, "faceauth.users."), "._all")
			if !ok || tok == "" || strings.ContainsAny(tok, ".*> \t") {
				t.Fatalf("UserSubject(%q, \"\") = %q is not a valid subject", id, subj)
			}
			got, err := pb.UserIDFromSubject(subj)
			if err != nil || got != id {
				t.Fatalf("UserIDFromSubject(%q) = %q, %v; want %q", subj, got, err, id)
			}
		})
	}
	for _, bad := range []string{"faceauth.users.", "faceauth.users.a.b.c", "faceauth.config.x._all", "faceauth.users.!!._all"} {
		if id, err := pb.UserIDFromSubject(bad); err == nil {
			t.Errorf("UserIDFromSubject(%q) = %q, want an error", bad, id)
		}
	}
	// Distinct ids never share a subject.
	seen := map[string]string{}
	for _, id := range append(natstest.TrickyIDs, "a.b.", "a_b", "ab", "a-b") {
		if prev, ok := seen[pb.UserSubject(id, "")]; ok {
			t.Fatalf("%q and %q share subject %s", prev, id, pb.UserSubject(id, ""))
		}
		seen[pb.UserSubject(id, "")] = id
	}
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
