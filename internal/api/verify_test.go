package api

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/facetest"
	"github.com/xplore/faceauth/internal/fakeengine"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models/face"
)

var engineOnce struct {
	sync.Once
	eng *face.Engine
	err error
}

// realEngine returns the real engine; it skips, saying so, without the
// model files (testenv.ModelsDir).
func realEngine(t *testing.T) *face.Engine {
	t.Helper()
	dir := testenv.ModelsDir(t)
	engineOnce.Do(func() {
		engineOnce.eng, engineOnce.err = face.New(context.Background(), face.Config{ModelsDir: dir, Workers: 1, Log: quiet})
	})
	if engineOnce.err != nil {
		t.Fatal(engineOnce.err)
	}
	return engineOnce.eng
}

// fake is the engine of the handler logic tests.
var fake = fakeengine.New(fakeengine.Config{})

// groupPhoto is a fake picture of alice with a smaller face behind her.
func groupPhoto(t *testing.T) []byte {
	return fakeengine.JPEG(t, fakeengine.Picture{Faces: []fakeengine.Face{
		{ID: "alice", Box: faceauth.Box{X1: 0.1, Y1: 0.2, X2: 0.6, Y2: 0.7}},
		{ID: "passer-by", Box: faceauth.Box{X1: 0.7, Y1: 0.1, X2: 0.9, Y2: 0.3}},
	}})
}

// handlerEngines are the engines the handler contract is checked on, each
// with a photo of several people: the fake, and the real engine with a
// pinned sample photo when the model files are present.
var handlerEngines = []struct {
	name  string
	setup func(t *testing.T) (faceauth.Engine, faceauth.EngineInfo, []byte)
}{
	{"fake", func(t *testing.T) (faceauth.Engine, faceauth.EngineInfo, []byte) {
		return fake, fake.Info(), groupPhoto(t)
	}},
	{"real", func(t *testing.T) (faceauth.Engine, faceauth.EngineInfo, []byte) {
		eng := realEngine(t)
		photo, err := os.ReadFile(testenv.Sample(t, "sample2.jpg"))
		if err != nil {
			t.Fatal(err)
		}
		return eng, eng.Info(), photo
	}},
}

// mapGallery is the smallest Gallery and Searcher: users in a map.
type mapGallery map[string][][]float32

func (g mapGallery) Embeddings(_ context.Context, id, _ string) ([][]float32, error) {
	v, ok := g[id]
	if !ok {
		return nil, faceauth.E(faceauth.KindNotFound, "user_not_found", "No user %q is registered.", id)
	}
	return v, nil
}

func (g mapGallery) Search(_ context.Context, q []float32, _ string, thr float32, limit int) ([]faceauth.Match, error) {
	var out []faceauth.Match
	for id, vs := range g {
		best := float32(-1)
		for _, v := range vs {
			best = max(best, faceauth.Similarity(q, v))
		}
		if best >= thr {
			out = append(out, faceauth.Match{UserID: id, Similarity: best})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Similarity > out[j].Similarity })
	return out[:min(limit, len(out))], nil
}

// TestFaceHandlers checks the verify and identify contract the central
// service and the edges share, on the fake engine and on the real one.
func TestFaceHandlers(t *testing.T) {
	for _, e := range handlerEngines {
		t.Run(e.name, func(t *testing.T) {
			eng, info, photo := e.setup(t)
			testFaceHandlers(t, eng, info, photo)
		})
	}
}

func testFaceHandlers(t *testing.T, eng faceauth.Engine, info faceauth.EngineInfo, photo []byte) {
	a, err := eng.Analyze(t.Context(), photo, faceauth.Request{})
	if err != nil {
		t.Fatal(err)
	}
	other := make([]float32, len(a.Embedding))
	other[0] = 1 // a unit vector no face is close to
	if faceauth.Similarity(a.Embedding, other) >= info.Threshold {
		t.Skip("the probe happens to match the unit vector")
	}
	g := mapGallery{"alice": {a.Embedding}, "bob": {other}}
	m := newTestMetrics()
	var heard struct{ total, verified, errors int }
	h := &FaceHandlers{
		Engine: eng, Info: info, Gallery: g, Searcher: g, Log: quiet, Metrics: m,
		Limiter: NewLimiter(LimitConfig{MaxFailures: 2, Window: time.Minute, Lockout: time.Minute}, nil),
		OnVerify: func(_ context.Context, res *VerifyResponse, err error) {
			heard.total++
			switch {
			case err != nil:
				heard.errors++
			case res.Verified:
				heard.verified++
			}
		},
	}
	noFace := facetest.NoFaceJPEG(t)
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		user     string
		img      []byte
		status   int
		verified bool
		code     string
	}{
		{"same face", h.Verify, "alice", photo, 200, true, ""},
		{"other face", h.Verify, "bob", photo, 200, false, ""},
		{"unknown user", h.Verify, "carol", photo, 200, false, ""},
		{"invalid user", h.Verify, "car ol", photo, 400, false, "invalid_user_id"},
		{"no face", h.Verify, "bob", noFace, 422, false, "no_face"},
		{"no image", h.Verify, "bob", nil, 400, false, "missing_image"},
		{"second failure", h.Verify, "bob", photo, 200, false, ""},
		{"locked", h.Verify, "bob", photo, 429, false, "user_locked"},
		{"identify", h.Identify, "", photo, 200, false, ""},
		{"identify no face", h.Identify, "", noFace, 422, false, "no_face"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := map[string]string{}
			if tt.user != "" {
				fields["user_id"] = tt.user
			}
			var files [][3]string
			if tt.img != nil {
				files = append(files, [3]string{"image", "p.jpg", string(tt.img)})
			}
			ct, body := multipartBody(t, fields, files...)
			r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			r.Header.Set("Content-Type", ct)
			rec := httptest.NewRecorder()
			tt.handler(rec, r)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			switch {
			case tt.code != "":
				var e ErrorBody
				json.Unmarshal(rec.Body.Bytes(), &e)
				if e.Code != tt.code {
					t.Errorf("code %q, want %q", e.Code, tt.code)
				}
				if tt.status == 429 && rec.Header().Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			case tt.name == "identify":
				var resp IdentifyResponse
				json.Unmarshal(rec.Body.Bytes(), &resp)
				if len(resp.Matches) != 1 || resp.Matches[0].UserID != "alice" || resp.Faces < 2 {
					t.Errorf("identify %s", rec.Body)
				}
			default:
				var resp VerifyResponse
				json.Unmarshal(rec.Body.Bytes(), &resp)
				if resp.Verified != tt.verified || resp.UserID != tt.user || resp.Model != info.Model || resp.Faces < 1 ||
					resp.Face.Box.X2 <= resp.Face.Box.X1 || resp.Liveness != nil ||
					tt.verified != (resp.Similarity != nil) || resp.Similarity != nil && math.IsNaN(float64(*resp.Similarity)) {
					t.Errorf("verify %s", rec.Body)
				}
			}
		})
	} // OnVerify hears every verify answer, errors too; the outcomes are
	// counted once each, a lockout's refusal as locked.
	if heard.total != 8 || heard.verified != 1 || heard.errors != 4 {
		t.Errorf("OnVerify heard %+v, want 8 answers, 1 verified, 4 errors", heard)
	}
	for outcome, want := range map[string]float64{"verified": 1, "rejected": 2, "unknown_user": 1, "no_face": 2, "locked": 1, "matched": 1} {
		if got := testutil.ToFloat64(m.outcomes.WithLabelValues(outcome)); got != want {
			t.Errorf("outcome %s counted %v times, want %v", outcome, got, want)
		}
	}
}
