package gallery

import "math"

// The error bound. For a stored vector v and a query q (float32 values,
// treated as exact reals), quantisation gives v = v̂ + ev and q = q̂ + eq with
// v̂ = s_v·cv, q̂ = s_q·cq for int8 codes cv, cq. Then
//
//	q·v − q̂·v̂ = q·ev + eq·v̂,   so   |q·v − q̂·v̂| ≤ ‖q‖‖ev‖ + ‖eq‖‖v̂‖
//
// by Cauchy–Schwarz, and q̂·v̂ = s_q·s_v·(cq·cv) is what the int8 scan
// computes (the integer dot product is exact). The exact float32 score that
// dot returns differs from the real q·v by at most γ·‖q‖‖v‖ with
// γ = n·u/(1−n·u), u = 2⁻²⁴, for any summation order of n ≥ dims+1
// operations deep. So with per-row constants
//
//	errA = ‖ev‖ + γ‖v‖   and   errB = ‖v̂‖
//
// |exact − approx| ≤ ‖q‖·errA + ‖eq‖·errB. The constants are computed in
// float64 and rounded up; relMargin and absMargin cover the float64
// rounding in that arithmetic and in the approximate score itself.
const (
	relMargin = 1e-6
	absMargin = 1e-9
	maxCode   = 127 // codes stay in [-127, 127]: the AVX2 scan needs no -128
)

// quantized is a vector's int8 form with what the bound needs.
type quantized struct {
	scale   float32 // s: v̂ = s·code
	norm    float64 // ‖v‖
	errNorm float64 // ‖v − v̂‖
	hatNorm float64 // ‖v̂‖
}

// quantize writes v's codes into dst (len(dst) ≥ len(v); the rest is
// zeroed) using one symmetric scale, max|v_i|/127. ok is false when v has a
// NaN or an infinity.
func quantize(dst []int8, v []float32) (qz quantized, ok bool) {
	var maxAbs float64
	for _, x := range v {
		a := math.Abs(float64(x))
		if !(a <= math.MaxFloat32) { // NaN or ±Inf
			return quantized{}, false
		}
		if a > maxAbs { // not max(): its NaN handling is slow, and a is not NaN
			maxAbs = a
		}
	}
	clear(dst)
	if maxAbs == 0 {
		return quantized{}, true
	}
	qz.scale = float32(maxAbs / maxCode)
	if qz.scale == 0 { // maxAbs is subnormal-tiny: let the codes saturate
		qz.scale = math.SmallestNonzeroFloat32
	}
	s := float64(qz.scale)
	inv := 1 / s // any rounding here only moves codes; the bound uses the codes chosen
	var nn, ee, hh float64
	for i, x := range v {
		f := float64(x)
		// RoundToEven is one instruction on amd64 and has no branch to
		// mispredict on the sign; which way a tie goes does not matter.
		c := float64(min(max(int32(math.RoundToEven(f*inv)), -maxCode), maxCode))
		dst[i] = int8(c)
		h := s * c // exact: 24-bit times 8-bit mantissa
		e := f - h
		nn += f * f
		ee += e * e
		hh += h * h
	}
	qz.norm, qz.errNorm, qz.hatNorm = math.Sqrt(nn), math.Sqrt(ee), math.Sqrt(hh)
	return qz, true
}

// gamma bounds the relative rounding error of dot over dims elements.
func gamma(dims int) float64 {
	nu := float64(dims+1) * 0x1p-24
	return nu / (1 - nu)
}

// up rounds x up to a float32, so stored bounds never shrink.
func up(x float64) float32 {
	f := float32(x)
	if float64(f) < x {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return f
}

// dot is the exact float32 score. Search's re-rank, Verify and SearchExact
// all use it, so their scores agree to the bit. It is kept out of line so
// that there is one compiled copy: the compiler may fuse multiply-adds
// (GOAMD64=v3), and copies inlined into different callers could round
// differently.
//
//go:noinline
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
