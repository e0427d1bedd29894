package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/internal/fakeengine"
)

// TestConsoleEndpoints covers the endpoints the web console added: the
// analysis that stores nothing, a reference photo's bytes, rename, whoami,
// minting tokens and the users search.
func TestConsoleEndpoints(t *testing.T) {
	crops := centraltest.FaceCrops(t)
	ts := newTestServer(t, nil)
	if r := ts.do(t, "POST", "/api/register", ts.admin, part{name: "user_id", value: "dora"}, part{name: "name", value: "Dora Explorer"}, part{name: "image", file: crops[4]}); r.status != 201 {
		t.Fatalf("setup: %d %s", r.status, r.raw)
	}
	for i, id := range []string{"eve", "frank", "Doris"} {
		if r := ts.do(t, "POST", "/api/register", ts.admin, part{name: "user_id", value: id}, part{name: "image", file: crops[5+i]}); r.status != 201 {
			t.Fatalf("setup %s: %d %s", id, r.status, r.raw)
		}
	}
	dora, _ := ts.reg.Get(t.Context(), "dora")
	doraImage := dora.References[0].ImageId
	third := func(x float32) faceauth.Box { return faceauth.Box{X1: x, Y1: 0.3, X2: x + 0.3, Y2: 0.6} }
	group := fakeengine.JPEG(t, fakeengine.Picture{Faces: []fakeengine.Face{{ID: "g1", Box: third(0)}, {ID: "g2", Box: third(0.35)}, {ID: "g3", Box: third(0.7)}}})
	img := func(b []byte) part { return part{name: "image", file: b} }
	val := func(k, v string) part { return part{name: k, value: v} }
	revBefore, _ := ts.reg.Revision(t.Context())

	ids := func(r response) []string {
		var out []string
		for _, u := range r.body["users"].([]any) {
			out = append(out, u.(map[string]any)["user_id"].(string))
		}
		return out
	}
	tests := []struct {
		name   string
		method string
		path   string
		token  string // "admin", "verify", "" or a literal
		parts  []part
		status int
		code   string
		check  func(response)
	}{
		{"analyse usable", "POST", "/api/analyse", "admin", []part{img(crops[0])}, 200, "", func(r response) {
			faces, _ := r.body["faces"].([]any)
			if r.body["usable"] != true || r.body["selected"] != 0.0 || len(faces) != 1 || r.body["refusal"] != nil || r.body["width"].(float64) <= 0 || r.str("model") == "" {
				t.Errorf("analyse body %s", r.raw)
			}
			f := faces[0].(map[string]any)
			if f["quality"].(float64) <= 0 || f["box"].(map[string]any)["x2"].(float64) <= 0 {
				t.Errorf("face %v", f)
			}
		}},
		{"analyse no face", "POST", "/api/analyse", "admin", []part{img(facetest.NoFaceJPEG(t))}, 200, "", func(r response) {
			ref, _ := r.body["refusal"].(map[string]any)
			if r.body["usable"] != false || r.body["selected"] != -1.0 || ref["code"] != "no_face" || ref["error"] == "" {
				t.Errorf("analyse body %s", r.raw)
			}
		}},
		{"analyse group photo", "POST", "/api/analyse", "admin", []part{img(group)}, 200, "", func(r response) {
			// Three faces of a size are refused, and every face found is
			// listed with its box.
			faces, _ := r.body["faces"].([]any)
			ref, _ := r.body["refusal"].(map[string]any)
			if len(faces) != 3 || r.body["usable"] != false || ref["code"] != "several_faces" {
				t.Errorf("group photo: %s", r.raw)
			}
			for _, f := range faces {
				if b := f.(map[string]any)["box"].(map[string]any); b["x2"].(float64) <= b["x1"].(float64) {
					t.Errorf("group photo face %v", f)
				}
			}
		}},
		{"analyse garbage", "POST", "/api/analyse", "admin", []part{img([]byte("not an image at all"))}, 200, "", func(r response) {
			if r.body["usable"] != false || r.body["refusal"] == nil {
				t.Errorf("analyse body %s", r.raw)
			}
		}},
		{"analyse no image", "POST", "/api/analyse", "admin", []part{val("x", "y")}, 400, "missing_image", nil},
		{"analyse two images", "POST", "/api/analyse", "admin", []part{img(crops[0]), img(crops[1])}, 400, "too_many_images", nil},
		{"analyse verify token", "POST", "/api/analyse", "verify", []part{img(crops[0])}, 403, "forbidden", nil},
		{"image", "GET", "/api/users/dora/images/" + doraImage, "admin", nil, 200, "", func(r response) {
			if !bytes.Equal(r.raw, crops[4]) {
				t.Errorf("image: %d bytes, want the %d uploaded", len(r.raw), len(crops[4]))
			}
			if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != "image/jpeg" || r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("image headers %v", r.header)
			}
		}},
		{"image verify token", "GET", "/api/users/dora/images/" + doraImage, "verify", nil, 403, "forbidden", nil},
		{"image no token", "GET", "/api/users/dora/images/" + doraImage, "", nil, 401, "missing_token", nil},
		{"image unknown", "GET", "/api/users/dora/images/" + strings.Repeat("0", 64), "admin", nil, 404, "image_not_found", nil},
		{"image of another user", "GET", "/api/users/eve/images/" + doraImage, "admin", nil, 404, "image_not_found", nil},
		{"image bad id", "GET", "/api/users/dora/images/..%2Fx", "admin", nil, 400, "invalid_image_id", nil},
		{"rename", "PATCH", "/api/users/eve", "admin", []part{val("name", "Eve Online")}, 200, "", func(r response) {
			if r.str("name") != "Eve Online" || r.body["references"] != 1.0 {
				t.Errorf("rename body %s", r.raw)
			}
		}},
		{"rename clears", "PATCH", "/api/users/dora", "admin", []part{val("name", "")}, 200, "", func(r response) {
			if r.str("name") != "" {
				t.Errorf("rename body %s", r.raw)
			}
		}},
		{"rename missing name", "PATCH", "/api/users/eve", "admin", []part{val("nom", "x")}, 400, "missing_name", nil},
		{"rename control character", "PATCH", "/api/users/eve", "admin", []part{val("name", "a\x01b")}, 400, "invalid_name", nil},
		{"rename unknown", "PATCH", "/api/users/nobody", "admin", []part{val("name", "x")}, 404, "user_not_found", nil},
		{"rename verify token", "PATCH", "/api/users/eve", "verify", []part{val("name", "x")}, 403, "forbidden", nil},
		{"whoami verify", "GET", "/api/whoami", "verify", nil, 200, "", func(r response) {
			if r.str("role") != "verify" || r.str("subject") != "test-door" || r.str("expires_at") == "" {
				t.Errorf("whoami body %s", r.raw)
			}
		}},
		{"whoami admin", "GET", "/api/whoami", "admin", nil, 200, "", func(r response) {
			if r.str("role") != "admin" {
				t.Errorf("whoami body %s", r.raw)
			}
		}},
		{"whoami no token", "GET", "/api/whoami", "", nil, 401, "missing_token", nil},
		{"mint", "POST", "/api/tokens", "admin", []part{val("subject", "door-9"), val("role", "verify"), val("ttl", "24h")}, 201, "", func(r response) {
			exp, err := time.Parse(time.RFC3339, r.str("expires_at"))
			if r.str("subject") != "door-9" || r.str("role") != "verify" || err != nil || time.Until(exp) < 23*time.Hour || time.Until(exp) > 25*time.Hour {
				t.Errorf("mint body %s", r.raw)
			}
			// The minted token works, with its role.
			if w := ts.do(t, "GET", "/api/whoami", r.str("token")); w.status != 200 || w.str("subject") != "door-9" || w.str("role") != "verify" {
				t.Errorf("whoami with the minted token: %d %s", w.status, w.raw)
			}
			if w := ts.do(t, "GET", "/api/users", r.str("token")); w.status != 403 {
				t.Errorf("the minted verify token listed users: %d", w.status)
			}
		}},
		{"mint never expires", "POST", "/api/tokens", "admin", []part{val("subject", "door-10"), val("role", "admin"), val("ttl", "0")}, 201, "", func(r response) {
			if r.body["expires_at"] != nil || r.str("token") == "" {
				t.Errorf("mint body %s", r.raw)
			}
		}},
		{"mint bad role", "POST", "/api/tokens", "admin", []part{val("subject", "x"), val("role", "root")}, 400, "invalid_role", nil},
		{"mint no subject", "POST", "/api/tokens", "admin", []part{val("role", "verify")}, 400, "missing_subject", nil},
		{"mint bad ttl", "POST", "/api/tokens", "admin", []part{val("subject", "x"), val("role", "verify"), val("ttl", "soon")}, 400, "invalid_ttl", nil},
		{"mint verify token", "POST", "/api/tokens", "verify", []part{val("subject", "x"), val("role", "admin")}, 403, "forbidden", nil},
		{"search by name", "GET", "/api/users?q=explorer", "admin", nil, 200, "", func(r response) {
			// dora was renamed to "" above, so only her id matches "dor" now.
			if got := ids(r); len(got) != 0 {
				t.Errorf("search explorer after the rename: %v", got)
			}
		}},
		{"search by id ignoring case", "GET", "/api/users?q=DOR", "admin", nil, 200, "", func(r response) {
			if got := ids(r); !slices.Equal(got, []string{"Doris", "dora"}) {
				t.Errorf("search DOR: %v", got)
			}
		}},
		{"search pages", "GET", "/api/users?q=dor&limit=1", "admin", nil, 200, "", func(r response) {
			if got := ids(r); !slices.Equal(got, []string{"Doris"}) || r.str("next") != "Doris" {
				t.Errorf("search page: %v next %q", got, r.str("next"))
			}
		}},
		{"search page 2", "GET", "/api/users?q=dor&limit=1&after=Doris", "admin", nil, 200, "", func(r response) {
			if got := ids(r); !slices.Equal(got, []string{"dora"}) || r.str("next") != "" {
				t.Errorf("search page 2: %v next %q", got, r.str("next"))
			}
		}},
		{"search by new name", "GET", "/api/users?q=online", "admin", nil, 200, "", func(r response) {
			if got := ids(r); !slices.Equal(got, []string{"eve"}) {
				t.Errorf("search online: %v", got)
			}
		}},
		{"search control character", "GET", "/api/users?q=%01", "admin", nil, 400, "invalid_query", nil},
		{"search too long", "GET", "/api/users?q=" + strings.Repeat("a", central.MaxQueryLen+1), "admin", nil, 400, "invalid_query", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := map[string]string{"admin": ts.admin, "verify": ts.verify}[tt.token]
			if token == "" {
				token = tt.token
			}
			r := ts.do(t, tt.method, tt.path, token, tt.parts...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.code != "" && r.str("code") != tt.code {
				t.Errorf("code %q, want %q: %s", r.str("code"), tt.code, r.raw)
			}
			if tt.check != nil {
				tt.check(r)
			}
		})
	}
	// Only the two renames wrote: analyses store nothing.
	if rev, _ := ts.reg.Revision(t.Context()); rev != revBefore+2 {
		t.Errorf("revision went from %d to %d; want only the two renames", revBefore, rev)
	}
	if keys, _ := ts.store.List(t.Context(), "images/", "", 100); len(keys) != 4 {
		t.Errorf("%d images stored, want the 4 registered: %v", len(keys), keys)
	}
}

// TestMintWithoutIssuer: a central without a signing key says so.
func TestMintWithoutIssuer(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Issuer = nil })
	r := ts.do(t, "POST", "/api/tokens", ts.admin, part{name: "subject", value: "x"}, part{name: "role", value: "verify"})
	if r.status != 503 || r.str("code") != "no_issuer" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}

// TestConsolePages: the console's page and assets carry the strict
// Content-Security-Policy; nothing else is served outside /api.
func TestConsolePages(t *testing.T) {
	srv := httptest.NewServer(NewServer(Config{Registry: &central.Registry{}, Log: quiet}))
	t.Cleanup(srv.Close)
	tests := []struct {
		path   string
		status int
		ctype  string
		has    string
	}{
		{"/", 200, "text/html; charset=utf-8", `<script src="/console/app.js" defer></script>`},
		{"/console/app.js", 200, "text/javascript; charset=utf-8", "sessionStorage"},
		{"/console/style.css", 200, "text/css; charset=utf-8", "font-family"},
		{"/console/index.html", 404, "", ""},
		{"/console/", 404, "", ""},
		{"/console/nothing.js", 404, "", ""},
		{"/index.html", 404, "application/json", "no_route"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.ctype != "" && resp.Header.Get("Content-Type") != tt.ctype {
				t.Errorf("content type %q, want %q", resp.Header.Get("Content-Type"), tt.ctype)
			}
			if !strings.Contains(string(body), tt.has) {
				t.Errorf("body lacks %q", tt.has)
			}
			if tt.status != 200 {
				return
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != api.ConsoleCSP {
				t.Errorf("CSP %q", got)
			}
			for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
				if !strings.Contains(api.ConsoleCSP, d) {
					t.Errorf("CSP lacks %s", d)
				}
			}
			if strings.Contains(api.ConsoleCSP, "unsafe") {
				t.Errorf("CSP allows something unsafe: %s", api.ConsoleCSP)
			}
			if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}
	// The page has nothing inline for the CSP to refuse, and names nothing
	// on another host.
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, bad := range []string{"<style", "style=", "onclick=", "onload=", "http://", "https://", "javascript:"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("the console page has %q", bad)
		}
	}
}
