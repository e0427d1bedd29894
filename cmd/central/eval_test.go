package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"golang.org/x/image/draw"

	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/eval"
	"github.com/xplore/faceauth/models/face"
)

func newTestEngine(t *testing.T) *face.Engine {
	t.Helper()
	e, err := face.New(context.Background(), face.Config{ModelsDir: testenv.ModelsDir(t), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// samplePairs writes, next to a pairs list, a smaller re-encoded copy of
// sample1 (the same person), a blank image (no face) and a file that is not
// an image, and lists pairs over them and the pinned samples.
func samplePairs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	link := func(name string) {
		if err := os.Symlink(testenv.Sample(t, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"sample1.jpg", "sample2.jpg", "sample3.jpg", "sample4.jpg"} {
		link(n)
	}
	f, err := os.Open(filepath.Join(dir, "sample1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := jpeg.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b := src.Bounds()
	half := image.NewRGBA(image.Rect(0, 0, b.Dx()*2/3, b.Dy()*2/3))
	draw.CatmullRom.Scale(half, half.Bounds(), src, b, draw.Src, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, half, &jpeg.Options{Quality: 70}); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sample1_small.jpg", buf.Bytes())
	blank := image.NewGray(image.Rect(0, 0, 400, 300))
	for i := range blank.Pix {
		blank.Pix[i] = uint8(100 + i%7)
	}
	buf.Reset()
	if err := png.Encode(&buf, blank); err != nil {
		t.Fatal(err)
	}
	write("blank.png", buf.Bytes())
	write("broken.jpg", []byte("this is not a photo"))
	write("pairs.csv", []byte(`file_x,file_y,same
sample1.jpg,sample1_small.jpg,1
sample2.jpg,sample2.jpg,1
sample1.jpg,blank.png,1
sample1.jpg,sample2.jpg,0
sample1.jpg,sample3.jpg,0
sample2.jpg,sample3.jpg,0
sample3.jpg,sample4.jpg,0
sample4.jpg,broken.jpg,0
`))
	return filepath.Join(dir, "pairs.csv")
}

func TestEvalPairsSamples(t *testing.T) {
	e := newTestEngine(t)
	path := samplePairs(t)
	pairs, err := eval.ReadPairs(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := eval.RunPairs(context.Background(), e, pairs, eval.PairsConfig{Workers: 2, TargetFMR: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	if r.Pairs != 8 || r.Genuine != 3 || r.Impostor != 5 {
		t.Errorf("pairs %d = %d + %d, want 8 = 3 + 5", r.Pairs, r.Genuine, r.Impostor)
	}
	if r.NoFace != 1 || r.Errors != 1 || r.UnscoredPairs != 2 {
		t.Errorf("no face %d (%v), errors %d (%v), unscored pairs %d; want 1, 1, 2",
			r.NoFace, r.NoFaceFiles, r.Errors, r.ErrorFiles, r.UnscoredPairs)
	}
	if len(r.NoFaceFiles) != 1 || r.NoFaceFiles[0] != "blank.png" || len(r.ErrorFiles) != 1 || !strings.HasPrefix(r.ErrorFiles[0], "broken.jpg: ") {
		t.Errorf("files: no face %v, errors %v", r.NoFaceFiles, r.ErrorFiles)
	}
	// The same photo twice is the same embedding.
	if g := r.Scores.Genuine[1]; g < 0.9999 {
		t.Errorf("sample2 with itself scores %v", g)
	}
	// Unscored pairs are non-matches at -1.
	if r.Scores.Genuine[2] != eval.NoScore || r.Scores.Impostor[4] != eval.NoScore {
		t.Errorf("unscored pairs: %v, %v", r.Scores.Genuine[2], r.Scores.Impostor[4])
	}
	// The re-encoded copy of sample1 is the same face, far above every
	// pair of different photos; the blank pair costs one genuine pair.
	for _, im := range r.Scores.Impostor[:4] {
		if im >= r.Scores.Genuine[0] {
			t.Errorf("impostor score %v >= genuine %v", im, r.Scores.Genuine[0])
		}
	}
	if r.Accuracy != 7.0/8 || !strings.Contains(r.AccuracyMethod, "no folds") {
		t.Errorf("accuracy %v (%s), want 7/8 without folds", r.Accuracy, r.AccuracyMethod)
	}
	// 1/3 of genuine pairs (the blank) can never pass.
	if r.TARAtFAR1e3 != 2.0/3 {
		t.Errorf("TAR at FAR 1e-3 = %v, want 2/3", r.TARAtFAR1e3)
	}
	if r.ShippedThreshold != e.Info().Threshold {
		t.Errorf("shipped threshold %v, engine %v", r.ShippedThreshold, e.Info().Threshold)
	}
}

// TestEvalCommand runs the command line end to end and checks the JSON.
func TestEvalCommand(t *testing.T) {
	path := samplePairs(t)
	plot := filepath.Join(t.TempDir(), "roc.png")
	var out bytes.Buffer
	app := &cli.App{Name: "central", Writer: &out, Commands: []*cli.Command{evalCommand()}}
	args := []string{"central", "eval", "pairs", "--models-dir", testenv.ModelsDir(t), "--workers", "2", "--json", "--plot", plot, path}
	if err := app.Run(args); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"pairs", "accuracy", "auc", "tar_at_far_1e-3", "tar_at_far_1e-2", "threshold",
		"shipped_threshold", "fmr", "fnmr", "no_face", "errors", "model", "target_fmr", "genuine", "impostor"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if got["pairs"] != 8.0 || got["no_face"] != 1.0 || got["errors"] != 1.0 {
		t.Errorf("pairs %v, no_face %v, errors %v", got["pairs"], got["no_face"], got["errors"])
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("plot: %v", err)
	}

	out.Reset()
	if err := app.Run([]string{"central", "eval", "pairs", "--models-dir", testenv.ModelsDir(t), path}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"accuracy", "TAR at FAR 1e-3", "shipped threshold", "no face", "1 images"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}

	// A bad list fails before any model is loaded, with its line.
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("file_x,file_y,same\na.jpg,b.jpg,maybe\n"), 0o644)
	err = app.Run([]string{"central", "eval", "pairs", bad})
	if err == nil || !strings.Contains(err.Error(), "line 2: same must be 0 or 1") {
		t.Errorf("bad list: %v", err)
	}
	// A listed image that does not exist stops the run.
	missing := filepath.Join(t.TempDir(), "missing.csv")
	os.WriteFile(missing, []byte("file_x,file_y,same\nnope.jpg,nope2.jpg,1\nnope.jpg,nope3.jpg,0\n"), 0o644)
	err = app.Run([]string{"central", "eval", "pairs", "--models-dir", testenv.ModelsDir(t), missing})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing image: %v", err)
	}
}

// TestEvalDeepFace is the requirement: every DeepFace pair is
// classified correctly.
func TestEvalDeepFace(t *testing.T) {
	path := filepath.Join(testenv.SharedFaces(t), "deepface", "pairs.csv")
	pairs, err := eval.ReadPairs(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t)
	r, err := eval.RunPairs(context.Background(), e, pairs, eval.PairsConfig{Workers: 2, TargetFMR: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	if r.Pairs != 300 || r.Genuine != 38 {
		t.Errorf("pairs %d with %d genuine, want 300 with 38", r.Pairs, r.Genuine)
	}
	if r.Accuracy != 1 || r.AccuracyAtShipped != 1 {
		t.Errorf("accuracy on DeepFace pairs = %v, at the shipped threshold %v (AUC %v, no face %v, errors %v); want 1",
			r.Accuracy, r.AccuracyAtShipped, r.AUC, r.NoFaceFiles, r.ErrorFiles)
	}
	// At the shipped threshold no listed impostor passes.
	if r.FMR != 0 {
		t.Errorf("FMR at the shipped threshold %v = %v", r.ShippedThreshold, r.FMR)
	}

	// The same pairs in three folds: accuracy is cross-validated.
	for i := range pairs {
		pairs[i].Fold = string(rune('a' + i%3))
	}
	cv, err := eval.RunPairs(context.Background(), e, pairs, eval.PairsConfig{Workers: 2, TargetFMR: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	if cv.AccuracyMethod != "3-fold cross-validation" || len(cv.Folds) != 3 || cv.AccuracyThreshold != nil {
		t.Errorf("with folds: %s, %+v", cv.AccuracyMethod, cv.Folds)
	}
	// A threshold learned without the hardest same-person pair (img3 and
	// img12, 0.47) can land above it: one error in 300 is what honest
	// cross-validation of these pairs gives.
	if cv.Accuracy < 0.99 {
		t.Errorf("cross-validated accuracy on DeepFace pairs = %v, want >= 0.99 (folds %+v)", cv.Accuracy, cv.Folds)
	}
}

// TestEvalSpoof guards the shipped liveness threshold: on the shared spoof
// set it must still be the best trade-off, max(APCER, BPCER) within two
// presentations of the smallest achievable (the EER). When the engine's
// liveness stage changes, re-measure it (docs/thresholds.md).
func TestEvalSpoof(t *testing.T) {
	path := filepath.Join(testenv.SharedFaces(t), "spoof", "manifest.csv")
	ps, err := eval.ReadPresentations(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t)
	r, err := eval.RunSpoof(context.Background(), e, ps, eval.SpoofConfig{Threshold: float64(e.Info().LivenessThreshold), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Live != 65 || r.Attacks != 68 {
		t.Errorf("%d live, %d attacks; want 65 and 68", r.Live, r.Attacks)
	}
	t.Logf("liveness threshold %v: APCER %.4f, BPCER %.4f, AUC %.4f, EER %.4f at %.4f",
		r.Threshold, r.APCER, r.BPCER, r.AUC, r.EER, r.EERThreshold)
	if worst := math.Max(r.APCER, r.BPCER); worst > r.EER+2.0/65 {
		t.Errorf("at the shipped liveness threshold %v max(APCER %.4f, BPCER %.4f) is well above the EER %.4f (at %.4f): re-measure it",
			r.Threshold, r.APCER, r.BPCER, r.EER, r.EERThreshold)
	}
}

// TestShippedThreshold checks ArcFace's shipped similarity threshold against the
// claim in the manifest: on every cross-identity pair of the colour photo
// sets the false-match rate is at most target_fmr. It also checks the
// all-pairs counts on the Azure set by hand: 18 images of 8 people give 14
// same-person pairs of 153.
func TestShippedThreshold(t *testing.T) {
	shared := testenv.SharedFaces(t)
	var sets []eval.Set
	for _, name := range []string{"deepface", "celebs_misc", "azure_face", "compreface_people"} {
		s, err := eval.ReadSet(filepath.Join(shared, name))
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, s)
	}
	// ArcFace alone, not the default fusion: TestShippedThresholdsOtherModels
	// checks the fusion's threshold.
	e, err := face.New(context.Background(), face.Config{ModelsDir: testenv.ModelsDir(t), Model: "ArcFace", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	m, err := models.Load(testenv.ModelsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	emb, err := m.Embedder("ArcFace")
	if err != nil {
		t.Fatal(err)
	}
	if emb.TargetFMR == 0 || emb.Threshold != e.Info().Threshold {
		t.Fatalf("manifest: threshold %v for FMR %v, engine uses %v", emb.Threshold, emb.TargetFMR, e.Info().Threshold)
	}
	r, err := eval.RunSets(context.Background(), e, sets, eval.SetsConfig{Workers: 2, TargetFMR: emb.TargetFMR, Threshold: float64(e.Info().Threshold)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Sets {
		t.Logf("%-18s FMR %.5f (%d of %d), FNMR %.4f", s.Set, s.FMR, s.FalseMatches, s.Impostor, s.FNMR)
	}
	if r.Pooled.FMR > emb.TargetFMR {
		t.Errorf("at threshold %v the pooled FMR is %v (%d of %d), above the claimed %v: re-measure (docs/thresholds.md)",
			e.Info().Threshold, r.Pooled.FMR, r.Pooled.FalseMatches, r.Pooled.Impostor, emb.TargetFMR)
	}
	az := r.Sets[2]
	if az.Set != "azure_face" || az.Images != 18 || az.Identities != 8 || az.Genuine != 14 || az.Impostor != 139 {
		t.Errorf("azure_face: %+v", az)
	}
	df := r.Sets[0]
	if df.Images != 25 || df.Identities != 9 || df.Genuine != 38 || df.Impostor != 262 {
		t.Errorf("deepface identities from its pairs list: %+v", df)
	}
	scores := filepath.Join(t.TempDir(), "scores.csv")
	if err := eval.WriteScores(scores, r.All); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(scores)
	if err != nil {
		t.Fatal(err)
	}
	if n, want := strings.Count(string(data), "\n"), 1+r.Pooled.Genuine+r.Pooled.Impostor; n != want {
		t.Errorf("scores file has %d lines, want %d", n, want)
	}
}
