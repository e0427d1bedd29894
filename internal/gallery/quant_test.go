package gallery

import (
	"math"
	"testing"
)

// quantizeRef is quantize as first written: the definition, plainly, that
// every implementation must match (codes and scale to the bit, the norms to
// their float64 rounding).
func quantizeRef(dst []int8, v []float32) (qz quantized, ok bool) {
	var maxAbs float64
	for _, x := range v {
		a := math.Abs(float64(x))
		if !(a <= math.MaxFloat32) {
			return quantized{}, false
		}
		maxAbs = max(maxAbs, a)
	}
	clear(dst)
	if maxAbs == 0 {
		return quantized{}, true
	}
	qz.scale = float32(maxAbs / maxCode)
	if qz.scale == 0 {
		qz.scale = math.SmallestNonzeroFloat32
	}
	s := float64(qz.scale)
	inv := 1 / s
	var nn, ee, hh float64
	for i, x := range v {
		f := float64(x)
		c := float64(min(max(int32(math.RoundToEven(f*inv)), -maxCode), maxCode))
		dst[i] = int8(c)
		h := s * c
		e := f - h
		nn += f * f
		ee += e * e
		hh += h * h
	}
	qz.norm, qz.errNorm, qz.hatNorm = math.Sqrt(nn), math.Sqrt(ee), math.Sqrt(hh)
	return qz, true
}

// TestQuantizeImplementations compares every quantize this build can run
// with quantizeRef, on vectors that reach each corner: ties that round to
// even, codes that need the clamp, subnormal and huge values, NaN and
// infinities anywhere, and lengths that leave a tail.
func TestQuantizeImplementations(t *testing.T) {
	impls := quantizeImpls()
	t.Logf("implementations: %d", len(impls))
	rng := newRand(12)
	kinds := map[string]func(v []float32){
		"unit": func(v []float32) { copy(v, randUnit(rng, len(v))) },
		"ties": func(v []float32) { // scale 1: every other value is k+0.5
			for i := range v {
				v[i] = float32(rng.IntN(253)-126) + 0.5*float32(i%2)
			}
			v[0] = -127
		},
		"subnormal": func(v []float32) { // scale rounds coarsely or to 0
			for i := range v {
				v[i] = math.Float32frombits(uint32(rng.IntN(200)) | uint32(rng.IntN(2))<<31)
			}
		},
		"huge": func(v []float32) {
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 1e37)
			}
			v[rng.IntN(len(v))] = math.MaxFloat32
		},
		"wide": func(v []float32) { // magnitudes from 1e-30 to 1
			for i := range v {
				v[i] = float32(rng.NormFloat64() * math.Pow(10, -30*rng.Float64()))
			}
		},
		"zero": func(v []float32) {
			for i := range v {
				v[i] = float32(math.Copysign(0, float64(rng.IntN(2)-1)))
			}
		},
		"nan":  func(v []float32) { copy(v, randUnit(rng, len(v))); v[rng.IntN(len(v))] = float32(math.NaN()) },
		"+inf": func(v []float32) { copy(v, randUnit(rng, len(v))); v[rng.IntN(len(v))] = float32(math.Inf(1)) },
		"-inf": func(v []float32) { copy(v, randUnit(rng, len(v))); v[len(v)-1] = float32(math.Inf(-1)) },
	}
	for _, dims := range []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 511, 512, 513, 4096} {
		stride := strideFor(dims)
		for kind, fill := range kinds {
			for range 20 {
				v := make([]float32, dims)
				fill(v)
				want := make([]int8, stride)
				wq, wok := quantizeRef(want, v)
				for name, quantize := range impls {
					got := make([]int8, stride)
					for i := range got {
						got[i] = 0x55 // must be overwritten, padding included
					}
					gq, gok := quantize(got, v)
					if gok != wok {
						t.Fatalf("%s dims=%d %s: ok %v, want %v", name, dims, kind, gok, wok)
					}
					if !wok {
						continue
					}
					if string(int8Bytes(got)) != string(int8Bytes(want)) || math.Float32bits(gq.scale) != math.Float32bits(wq.scale) {
						t.Fatalf("%s dims=%d %s: codes or scale %v differ from %v", name, dims, kind, gq.scale, wq.scale)
					}
					for _, p := range [][3]any{{"norm", gq.norm, wq.norm}, {"errNorm", gq.errNorm, wq.errNorm}, {"hatNorm", gq.hatNorm, wq.hatNorm}} {
						g, w := p[1].(float64), p[2].(float64)
						if math.Abs(g-w) > 1e-12*w {
							t.Fatalf("%s dims=%d %s: %s %v, want %v", name, dims, kind, p[0], g, w)
						}
					}
				}
			}
		}
	}
}
