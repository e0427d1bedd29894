package httpapi

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xplore/faceauth/central/internal/centraltest"
)

// TestSites registers users into several sites, changes a user's sites
// with PUT /api/users/{id}/sites and lists the users of a site; bad sets
// (an invalid site, one listed twice, the old single site field) are
// refused with a 400 and one sentence, and write nothing.
func TestSites(t *testing.T) {
	crops := centraltest.FaceCrops(t)
	ts := newTestServer(t, nil)
	uid := func(id string) part { return part{name: "user_id", value: id} }
	img := part{name: "image", file: crops[0]}
	sites := func(v string) part { return part{name: "sites", value: v} }
	// userSites is what GET /api/users/{id} says of the user's sites.
	userSites := func(id string) string {
		r := ts.do(t, "GET", "/api/users/"+id, ts.admin)
		if r.status != 200 {
			return fmt.Sprintf("status %d", r.status)
		}
		return fmt.Sprint(r.body["sites"])
	}

	tests := []struct {
		name   string
		method string
		path   string
		parts  []part
		status int
		code   string
		user   string // whose sites are checked afterwards
		sites  string // and what userSites shows of them
	}{
		{"register in two sites", "POST", "/api/register", []part{uid("ann"), sites(" hall-b, hall-a "), img}, 201, "", "ann", "[hall-a hall-b]"},
		{"register again in the same sites", "POST", "/api/register", []part{uid("ann"), sites("hall-a,hall-b"), img}, 201, "", "ann", "[hall-a hall-b]"},
		{"register into other sites", "POST", "/api/register", []part{uid("ann"), sites("hall-a"), img}, 409, "user_in_other_site", "ann", "[hall-a hall-b]"},
		{"register everywhere", "POST", "/api/register", []part{uid("bob"), img}, 201, "", "bob", "<nil>"},
		{"register a site twice", "POST", "/api/register", []part{uid("cy"), sites("hall-a,hall-a"), img}, 400, "duplicate_site", "cy", "status 404"},
		{"register an invalid site", "POST", "/api/register", []part{uid("cy"), sites("hall-a,hall b"), img}, 400, "invalid_site", "cy", "status 404"},
		{"register an empty item", "POST", "/api/register", []part{uid("cy"), sites("hall-a,"), img}, 400, "invalid_site", "cy", "status 404"},
		{"register with the old site field", "POST", "/api/register", []part{uid("cy"), {name: "site", value: "hall-a"}, img}, 400, "invalid_field", "cy", "status 404"},
		{"set two other sites", "PUT", "/api/users/ann/sites", []part{sites("hall-c,hall-b")}, 200, "", "ann", "[hall-b hall-c]"},
		{"set a site twice", "PUT", "/api/users/ann/sites", []part{sites("hall-c,hall-c")}, 400, "duplicate_site", "ann", "[hall-b hall-c]"},
		{"set an invalid site", "PUT", "/api/users/ann/sites", []part{sites("hall.c")}, 400, "invalid_site", "ann", "[hall-b hall-c]"},
		{"set without the field", "PUT", "/api/users/ann/sites", []part{{name: "x", value: "y"}}, 400, "missing_sites", "ann", "[hall-b hall-c]"},
		{"set with the old field", "PUT", "/api/users/ann/sites", []part{sites("hall-a"), {name: "site", value: "hall-a"}}, 400, "invalid_field", "ann", "[hall-b hall-c]"},
		{"set sites of nobody", "PUT", "/api/users/nobody/sites", []part{sites("hall-a")}, 404, "user_not_found", "nobody", "status 404"},
		{"set every edge", "PUT", "/api/users/bob/sites", []part{sites("hall-a")}, 200, "", "bob", "[hall-a]"},
	}
	for _, tt := range tests {
		r := ts.do(t, tt.method, tt.path, ts.admin, tt.parts...)
		if r.status != tt.status || (tt.code != "" && r.str("code") != tt.code) || (tt.code != "" && r.str("error") == "") {
			t.Errorf("%s: %d %s, want %d %s", tt.name, r.status, r.raw, tt.status, tt.code)
		}
		if got := userSites(tt.user); got != tt.sites {
			t.Errorf("%s: %s's sites are %s, want %s", tt.name, tt.user, got, tt.sites)
		}
	}

	// The answer of PUT says the sites and whether they changed.
	r := ts.do(t, "PUT", "/api/users/ann/sites", ts.admin, sites("hall-b,hall-c"))
	if r.status != 200 || r.body["changed"] != false || fmt.Sprint(r.body["sites"]) != "[hall-b hall-c]" {
		t.Errorf("unchanged sites: %d %s", r.status, r.raw)
	}
	r = ts.do(t, "PUT", "/api/users/ann/sites", ts.admin, sites(""))
	if r.status != 200 || r.body["changed"] != true || fmt.Sprint(r.body["sites"]) != "[]" {
		t.Errorf("every edge: %d %s", r.status, r.raw)
	}

	// The listing shows the sites and filters by one.
	for _, tt := range []struct{ query, want string }{
		{"", "ann:<nil> bob:[hall-a]"},
		{"?site=hall-a", "bob:[hall-a]"},
		{"?site=hall-b", ""},
	} {
		r := ts.do(t, "GET", "/api/users"+tt.query, ts.admin)
		var got []string
		users, _ := r.body["users"].([]any)
		for _, u := range users {
			m := u.(map[string]any)
			got = append(got, fmt.Sprintf("%s:%v", m["user_id"], m["sites"]))
		}
		if r.status != 200 || !slices.Equal(got, strings.Fields(tt.want)) {
			t.Errorf("GET /api/users%s: %d %v, want %s", tt.query, r.status, got, tt.want)
		}
	}
	if r := ts.do(t, "GET", "/api/users?site=a.b", ts.admin); r.status != 400 || r.str("code") != "invalid_site" {
		t.Errorf("a bad site filter: %d %s", r.status, r.raw)
	}
}
