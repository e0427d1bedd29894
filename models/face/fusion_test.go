package face

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models"
)

// TestDlibAndFusedEmbeddings checks what the engine answers for the
// second embedder and for a fusion declared in models.local.json: dlib
// alone answers dlib's 128-d descriptor (with ArcFace still running the
// upright and quality checks, so the same face is selected); the fusion
// answers one unit vector whose parts are the ArcFace and dlib embeddings
// scaled by their weights, so that its dot products are the fused score.
// (The fusion is declared with its own statistics, so the expected weights
// do not depend on the shipped ones.)
func TestDlibAndFusedEmbeddings(t *testing.T) {
	ctx := context.Background()
	tmp := modelsDirWith(t, "libonnxruntime.so.1", "fr_detect.onnx", "fr_landmark.onnx", "fr_feature.onnx",
		"fr_liveness.onnx", "dlib_resnet.onnx")
	const sd0, sd1 = 0.06, 0.03
	local := `{"fusions": [{"id": "Mix", "embedders": ["ArcFace", "dlib"], "impostor_mean": [0.05, 0.8],
	  "impostor_sd": [0.06, 0.03], "threshold": 0.5, "target_fmr": 0.001}]}`
	if err := os.WriteFile(filepath.Join(tmp, models.LocalManifestName), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(model string) *Engine {
		e, err := New(ctx, Config{ModelsDir: tmp, Model: model, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	arc, dlib, fused := testEngine(t, 1), open("dlib"), open("Mix")
	if fused.Info().Threshold != 0.5 || dlib.Info().Model != "dlib@fd411160" {
		t.Errorf("threshold %v, dlib model %s", fused.Info().Threshold, dlib.Info().Model)
	}
	probe := func(e *Engine, name string) *faceauth.Analysis {
		a, err := e.Analyze(ctx, readFile(t, testenv.Sample(t, name)), faceauth.Request{})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	dot := func(a, b []float32) float64 {
		var s float64
		for i := range a {
			s += float64(a[i]) * float64(b[i])
		}
		return s
	}
	var prev [3]*faceauth.Analysis
	for _, name := range []string{"sample1.jpg", "sample2.jpg"} {
		a, d, f := probe(arc, name), probe(dlib, name), probe(fused, name)
		if len(d.Embedding) != 128 || len(f.Embedding) != 640 || d.Selected != a.Selected || f.Selected != a.Selected {
			t.Fatalf("%s: dims %d and %d, selected %d %d %d", name, len(d.Embedding), len(f.Embedding), a.Selected, d.Selected, f.Selected)
		}
		if n := dot(d.Embedding, d.Embedding); math.Abs(n-1) > 1e-5 {
			t.Errorf("%s: dlib embedding has squared length %v", name, n)
		}
		if n := dot(f.Embedding, f.Embedding); math.Abs(n-1) > 1e-5 {
			t.Errorf("%s: fused embedding has squared length %v", name, n)
		}
		// Each part is the model's own embedding, scaled.
		w0, w1 := 1/math.Sqrt(sd0), 1/math.Sqrt(sd1)
		norm := math.Sqrt(w0*w0 + w1*w1)
		if c := dot(f.Embedding[:512], a.Embedding); math.Abs(c-w0/norm) > 1e-4 {
			t.Errorf("%s: ArcFace part %.5f of the fused embedding, want %.5f", name, c, w0/norm)
		}
		if c := dot(f.Embedding[512:], d.Embedding); math.Abs(c-w1/norm) > 1e-4 {
			t.Errorf("%s: dlib part %.5f of the fused embedding, want %.5f", name, c, w1/norm)
		}
		if prev[0] != nil {
			c0, c1 := dot(a.Embedding, prev[0].Embedding), dot(d.Embedding, prev[1].Embedding)
			want := (c0/sd0 + c1/sd1) / (1/sd0 + 1/sd1)
			if got := dot(f.Embedding, prev[2].Embedding); math.Abs(got-want) > 1e-4 {
				t.Errorf("fused score %.5f, want the weighted cosines %.5f (ArcFace %.4f, dlib %.4f)", got, want, c0, c1)
			}
		}
		prev = [3]*faceauth.Analysis{a, d, f}
	}
}

// TestOperatorGeometries declares operator embedders in models.local.json
// over the bundled model files, one with its own five-point template (the
// ArcFace points written out) and one on dlib's chip: each must give the
// same embedding as the shipped embedder it copies, so an operator's model
// gets exactly the alignment and normalisation its entry names.
func TestOperatorGeometries(t *testing.T) {
	ctx := context.Background()
	tmp := modelsDirWith(t, "libonnxruntime.so.1", "fr_detect.onnx", "fr_landmark.onnx", "fr_feature.onnx",
		"fr_liveness.onnx", "dlib_resnet.onnx")
	local := `{"files": [],
	  "embedders": [
	    {"id": "MyArc", "file": "fr_feature.onnx", "input": "input", "output": "output", "size": 112, "dims": 512,
	     "alignment": "template", "template": [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
	     "mean": 127, "std": 128, "channels": "BGR", "threshold": 0.4},
	    {"id": "MyDlib", "file": "dlib_resnet.onnx", "input": "input", "output": "output", "size": 150, "dims": 128,
	     "alignment": "dlib", "padding": 0.25, "mean_rgb": [122.782, 117.001, 104.298], "std": 256, "channels": "RGB",
	     "checks_by": "ArcFace", "threshold": 0.945}]}`
	if err := os.WriteFile(filepath.Join(tmp, models.LocalManifestName), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	img := readFile(t, testenv.Sample(t, "sample3.jpg"))
	for _, c := range []struct{ operator, shipped string }{{"MyArc", "ArcFace"}, {"MyDlib", "dlib"}} {
		op, err := New(ctx, Config{ModelsDir: tmp, Model: c.operator, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := New(ctx, Config{ModelsDir: tmp, Model: c.shipped, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		a, errA := op.Analyze(ctx, img, faceauth.Request{})
		b, errB := ref.Analyze(ctx, img, faceauth.Request{})
		op.Close()
		ref.Close()
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if s := faceauth.Similarity(a.Embedding, b.Embedding); s < 0.99999 || a.Model == b.Model {
			t.Errorf("%s: similarity %.6f to %s (models %s, %s), want the same embedding under another model id", c.operator, s, c.shipped, a.Model, b.Model)
		}
	}
}

// TestDefaultModel: an engine configured without a model runs the shipped
// default, the fusion ArcFace+dlib, with the fusion's id, threshold and
// embedding size, so every caller that leaves VERIFICATION_MODEL unset
// gets the measured-better choice (docs/evaluation.md).
func TestDefaultModel(t *testing.T) {
	dir := testenv.ModelsDir(t)
	m, err := models.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Choose(models.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	if c.Fusion == nil || c.ID != "ArcFace+dlib" || c.Dims() != 512+128 {
		t.Fatalf("default choice %s: fusion %v, %d values; want the fusion ArcFace+dlib of 640", c.ID, c.Fusion != nil, c.Dims())
	}
	e, err := New(context.Background(), Config{ModelsDir: dir, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Info().Model != c.ModelID() || e.Info().Threshold != c.Threshold {
		t.Fatalf("engine without a model: %s at %v; want %s at %v", e.Info().Model, e.Info().Threshold, c.ModelID(), c.Threshold)
	}
	img, err := os.ReadFile(testenv.Sample(t, "sample1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.Analyze(context.Background(), img, faceauth.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Embedding) != c.Dims() || a.Model != c.ModelID() {
		t.Fatalf("probe: %d values of %s; want %d of %s", len(a.Embedding), a.Model, c.Dims(), c.ModelID())
	}
}
