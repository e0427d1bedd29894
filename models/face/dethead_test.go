package face

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models"
)

// The cut detector with its decoding in Go must find the anchors the whole
// graph finds, with the same scores and boxes up to float32 rounding (the
// graph's exp and softmax are ONNX Runtime's own approximations), on the
// pinned sample photos as the engine frames them (plain, with the grey
// border, turned a quarter) and at a threshold low enough to compare
// hundreds of anchors per image.
func TestDetectorTailInGoMatchesGraph(t *testing.T) {
	e := testEngine(t, 1)
	dir := testenv.ModelsDir(t)
	m, err := models.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(filepath.Join(dir, m.Detector))
	if err != nil {
		t.Fatal(err)
	}
	cut, dec, err := cutDetector(whole)
	if err != nil {
		t.Fatal(err)
	}
	if len(dec.heads) != 4 || len(dec.priors) != 4*detAnchors {
		t.Fatalf("%d heads, %d priors; want 4 heads and %d anchors", len(dec.heads), len(dec.priors)/4, detAnchors)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	in := tensorSpec{"input", ort.NewShape(1, 3, detH, detW)}
	ref, err := newNet(whole, opts, in,
		tensorSpec{"scores", ort.NewShape(1, detAnchors, 2)},
		tensorSpec{"boxes", ort.NewShape(1, detAnchors, 4)})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.destroy()
	got, err := newNet(cut, opts, in, dec.outputs()...)
	if err != nil {
		t.Fatal(err)
	}
	defer got.destroy()

	const thresh = 0.2 // lower than the shipped 0.65, to compare more anchors
	compared, perHead := 0, make([]int, 4)
	for _, s := range samples {
		r := decodeRaster(t, testenv.Sample(t, s))
		b := e.p.borderFrac * float64(max(r.w, r.h))
		var maps []affine
		for _, v := range []view{newView(r, 0, 0, 0), newView(r, 0, b, b), newView(r, 90, 0, 0)} {
			maps = append(maps, rectMap(0, 0, v.w, v.h, detW, detH).then(v.toSrc))
		}
		// Each face filling most of the frame, for the coarsest head.
		faces, w, _, err := detectFaces(t.Context(), e, readFile(t, testenv.Sample(t, s)))
		if err != nil {
			t.Fatal(err)
		}
		k := float64(r.w) / float64(w)
		for _, f := range faces {
			cx, cy := k*float64(f.Box.X1+f.Box.X2)/2, k*float64(f.Box.Y1+f.Box.Y2)/2
			side := 1.3 * k * float64(f.Box.Y2-f.Box.Y1)
			maps = append(maps, rectMap(cx-side*2/3, cy-side/2, cx+side*2/3, cy+side/2, detW, detH))
		}
		for _, mp := range maps {
			r.sample(mp, detW, detH, detTaps, encoding{bgr: e.p.detectBGR, mean: uniform(127), norm: 1.0 / 128}, ref.input())
			copy(got.input(), ref.input())
			if err := ref.run(); err != nil {
				t.Fatal(err)
			}
			if err := got.run(); err != nil {
				t.Fatal(err)
			}
			var want []box
			scores, coords := ref.output(0), ref.output(1)
			for i := 0; i < detAnchors; i++ {
				if sc := scores[2*i+1]; sc >= thresh {
					c := coords[4*i:]
					want = append(want, box{float64(c[0]), float64(c[1]), float64(c[2]), float64(c[3]), sc})
				}
			}
			have := dec.candidates(got.output, thresh, nil)
			if len(have) != len(want) {
				t.Fatalf("%s map %+v: %d anchors pass in Go, %d in the graph", s, mp, len(have), len(want))
			}
			for i := range want {
				g, w := have[i], want[i]
				if (g.score == 1) != (w.score == 1) || math.Abs(float64(g.score-w.score)) > 1e-6 ||
					math.Abs(g.x1-w.x1) > 1e-6 || math.Abs(g.y1-w.y1) > 1e-6 ||
					math.Abs(g.x2-w.x2) > 1e-6 || math.Abs(g.y2-w.y2) > 1e-6 {
					t.Fatalf("%s map %+v anchor %d: Go %+v, graph %+v", s, mp, i, g, w)
				}
			}
			compared += len(want)
			for _, b := range want {
				// Attribute each anchor to a head by its box size, roughly.
				perHead[min(int(math.Log2(max(b.h()*detH/16, 1))), 3)]++
			}
		}
	}
	if compared < 500 {
		t.Fatalf("only %d anchors compared", compared)
	}
	t.Logf("%d anchors compared, by box height below 32, 32 to 64, 64 to 128, 128+ px: %v", compared, perHead)
}

// A graph that is not the expected detector is refused with a sentence,
// not cut blindly.
func TestCutDetectorRefusesOtherGraphs(t *testing.T) {
	dir := testenv.ModelsDir(t)
	m, err := models.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := os.ReadFile(filepath.Join(dir, m.Landmarker))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cutDetector(lm); err == nil {
		t.Fatal("the landmark model was accepted as a detector")
	}
	if _, _, err := cutDetector([]byte("not a model")); err == nil {
		t.Fatal("garbage was accepted as a detector")
	}
}
