package pb_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/xplore/faceauth"
	pb "github.com/xplore/faceauth/proto"
)

func TestParseUserSites(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
		code string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"hq", []string{"hq"}, ""},
		{" hq , branch-2", []string{"branch-2", "hq"}, ""},
		{"hq,hq", nil, "duplicate_site"},
		{"hq,", nil, "invalid_site"},
		{",hq", nil, "invalid_site"},
		{"h q", nil, "invalid_site"},
		{"a.b", nil, "invalid_site"},
		{pb.NoSite, nil, "invalid_site"},
	} {
		got, err := pb.ParseUserSites(tt.in)
		code := ""
		if fe := (*faceauth.Error)(nil); errors.As(err, &fe) {
			code = fe.Code
		} else if err != nil {
			code = err.Error()
		}
		if code != tt.code || !slices.Equal(got, tt.want) {
			t.Errorf("ParseUserSites(%q) = %q, %v; want %q, %s", tt.in, got, err, tt.want, tt.code)
		}
	}
}

// TestSiteRules: which edges keep a user despite a tombstone (KeptBy), and
// which owe a receipt for a deletion record (Owed), by the sites they
// serve.
func TestSiteRules(t *testing.T) {
	a, b, ab, none := []string{"A"}, []string{"B"}, []string{"A", "B"}, []string(nil)
	type edges struct{ a, b, ab, none bool }
	for _, tt := range []struct {
		name  string
		left  []string // the sites the user left; none: every edge's scope
		moved bool
		rest  []string // where it remains
		kept  edges    // KeptBy, for a tombstone of each scope left
		owed  edges    // Owed
	}{
		{name: "erased from every edge", owed: edges{true, true, true, true}},
		{name: "erased from A", left: a, owed: edges{a: true, ab: true}},
		{name: "erased from A and B", left: ab, owed: edges{true, true, true, false}},
		{name: "A to B", left: a, moved: true, rest: b, kept: edges{b: true, ab: true}, owed: edges{a: true}},
		{name: "A and B to B", left: a, moved: true, rest: b, kept: edges{b: true, ab: true}, owed: edges{a: true}},
		{name: "A to every edge", left: a, moved: true, kept: edges{true, true, true, true}},
		{name: "every edge to A and B", moved: true, rest: ab, kept: edges{true, true, true, false}, owed: edges{none: true}},
	} {
		for _, e := range []struct {
			sites      []string
			kept, owed bool
		}{{a, tt.kept.a, tt.owed.a}, {b, tt.kept.b, tt.owed.b}, {ab, tt.kept.ab, tt.owed.ab}, {none, tt.kept.none, tt.owed.none}} {
			d := &pb.Deletion{Sites: tt.left, Moved: tt.moved, RemainingSites: tt.rest}
			if got := d.Owed(e.sites); got != e.owed {
				t.Errorf("%s: an edge of %v owes a receipt: %v, want %v", tt.name, e.sites, got, e.owed)
			}
			del := &pb.UserDelete{Moved: tt.moved, RemainingSites: tt.rest}
			if got := del.KeptBy(e.sites); got != e.kept {
				t.Errorf("%s: an edge of %v keeps the user: %v, want %v", tt.name, e.sites, got, e.kept)
			}
		}
	}
}
