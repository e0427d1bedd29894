package face

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/photo"
	ort "github.com/yalue/onnxruntime_go"
)

var samples = []string{"sample1.jpg", "sample2.jpg", "sample3.jpg", "sample4.jpg", "sample5.jpg", "sample6.jpg"}

// fullDecode decodes at full size, for cutting test crops.
func fullDecode(t testing.TB, path string) *photo.Image {
	t.Helper()
	im, err := photo.Decode(readFile(t, path), photo.Options{TargetSide: -1})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// cropPNG cuts rect (full-size coordinates) grown by margin times its size
// on every side, clipped to the image, turns it clockwise by deg and
// encodes it as PNG.
func cropPNG(t testing.TB, im *photo.Image, rect faceauth.Box, margin float64, deg int) []byte {
	t.Helper()
	w, h := float64(rect.X2-rect.X1), float64(rect.Y2-rect.Y1)
	x1 := max(0, int(float64(rect.X1)-margin*w))
	y1 := max(0, int(float64(rect.Y1)-margin*h))
	x2 := min(im.W, int(float64(rect.X2)+margin*w))
	y2 := min(im.H, int(float64(rect.Y2)+margin*h))
	r := &raster{w: x2 - x1, h: y2 - y1, pix: make([]byte, 3*(x2-x1)*(y2-y1))}
	for y := y1; y < y2; y++ {
		copy(r.pix[3*(y-y1)*r.w:], im.Pix[3*(y*im.W+x1):3*(y*im.W+x2)])
	}
	return encodePNG(t, turn(r, deg))
}

func encodePNG(t testing.TB, r *raster) []byte {
	t.Helper()
	m := image.NewNRGBA(image.Rect(0, 0, r.w, r.h))
	for i := 0; i < r.w*r.h; i++ {
		copy(m.Pix[4*i:], r.pix[3*i:3*i+3])
		m.Pix[4*i+3] = 255
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sampleFaces returns crops (PNG, 0.5 margin) of the faces of the pinned
// samples.
func sampleFaces(t testing.TB, e *Engine) [][]byte {
	t.Helper()
	var crops [][]byte
	for _, s := range samples {
		path := testenv.Sample(t, s)
		fs, _, _, err := detectFaces(context.Background(), e, readFile(t, path))
		if err != nil {
			t.Fatal(err)
		}
		im := fullDecode(t, path)
		for _, f := range fs {
			crops = append(crops, cropPNG(t, im, f.Box, 0.5, 0))
		}
	}
	return crops
}

func TestNewErrors(t *testing.T) {
	dir := testenv.ModelsDir(t)
	ctx := context.Background()

	_, err := New(ctx, Config{ModelsDir: dir, Model: "NoSuchNet"})
	if err == nil || !strings.Contains(err.Error(), "ArcFace") || faceauth.KindOf(err) != faceauth.KindInvalid {
		t.Fatalf("unknown model: %v, want a KindInvalid error listing ArcFace", err)
	}

	// A models directory with one file missing and one altered.
	tmp := modelsDirWith(t, "libonnxruntime.so.1", "fr_detect.onnx", "fr_feature.onnx", "fr_liveness.onnx")
	_, err = New(ctx, Config{ModelsDir: tmp, Workers: 1})
	var fe *models.FileError
	if !errors.As(err, &fe) || !fe.Missing || fe.Name != "fr_landmark.onnx" {
		t.Fatalf("missing landmark model: %v, want *models.FileError naming fr_landmark.onnx", err)
	}
	data := readFile(t, filepath.Join(dir, "fr_landmark.onnx"))
	data[len(data)/2] ^= 1
	if err := os.WriteFile(filepath.Join(tmp, "fr_landmark.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(ctx, Config{ModelsDir: tmp, Workers: 1})
	if !errors.As(err, &fe) || fe.Missing || fe.Name != "fr_landmark.onnx" {
		t.Fatalf("altered landmark model: %v, want *models.FileError for an altered file", err)
	}
	if strings.Count(err.Error(), ".") > 2 || !strings.Contains(err.Error(), "make models") {
		t.Errorf("error %q should be one sentence that says what to run", err)
	}
}

// An operator's liveness model listed in models.local.json replaces the
// bundled one with its own parameters and threshold. Here it is the
// bundled file under another name, fed the same way, so the scores must
// not change while the threshold does.
// modelsDirWith returns a new models directory holding links to the
// named files of the fetched models.
func modelsDirWith(t *testing.T, names ...string) string {
	t.Helper()
	dir, tmp := testenv.ModelsDir(t), t.TempDir()
	for _, name := range names {
		if err := os.Symlink(filepath.Join(dir, name), filepath.Join(tmp, name)); err != nil {
			t.Fatal(err)
		}
	}
	return tmp
}

func TestOperatorLivenessModel(t *testing.T) {
	dir := testenv.ModelsDir(t)
	ctx := context.Background()
	tmp := modelsDirWith(t, "libonnxruntime.so.1", "fr_detect.onnx", "fr_landmark.onnx", "fr_feature.onnx")
	live := readFile(t, filepath.Join(dir, "fr_liveness.onnx"))
	if err := os.WriteFile(filepath.Join(tmp, "operator_liveness.onnx"), live, 0o644); err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf(`{"files": [{"name": "operator_liveness.onnx", "sha256": "%x"}],
	  "liveness": {"file": "operator_liveness.onnx", "input": "input", "output": "output", "size": 128, "channels": "BGR",
	    "mean": 0, "std": 1, "crop_scale": 2.7, "classes": 3, "live_class": 0, "threshold": 0.5}}`, sha256.Sum256(live))
	if err := os.WriteFile(filepath.Join(tmp, models.LocalManifestName), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	op, err := New(ctx, Config{ModelsDir: tmp, Model: "ArcFace", Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if th := op.Info().LivenessThreshold; th != 0.5 {
		t.Errorf("operator liveness threshold %g, want 0.5", th)
	}
	img := readFile(t, testenv.Sample(t, "sample3.jpg"))
	a, err := op.Analyze(ctx, img, faceauth.Request{Liveness: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := testEngine(t, 1).Analyze(ctx, img, faceauth.Request{Liveness: true})
	if err != nil {
		t.Fatal(err)
	}
	if !a.LivenessChecked || math.Abs(float64(a.Liveness-b.Liveness)) > 1e-6 {
		t.Errorf("operator model's liveness %g, bundled %g: the same file fed the same way must agree", a.Liveness, b.Liveness)
	}
	os.Remove(filepath.Join(tmp, "operator_liveness.onnx"))
	var fe *models.FileError
	if _, err := New(ctx, Config{ModelsDir: tmp, Model: "ArcFace", Workers: 1}); !errors.As(err, &fe) || fe.Name != "operator_liveness.onnx" {
		t.Fatalf("missing operator liveness model: %v", err)
	}
}

// Several Engines live in one process (ONNX Runtime's environment is
// shared), and closing one leaves the others working.
func TestSeveralEngines(t *testing.T) {
	ctx := context.Background()
	img := readFile(t, testenv.Sample(t, "sample1.jpg"))
	a, err := New(ctx, Config{ModelsDir: testenv.ModelsDir(t), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, Config{ModelsDir: testenv.ModelsDir(t), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := a.Analyze(ctx, img, faceauth.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	rb, err := b.Analyze(ctx, img, faceauth.Request{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if s := faceauth.Similarity(ra.Embedding, rb.Embedding); s < 0.99999 {
		t.Fatalf("two engines disagree: similarity %g", s)
	}
}

func TestSamples(t *testing.T) {
	e := testEngine(t, 1)
	ctx := context.Background()
	if e.Info().Model != "ArcFace@87aacdfe" {
		t.Errorf("ModelID = %q", e.Info().Model)
	}
	if th := e.Info().Threshold; !(th > 0 && th < 1) {
		t.Errorf("Threshold = %g", th)
	}
	if th := e.Info().LivenessThreshold; !(th > 0 && th < 1) {
		t.Errorf("LivenessThreshold = %g", th)
	}
	for _, s := range samples {
		t.Run(s, func(t *testing.T) {
			img := readFile(t, testenv.Sample(t, s))
			fs, w, h, err := detectFaces(ctx, e, img)
			if err != nil {
				t.Fatal(err)
			}
			// Group photos of three to six people, 1920 pixels wide.
			if len(fs) < 3 || len(fs) > 6 || w != 1920 || h < 1200 {
				t.Fatalf("Detect: %d faces in %dx%d", len(fs), w, h)
			}
			for i, f := range fs {
				if f.Box.X1 < 0 || f.Box.Y1 < 0 || f.Box.X2 > float32(w) || f.Box.Y2 > float32(h) || f.Box.X2-f.Box.X1 < 100 {
					t.Errorf("face %d box %v outside the %dx%d image or small", i, f.Box, w, h)
				}
				if i > 0 {
					prev := fs[i-1].Box
					if (prev.X2-prev.X1)*(prev.Y2-prev.Y1) < (f.Box.X2-f.Box.X1)*(f.Box.Y2-f.Box.Y1) {
						t.Errorf("faces not sorted by size")
					}
				}
				l := f.Landmarks
				// Upright, perhaps tilted: the mouth below the eyes
				// (within 60 degrees of straight down), left eye left.
				ex, ey := (l[0].X+l[1].X)/2, (l[0].Y+l[1].Y)/2
				mx, my := (l[3].X+l[4].X)/2, (l[3].Y+l[4].Y)/2
				if tilt := math.Atan2(float64(mx-ex), float64(my-ey)) * 180 / math.Pi; math.Abs(tilt) > 60 || l[0].X >= l[1].X || l[3].X >= l[4].X {
					t.Errorf("face %d landmarks not an upright face (tilt %.0f): %v", i, tilt, l)
				}
				for _, p := range l {
					if p.X < f.Box.X1 || p.X > f.Box.X2 || p.Y < f.Box.Y1 || p.Y > f.Box.Y2 {
						t.Errorf("face %d landmark %v outside its box %v", i, p, f.Box)
					}
				}
			}
			a, err := e.Analyze(ctx, img, faceauth.Request{Liveness: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Faces) != len(fs) || a.Selected != 0 || a.Rotation != 0 || a.Model != e.Info().Model || a.Width != w || a.Height != h {
				t.Fatalf("Probe: %d faces, selected %d, rotation %d, model %s, %dx%d", len(a.Faces), a.Selected, a.Rotation, a.Model, a.Width, a.Height)
			}
			var n float64
			for _, x := range a.Embedding {
				n += float64(x) * float64(x)
			}
			if len(a.Embedding) != 512 || math.Abs(n-1) > 1e-4 {
				t.Fatalf("embedding: %d values, squared norm %g", len(a.Embedding), n)
			}
			if !a.LivenessChecked || !(a.Liveness >= 0 && a.Liveness <= 1) {
				t.Fatalf("liveness %v %g", a.LivenessChecked, a.Liveness)
			}
			if q := a.Faces[0].Quality; !(q > 0.5 && q <= 1) {
				t.Errorf("quality of a sharp frontal face = %g", q)
			}
			// Enrolling a group photo is refused: no face dominates.
			_, err = e.Analyze(ctx, img, faceauth.Request{Purpose: faceauth.PurposeEnroll})
			if errCode(err) != CodeSeveralFaces || faceauth.KindOf(err) != faceauth.KindNoFace {
				t.Fatalf("Enroll of a group photo: %v, want several_faces", err)
			}
			if !strings.Contains(err.Error(), "faces") {
				t.Errorf("message %q should say how many faces", err)
			}
		})
	}
}

// A crop of one face enrolls, and matches the same face cut differently
// far above the threshold and the other faces below it.
func TestCropsEnrollAndMatch(t *testing.T) {
	e := testEngine(t, 1)
	ctx := context.Background()
	path := testenv.Sample(t, "sample3.jpg")
	fs, _, _, err := detectFaces(ctx, e, readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	im := fullDecode(t, path)
	var embs [][]float32
	for i, f := range fs {
		a, err := e.Analyze(ctx, cropPNG(t, im, f.Box, 0.5, 0), faceauth.Request{Purpose: faceauth.PurposeEnroll})
		if err != nil {
			t.Fatalf("face %d: %v", i, err)
		}
		b, err := e.Analyze(ctx, cropPNG(t, im, f.Box, 1.2, 0), faceauth.Request{})
		if err != nil {
			t.Fatalf("face %d: %v", i, err)
		}
		if s := faceauth.Similarity(a.Embedding, b.Embedding); s < 0.9 {
			t.Errorf("face %d: two crops of one face score %g", i, s)
		}
		embs = append(embs, a.Embedding)
	}
	for i := range embs {
		for j := range i {
			if s := faceauth.Similarity(embs[i], embs[j]); s >= e.Info().Threshold {
				t.Errorf("faces %d and %d (different people) score %g >= threshold %g", i, j, s, e.Info().Threshold)
			}
		}
	}
}

// rotationCheck probes img turned by 90, 180 and 270 degrees and demands
// either the upright embedding (similarity >= minSim) with the right
// Rotation, or a *faceauth.Error: never a different face silently.
func rotationCheck(t *testing.T, e *Engine, name string, turned func(deg int) []byte, up []float32, minSim float32) (ok, refused int) {
	t.Helper()
	for _, deg := range []int{90, 180, 270} {
		a, err := e.Analyze(context.Background(), turned(deg), faceauth.Request{})
		if err != nil {
			var fe *faceauth.Error
			if !errors.As(err, &fe) || fe.Kind != faceauth.KindNoFace {
				t.Errorf("%s turned %d: untyped or unexpected error %v", name, deg, err)
			}
			refused++
			continue
		}
		// A tilted head can be put upright by two quarter turns (the
		// alignment removes the rest of the tilt), so the rotation may be
		// off by 90 degrees; the embedding may not.
		s := faceauth.Similarity(a.Embedding, up)
		want := (360 - deg) % 360
		if diff := (a.Rotation - want + 360) % 360; s < minSim || diff == 180 {
			t.Errorf("%s turned %d: similarity to upright %.3f, rotation %d (want %d): a wrong embedding returned silently", name, deg, s, a.Rotation, want)
			continue
		}
		ok++
	}
	return ok, refused
}

func TestRotatedSampleFaces(t *testing.T) {
	e := testEngine(t, 1)
	ctx := context.Background()
	var n, ok, refused int
	for _, s := range samples {
		path := testenv.Sample(t, s)
		fs, _, _, err := detectFaces(ctx, e, readFile(t, path))
		if err != nil {
			t.Fatal(err)
		}
		im := fullDecode(t, path)
		for i, f := range fs {
			up, err := e.Analyze(ctx, cropPNG(t, im, f.Box, 0.5, 0), faceauth.Request{})
			if errCode(err) == CodeFaceLowQuality {
				t.Logf("%s face %d: %v", s, i, err)
				continue
			}
			if err != nil || up.Rotation != 0 {
				t.Fatalf("%s face %d upright: %v, rotation %d", s, i, err, up.Rotation)
			}
			o, r := rotationCheck(t, e, s, func(deg int) []byte { return cropPNG(t, im, f.Box, 0.5, deg) }, up.Embedding, 0.9)
			n, ok, refused = n+3, ok+o, refused+r
		}
	}
	t.Logf("%d turned crops: %d recognised upright, %d refused", n, ok, refused)
	if ok < n*9/10 {
		t.Errorf("only %d of %d turned faces were turned upright", ok, n)
	}
}

// Faces of the labelled sets, turned in the pixels.
func TestRotatedSharedFaces(t *testing.T) {
	shared := testenv.SharedFaces(t)
	e := testEngine(t, 1)
	ctx := context.Background()
	var files []string
	for _, set := range []string{"deepface", "celebs_misc", "bbt", "orl_att", "azure_face"} {
		fs := setFiles(t, set)
		step := max(1, len(fs)/12)
		for i := 0; i < len(fs); i += step {
			files = append(files, fs[i])
		}
	}
	var n, ok, refused int
	for _, f := range files {
		r, err := tryDecode(f)
		if err != nil {
			t.Fatal(err)
		}
		up, err := e.Analyze(ctx, encodePNG(t, r), faceauth.Request{})
		if err != nil {
			continue // the set's own failures are tested elsewhere
		}
		if up.Rotation != 0 {
			t.Errorf("%s: upright photo analysed turned by %d", f, up.Rotation)
		}
		o, rf := rotationCheck(t, e, strings.TrimPrefix(f, shared), func(deg int) []byte { return encodePNG(t, turn(r, deg)) }, up.Embedding, 0.8)
		n, ok, refused = n+3, ok+o, refused+rf
	}
	t.Logf("%d turned photos: %d recognised upright, %d refused", n, ok, refused)

	// The robustness set's own pixel-rotated photos of one person.
	dir := filepath.Join(shared, "robustness", "pixel_rotated")
	for _, series := range []string{"inspireface_r", "inspireface_rot_"} {
		up, err := e.Analyze(ctx, readFile(t, filepath.Join(dir, series+"0.jpg")), faceauth.Request{})
		if err != nil {
			t.Fatalf("%s0: %v", series, err)
		}
		for _, deg := range []int{90, 180, 270} {
			a, err := e.Analyze(ctx, readFile(t, filepath.Join(dir, series+strconv.Itoa(deg)+".jpg")), faceauth.Request{})
			if err != nil {
				if errCode(err) == "" {
					t.Errorf("%s%d: untyped error %v", series, deg, err)
				}
				continue
			}
			if s := faceauth.Similarity(a.Embedding, up.Embedding); s < 0.8 {
				t.Errorf("%s%d: similarity %.3f to the upright photo, rotation %d", series, deg, s, a.Rotation)
			}
		}
	}
}

// Every file of the robustness set gives faces or a *faceauth.Error.
func TestRobustness(t *testing.T) {
	dir := filepath.Join(testenv.SharedFaces(t), "robustness")
	e := testEngine(t, 1)
	ctx := context.Background()
	var rows []map[string]string
	rows = append(rows, csvRows(t, filepath.Join(dir, "manifest.csv"))...)
	rows = append(rows, csvRows(t, filepath.Join(dir, "derived_manifest.csv"))...)
	for _, row := range rows {
		img := readFile(t, filepath.Join(dir, row["file"]))
		a, err := e.Analyze(ctx, img, faceauth.Request{Liveness: true})
		if err != nil {
			var fe *faceauth.Error
			if !errors.As(err, &fe) || fe.Kind == faceauth.KindInternal {
				t.Errorf("%s: %v is not a user error", row["file"], err)
			}
			if row["category"] == "broken" && fe.Kind != faceauth.KindBadImage {
				t.Errorf("%s: broken file gives %v", row["file"], err)
			}
			if strings.Count(fe.Msg, ". ") > 0 || !strings.HasSuffix(fe.Msg, ".") {
				t.Errorf("%s: message %q is not one sentence", row["file"], fe.Msg)
			}
			t.Logf("%-50s %-16s %s", row["file"], row["category"], fe.Code)
			continue
		}
		if row["category"] == "broken" {
			t.Errorf("%s: broken file analysed", row["file"])
		}
		if strings.HasPrefix(row["category"], "exif_rotated") && a.Rotation != 0 {
			t.Errorf("%s: EXIF orientation not applied (rotation %d)", row["file"], a.Rotation)
		}
		t.Logf("%-50s %-16s %d faces, rotation %d, quality %.2f", row["file"], row["category"], len(a.Faces), a.Rotation, a.Faces[a.Selected].Quality)
	}
}

// Tight crops, where the face fills the picture, are found.
func TestTightCropsFound(t *testing.T) {
	e := testEngine(t, 1)
	for _, set := range []string{"orl_att", "bbt"} {
		missed := 0
		files := setFiles(t, set)
		for _, f := range files {
			_, err := e.Analyze(context.Background(), readFile(t, f), faceauth.Request{})
			if errCode(err) == CodeNoFace {
				missed++
				t.Errorf("%s: no face", f)
			} else if err != nil && errCode(err) == "" {
				t.Errorf("%s: %v", f, err)
			}
		}
		t.Logf("%s: no_face %d of %d", set, missed, len(files))
	}
}

// Same-person pairs of the DeepFace set score above the shipped threshold
// on average, different-person pairs below, and the two are separated.
func TestDeepFacePairs(t *testing.T) {
	shared := testenv.SharedFaces(t)
	e := testEngine(t, 1)
	dir := filepath.Join(shared, "deepface")
	embs := map[string][]float32{}
	for _, f := range setFiles(t, "deepface") {
		a, err := e.Analyze(context.Background(), readFile(t, f), faceauth.Request{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		embs[filepath.Base(f)] = a.Embedding
	}
	var gen, imp []float64
	for _, row := range csvRows(t, filepath.Join(dir, "pairs.csv")) {
		s := float64(faceauth.Similarity(embs[row["file_x"]], embs[row["file_y"]]))
		if row["same"] == "1" {
			gen = append(gen, s)
		} else {
			imp = append(imp, s)
		}
	}
	th := float64(e.Info().Threshold)
	t.Logf("genuine mean %.3f, impostor mean %.3f, AUC %.4f, threshold %.2f", mean(gen), mean(imp), auc(gen, imp), th)
	if !(mean(gen) > th && mean(imp) < th) {
		t.Errorf("means: genuine %.3f, impostor %.3f around threshold %.2f", mean(gen), mean(imp), th)
	}
	if a := auc(gen, imp); a < 0.99 {
		t.Errorf("AUC %.4f", a)
	}
}

// Concurrent requests on a pool of two workers give the same embeddings
// as one at a time.
func TestConcurrentProbes(t *testing.T) {
	e1 := testEngine(t, 1)
	e2 := testEngine(t, 2)
	ctx := context.Background()
	var crops [][]byte
	var want [][]float32
	for _, c := range sampleFaces(t, e1)[:10] {
		a, err := e1.Analyze(ctx, c, faceauth.Request{})
		if err != nil {
			continue // a face too poor to analyse; refused the same way below
		}
		crops, want = append(crops, c), append(want, a.Embedding)
	}
	if len(crops) < 8 {
		t.Fatalf("only %d of 10 sample faces analysed", len(crops))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(crops))
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, c := range crops {
				a, err := e2.Analyze(ctx, c, faceauth.Request{Liveness: true})
				if err != nil {
					errs <- err
					return
				}
				for k := range a.Embedding {
					if math.Abs(float64(a.Embedding[k]-want[i][k])) > 1e-5 {
						errs <- errors.New("embedding differs under concurrency")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A request waiting for a worker gives up when its context ends.
func TestWaitRespectsContext(t *testing.T) {
	e := testEngine(t, 1)
	w, err := e.pool.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer e.pool.put(w)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.Analyze(ctx, readFile(t, testenv.Sample(t, "sample1.jpg")), faceauth.Request{})
	if !errors.Is(err, context.DeadlineExceeded) || faceauth.KindOf(err) != faceauth.KindUnavailable {
		t.Fatalf("Probe with a busy pool: %v, want a KindUnavailable error wrapping the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to give up", d)
	}
}

func TestBadImages(t *testing.T) {
	e := testEngine(t, 1)
	for _, tc := range []struct {
		name string
		img  []byte
		kind faceauth.Kind
		code string
	}{
		{"empty", nil, faceauth.KindBadImage, "empty_image"},
		{"text", []byte("hello, this is not an image at all"), faceauth.KindBadImage, "unsupported_format"},
		{"grey square", encodePNG(t, &raster{w: 200, h: 200, pix: bytes.Repeat([]byte{128}, 3*200*200)}), faceauth.KindNoFace, CodeNoFace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, call := range []func() error{
				func() error { _, err := e.Analyze(context.Background(), tc.img, faceauth.Request{}); return err },
				func() error {
					_, err := e.Analyze(context.Background(), tc.img, faceauth.Request{Purpose: faceauth.PurposeEnroll})
					return err
				},
			} {
				err := call()
				if faceauth.KindOf(err) != tc.kind || errCode(err) != tc.code {
					t.Fatalf("got %v (code %q), want kind %v code %q", err, errCode(err), tc.kind, tc.code)
				}
			}
		})
	}
}

// The engine runs the bundled models with PRelu rewritten
// (onnxgraph.RewritePReLU); on real faces the rewritten embedder and
// liveness model must answer what the pinned files answer.
func TestRewrittenModelsMatchPinned(t *testing.T) {
	st := newStageBench(t)
	w, p := st.w, &st.e.p
	dir := testenv.ModelsDir(t)
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	pinned := func(file string, in tensorSpec, out tensorSpec) *net {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		n, err := newNet(b, opts, in, out)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.destroy)
		return n
	}
	emb := pinned("fr_feature.onnx", tensorSpec{"input", ort.NewShape(1, 3, 112, 112)}, tensorSpec{"output", ort.NewShape(1, 512)})
	n := int64(p.livenessSize)
	live := pinned("fr_liveness.onnx", tensorSpec{"input", ort.NewShape(1, 3, n, n)}, tensorSpec{"output", ort.NewShape(1, 3)})

	r := st.r
	fs, err := w.attempt(r, newView(r, 0, 0, 0), p, nil)
	if err != nil || len(fs) < 3 {
		t.Fatalf("want several faces in sample1.jpg, got %d: %v", len(fs), err)
	}
	for i := range fs {
		f := &fs[i]
		got := make([]float32, p.embedDims)
		if _, err := w.embed(r, f, p, got); err != nil {
			t.Fatal(err)
		}
		copy(emb.input(), w.emb.input())
		if err := emb.run(); err != nil {
			t.Fatal(err)
		}
		want := append([]float32(nil), emb.output(0)...)
		normalize(want)
		if s := faceauth.Similarity(got, want); s < 0.9999 {
			t.Errorf("face %d: rewritten embedder's cosine to the pinned one %.6f", i, s)
		}

		gotLive, err := w.liveness(r, f, p)
		if err != nil {
			t.Fatal(err)
		}
		copy(live.input(), w.live.input())
		if err := live.run(); err != nil {
			t.Fatal(err)
		}
		var wantLive [3]float32
		copy(wantLive[:], live.output(0))
		softmax(wantLive[:])
		for c := range wantLive {
			if d := math.Abs(float64(gotLive[c] - wantLive[c])); d > 1e-4 {
				t.Errorf("face %d: liveness class %d %.6f rewritten, %.6f pinned", i, c, gotLive[c], wantLive[c])
			}
		}
	}
}
