package face

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models"
	"github.com/xplore/faceauth/models/onnxgraph"
)

// The TF.js reference: chips cut by this engine with dlib's geometry
// from the pinned sample photos (testdata/dlib/*.ppm, written by
// TestWriteDlibChips), and the descriptors that @vladmandic/face-api's own
// FaceRecognitionNet computed from them in Node (testdata/dlib/tfjs.json,
// written by testdata/dlib/reference.mjs; its header says how to run it).
const dlibTestdata = "testdata/dlib"

type tfjsReference struct {
	Package     string               `json:"package"`
	TFJS        string               `json:"tfjs"`
	Backend     string               `json:"backend"`
	Descriptors map[string][]float64 `json:"descriptors"`
}

// TestDlibMatchesTFJS runs the converted dlib model (built at fetch time
// from the TF.js weights, pinned by its digest) on the reference chips,
// fed exactly as the package's FaceRecognitionNet feeds itself (RGB minus
// the mean colour, divided by 255), and requires the TF.js descriptors to
// within cosine 0.9999.
func TestDlibMatchesTFJS(t *testing.T) {
	var ref tfjsReference
	if err := json.Unmarshal(readFile(t, filepath.Join(dlibTestdata, "tfjs.json")), &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Descriptors) < 6 {
		t.Fatalf("the reference holds %d descriptors, want at least 6", len(ref.Descriptors))
	}
	n := dlibNet(t)
	defer n.destroy()
	worst := 1.0
	for name, want := range ref.Descriptors {
		chip := readPPM(t, filepath.Join(dlibTestdata, name))
		in := n.input()
		const plane = 150 * 150
		mean := [3]float64{122.782, 117.001, 104.298}
		for i := 0; i < plane; i++ {
			for c := 0; c < 3; c++ {
				in[c*plane+i] = float32((float64(chip[3*i+c]) - mean[c]) / 255)
			}
		}
		if err := n.run(); err != nil {
			t.Fatal(err)
		}
		got := n.output(0)
		cos := cosine64(got, want)
		worst = min(worst, cos)
		if cos < 0.9999 {
			t.Errorf("%s: cosine %.6f between the ONNX and the TF.js descriptor, want >= 0.9999", name, cos)
		}
	}
	t.Logf("%d chips, worst cosine %.7f (%s, tfjs %s, %s backend)", len(ref.Descriptors), worst, ref.Package, ref.TFJS, ref.Backend)
}

// TestDlibConversionIsPinned rebuilds the dlib model from the fetched
// TF.js weights and requires the digest pinned in the manifest: the
// conversion is deterministic, so a change to the converter that changes
// the model fails here as it would fail `make models`.
func TestDlibConversionIsPinned(t *testing.T) {
	dir := testenv.ModelsDir(t)
	m, err := models.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.Embedder("dlib")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := m.File(e.File)
	var in [][]byte
	for _, src := range f.From {
		data, err := os.ReadFile(filepath.Join(dir, src))
		if err != nil {
			t.Fatalf("%v: run `make models-testdata` (it fetches the TF.js weights the model is built from)", err)
		}
		in = append(in, data)
	}
	out, err := onnxgraph.BuildFaceRecognitionNet(in[0], in[1])
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(out)); got != f.SHA256 {
		t.Fatalf("the converter builds sha256 %s, the manifest pins %s", got, f.SHA256)
	}
}

// TestWriteDlibChips rewrites the reference chips from the pinned sample
// photos; run it only to renew the reference, then rerun reference.mjs:
//
//	FACEAUTH_WRITE_DLIB_CHIPS=1 go test ./models/face -run TestWriteDlibChips
func TestWriteDlibChips(t *testing.T) {
	if os.Getenv("FACEAUTH_WRITE_DLIB_CHIPS") == "" {
		t.Skip("skipping: it renews the committed reference chips; set FACEAUTH_WRITE_DLIB_CHIPS=1 to run it")
	}
	e := testEngine(t, 1)
	m, err := models.Load(testenv.ModelsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := m.Embedder("dlib")
	g, err := newGeometry(d)
	if err != nil {
		t.Fatal(err)
	}
	w := <-e.pool.free
	defer e.pool.put(w)
	buf := make([]float32, 3*150*150)
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("sample%d.jpg", i)
		r := decodeRaster(t, testenv.Sample(t, name))
		fs, err := w.find(r, &e.p)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < len(fs) && j < 1; j++ {
			sim, _, ok := g.fit(&fs[j].lm)
			if !ok || fs[j].size(&e.p) < 30 {
				continue
			}
			r.sample(sim.invert().then(fs[j].v.toSrc), 150, 150, maxTaps, encoding{norm: 1}, buf)
			var ppm bytes.Buffer
			fmt.Fprintf(&ppm, "P6\n150 150\n255\n")
			const plane = 150 * 150
			for k := 0; k < plane; k++ {
				for c := 0; c < 3; c++ {
					ppm.WriteByte(byte(min(max(math.Round(float64(buf[c*plane+k])), 0), 255)))
				}
			}
			out := filepath.Join(dlibTestdata, fmt.Sprintf("sample%d_face%d.ppm", i, j))
			if err := os.WriteFile(out, ppm.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", out)
		}
	}
}

// dlibNet opens the fetched dlib model in ONNX Runtime.
func dlibNet(t *testing.T) *net {
	t.Helper()
	dir := testenv.ModelsDir(t)
	m, err := models.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.Embedder("dlib")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(dir, e.File, m.Runtime); err != nil {
		t.Fatal(err)
	}
	if err := initRuntime(filepath.Join(dir, m.Runtime)); err != nil {
		t.Fatal(err)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	n, err := newNet(readFile(t, filepath.Join(dir, e.File)), opts,
		tensorSpec{e.Input, ort.NewShape(1, 3, 150, 150)}, tensorSpec{e.Output, ort.NewShape(1, 128)})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readPPM reads a binary 150x150 PPM (P6, maxval 255) as RGB bytes.
func readPPM(t *testing.T, path string) []byte {
	t.Helper()
	data := readFile(t, path)
	const header = "P6\n150 150\n255\n"
	if !bytes.HasPrefix(data, []byte(header)) || len(data) != len(header)+3*150*150 {
		t.Fatalf("%s is not a 150x150 binary PPM", path)
	}
	return data[len(header):]
}

func cosine64(a []float32, b []float64) float64 {
	if len(a) != len(b) {
		return math.NaN()
	}
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * b[i]
		aa += float64(a[i]) * float64(a[i])
		bb += b[i] * b[i]
	}
	return ab / math.Sqrt(aa*bb)
}
