package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/central/internal/centraltest"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/internal/fakeengine"
	"github.com/xplore/faceauth/models/face/realface"
	"github.com/xplore/faceauth/models/photo"
)

var quiet = slog.New(slog.DiscardHandler)

// testServer is a central HTTP server on the fake engine (realServer: the
// real one) and a filestore.
type testServer struct {
	url           string
	admin, verify string // tokens
	reg           *central.Registry
	store         *centraltest.FaultyStore
	srv           *Server
	signer        *auth.Signer
}

func newTestServer(t testing.TB, change func(*Config)) *testServer {
	t.Helper()
	return newTestServerOn(t, &centraltest.FaultyStore{Store: centraltest.Backends[0].Open(t)}, change)
}

// newTestServerOn is newTestServer on the store fs.
func newTestServerOn(t testing.TB, fs *centraltest.FaultyStore, change func(*Config)) *testServer {
	t.Helper()
	eng := centraltest.Engine(t)
	signer, err := auth.SignerFromSecret("central server test secret")
	if err != nil {
		t.Fatal(err)
	}
	reg := central.NewRegistry(central.Config{Store: fs, Engine: eng, Info: eng.Info(), Log: quiet})
	cfg := Config{
		Registry: reg,
		Tokens:   signer,
		Issuer:   signer,
		Limiter:  api.NewLimiter(api.DefaultLimit, nil),
		Log:      quiet,
	}
	if change != nil {
		change(&cfg)
	}
	srv := NewServer(cfg)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	now := time.Now()
	admin, _ := signer.Issue("test-admin", auth.RoleAdmin, time.Hour, now)
	verify, _ := signer.Issue("test-door", auth.RoleVerify, time.Hour, now)
	return &testServer{url: hs.URL, admin: admin, verify: verify, reg: cfg.Registry, store: fs, srv: srv, signer: signer}
}

// realServer is newTestServer on the real engine.
func realServer(t testing.TB, change func(*Config)) *testServer {
	t.Helper()
	eng := realface.Engine(t)
	fs := &centraltest.FaultyStore{Store: centraltest.Backends[0].Open(t)}
	return newTestServerOn(t, fs, func(c *Config) {
		c.Registry = central.NewRegistry(central.Config{Store: fs, Engine: eng, Info: eng.Info(), Log: quiet})
		if change != nil {
			change(c)
		}
	})
}

// part is a multipart field: a text value, or a file when file is set.
type part struct {
	name, value string
	file        []byte
}

func form(parts ...part) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i, p := range parts {
		if p.file != nil {
			w, _ := mw.CreateFormFile(p.name, fmt.Sprintf("photo%d.jpg", i))
			w.Write(p.file)
		} else {
			mw.WriteField(p.name, p.value)
		}
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

func (ts *testServer) do(t testing.TB, method, path, token string, parts ...part) response {
	t.Helper()
	var body io.Reader
	ct := ""
	if len(parts) > 0 {
		var data []byte
		ct, data = form(parts...)
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	json.Unmarshal(raw, &out.body)
	return out
}

func TestEndpoints(t *testing.T) {
	crops := centraltest.FaceCrops(t)
	ts := newTestServer(t, nil)
	alice, alice2, bob := crops[0], centraltest.Variant(t, crops[0], 80), crops[1]
	if r := ts.do(t, "POST", "/api/register", ts.admin, part{name: "user_id", value: "carol"}, part{name: "image", file: crops[2]}, part{name: "image", file: crops[3]}); r.status != 201 {
		t.Fatalf("setup: %d %s", r.status, r.raw)
	}
	carol, _ := ts.reg.Get(t.Context(), "carol")
	carolImage := carol.References[0].ImageId

	uid := func(id string) part { return part{name: "user_id", value: id} }
	img := func(b []byte) part { return part{name: "image", file: b} }
	// The enrolment refusals (the real engine's rules, on made-up faces).
	picture := func(fs ...fakeengine.Face) []byte { return fakeengine.JPEG(t, fakeengine.Picture{Faces: fs}) }
	twoPeople := picture(fakeengine.Face{ID: "x1", Box: faceauth.Box{X1: 0, Y1: 0.2, X2: 0.45, Y2: 0.65}},
		fakeengine.Face{ID: "x2", Box: faceauth.Box{X1: 0.55, Y1: 0.2, X2: 1, Y2: 0.65}})
	smallFace := picture(fakeengine.Face{ID: "x", Box: faceauth.Box{X1: 0.45, Y1: 0.45, X2: 0.5, Y2: 0.5}})
	blurred := picture(fakeengine.Face{ID: "x", Quality: 0.1})
	tests := []struct {
		name   string
		method string
		path   string
		token  string // "admin", "verify", "" or a literal
		parts  []part
		status int
		code   string         // for errors
		check  func(response) // for successes
	}{
		{"register", "POST", "/api/register", "admin", []part{uid("alice"), {name: "name", value: "Alice"}, img(alice)}, 201, "", func(r response) {
			if r.str("user_id") != "alice" || r.body["references"] != 1.0 || r.str("model") == "" || r.body["revision"].(float64) < 1 || r.body["created"] != true {
				t.Errorf("register body %s", r.raw)
			}
		}},
		{"register adds", "POST", "/api/register", "admin", []part{uid("alice"), img(alice2)}, 201, "", func(r response) {
			if r.body["references"] != 2.0 || r.body["created"] != false {
				t.Errorf("register body %s", r.raw)
			}
		}},
		{"register no token", "POST", "/api/register", "", []part{uid("x"), img(alice)}, 401, "missing_token", nil},
		{"register bad token", "POST", "/api/register", "fa1.bogus.token", []part{uid("x"), img(alice)}, 401, "invalid_token", nil},
		{"register verify token", "POST", "/api/register", "verify", []part{uid("x"), img(alice)}, 403, "forbidden", nil},
		{"register invalid user id", "POST", "/api/register", "admin", []part{uid("../etc"), img(alice)}, 400, "invalid_user_id", nil},
		{"register missing user id", "POST", "/api/register", "admin", []part{img(alice)}, 400, "invalid_user_id", nil},
		{"register missing image", "POST", "/api/register", "admin", []part{uid("x")}, 400, "missing_image", nil},
		{"register no face", "POST", "/api/register", "admin", []part{uid("x"), img(alice), img(facetest.NoFaceJPEG(t))}, 422, "no_face", func(r response) {
			if !strings.HasPrefix(r.str("error"), `Image 2 ("photo2.jpg"): `) {
				t.Errorf("the error does not name the image: %s", r.raw)
			}
		}},
		{"register garbage", "POST", "/api/register", "admin", []part{uid("x"), img([]byte("this is not an image"))}, 422, "", nil},
		{"register two people", "POST", "/api/register", "admin", []part{uid("x"), img(twoPeople)}, 422, "several_faces", nil},
		{"register small face", "POST", "/api/register", "admin", []part{uid("x"), img(smallFace)}, 422, "face_too_small", nil},
		{"register blurred face", "POST", "/api/register", "admin", []part{uid("x"), img(blurred)}, 422, "face_low_quality", nil},
		{"register not multipart", "POST", "/api/register", "admin", nil, 400, "not_multipart", nil},
		{"verify same", "POST", "/api/verify", "verify", []part{uid("alice"), img(centraltest.Variant(t, crops[0], 70))}, 200, "", func(r response) {
			if r.body["verified"] != true || r.str("user_id") != "alice" || r.body["faces"] != 1.0 || r.body["threshold"] == nil || r.body["liveness"] != nil {
				t.Errorf("verify body %s", r.raw)
			}
			box := r.body["face"].(map[string]any)["box"].(map[string]any)
			if box["x2"].(float64) <= box["x1"].(float64) {
				t.Errorf("face box %v", box)
			}
		}},
		{"verify other person", "POST", "/api/verify", "verify", []part{uid("alice"), img(bob)}, 200, "", func(r response) {
			if _, scored := r.body["similarity"]; r.body["verified"] != false || scored {
				t.Errorf("verify body %s", r.raw)
			}
		}},
		{"verify admin token", "POST", "/api/verify", "admin", []part{uid("alice"), img(alice)}, 200, "", nil},
		{"verify unknown user", "POST", "/api/verify", "verify", []part{uid("nobody"), img(alice)}, 200, "", func(r response) {
			if _, scored := r.body["similarity"]; r.body["verified"] != false || scored {
				t.Errorf("verify body %s", r.raw)
			}
		}},
		{"verify duplicate user_id", "POST", "/api/verify", "verify", []part{uid("alice"), uid("bob"), img(alice)}, 400, "duplicate_field", nil},
		{"verify invalid user id", "POST", "/api/verify", "verify", []part{uid("a b"), img(alice)}, 400, "invalid_user_id", nil},
		{"verify no face", "POST", "/api/verify", "verify", []part{uid("alice"), img(facetest.NoFaceJPEG(t))}, 422, "no_face", nil},
		{"verify two images", "POST", "/api/verify", "verify", []part{uid("alice"), img(alice), img(alice)}, 400, "too_many_images", nil},
		{"verify no token", "POST", "/api/verify", "", []part{uid("alice"), img(alice)}, 401, "missing_token", nil},
		{"identify", "POST", "/api/identify", "verify", []part{img(centraltest.Variant(t, crops[2], 70))}, 200, "", func(r response) {
			m, _ := r.body["matches"].([]any)
			if len(m) == 0 || m[0].(map[string]any)["user_id"] != "carol" {
				t.Errorf("identify body %s", r.raw)
			}
		}},
		{"identify bad limit", "POST", "/api/identify", "verify", []part{img(alice), {name: "limit", value: "0"}}, 400, "invalid_limit", nil},
		{"identify no face", "POST", "/api/identify", "verify", []part{img(facetest.NoFaceJPEG(t))}, 422, "no_face", nil},
		{"list", "GET", "/api/users?limit=1", "admin", nil, 200, "", func(r response) {
			u, _ := r.body["users"].([]any)
			if len(u) != 1 || r.str("next") == "" {
				t.Errorf("list body %s", r.raw)
			}
		}},
		{"list page 2", "GET", "/api/users?limit=1&after=alice", "admin", nil, 200, "", func(r response) {
			u, _ := r.body["users"].([]any)
			if len(u) != 1 || u[0].(map[string]any)["user_id"] != "carol" {
				t.Errorf("list body %s", r.raw)
			}
		}},
		{"list bad limit", "GET", "/api/users?limit=abc", "admin", nil, 400, "invalid_limit", nil},
		{"list verify token", "GET", "/api/users", "verify", nil, 403, "forbidden", nil},
		{"show", "GET", "/api/users/alice", "admin", nil, 200, "", func(r response) {
			imgs, _ := r.body["images"].([]any)
			if r.str("name") != "Alice" || len(imgs) != 2 || imgs[0].(map[string]any)["image_id"] == "" {
				t.Errorf("show body %s", r.raw)
			}
			if bytes.Contains(r.raw, []byte("vector")) {
				t.Error("show leaks embeddings")
			}
		}},
		{"show unknown", "GET", "/api/users/nobody", "admin", nil, 404, "user_not_found", nil},
		{"show invalid id", "GET", "/api/users/bad%20id", "admin", nil, 400, "invalid_user_id", nil},
		{"add images", "POST", "/api/users/carol/images", "admin", []part{img(centraltest.Variant(t, crops[2], 75))}, 201, "", func(r response) {
			if r.body["references"] != 3.0 {
				t.Errorf("add body %s", r.raw)
			}
		}},
		{"add images unknown user", "POST", "/api/users/nobody/images", "admin", []part{img(alice)}, 404, "user_not_found", nil},
		{"remove image", "DELETE", "/api/users/carol/images/" + carolImage, "admin", nil, 200, "", func(r response) {
			if r.body["references"] != 2.0 {
				t.Errorf("remove body %s", r.raw)
			}
		}},
		{"remove image again", "DELETE", "/api/users/carol/images/" + carolImage, "admin", nil, 404, "image_not_found", nil},
		{"remove image bad id", "DELETE", "/api/users/carol/images/xyz", "admin", nil, 400, "invalid_image_id", nil},
		{"delete", "DELETE", "/api/users/carol", "admin", nil, 200, "", func(r response) {
			if r.body["deleted"] != true || r.str("user_id") != "carol" {
				t.Errorf("delete body %s", r.raw)
			}
		}},
		{"delete again", "DELETE", "/api/users/carol", "admin", nil, 404, "user_not_found", nil},
		{"delete verify token", "DELETE", "/api/users/alice", "verify", nil, 403, "forbidden", nil},
		{"healthz", "GET", "/healthz", "", nil, 200, "", nil},
		{"readyz", "GET", "/readyz", "", nil, 200, "", func(r response) {
			if r.str("model") == "" {
				t.Errorf("readyz body %s", r.raw)
			}
		}},
		{"openapi", "GET", "/api/openapi.json", "", nil, 200, "", func(r response) {
			if r.str("openapi") == "" {
				t.Errorf("openapi body %.100s", r.raw)
			}
		}},
		{"no such route", "GET", "/api/nothing", "", nil, 404, "no_route", nil},
		{"metrics", "GET", "/metrics", "", nil, 200, "", func(r response) {
			for _, want := range []string{
				`faceauth_central_http_requests_total{route="POST /api/register",status="201"}`,
				`faceauth_central_verify_total{outcome="verified"}`,
				`faceauth_central_stage_seconds_bucket{stage="face",le="+Inf"}`,
			} {
				if !bytes.Contains(r.raw, []byte(want)) {
					t.Errorf("metrics lack %s", want)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := map[string]string{"admin": ts.admin, "verify": ts.verify}[tt.token]
			if tok == "" {
				tok = tt.token
			}
			var r response
			if tt.name == "register not multipart" {
				req, _ := http.NewRequest("POST", ts.url+tt.path, strings.NewReader(`{"user_id":"x"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r = response{status: resp.StatusCode, raw: raw}
				json.Unmarshal(raw, &r.body)
			} else {
				r = ts.do(t, tt.method, tt.path, tok, tt.parts...)
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.status >= 400 {
				if r.str("error") == "" || r.str("code") == "" {
					t.Errorf("error body %s", r.raw)
				}
				if tt.code != "" && r.str("code") != tt.code {
					t.Errorf("code %q, want %q (%s)", r.str("code"), tt.code, r.str("error"))
				}
			}
			if tt.check != nil {
				tt.check(r)
			}
		})
	}
	// A refused register wrote nothing.
	if r := ts.do(t, "GET", "/api/users/x", ts.admin); r.status != 404 {
		t.Errorf("user x exists after refused registers: %s", r.raw)
	}
}

func TestLimits(t *testing.T) {
	crops := centraltest.FaceCrops(t)
	uid := func(id string) part { return part{name: "user_id", value: id} }
	img := func(b []byte) part { return part{name: "image", file: b} }

	t.Run("body", func(t *testing.T) {
		ts := newTestServer(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
		big := bytes.Repeat([]byte{0xff}, 100<<10)
		for _, path := range []string{"/api/register", "/api/verify", "/api/identify"} {
			r := ts.do(t, "POST", path, ts.admin, uid("alice"), img(big))
			if r.status != 413 || r.str("code") != "body_too_large" || !strings.Contains(r.str("error"), "64 KiB") {
				t.Errorf("%s: %d %s", path, r.status, r.raw)
			}
		}
	})

	t.Run("pixels", func(t *testing.T) {
		eng := fakeengine.New(fakeengine.Config{Photo: photo.Options{MaxPixels: 100 * 100}})
		ts := newTestServer(t, func(c *Config) {
			c.Registry = central.NewRegistry(central.Config{Store: centraltest.Backends[0].Open(t), Engine: eng, Info: eng.Info(), Log: quiet})
		})
		for _, path := range []string{"/api/register", "/api/verify"} {
			r := ts.do(t, "POST", path, ts.admin, uid("alice"), img(crops[0]))

			if r.status != 413 || r.str("code") != "image_too_large" {
				t.Errorf("%s: %d %s", path, r.status, r.raw)
			}
		}
	})

	t.Run("lockout", func(t *testing.T) {
		ts := newTestServer(t, func(c *Config) {
			c.Limiter = api.NewLimiter(api.LimitConfig{MaxFailures: 3, Window: time.Minute, Lockout: 15 * time.Minute}, nil)
		})
		if r := ts.do(t, "POST", "/api/register", ts.admin, uid("alice"), img(crops[0])); r.status != 201 {
			t.Fatal(r.status, string(r.raw))
		}
		for i := range 3 {
			r := ts.do(t, "POST", "/api/verify", ts.verify, uid("alice"), img(crops[1]))
			if r.status != 200 || r.body["verified"] != false {
				t.Fatalf("attempt %d: %d %s", i, r.status, r.raw)
			}
		}
		// Locked: even the right face is refused, with Retry-After.
		r := ts.do(t, "POST", "/api/verify", ts.verify, uid("alice"), img(crops[0]))
		if r.status != 429 || r.str("code") != "user_locked" {
			t.Fatalf("locked: %d %s", r.status, r.raw)
		}
		if ra := r.header.Get("Retry-After"); ra != "900" && ra != "899" {
			t.Errorf("Retry-After %q, want about 900", ra)
		}
		// Other users are not affected.
		ts.do(t, "POST", "/api/register", ts.admin, uid("bob"), img(crops[1]))
		if r := ts.do(t, "POST", "/api/verify", ts.verify, uid("bob"), img(crops[1])); r.status != 200 || r.body["verified"] != true {
			t.Fatalf("bob: %d %s", r.status, r.raw)
		}
		// Nor is alice at another door: one client cannot lock her out
		// for everyone.
		door2, _ := ts.signer.Issue("door-2", auth.RoleVerify, time.Hour, time.Now())
		if r := ts.do(t, "POST", "/api/verify", door2, uid("alice"), img(crops[0])); r.status != 200 || r.body["verified"] != true {
			t.Fatalf("alice at another door: %d %s", r.status, r.raw)
		}
		// Identify does not get round the lock: the locked door does not
		// see alice, the other door does.
		identified := func(token string) bool {
			r := ts.do(t, "POST", "/api/identify", token, img(crops[0]))
			if r.status != 200 {
				t.Fatalf("identify: %d %s", r.status, r.raw)
			}
			return strings.Contains(string(r.raw), `"user_id":"alice"`)
		}
		if identified(ts.verify) {
			t.Error("identify at the locked door named alice")
		}
		if !identified(door2) {
			t.Error("identify at another door did not name alice")
		}
	})

	// An unknown user and a wrong face get the same answer; a failure
	// carries a score only when the operator turned that on.
	t.Run("no enumeration", func(t *testing.T) {
		for _, scores := range []bool{false, true} {
			ts := newTestServer(t, func(c *Config) { c.FailureScores = scores })
			if r := ts.do(t, "POST", "/api/register", ts.admin, uid("alice"), img(crops[0])); r.status != 201 {
				t.Fatal(r.status, string(r.raw))
			}
			wrong := ts.do(t, "POST", "/api/verify", ts.verify, uid("alice"), img(crops[1]))
			unknown := ts.do(t, "POST", "/api/verify", ts.verify, uid("nobody"), img(crops[1]))
			if wrong.status != 200 || unknown.status != 200 {
				t.Fatalf("wrong face %d, unknown user %d", wrong.status, unknown.status)
			}
			_, scored := wrong.body["similarity"]
			if scored != scores {
				t.Errorf("failure scores %v: wrong face answer %s", scores, wrong.raw)
			}
			if scores {
				continue // the scores differ, by design
			}
			if a, b := strings.Replace(string(wrong.raw), `"alice"`, `"X"`, 1), strings.Replace(string(unknown.raw), `"nobody"`, `"X"`, 1); a != b {
				t.Errorf("answers differ:\nwrong face   %s\nunknown user %s", a, b)
			}
		}
	})

	t.Run("liveness", func(t *testing.T) {
		ts := newTestServer(t, func(c *Config) { c.Liveness = true })
		ts.do(t, "POST", "/api/register", ts.admin, uid("alice"), img(crops[0]))
		r := ts.do(t, "POST", "/api/verify", ts.verify, uid("alice"), img(crops[0]))
		lv, ok := r.body["liveness"].(map[string]any)
		if r.status != 200 || !ok || lv["threshold"] == nil || lv["score"] == nil || lv["model"] != centraltest.Engine(t).Info().LivenessModel {
			t.Fatalf("liveness: %d %s", r.status, r.raw)
		}
		if live := lv["live"] == true; r.body["verified"] != true || !live {
			t.Fatalf("a live picture of alice: %s", r.raw)
		}
		// A photo of alice's photo: her face, not live.
		spoof := fakeengine.JPEG(t, fakeengine.Picture{Faces: []fakeengine.Face{{ID: "person0", Liveness: 0.01}}})
		r = ts.do(t, "POST", "/api/verify", ts.verify, uid("alice"), img(spoof))
		if lv, _ := r.body["liveness"].(map[string]any); r.status != 200 || r.body["verified"] != false || lv["live"] != false {
			t.Fatalf("verified a face that is not live: %d %s", r.status, r.raw)
		}
	})

	t.Run("verify without a token from a listed network", func(t *testing.T) {
		// The test client is on loopback, which ParseNetworks refuses in
		// the real settings (a proxy's address); here it stands for a
		// door controllers' network.
		ts := newTestServer(t, func(c *Config) { c.TokenlessVerify = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
		ts.do(t, "POST", "/api/register", ts.admin, uid("alice"), img(crops[0]))
		if r := ts.do(t, "POST", "/api/verify", "", uid("alice"), img(crops[0])); r.status != 200 || r.body["verified"] != true {
			t.Fatalf("verify without a token: %d %s", r.status, r.raw)
		}
		// Verify only, and a token sent is still checked.
		if r := ts.do(t, "POST", "/api/identify", "", img(crops[0])); r.status != 401 {
			t.Fatalf("identify without a token: %d %s", r.status, r.raw)
		}
		if r := ts.do(t, "POST", "/api/verify", "not-a-token", uid("alice"), img(crops[0])); r.status != 401 {
			t.Fatalf("verify with a bad token: %d %s", r.status, r.raw)
		}
		// Off by default.
		off := newTestServer(t, nil)
		if r := off.do(t, "POST", "/api/verify", "", uid("alice"), img(crops[0])); r.status != 401 {
			t.Fatalf("verify without a token, default settings: %d %s", r.status, r.raw)
		}
	})

	t.Run("not ready", func(t *testing.T) {
		fs := &centraltest.FaultyStore{Store: centraltest.Backends[0].Open(t)}
		ts := newTestServerOn(t, fs, func(c *Config) {
			c.Registry = central.NewRegistry(central.Config{Store: pingFails{fs}, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Log: quiet})
		})
		r := ts.do(t, "GET", "/readyz", "")
		if r.status != 503 || r.str("code") != "not_ready" || !strings.Contains(r.str("error"), "S3_BUCKET") {
			t.Fatalf("readyz with a broken store: %d %s", r.status, r.raw)
		}
		if r := ts.do(t, "GET", "/healthz", ""); r.status != 200 {
			t.Fatalf("healthz: %d", r.status)
		}
	})

	t.Run("store down", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.store.SetFail(func(op, key string) bool { return true })
		r := ts.do(t, "POST", "/api/register", ts.admin, uid("alice"), img(crops[0]))
		if r.status != 500 || r.str("code") != "internal" || bytes.Contains(r.raw, []byte("injected")) {
			t.Fatalf("store failure: %d %s", r.status, r.raw)
		}
	})
}

// pingFails is a store that says it is not configured.
type pingFails struct{ faceauth.Store }

func (pingFails) Ping(context.Context) error {
	return faceauth.E(faceauth.KindUnavailable, "s3_not_configured", "S3 is not configured. Set S3_BUCKET (and AWS credentials) in environment.")
}

// TestOpenAPICoversRoutes: the OpenAPI document lists exactly the routes
// the server registers, with the same methods.
func TestOpenAPICoversRoutes(t *testing.T) {
	srv := NewServer(Config{Registry: &central.Registry{}, Log: quiet})
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var inDoc, inServer []string
	for path, ops := range doc.Paths {
		for method := range ops {
			inDoc = append(inDoc, strings.ToUpper(method)+" "+path)
		}
	}
	for _, r := range srv.Routes() {
		inServer = append(inServer, r.Pattern)
	}
	slices.Sort(inDoc)
	slices.Sort(inServer)
	if !slices.Equal(inDoc, inServer) {
		t.Fatalf("OpenAPI paths\n%s\nserver routes\n%s", strings.Join(inDoc, "\n"), strings.Join(inServer, "\n"))
	}
	// Every protected route says so, every public one opts out.
	for _, r := range srv.Routes() {
		method, path, _ := strings.Cut(r.Pattern, " ")
		op := doc.Paths[path][strings.ToLower(method)].(map[string]any)
		sec, hasSec := op["security"].([]any)
		public := hasSec && len(sec) == 0
		if public != (r.Role == "") {
			t.Errorf("%s: role %q but OpenAPI security %v", r.Pattern, r.Role, op["security"])
		}
	}
}

// TestPanicIsInternalError: a panicking handler answers a JSON 500.
func TestPanicIsInternalError(t *testing.T) {
	srv := NewServer(Config{Registry: &central.Registry{}, Log: quiet, Extra: []Route{{
		Pattern: "GET /boom",
		Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }),
	}}})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	var body api.ErrorBody
	if rec.Code != 500 || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Code != "internal" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// TestOpenAPISchemas: the response schemas of the OpenAPI document name
// exactly the JSON fields the server writes, and require exactly those
// always present (no omitempty).
func TestOpenAPISchemas(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Required   []string       `json:"required"`
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		schema       string
		v            any
		checkRequire bool
	}{
		{"Verify", api.VerifyResponse{}, true},
		{"Identify", api.IdentifyResponse{}, false},
		{"Match", faceauth.Match{}, false},
		{"Edge", fleet.EdgeState{}, false},
	} {
		t.Run(tt.schema, func(t *testing.T) {
			s, ok := doc.Components.Schemas[tt.schema]
			if !ok {
				t.Fatalf("no schema %s", tt.schema)
			}
			var fields, required []string
			typ := reflect.TypeOf(tt.v)
			for i := range typ.NumField() {
				name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
				if name == "" || name == "-" {
					continue
				}
				fields = append(fields, name)
				if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
					required = append(required, name)
				}
			}
			props := slices.Collect(maps.Keys(s.Properties))
			slices.Sort(fields)
			slices.Sort(props)
			if !slices.Equal(fields, props) {
				t.Errorf("fields %v, schema properties %v", fields, props)
			}
			if tt.checkRequire {
				slices.Sort(required)
				req := slices.Clone(s.Required)
				slices.Sort(req)
				if !slices.Equal(required, req) {
					t.Errorf("always present %v, schema required %v", required, req)
				}
			}
		})
	}
}

// storeDown is a store whose Ping fails with the raw text of a network
// error, which names the store's address.
type storeDown struct{ faceauth.Store }

func (storeDown) Ping(context.Context) error {
	return fmt.Errorf("ping store: dial tcp 10.9.8.7:7070: connect: connection refused")
}

// TestReadyzDetails: GET /readyz needs no token and nginx serves it to
// the internet, so why central is not ready (the raw text of a store or
// NATS error, naming addresses and buckets) goes only to an admin token or
// to a request from central's own machine; a client relayed by a proxy
// gets a short generic reason, with the same status and code.
func TestReadyzDetails(t *testing.T) {
	fs := &centraltest.FaultyStore{Store: centraltest.Backends[0].Open(t)}
	ts := newTestServerOn(t, fs, func(c *Config) {
		c.Registry = central.NewRegistry(central.Config{Store: storeDown{fs}, Engine: centraltest.Engine(t), Info: centraltest.Engine(t).Info(), Log: quiet})
	})
	const detail = "10.9.8.7:7070"
	cases := []struct {
		name    string
		proxied bool // sent as nginx relays it, with X-Real-IP and X-Forwarded-For
		token   string
		details bool
	}{
		{"from central's own machine", false, "", true},
		{"through nginx, no token", true, "", false},
		{"through nginx, a verify token", true, ts.verify, false},
		{"through nginx, a bad token", true, "not-a-token", false},
		{"through nginx, an admin token", true, ts.admin, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", ts.url+"/readyz", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.proxied {
				req.Header.Set("X-Real-IP", "203.0.113.9")
				req.Header.Set("X-Forwarded-For", "203.0.113.9")
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body api.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 503 || body.Code != "not_ready" {
				t.Fatalf("%d %+v", resp.StatusCode, body)
			}
			if !tc.details && !strings.Contains(body.Error, "the store does not answer") {
				t.Fatalf("the generic reason does not say which part is down: %q", body.Error)
			}
			if got := strings.Contains(body.Error, detail); got != tc.details {
				t.Fatalf("details shown: %v, want %v: %q", got, tc.details, body.Error)
			}
		})
	}
}
