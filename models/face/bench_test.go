package face

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models/photo"

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

func newStageBench(b testing.TB) *stageBench {
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
		if err := s.w.landmarks(s.r, s.f.v, square(s.f.det), false, &lm); err != nil {
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
	start := cpuTime(b)
	for b.Loop() {
		if err := s.w.emb.run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/1e6/float64(b.N), "cpu-ms/op")
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

// resized renders r at w x h (area sampling) as a JPEG of quality 90.
func resizedJPEG(b testing.TB, r *raster, x1, y1, x2, y2 float64, w, h int) []byte {
	out := make([]float32, 3*w*h)
	r.sample(rectMap(x1, y1, x2, y2, w, h), w, h, maxTaps, encoding{norm: 1}, out)
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	n := w * h
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			m.Pix[4*i+c] = uint8(min(max(out[c*n+i]+0.5, 0), 255))
		}
		m.Pix[4*i+3] = 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func benchProbe(b *testing.B, img []byte) {
	e := testEngine(b, 1)
	ctx := context.Background()
	if _, err := e.Analyze(ctx, img, faceauth.Request{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, err := e.Analyze(ctx, img, faceauth.Request{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProbe640JPEG is decode to embedding for a 640x480 JPEG (sample1
// scaled down).
func BenchmarkProbe640JPEG(b *testing.B) {
	r := decodeRaster(b, testenv.Sample(b, "sample1.jpg"))
	// sample1 is 3:2; take its 4:3 middle.
	cut := float64(r.w) - float64(r.h)*4/3
	benchProbe(b, resizedJPEG(b, r, cut/2, 0, float64(r.w)-cut/2, float64(r.h), 640, 480))
}

// BenchmarkProbe12MPJPEG is decode to embedding for a 4000x3000 JPEG
// (sample1 scaled up at bench time).
func BenchmarkProbe12MPJPEG(b *testing.B) {
	im, err := photo.Decode(readFile(b, testenv.Sample(b, "sample1.jpg")), photo.Options{TargetSide: -1})
	if err != nil {
		b.Fatal(err)
	}
	r := &raster{w: im.W, h: im.H, pix: im.Pix}
	cut := float64(r.w) - float64(r.h)*4/3
	benchProbe(b, resizedJPEG(b, r, cut/2, 0, float64(r.w)-cut/2, float64(r.h), 4000, 3000))
}

// BenchmarkEmbeddings250 probes 250x250 JPEG face photos (every face of
// the pinned samples, cut with its surroundings as in LFW: the face box is
// about 40% of the width) and reports embeddings per second.
func BenchmarkEmbeddings250(b *testing.B) {
	e := testEngine(b, 1)
	ctx := context.Background()
	photos := faces250(b, e)
	refused := 0
	for _, p := range photos {
		if _, err := e.Analyze(ctx, p, faceauth.Request{}); err != nil {
			refused++
		}
	}
	i := 0
	for b.Loop() {
		e.Analyze(ctx, photos[i%len(photos)], faceauth.Request{})
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "embeddings/s")
	b.ReportMetric(float64(refused), "refused")
}

// faces250 cuts every face of the pinned sample photos into a 250x250
// JPEG, the face's box 1/2.5 of the side, as a face photo would be.
func faces250(b testing.TB, e *Engine) [][]byte {
	ctx := context.Background()
	var photos [][]byte
	for _, s := range samples {
		path := testenv.Sample(b, s)
		fs, _, _, err := detectFaces(ctx, e, readFile(b, path))
		if err != nil {
			b.Fatal(err)
		}
		im, err := photo.Decode(readFile(b, path), photo.Options{TargetSide: -1})
		if err != nil {
			b.Fatal(err)
		}
		r := &raster{w: im.W, h: im.H, pix: im.Pix}
		for _, f := range fs {
			cx, cy := float64(f.Box.X1+f.Box.X2)/2, float64(f.Box.Y1+f.Box.Y2)/2
			side := 2.5 * float64(f.Box.X2-f.Box.X1)
			photos = append(photos, resizedJPEG(b, r, cx-side/2, cy-side/2, cx+side/2, cy+side/2, 250, 250))
		}
	}
	return photos
}

// BenchmarkSample is sample's three cases in a 640x480 probe whose face
// is a third of the frame wide (the edge's BenchmarkVerifyHTTP): the
// detector's colour 2x2 halving to 320x240, the landmark model's grey
// 64x64 crop of a 256-pixel box (k = 4, three runs per probe) and the
// embedder's turned 112x112 warp of a face with eyes 85 pixels apart
// (k = 3). Pure Go: run it with -cpu 1; cpu-us/op is the process's CPU
// time per call, which a loaded machine inflates less than wall time.
func BenchmarkSample(b *testing.B) {
	r := randomRaster(640, 480, 1)
	lmBox := rectMap(190, 130, 446, 386, landmarkSize, landmarkSize)
	warp := simFrom(2.4, 0.12, 0, 0)
	warp.c, warp.f = 320-(warp.a*56+warp.b*56), 250-(warp.d*56+warp.e*56)
	for _, c := range []struct {
		name         string
		m            affine
		dw, dh, taps int
		enc          encoding
	}{
		{"detect", rectMap(0, 0, 640, 480, detW, detH), detW, detH, detTaps, encoding{bgr: true, mean: uniform(127), norm: 1.0 / 128}},
		{"landmarks", lmBox, landmarkSize, landmarkSize, maxTaps, encoding{grey: true, norm: 1.0 / 256}},
		{"embed", warp, 112, 112, maxTaps, encoding{bgr: true, mean: uniform(127.5), norm: 1.0 / 127.5}},
	} {
		b.Run(c.name, func(b *testing.B) {
			dst := make([]float32, 3*c.dw*c.dh)
			start := cpuTime(b)
			for b.Loop() {
				r.sample(c.m, c.dw, c.dh, c.taps, c.enc, dst)
			}
			b.ReportMetric(float64(cpuTime(b)-start)/1e3/float64(b.N), "cpu-us/op")
		})
	}
}
