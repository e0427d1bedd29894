package face

import (
	"context"
	"testing"

	"github.com/xplore/faceauth/internal/testenv"
)

// stageBench holds a worker and the first face of sample1.jpg, for the
// per-stage benchmarks. Run them on one core: go test -bench . -cpu 1.
type stageBench struct {
	e *Engine
	w *worker
	r *raster
	f found
}

func newStageBench(b *testing.B) *stageBench {
	e := testEngine(b, 1)
	w, err := e.pool.get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.pool.put(w) })
	r := decodeRaster(b, testenv.Sample(b, "sample1.jpg"))
	fs, err := w.attempt(r, newView(r, 0, 0, 0), &e.p, nil)
	if err != nil || len(fs) == 0 {
		b.Fatalf("no face in sample1.jpg: %v", err)
	}
	return &stageBench{e: e, w: w, r: r, f: fs[0]}
}

// BenchmarkDetect is one detector pass over a 1920x1280 photo: resampling
// into the 320x240 input, inference, decoding and NMS.
func BenchmarkDetect(b *testing.B) {
	s := newStageBench(b)
	v := newView(s.r, 0, 0, 0)
	for b.Loop() {
		if _, err := s.w.detect(s.r, v, &s.e.p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLandmarks is the 64x64 crop and the 68-point model for one face.
func BenchmarkLandmarks(b *testing.B) {
	s := newStageBench(b)
	var lm [landmarkCount]pt
	for b.Loop() {
		if err := s.w.landmarks(s.r, s.f.v, square(s.f.det), &lm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAlign is the 5-point similarity fit and the 112x112 warp.
func BenchmarkAlign(b *testing.B) {
	s := newStageBench(b)
	p := &s.e.p
	buf := make([]float32, 3*p.embedSize*p.embedSize)
	for b.Loop() {
		five := fivePoints(&s.f.lm)
		sim, _, _ := similarity(five[:], p.embedTempl[:])
		s.r.sample(sim.invert().then(s.f.v.toSrc), p.embedSize, p.embedSize, p.embedTaps,
			encoding{bgr: p.embedBGR, mean: p.embedMean, norm: p.embedNorm}, buf)
	}
}

// BenchmarkEmbed is the embedding model alone on a prepared input.
func BenchmarkEmbed(b *testing.B) {
	s := newStageBench(b)
	p := &s.e.p
	s.r.sample(s.f.sim.invert().then(s.f.v.toSrc), p.embedSize, p.embedSize, p.embedTaps,
		encoding{bgr: p.embedBGR, mean: p.embedMean, norm: p.embedNorm}, s.w.emb.input())
	for b.Loop() {
		if err := s.w.emb.run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLiveness is the 128x128 context crop and the liveness model.
func BenchmarkLiveness(b *testing.B) {
	s := newStageBench(b)
	for b.Loop() {
		if _, err := s.w.liveness(s.r, &s.f, &s.e.p); err != nil {
			b.Fatal(err)
		}
	}
}
