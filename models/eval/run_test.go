package eval

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xplore/faceauth"
)

// scriptedEngine answers from the image's bytes. It stands in for the
// engine only to cause what a real one cannot be made to do on demand: an
// engine failure, and liveness left unchecked. The real engine runs these
// paths in cmd/central's eval tests.
type scriptedEngine struct{ unchecked bool }

func (scriptedEngine) Info() faceauth.EngineInfo {
	return faceauth.EngineInfo{Model: "scripted", Threshold: 0.5}
}

func (p scriptedEngine) Analyze(_ context.Context, img []byte, req faceauth.Request) (*faceauth.Analysis, error) {
	switch s := string(img); {
	case s == "noface":
		return nil, faceauth.E(faceauth.KindNoFace, "no_face", "no face")
	case s == "bad":
		return nil, faceauth.E(faceauth.KindBadImage, "bad_image", "does not decode")
	case s == "fail":
		return nil, errors.New("engine broke")
	case strings.HasPrefix(s, "face:"):
		emb := []float32{1, 0}
		if s == "face:b" {
			emb = []float32{0, 1}
		}
		return &faceauth.Analysis{Embedding: emb, Liveness: 0.9, LivenessChecked: req.Liveness && !p.unchecked}, nil
	}
	return nil, errors.New("unscripted image " + string(img))
}

func scriptedFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRunPairsScripted(t *testing.T) {
	dir := scriptedFiles(t, map[string]string{"a1": "face:a", "a2": "face:a", "b": "face:b", "n": "noface", "x": "bad", "f": "fail"})
	pair := func(x, y string, same bool) Pair {
		return Pair{X: filepath.Join(dir, x), Y: filepath.Join(dir, y), Same: same}
	}
	tests := []struct {
		name     string
		pairs    []Pair
		wantErr  string
		unscored int
	}{
		{name: "scored and unscored", pairs: []Pair{pair("a1", "a2", true), pair("a1", "n", true), pair("a1", "b", false), pair("b", "x", false)}, unscored: 2},
		{name: "engine failure stops the run", pairs: []Pair{pair("a1", "a2", true), pair("a1", "f", false)}, wantErr: "engine broke"},
		{name: "missing image stops the run", pairs: []Pair{pair("a1", "a2", true), pair("a1", "gone", false)}, wantErr: "read listed image"},
		{name: "one class", pairs: []Pair{pair("a1", "a2", true)}, wantErr: "needs both"},
		{name: "empty", wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := RunPairs(context.Background(), scriptedEngine{}, tt.pairs, PairsConfig{Workers: 2, TargetFMR: 1e-3})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.UnscoredPairs != tt.unscored || r.NoFace != 1 || r.Errors != 1 || r.NoFaceFiles[0] != "n" || !strings.HasPrefix(r.ErrorFiles[0], "x: ") {
				t.Errorf("unscored %d (want %d), no face %v, errors %v", r.UnscoredPairs, tt.unscored, r.NoFaceFiles, r.ErrorFiles)
			}
			if want := []float64{1, NoScore}; r.Scores.Genuine[0] != want[0] || r.Scores.Genuine[1] != want[1] {
				t.Errorf("genuine scores %v, want %v", r.Scores.Genuine, want)
			}
		})
	}
}

func TestRunSpoofNeedsLivenessChecked(t *testing.T) {
	dir := scriptedFiles(t, map[string]string{"live": "face:a", "attack": "face:b"})
	ps := []Presentation{{File: filepath.Join(dir, "live"), Live: true}, {File: filepath.Join(dir, "attack"), Attack: "print"}}
	if _, err := RunSpoof(context.Background(), scriptedEngine{}, ps, SpoofConfig{Threshold: 0.5, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := RunSpoof(context.Background(), scriptedEngine{unchecked: true}, ps, SpoofConfig{Threshold: 0.5, Workers: 1})
	if err == nil || !strings.Contains(err.Error(), "did not check liveness") {
		t.Errorf("liveness left unchecked: %v", err)
	}
}
