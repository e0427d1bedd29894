package edged

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/api"
	"github.com/xplore/faceauth/internal/auth"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/internal/fakeengine"
	"github.com/xplore/faceauth/internal/gallery"
	"github.com/xplore/faceauth/internal/testenv"
	pb "github.com/xplore/faceauth/proto"
)

// faceJPEG returns a w x h JPEG cut around the dominant face of the test
// photo name, the face a third of the frame's width. It needs the real
// engine.
func faceJPEG(t testing.TB, name string, w, h int) []byte {
	t.Helper()
	return facetest.Frame(t, realEngine(t), name, w, h, 3)
}

// personJPEG returns a w x h fake picture of person id (testEngine's), the
// face a third of the frame's width.
func personJPEG(t testing.TB, id string, w, h int) []byte {
	t.Helper()
	box := faceauth.Box{X1: 1.0 / 3, Y1: 0.25, X2: 2.0 / 3, Y2: 0.75}
	return fakeengine.JPEG(t, fakeengine.Picture{Faces: []fakeengine.Face{{ID: id, Box: box}}, Width: w, Height: h})
}

// embed returns the embedding of the dominant face in img.
func embed(t testing.TB, eng faceauth.Engine, img []byte) []float32 {
	t.Helper()
	a, err := eng.Analyze(context.Background(), img, faceauth.Request{})
	if err != nil {
		t.Fatal(err)
	}
	return a.Embedding
}

// form builds a multipart body of the fields and an image.
func form(t testing.TB, fields map[string]string, img []byte) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if img != nil {
		fw, err := mw.CreateFormFile("image", "probe.jpg")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(img)
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func post(t testing.TB, url, token string, fields map[string]string, img []byte) (int, []byte) {
	t.Helper()
	ct, body := form(t, fields, img)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestHTTPOffline serves verify and identify from a synced edge after NATS
// has gone, with tokens checked by the cached key.
func TestHTTPOffline(t *testing.T) {
	signer, err := auth.SignerFromSecret("edge http test secret")
	if err != nil {
		t.Fatal(err)
	}
	verifyTok, _ := signer.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())
	other, _ := auth.SignerFromSecret("some other secret, same length")
	forged, _ := other.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())

	alice := personJPEG(t, "alice", 640, 480)
	bob := personJPEG(t, "bob", 640, 480)
	model := testEngine(t).Info().Model

	n := startNATS(t)
	js := n.client(t)
	publishConfig(t, js, pb.TokenKeySubject, pb.KindTokenKey, &pb.TokenKey{KeyId: signer.KeyID(), PublicKey: signer.PublicKey()}, 1)
	publish(t, js, upsert("alice@example.org", 1, model, embed(t, testEngine(t), alice)), upsert("carol", 2, "Other@00000000", vec(edgeDims, 2)))
	e := startEdge(t, t.TempDir(), n.url)
	waitFor(t, 20*time.Second, "the edge to sync", func() bool {
		r := e.Ready()
		return r.Synced && r.Users == 1 && r.TokenKeyID == signer.KeyID()
	})
	n.stop()
	waitFor(t, 5*time.Second, "the edge to see NATS gone", func() bool { return !e.Ready().NATSConnected })

	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	tests := []struct {
		name   string
		path   string
		token  string
		fields map[string]string
		img    []byte
		status int
		check  func(t *testing.T, body []byte)
	}{
		{name: "verify match", path: "/api/verify", token: verifyTok, fields: map[string]string{"user_id": "alice@example.org"}, img: alice, status: 200,
			check: func(t *testing.T, body []byte) {
				var r api.VerifyResponse
				json.Unmarshal(body, &r)
				if !r.Verified || r.Similarity == nil || *r.Similarity < 0.99 || r.UserID != "alice@example.org" || r.Model != model {
					t.Fatalf("answer %s", body)
				}
			}},
		{name: "verify other face", path: "/api/verify", token: verifyTok, fields: map[string]string{"user_id": "alice@example.org"}, img: bob, status: 200,
			check: func(t *testing.T, body []byte) {
				var r api.VerifyResponse
				json.Unmarshal(body, &r)
				if r.Verified || r.Similarity != nil { // no score on a failure

					t.Fatalf("answer %s", body)
				}
			}},
		{name: "unknown user", path: "/api/verify", token: verifyTok, fields: map[string]string{"user_id": "nobody"}, img: alice, status: 200,
			check: func(t *testing.T, body []byte) {
				var r api.VerifyResponse
				json.Unmarshal(body, &r)
				if r.Verified || r.Similarity != nil || r.UserID != "nobody" {
					t.Fatalf("answer %s", body)
				}
			}},
		{name: "user of another model", path: "/api/verify", token: verifyTok, fields: map[string]string{"user_id": "carol"}, img: alice, status: 503},
		{name: "bad user id", path: "/api/verify", token: verifyTok, fields: map[string]string{"user_id": "../x"}, img: alice, status: 400},
		{name: "no image", path: "/api/verify", token: verifyTok, fields: map[string]string{"user_id": "alice@example.org"}, status: 400},
		{name: "no token", path: "/api/verify", fields: map[string]string{"user_id": "alice@example.org"}, img: alice, status: 401},
		{name: "token of another key", path: "/api/verify", token: forged, fields: map[string]string{"user_id": "alice@example.org"}, img: alice, status: 401},
		{name: "identify", path: "/api/identify", token: verifyTok, img: alice, status: 200,
			check: func(t *testing.T, body []byte) {
				var r api.IdentifyResponse
				json.Unmarshal(body, &r)
				if len(r.Matches) != 1 || r.Matches[0].UserID != "alice@example.org" {
					t.Fatalf("answer %s", body)
				}
			}},
		{name: "identify nobody", path: "/api/identify", token: verifyTok, img: bob, status: 200,
			check: func(t *testing.T, body []byte) {
				var r api.IdentifyResponse
				json.Unmarshal(body, &r)
				if len(r.Matches) != 0 {
					t.Fatalf("answer %s", body)
				}
			}},
		{name: "no such route", path: "/api/register", token: verifyTok, img: alice, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, srv.URL+tt.path, tt.token, tt.fields, tt.img)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			var eb api.ErrorBody
			if status != 200 && (json.Unmarshal(body, &eb) != nil || eb.Code == "" || eb.Error == "") {
				t.Fatalf("error body %s", body)
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
	st := e.Status()
	// Requests refused for their token are not verifications; an unknown
	// user is a rejection like a wrong face.
	if st.VerifyTotal != 6 || st.VerifyAccepted != 1 || st.VerifyRejected != 2 {
		t.Errorf("verify counters %d/%d/%d, want 6/1/2", st.VerifyTotal, st.VerifyAccepted, st.VerifyRejected)
	}
	// The failures (a wrong face, an unknown user, an identification of
	// nobody) are counted by the edge and reported in its heartbeat.
	if st.LockoutKeys < 3 || st.LockoutLocked != 0 {
		t.Errorf("heartbeat lockout counts %d keys, %d locked; want at least 3 keys, none locked", st.LockoutKeys, st.LockoutLocked)
	}
	// Door controllers of a listed network may verify, and only verify,
	// without a token (the test client is on loopback, which the real
	// setting refuses: api.ParseNetworks).
	e.cfg.TokenlessVerify = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	open := httptest.NewServer(e.Handler())
	defer open.Close()
	if status, body := post(t, open.URL+"/api/verify", "", map[string]string{"user_id": "alice@example.org"}, alice); status != 200 {
		t.Errorf("verify without a token from a listed network: %d %s", status, body)
	}
	if status, body := post(t, open.URL+"/api/identify", "", nil, alice); status != 401 {
		t.Errorf("identify without a token from a listed network: %d %s", status, body)
	}
	e.cfg.TokenlessVerify = nil

	for path, want := range map[string]string{
		"/healthz": `"ok"`,
		"/readyz":  `"ready":true`,
		"/metrics": "faceauth_edge_users 1",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestHTTPLiveness: an edge with the liveness check on verifies a live
// face of a user and refuses a photo of the same face, saying why, and
// counts it as a rejection.
func TestHTTPLiveness(t *testing.T) {
	signer, _ := auth.SignerFromSecret("edge http test secret")
	tok, _ := signer.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())
	eng := testEngine(t)
	n := startNATS(t)
	js := n.client(t)
	publish(t, js, upsert("alice", 1, eng.Info().Model, eng.Embedding("alice")))
	e := startEdge(t, t.TempDir(), n.url, func(c *Config) { c.TokenPublicKey, c.Liveness = signer.PublicKey(), true })
	waitFor(t, 20*time.Second, "the edge to sync", func() bool { return e.Users() == 1 })
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	box := faceauth.Box{X1: 1.0 / 3, Y1: 0.25, X2: 2.0 / 3, Y2: 0.75}
	for _, tc := range []struct {
		name     string
		liveness float32
		want     bool
	}{{"live", 0.97, true}, {"photo of a photo", 0.02, false}} {
		img := fakeengine.JPEG(t, fakeengine.Picture{Faces: []fakeengine.Face{{ID: "alice", Box: box, Liveness: tc.liveness}}, Width: 640, Height: 480})
		status, body := post(t, srv.URL+"/api/verify", tok, map[string]string{"user_id": "alice"}, img)
		var r api.VerifyResponse
		if status != 200 || json.Unmarshal(body, &r) != nil || r.Verified != tc.want || r.Liveness == nil ||
			r.Liveness.Live != tc.want || r.Liveness.Model != eng.Info().LivenessModel {
			t.Errorf("%s: %d %s, want verified=%v", tc.name, status, body, tc.want)
		}
	}
	if st := e.Status(); st.VerifyAccepted != 1 || st.VerifyRejected != 1 {
		t.Errorf("verify counters %d accepted, %d rejected; want 1, 1", st.VerifyAccepted, st.VerifyRejected)
	}
}

// TestHTTPSharedFaces verifies a genuine pair of different photos of one
// person and an impostor from the labelled set, when it is present.
func TestHTTPSharedFaces(t *testing.T) {
	dir := testenv.SharedFaces(t)
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "orl_att", p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	signer, _ := auth.SignerFromSecret("edge http test secret")
	tok, _ := signer.Issue("door-1", auth.RoleVerify, time.Hour, time.Now())
	eng := realEngine(t)
	model := eng.Info().Model
	n := startNATS(t)
	js := n.client(t)
	publish(t, js, upsert("s1", 1, model, embed(t, eng, read("images/s1/1.png"))))
	e := startEdge(t, t.TempDir(), n.url, func(c *Config) { c.TokenPublicKey, c.Engine, c.Info = signer.PublicKey(), eng, eng.Info() })
	waitFor(t, 20*time.Second, "the edge to sync", func() bool { return e.Users() == 1 })
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		img  string
		want bool
	}{{"images/s1/2.png", true}, {"images/s2/1.png", false}} {
		status, body := post(t, srv.URL+"/api/verify", tok, map[string]string{"user_id": "s1"}, read(tc.img))
		var r api.VerifyResponse
		if status != 200 || json.Unmarshal(body, &r) != nil || r.Verified != tc.want {
			t.Errorf("%s: %d %s, want verified=%v", tc.img, status, body, tc.want)
		}
	}
}

// TestIdentifyWaitsForGallery: until the gallery holds the served set,
// identify answers 503 rather than "no match".
func TestIdentifyWaitsForGallery(t *testing.T) {
	e := &Edge{model: "m", gallery: gallery.New(4)}
	s := edgeSearcher{e}
	if _, err := s.Search(context.Background(), vec(4, 1), "m", 0.4, 5); faceauth.KindOf(err) != faceauth.KindUnavailable {
		t.Fatalf("before the load: %v", err)
	}
	e.identifyReady.Store(true)
	if ms, err := s.Search(context.Background(), vec(4, 1), "m", 0.4, 5); err != nil || len(ms) != 0 {
		t.Fatalf("after the load: %v, %v", ms, err)
	}
	if _, err := s.Search(context.Background(), vec(4, 1), "other", 0.4, 5); err == nil {
		t.Fatal("a probe of another model was searched")
	}
}

// TestReadyzDetailsStayOnTheMachine: GET /readyz needs no token, and its
// last_error and last_reject may name a user (an id can be an e-mail
// address). Another machine on the site network gets a placeholder; the
// edge's own machine (edged status) gets the text, as central does in the
// heartbeat.
func TestReadyzDetailsStayOnTheMachine(t *testing.T) {
	// An edge that is open but not running: nothing changes its errors
	// meanwhile.
	e, err := Open(Config{EdgeID: "edge-1", DataDir: t.TempDir(), Engine: testEngine(t), Info: testEngine(t).Info(), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const id = "alice@example.org"
	e.mu.Lock()
	e.lastErr = `user "` + id + `" revision 7: an embedding is not 512 finite values of norm 1`
	e.rejected.last = `feed message rejected: change for user "` + id + `" has revision 3, older than the 7 held (replayed)`
	e.mu.Unlock()
	h := e.Handler()

	req := httptest.NewRequest("GET", "/readyz", nil)
	req.RemoteAddr = "192.0.2.7:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var remote Readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &remote); err != nil || rec.Code != 200 {
		t.Fatalf("GET /readyz from another machine: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), id) {
		t.Errorf("another machine read a user id in /readyz: %s", rec.Body)
	}
	if remote.LastError == "" || remote.LastReject == "" {
		t.Errorf("another machine is not told that there are errors: %+v", remote)
	}

	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var local Readiness
	if err := json.NewDecoder(resp.Body).Decode(&local); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(local.LastError, id) || !strings.Contains(local.LastReject, id) {
		t.Errorf("the edge's own machine lost the details: %+v", local)
	}
}
