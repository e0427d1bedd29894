package feed

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/xplore/faceauth/proto"
)

func TestSiteSubjects(t *testing.T) {
	for _, tt := range []struct {
		id, site, subject string
	}{
		{"alice", "", "faceauth.users.YWxpY2U"},
		{"alice", "site-a", "faceauth.users.YWxpY2U.site-a"},
		{"a.b@c", "hq_2", "faceauth.users.YS5iQGM.hq_2"},
	} {
		if got := UserSiteSubject(tt.id, tt.site); got != tt.subject {
			t.Errorf("UserSiteSubject(%q, %q) = %q, want %q", tt.id, tt.site, got, tt.subject)
		}
		if id, err := UserIDFromSubject(tt.subject); err != nil || id != tt.id {
			t.Errorf("UserIDFromSubject(%q) = %q, %v", tt.subject, id, err)
		}
		up := &pb.UserChange{Change: &pb.UserChange_Upsert{Upsert: &pb.UserUpsert{UserId: tt.id, Revision: 1, Site: tt.site}}}
		del := &pb.UserChange{Change: &pb.UserChange_Delete{Delete: &pb.UserDelete{UserId: tt.id, Revision: 2, Site: tt.site}}}
		if ChangeSubject(up) != tt.subject || ChangeSubject(del) != tt.subject {
			t.Errorf("ChangeSubject of %q in %q: %q, %q", tt.id, tt.site, ChangeSubject(up), ChangeSubject(del))
		}
		if _, err := decodeChange(UserSubject(tt.id)+".other", mustMarshal(t, up)); err == nil {
			t.Errorf("a change of %q in %q decoded on another site's subject", tt.id, tt.site)
		}
	}
	for _, bad := range []string{"faceauth.users.YWxpY2U.", "faceauth.users.YWxpY2U.a.b", "faceauth.users.YWxpY2U.a*", "faceauth.users."} {
		if _, err := UserIDFromSubject(bad); err == nil {
			t.Errorf("UserIDFromSubject(%q) accepted", bad)
		}
	}
	if got, want := EdgeFilterSubjects([]string{"a", "b"}), []string{"faceauth.users.*", "faceauth.users.*.a", "faceauth.users.*.b"}; !slices.Equal(got, want) {
		t.Errorf("EdgeFilterSubjects = %v, want %v", got, want)
	}
	if got := EdgeFilterSubjects(nil); !slices.Equal(got, []string{"faceauth.users.*"}) {
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
	} {
		got, err := ParseSites(tt.in)
		if (err == nil) != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("ParseSites(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestDeletionScope(t *testing.T) {
	m := &Monitor{edges: map[string]*edgeEntry{
		"all": {status: &pb.EdgeStatus{}},
		"a":   {status: &pb.EdgeStatus{Sites: []string{"site-a"}}},
		"ab":  {status: &pb.EdgeStatus{Sites: []string{"site-a", "site-b"}}},
		"b":   {status: &pb.EdgeStatus{Sites: []string{"site-b"}}},
	}, receipts: map[string]map[string]uint64{}}
	for _, tt := range []struct {
		name string
		d    *pb.Deletion
		want []string // the edges expected to confirm
	}{
		{"no site", &pb.Deletion{UserId: "u", Revision: 1}, []string{"a", "ab", "all", "b"}},
		{"site a", &pb.Deletion{UserId: "u", Revision: 1, Site: "site-a"}, []string{"a", "ab"}},
		{"a to b", &pb.Deletion{UserId: "u", Revision: 1, Site: "site-a", Moved: true, MovedTo: "site-b"}, []string{"a"}},
		{"a to every edge", &pb.Deletion{UserId: "u", Revision: 1, Site: "site-a", Moved: true}, nil},
		{"every edge to b", &pb.Deletion{UserId: "u", Revision: 1, Moved: true, MovedTo: "site-b"}, []string{"a", "all"}},
	} {
		ds := m.Deletions([]*pb.Deletion{tt.d})[0]
		if !slices.Equal(ds.Pending, tt.want) && !(len(ds.Pending) == 0 && len(tt.want) == 0) {
			t.Errorf("%s: pending %v, want %v", tt.name, ds.Pending, tt.want)
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
