package face

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// simFrom builds the similarity x -> s*R(theta)*x + t.
func simFrom(s, theta, tx, ty float64) affine {
	c, n := s*math.Cos(theta), s*math.Sin(theta)
	return affine{a: c, b: -n, c: tx, d: n, e: c, f: ty}
}

func TestSimilarityRecoversKnownTransforms(t *testing.T) {
	src := arcFaceTemplate[:]
	for _, tc := range []struct {
		name             string
		s, theta, tx, ty float64
	}{
		{"identity", 1, 0, 0, 0},
		{"shift", 1, 0, 17.5, -3.25},
		{"scale down", 0.25, 0, 4, 9},
		{"scale up", 6.5, 0, -120, 40},
		{"small roll", 1.3, 0.2, 5, 5},
		{"quarter turn", 2, math.Pi / 2, 300, -20},
		{"upside down", 0.8, math.Pi, 50, 60},
		{"three quarters", 1.1, -math.Pi / 2, 0, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := simFrom(tc.s, tc.theta, tc.tx, tc.ty)
			dst := make([]pt, len(src))
			for i, p := range src {
				x, y := want.apply(p.x, p.y)
				dst[i] = pt{x, y}
			}
			got, rms, ok := similarity(src, dst)
			if !ok {
				t.Fatal("similarity failed on good points")
			}
			for _, v := range [][2]float64{{got.a, want.a}, {got.b, want.b}, {got.c, want.c}, {got.d, want.d}, {got.e, want.e}, {got.f, want.f}} {
				if !near(v[0], v[1], 1e-9*max(1, math.Abs(v[1]))) {
					t.Fatalf("got %+v, want %+v", got, want)
				}
			}
			if rms > 1e-9 {
				t.Errorf("rms %g for an exact transform", rms)
			}
		})
	}
}

// Mirrored points have no exact proper similarity: the fit must still be
// a rotation with uniform scale (never a reflection) and no other proper
// similarity may fit better.
func TestSimilarityReflection(t *testing.T) {
	src := arcFaceTemplate[:]
	dst := make([]pt, len(src))
	for i, p := range src {
		dst[i] = pt{200 - 1.5*p.x, 10 + 1.5*p.y} // mirrored left-right, scaled
	}
	got, rms, ok := similarity(src, dst)
	if !ok {
		t.Fatal("similarity failed")
	}
	if det := got.a*got.e - got.b*got.d; det <= 0 {
		t.Fatalf("determinant %g: the fit reflects", det)
	}
	if !near(got.a, got.e, 1e-12) || !near(got.b, -got.d, 1e-12) {
		t.Fatalf("not a similarity: %+v", got)
	}
	if rms < 1 {
		t.Fatalf("rms %g: a mirrored face cannot be fitted exactly", rms)
	}
	// Brute force over rotation and scale, translation fitted: nothing
	// beats the closed form.
	cost := func(m affine) float64 {
		var s float64
		for i, p := range src {
			x, y := m.apply(p.x, p.y)
			s += (x-dst[i].x)*(x-dst[i].x) + (y-dst[i].y)*(y-dst[i].y)
		}
		return math.Sqrt(s / float64(len(src)))
	}
	if c := cost(got); !near(c, rms, 1e-9) {
		t.Fatalf("reported rms %g, recomputed %g", rms, c)
	}
	for th := -math.Pi; th < math.Pi; th += 0.01 {
		for s := 0.1; s < 3; s += 0.05 {
			m := simFrom(s, th, 0, 0)
			// best translation for this rotation and scale
			var mx, my float64
			for i, p := range src {
				x, y := m.apply(p.x, p.y)
				mx += dst[i].x - x
				my += dst[i].y - y
			}
			m.c, m.f = mx/float64(len(src)), my/float64(len(src))
			if cost(m) < rms-1e-9 {
				t.Fatalf("rotation %.2f scale %.2f fits better (%g) than the closed form (%g)", th, s, cost(m), rms)
			}
		}
	}
}

func TestSimilarityNoisyAndDegenerate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	want := simFrom(0.4, 0.1, 10, 20)
	src := arcFaceTemplate[:]
	dst := make([]pt, len(src))
	for i, p := range src {
		x, y := want.apply(p.x, p.y)
		dst[i] = pt{x + rng.NormFloat64()*0.01, y + rng.NormFloat64()*0.01}
	}
	got, _, ok := similarity(src, dst)
	if !ok || !near(got.angle(), 0.1*180/math.Pi, 0.5) || !near(math.Hypot(got.a, got.d), 0.4, 0.01) {
		t.Fatalf("noisy fit %+v (angle %.2f)", got, got.angle())
	}
	same := []pt{{5, 5}, {5, 5}, {5, 5}, {5, 5}, {5, 5}}
	if _, _, ok := similarity(same, src); ok {
		t.Fatal("coincident points must not give a transform")
	}
}

func TestAffineInvertThen(t *testing.T) {
	m := affine{a: 2, b: 0.5, c: 3, d: -1, e: 1.5, f: -7}
	id := m.then(m.invert())
	for _, p := range []pt{{0, 0}, {10, -4}, {123.5, 77.25}} {
		x, y := id.apply(p.x, p.y)
		if !near(x, p.x, 1e-9) || !near(y, p.y, 1e-9) {
			t.Fatalf("m then inverse maps %v to (%g, %g)", p, x, y)
		}
	}
	n := affine{a: 1, c: 5, e: 2}
	x1, y1 := m.then(n).apply(3, 4)
	mx, my := m.apply(3, 4)
	x2, y2 := n.apply(mx, my)
	if !near(x1, x2, 1e-12) || !near(y1, y2, 1e-12) {
		t.Fatal("then does not apply m first")
	}
}

func TestRotationMapsCorners(t *testing.T) {
	// A 4x2 image: the point near its top-left corner goes to the
	// top-right after a clockwise quarter turn, and so on.
	const w, h = 4, 2
	for _, tc := range []struct {
		deg    int
		vx, vy float64 // view point
		sx, sy float64 // raster point
	}{
		{0, 0.5, 0.5, 0.5, 0.5},
		{90, 1.5, 0.5, 0.5, 0.5}, // view is 2x4; raster top-left at view top-right
		{180, 3.5, 1.5, 0.5, 0.5},
		{270, 0.5, 3.5, 0.5, 0.5},
		{90, 0.5, 3.5, 3.5, 1.5},
	} {
		x, y := rotation(tc.deg, w, h).apply(tc.vx, tc.vy)
		if !near(x, tc.sx, 1e-12) || !near(y, tc.sy, 1e-12) {
			t.Errorf("turn %d: view (%g, %g) -> (%g, %g), want (%g, %g)", tc.deg, tc.vx, tc.vy, x, y, tc.sx, tc.sy)
		}
	}
}

func randomRaster(w, h int, seed uint64) *raster {
	rng := rand.New(rand.NewPCG(seed, 7))
	r := &raster{w: w, h: h, pix: make([]byte, 3*w*h)}
	for i := range r.pix {
		r.pix[i] = byte(rng.IntN(256))
	}
	return r
}

// Sampling a view turned by 90, 180 or 270 degrees at 1:1 must give
// exactly the pixels of the image turned pixel by pixel.
func TestSampleTurnsExactly(t *testing.T) {
	r := randomRaster(7, 5, 1)
	for _, deg := range []int{0, 90, 180, 270} {
		want := turn(r, deg)
		v := newView(r, deg, 0, 0)
		m := rectMap(0, 0, v.w, v.h, want.w, want.h).then(v.toSrc)
		got := make([]float32, 3*want.w*want.h)
		r.sample(m, want.w, want.h, maxTaps, encoding{norm: 1}, got)
		n := want.w * want.h
		for i := 0; i < n; i++ {
			for c := 0; c < 3; c++ {
				if g, w := got[c*n+i], float32(want.pix[3*i+c]); !near(float64(g), float64(w), 1e-3) {
					t.Fatalf("turn %d pixel %d channel %d: got %g, want %g", deg, i, c, g, w)
				}
			}
		}
	}
}

func TestSampleEncodingAndFill(t *testing.T) {
	r := &raster{w: 2, h: 1, pix: []byte{10, 20, 30, 40, 50, 60}}
	out := make([]float32, 3*4)
	// Destination 4x1 over x in [-1, 3): fill, pixel 0, pixel 1, fill.
	r.sample(rectMap(-1, 0, 3, 1, 4, 1), 4, 1, 1, encoding{bgr: true, mean: uniform(127), norm: 1.0 / 128}, out)
	enc := func(v float64) float32 { return float32((v - 127) / 128) }
	want := []float32{
		enc(fillValue), enc(30), enc(60), enc(fillValue), // B plane first
		enc(fillValue), enc(20), enc(50), enc(fillValue),
		enc(fillValue), enc(10), enc(40), enc(fillValue),
	}
	for i := range want {
		if !near(float64(out[i]), float64(want[i]), 1e-6) {
			t.Fatalf("out[%d] = %g, want %g (all %v)", i, out[i], want[i], out)
		}
	}
	grey := make([]float32, 1)
	r.sample(rectMap(0, 0, 1, 1, 1, 1), 1, 1, 1, encoding{grey: true, norm: 1.0 / 256}, grey)
	if w := (0.299*10 + 0.587*20 + 0.114*30) / 256; !near(float64(grey[0]), w, 1e-6) {
		t.Fatalf("grey %g, want %g", grey[0], w)
	}
}

// Shrinking averages: the box paths agree with each other and with the
// mean of the pixels they cover.
func TestSampleShrinkAverages(t *testing.T) {
	r := randomRaster(64, 48, 3)
	const dw, dh = 16, 12 // factor 4: each output averages a 4x4 block
	axes := make([]float32, 3*dw*dh)
	r.sample(rectMap(0, 0, 64, 48, dw, dh), dw, dh, 4, encoding{norm: 1}, axes)
	// The same map with a negligible shear takes the general path.
	m := rectMap(0, 0, 64, 48, dw, dh)
	m.b = 1e-9
	general := make([]float32, 3*dw*dh)
	r.sample(m, dw, dh, 4, encoding{norm: 1}, general)
	n := dw * dh
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			var s float64
			for j := 0; j < 4; j++ {
				for i := 0; i < 4; i++ {
					s += float64(r.pix[3*((4*y+j)*64+4*x+i)])
				}
			}
			o := y*dw + x
			if !near(float64(axes[o]), s/16, 1e-3) || !near(float64(general[o]), s/16, 1e-3) {
				t.Fatalf("(%d,%d): axes %g general %g, want %g", x, y, axes[o], general[o], s/16)
			}
		}
	}
	_ = n
}

// refBox is the k x k box filter of sample written out plainly for one
// destination pixel: each tap's source point through m in float64, the
// pixel it falls in or fillValue outside, the integer sums scaled by
// 1/(k*k) in float32. The fast paths must reproduce it bit for bit.
func refBox(r *raster, m affine, x, y, k int) [3]float32 {
	var s [3]int32
	for j := 0; j < k; j++ {
		for i := 0; i < k; i++ {
			u, v := m.apply(float64(x)+(float64(i)+0.5)/float64(k), float64(y)+(float64(j)+0.5)/float64(k))
			if !(u >= 0 && u < float64(r.w) && v >= 0 && v < float64(r.h)) {
				s[0], s[1], s[2] = s[0]+fillValue, s[1]+fillValue, s[2]+fillValue
				continue
			}
			o := 3 * (int(v)*r.w + int(u))
			for c := range s {
				s[c] += int32(r.pix[o+c])
			}
		}
	}
	inv := 1 / float32(k*k)
	return [3]float32{float32(s[0]) * inv, float32(s[1]) * inv, float32(s[2]) * inv}
}

// The 2x2 box filter of axis-aligned maps (the detector's input: a
// 640x480 frame halved, crops partly outside the image, turned views) has
// a row-at-a-time fast path for colour encodings; it must give exactly
// what the plain filter gives, in every channel order and normalisation.
func TestSampleBox2MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	encs := []encoding{
		{norm: 1},
		{bgr: true, mean: uniform(127), norm: 1.0 / 128},
		{mean: [3]float32{122.782, 117.001, 104.298}, norm: 1.0 / 256},
	}
	for it := 0; it < 400; it++ {
		w, h := 1+rng.IntN(60), 1+rng.IntN(60)
		r := randomRaster(w, h, uint64(it))
		dw, dh := 1+rng.IntN(40), 1+rng.IntN(40)
		// Scales from 1.2 to 2.7 source pixels per destination pixel (k = 2),
		// starting up to 30% outside the image; every third map an exact
		// halving, the detector's case.
		sw, sh := (1.2+1.5*rng.Float64())*float64(dw), (1.2+1.5*rng.Float64())*float64(dh)
		x1, y1 := (rng.Float64()-0.5)*0.6*float64(w), (rng.Float64()-0.5)*0.6*float64(h)
		if it%3 == 0 {
			sw, sh, x1, y1 = 2*float64(dw), 2*float64(dh), float64(rng.IntN(3)), float64(rng.IntN(3))
		}
		m := rectMap(x1, y1, x1+sw, y1+sh, dw, dh).then(rotation(90*rng.IntN(4), w, h))
		if it%5 == 1 {
			m = affine{a: -1, c: float64(dw)}.then(m) // mirrored
		}
		enc := encs[it%len(encs)]
		got := make([]float32, 3*dw*dh)
		r.sample(m, dw, dh, 2, enc, got)
		want := make([]float32, 3*dw*dh)
		ref := newPlanes(enc, want, dw*dh)
		for y := 0; y < dh; y++ {
			for x := 0; x < dw; x++ {
				c := refBox(r, m, x, y, 2)
				ref.set(y*dw+x, c[0], c[1], c[2])
			}
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("map %d (%dx%d from %dx%d, %+v): value %d is %g, want %g", it, dw, dh, w, h, m, i, got[i], want[i])
			}
		}
	}
}

// The axis-aligned box filter (crops, resizes, quarter turns) has
// written-out paths for k = 3 and 4 (the landmark model's crop of a mid-
// sized or large face); every k must give exactly what the plain filter
// gives, grey and colour, inside the image, across its edges, turned and
// mirrored.
func TestSampleBoxAxesMatchesReference(t *testing.T) {
	encs := []encoding{
		{grey: true, norm: 1.0 / 256},
		{norm: 1},
		{bgr: true, mean: uniform(127.5), norm: 1.0 / 127.5},
	}
	for _, tc := range []struct {
		name    string
		k       int
		outside float64 // how far the crop may start outside the image, as a fraction of its size
	}{
		{"k=2 inside", 2, 0},
		{"k=3 inside", 3, 0},
		{"k=4 inside", 4, 0},
		{"k=3 across edges", 3, 0.3},
		{"k=4 across edges", 4, 0.3},
		{"k=4 mostly outside", 4, 1.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.k), uint64(10*tc.outside)))
			for it := 0; it < 60; it++ {
				w, h := 1+rng.IntN(120), 1+rng.IntN(120)
				r := randomRaster(w, h, uint64(it))
				dw, dh := 1+rng.IntN(30), 1+rng.IntN(30)
				// Scales that make sample choose tc.k taps.
				sw := (float64(tc.k) - 0.9 + 0.8*rng.Float64()) * float64(dw)
				sh := (float64(tc.k) - 0.9 + 0.8*rng.Float64()) * float64(dh)
				x1 := (rng.Float64() - 0.5) * 2 * tc.outside * float64(w)
				y1 := (rng.Float64() - 0.5) * 2 * tc.outside * float64(h)
				m := rectMap(x1, y1, x1+sw, y1+sh, dw, dh).then(rotation(90*rng.IntN(4), w, h))
				if it%3 == 1 {
					m = affine{a: -1, c: float64(dw)}.then(m) // mirrored, as the landmark model's flip
				}
				if k := int(math.Ceil(m.scale() - 0.05)); k != tc.k {
					t.Fatalf("map %d: %d taps, want %d", it, k, tc.k)
				}
				enc := encs[it%len(encs)]
				got := make([]float32, 3*dw*dh)
				r.sample(m, dw, dh, maxTaps, enc, got)
				want := make([]float32, 3*dw*dh)
				ref := newPlanes(enc, want, dw*dh)
				for y := 0; y < dh; y++ {
					for x := 0; x < dw; x++ {
						c := refBox(r, m, x, y, tc.k)
						ref.set(y*dw+x, c[0], c[1], c[2])
					}
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("map %d (%dx%d from %dx%d, %+v): value %d is %g, want %g", it, dw, dh, w, h, m, i, got[i], want[i])
					}
				}
			}
		})
	}
}

// An exact halving (the detector's input from a 640-pixel-wide frame, and
// the middle of a bordered view) is done eight columns at a time by
// halveRow (AVX2); with the Go loop for the columns around it, every
// value must be exactly the plain filter's, for every encoding (per-
// channel means and both channel orders) and run length.
func TestSampleHalvingMatchesReference(t *testing.T) {
	encs := []encoding{
		{bgr: true, mean: uniform(127), norm: 1.0 / 128}, // the detector's
		{mean: [3]float32{122.782, 117.001, 104.298}, norm: 1.0 / 256},
		{bgr: true, mean: [3]float32{0.5, 200, 33.3}, norm: 3},
		{norm: 1},
	}
	for _, tc := range []struct {
		name           string
		w, h           int
		x1, y1, x2, y2 float64 // the source rectangle
		dw, dh         int
	}{
		{"640x480 frame", 640, 480, 0, 0, 640, 480, detW, detH},
		{"bordered 560x420 view", 560, 420, -40, -40, 600, 460, detW, detH},
		{"width not a multiple of 16", 646, 20, 0, 0, 646, 20, 323, 10},
		{"from an odd pixel", 90, 80, 1, 3, 75, 77, 37, 37},
		{"shorter than eight", 14, 14, 0, 0, 14, 14, 7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := randomRaster(tc.w, tc.h, uint64(tc.dw))
			m := rectMap(tc.x1, tc.y1, tc.x2, tc.y2, tc.dw, tc.dh)
			for _, enc := range encs {
				got := make([]float32, 3*tc.dw*tc.dh)
				r.sample(m, tc.dw, tc.dh, detTaps, enc, got)
				want := make([]float32, 3*tc.dw*tc.dh)
				ref := newPlanes(enc, want, tc.dw*tc.dh)
				for y := 0; y < tc.dh; y++ {
					for x := 0; x < tc.dw; x++ {
						c := refBox(r, m, x, y, 2)
						ref.set(y*tc.dw+x, c[0], c[1], c[2])
					}
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%+v: value %d (plane %d, pixel %d) is %g, want %g", enc, i, i/(tc.dw*tc.dh), i%(tc.dw*tc.dh), got[i], want[i])
					}
				}
			}
		})
	}
	// Whether the vectorised path ran at all on this machine.
	p := make([]float32, 8)
	if n := halveRow(make([]byte, 48), make([]byte, 48), p, p, p, &[3]float32{}, 1); n == 0 {
		t.Log("this CPU has no AVX2: only the Go loop was compared")
	}
}

// refBoxGeneral is sample's k x k box filter for any affine map written
// out plainly for one destination pixel, in float32 as the general path
// computes it: each tap's point (a*x + b*y + c, d*x + e*y + f) at
// x = column + a tap offset, y = row + a tap offset, checked against the
// image one tap at a time.
func refBoxGeneral(r *raster, m affine, x, y, k int) [3]float32 {
	a, b, c := float32(m.a), float32(m.b), float32(m.c)
	d, e, f := float32(m.d), float32(m.e), float32(m.f)
	var s [3]int32
	for j := 0; j < k; j++ {
		ty := float32(y) + (float32(j)+0.5)/float32(k)
		for i := 0; i < k; i++ {
			off := (float32(i) + 0.5) / float32(k)
			u := a*float32(x) + b*ty + c + a*off
			v := d*float32(x) + e*ty + f + d*off
			if !(u >= 0 && v >= 0 && u < float32(r.w) && v < float32(r.h)) {
				s[0], s[1], s[2] = s[0]+fillValue, s[1]+fillValue, s[2]+fillValue
				continue
			}
			o := 3 * (int(v)*r.w + int(u))
			for ch := range s {
				s[ch] += int32(r.pix[o+ch])
			}
		}
	}
	inv := 1 / float32(k*k)
	return [3]float32{float32(s[0]) * inv, float32(s[1]) * inv, float32(s[2]) * inv}
}

// The general box filter (the embedders' turned warps) runs eight pixels
// at a time with AVX2 (boxWarp); it must give exactly what the plain
// per-tap filter gives, for warps inside, across and outside the image's
// edges, mirrored ones, every k and every encoding, and so must the Go
// loop it replaces on other CPUs.
func TestSampleBoxGeneralMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	encs := []encoding{
		{norm: 1},
		{bgr: true, mean: uniform(127.5), norm: 1.0 / 127.5},
		{mean: [3]float32{122.782, 117.001, 104.298}, norm: 1.0 / 256},
		{grey: true, norm: 1.0 / 256},
	}
	for _, tc := range []struct {
		name  string
		scale float64 // source pixels per destination pixel
		angle float64 // radians
		edge  float64 // how far the warp's centre is from the image's centre, as a fraction of its size
	}{
		{"inside k=2", 1.6, 0.1, 0},
		{"inside k=3", 2.4, -0.3, 0},
		{"inside k=4", 3.7, 0.8, 0},
		{"across an edge k=3", 2.6, 0.2, 0.45},
		{"across a corner k=4", 3.2, 2.5, 0.5},
		{"mostly outside k=2", 1.9, -1.2, 0.9},
		{"turned over k=3", 2.2, math.Pi, 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for it := 0; it < 30; it++ {
				w, h := 20+rng.IntN(100), 20+rng.IntN(100)
				r := randomRaster(w, h, uint64(it))
				dw := 4 + rng.IntN(30)
				m := simFrom(tc.scale*(0.95+0.1*rng.Float64()), tc.angle+0.05*rng.Float64(), 0, 0)
				if it%4 == 1 {
					m = affine{a: -1, c: float64(dw)}.then(m) // mirrored
				}
				cx := float64(w) * (0.5 + tc.edge*(rng.Float64()-0.5)*2)
				cy := float64(h) * (0.5 + tc.edge*(rng.Float64()-0.5)*2)
				hx, hy := m.apply(float64(dw)/2, float64(dw)/2)
				m.c, m.f = m.c+cx-hx, m.f+cy-hy
				k := int(math.Ceil(m.scale() - 0.05))
				enc := encs[it%len(encs)]
				got := make([]float32, 3*dw*dw)
				r.sample(m, dw, dw, maxTaps, enc, got)
				goLoop := make([]float32, 3*dw*dw)
				r.box(m, dw, dw, k, newPlanes(enc, goLoop, dw*dw))
				want := make([]float32, 3*dw*dw)
				ref := newPlanes(enc, want, dw*dw)
				for y := 0; y < dw; y++ {
					for x := 0; x < dw; x++ {
						c := refBoxGeneral(r, m, x, y, k)
						ref.set(y*dw+x, c[0], c[1], c[2])
					}
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) || math.Float32bits(goLoop[i]) != math.Float32bits(want[i]) {
						t.Fatalf("map %d (%dx%d from %dx%d, k %d, %+v): value %d is %g (Go loop %g), want %g", it, dw, dw, w, h, k, m, i, got[i], goLoop[i], want[i])
					}
				}
			}
		})
	}
}

func TestNMS(t *testing.T) {
	b := func(x1, y1, x2, y2 float64, s float32) box { return box{x1, y1, x2, y2, s} }
	for _, tc := range []struct {
		name string
		in   []box
		want []box
	}{
		{"empty", nil, nil},
		{"one", []box{b(0, 0, 10, 10, 0.9)}, []box{b(0, 0, 10, 10, 0.9)}},
		{"duplicate keeps best", []box{b(0, 0, 10, 10, 0.8), b(1, 1, 11, 11, 0.95)}, []box{b(1, 1, 11, 11, 0.95)}},
		{"disjoint sorted by score", []box{b(0, 0, 10, 10, 0.7), b(20, 0, 30, 10, 0.9)}, []box{b(20, 0, 30, 10, 0.9), b(0, 0, 10, 10, 0.7)}},
		// IoU of these two is 50/150 = 0.33 < 0.4: both stay.
		{"overlap below threshold", []box{b(0, 0, 10, 10, 0.9), b(5, 0, 15, 10, 0.8)}, []box{b(0, 0, 10, 10, 0.9), b(5, 0, 15, 10, 0.8)}},
		// A box inside a bigger one: IoU 25/100 = 0.25, both stay (standard IoU, not
		// intersection over the smaller box).
		{"nested", []box{b(0, 0, 10, 10, 0.9), b(0, 0, 5, 5, 0.95)}, []box{b(0, 0, 5, 5, 0.95), b(0, 0, 10, 10, 0.9)}},
		{"chain suppressed by kept only", []box{b(0, 0, 10, 10, 0.9), b(2, 0, 12, 10, 0.8), b(4, 0, 14, 10, 0.7)},
			// 2nd overlaps 1st (IoU .67): gone; 3rd vs 1st: 60/140 = .43: gone.
			[]box{b(0, 0, 10, 10, 0.9)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nms(append([]box(nil), tc.in...), 0.4)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestIoU(t *testing.T) {
	a := box{x1: 0, y1: 0, x2: 10, y2: 10}
	for _, tc := range []struct {
		b    box
		want float64
	}{
		{a, 1},
		{box{x1: 10, y1: 0, x2: 20, y2: 10}, 0},
		{box{x1: 5, y1: 5, x2: 15, y2: 15}, 25.0 / 175},
		{box{x1: 0, y1: 0, x2: 5, y2: 10}, 0.5},
	} {
		if got := iou(a, tc.b); !near(got, tc.want, 1e-12) {
			t.Errorf("iou(%v, %v) = %g, want %g", a, tc.b, got, tc.want)
		}
	}
}

func TestSquare(t *testing.T) {
	for _, tc := range []struct{ in, want box }{
		{box{x1: 10, y1: 20, x2: 30, y2: 60, score: 0.9}, box{x1: 0, y1: 20, x2: 40, y2: 60, score: 0.9}},
		{box{x1: 0, y1: 0, x2: 40, y2: 20}, box{x1: 10, y1: 0, x2: 30, y2: 20}},
		{box{x1: -5, y1: -5, x2: 5, y2: 5}, box{x1: -5, y1: -5, x2: 5, y2: 5}},
	} {
		got := square(tc.in)
		if got != tc.want {
			t.Errorf("square(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !near(got.w(), got.h(), 1e-12) {
			t.Errorf("square(%v) is not square", tc.in)
		}
	}
}

func TestFivePoints(t *testing.T) {
	var lm [landmarkCount]pt
	for i := range lm {
		lm[i] = pt{float64(i), float64(1000 + i)}
	}
	got := fivePoints(&lm)
	want := [5]pt{
		{(37 + 38 + 40 + 41) / 4.0, 1000 + (37+38+40+41)/4.0},
		{(43 + 44 + 46 + 47) / 4.0, 1000 + (43+44+46+47)/4.0},
		{30, 1030},
		{(48 + 60) / 2.0, 1000 + (48+60)/2.0},
		{(54 + 64) / 2.0, 1000 + (54+64)/2.0},
	}
	if got != want {
		t.Fatalf("fivePoints = %v, want %v", got, want)
	}
}

func TestSoftmax(t *testing.T) {
	for _, tc := range []struct{ in, want []float32 }{
		{[]float32{0, 0, 0}, []float32{1.0 / 3, 1.0 / 3, 1.0 / 3}},
		{[]float32{1, 2, 3}, []float32{0.09003057, 0.24472847, 0.66524096}},
		{[]float32{1000, 0, -1000}, []float32{1, 0, 0}}, // no overflow
		{[]float32{-5, -5}, []float32{0.5, 0.5}},
	} {
		got := append([]float32(nil), tc.in...)
		softmax(got)
		for i := range got {
			if !near(float64(got[i]), float64(tc.want[i]), 1e-6) {
				t.Fatalf("softmax(%v) = %v, want %v", tc.in, got, tc.want)
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	v := []float32{3, 4}
	if n := normalize(v); !near(n, 5, 1e-12) || !near(float64(v[0]), 0.6, 1e-7) || !near(float64(v[1]), 0.8, 1e-7) {
		t.Fatalf("normalize: %v, %g", v, n)
	}
	if n := normalize([]float32{0, 0}); n != 0 {
		t.Fatalf("normalize of zero = %g", n)
	}
}

func TestLivenessCrop(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    box
		w, h float64
		want box
	}{
		{"fits", box{x1: 90, y1: 90, x2: 110, y2: 110}, 200, 200, box{x1: 73, y1: 73, x2: 127, y2: 127}},
		{"shifted from the edge", box{x1: 0, y1: 0, x2: 20, y2: 20}, 200, 200, box{x1: 0, y1: 0, x2: 54, y2: 54}},
		{"shrunk to the image", box{x1: 40, y1: 40, x2: 60, y2: 60}, 100, 50, box{x1: 25, y1: 0, x2: 75, y2: 50}},
		{"face fills the image", box{x1: -10, y1: 0, x2: 110, y2: 120}, 100, 120, box{x1: 0, y1: 10, x2: 100, y2: 110}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := livenessCrop(tc.b, tc.w, tc.h, 2.7)
			for _, v := range [][2]float64{{got.x1, tc.want.x1}, {got.y1, tc.want.y1}, {got.x2, tc.want.x2}, {got.y2, tc.want.y2}} {
				if !near(v[0], v[1], 1e-9) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
			if got.x1 < 0 || got.y1 < 0 || got.x2 > tc.w+1e-9 || got.y2 > tc.h+1e-9 {
				t.Fatalf("crop %v leaves the %gx%g image", got, tc.w, tc.h)
			}
		})
	}
}

// faceOfSize is a found face with the given box (view = raster) whose
// alignment makes its size s pixels.
func faceOfSize(p *params, b box, s float64) found {
	t := &p.embedTempl
	eyes := math.Hypot(t[1].x-t[0].x, t[1].y-t[0].y)
	k := eyes / s
	return found{det: b, sim: affine{a: k, e: k}}
}

func TestChoose(t *testing.T) {
	p := &params{minEyeDist: 12, dominance: 4, embedTempl: templatePoints(112)}
	sq := func(side float64) box { return box{x2: side, y2: side, score: 0.9} }
	big := faceOfSize(p, sq(200), 60)
	mid := faceOfSize(p, sq(120), 36)  // area 0.36 of big: not dominated
	small := faceOfSize(p, sq(90), 27) // area 0.2 of big: dominated
	tiny := faceOfSize(p, sq(30), 8)   // too small to count
	squeezed := faceOfSize(p, sq(300), 8)
	for _, tc := range []struct {
		name   string
		faces  []found
		enroll bool
		sel    int
		code   string
	}{
		{"none", nil, false, 0, CodeNoFace},
		{"one", []found{big}, true, 0, ""},
		{"only tiny", []found{tiny}, false, 0, CodeFaceTooSmall},
		{"tiny ignored for enroll", []found{big, tiny, tiny}, true, 0, ""},
		{"dominant", []found{big, small}, true, 0, ""},
		{"not dominant", []found{big, mid}, true, 0, CodeSeveralFaces},
		{"probe takes the largest", []found{big, mid}, false, 0, ""},
		{"probe skips a largest box too small to recognise", []found{squeezed, small}, false, 1, ""},
		{"enroll counts all usable", []found{big, small, mid}, true, 0, CodeSeveralFaces},
	} {
		t.Run(tc.name, func(t *testing.T) {
			byDominance(tc.faces)
			sel, err := choose(tc.faces, p, tc.enroll)
			if tc.code != "" {
				if code := errCode(err); code != tc.code {
					t.Fatalf("error %v (code %q), want code %q", err, code, tc.code)
				}
				return
			}
			if err != nil || sel != tc.sel {
				t.Fatalf("choose = %d, %v; want %d", sel, err, tc.sel)
			}
		})
	}
}
