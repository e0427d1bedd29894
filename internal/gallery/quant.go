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

// quantizeGo writes v's codes into dst (len(dst) ≥ len(v); the rest is
// zeroed) using one symmetric scale, max|v_i|/127, and codes
// RoundToEven(v_i/scale) clamped to ±127. ok is false when v has a NaN or
// an infinity.
//
// It runs once per reference, so a bulk load of 100k references spends
// most of its time here: the loops avoid branches and keep several
// independent sums, because Go does not vectorise. The sums' order only
// moves their float64 rounding, which relMargin covers. quantize is this
// or, where cgo and AVX2 are there, the same in C (quant.c), about three
// times faster; the two choose the same codes and scale.
func quantizeGo(dst []int8, v []float32) (qz quantized, ok bool) {
	// max|v_i| from the bits: with the sign cleared, the integer order of
	// float32 values is their order, and NaN and ±Inf are the patterns
	// from +Inf's up.
	var m0, m1, m2, m3 uint32
	i := 0
	for ; i+4 <= len(v); i += 4 {
		m0 = max(m0, math.Float32bits(v[i])&^signBit)
		m1 = max(m1, math.Float32bits(v[i+1])&^signBit)
		m2 = max(m2, math.Float32bits(v[i+2])&^signBit)
		m3 = max(m3, math.Float32bits(v[i+3])&^signBit)
	}
	for ; i < len(v); i++ {
		m0 = max(m0, math.Float32bits(v[i])&^signBit)
	}
	m := max(m0, m1, m2, m3)
	if m >= infBits {
		return quantized{}, false
	}
	dst, pad := dst[:len(v)], dst[len(v):]
	clear(pad)
	if m == 0 {
		clear(dst)
		return quantized{}, true
	}
	qz.scale = float32(float64(math.Float32frombits(m)) / maxCode)
	if qz.scale == 0 { // max|v_i| is subnormal-tiny: let the codes saturate
		qz.scale = math.SmallestNonzeroFloat32
	}
	s := float64(qz.scale)
	inv := 1 / s // any rounding here only moves codes; the bound uses the codes chosen
	var nn0, nn1, ee0, ee1 float64
	var cc int64 // Σ code², exact
	i = 0
	for ; i+2 <= len(v); i += 2 {
		f0, f1 := float64(v[i]), float64(v[i+1])
		c0, c1 := code(f0*inv), code(f1*inv)
		dst[i], dst[i+1] = int8(c0), int8(c1)
		// s·c is exact (24-bit times 8-bit mantissa); a fused
		// multiply-subtract would only make e more exact.
		e0, e1 := f0-s*float64(c0), f1-s*float64(c1)
		nn0 += f0 * f0
		nn1 += f1 * f1
		ee0 += e0 * e0
		ee1 += e1 * e1
		cc += int64(c0*c0 + c1*c1)
	}
	if i < len(v) {
		f0 := float64(v[i])
		c0 := code(f0 * inv)
		dst[i] = int8(c0)
		e0 := f0 - s*float64(c0)
		nn0 += f0 * f0
		ee0 += e0 * e0
		cc += int64(c0 * c0)
	}
	qz.norm, qz.errNorm = math.Sqrt(nn0+nn1), math.Sqrt(ee0+ee1)
	qz.hatNorm = s * math.Sqrt(float64(cc)) // ‖v̂‖ = s·‖c‖
	return qz, true
}

const (
	signBit = 1 << 31
	infBits = 0x7f800000 // +Inf as float32 bits
)

// code is RoundToEven(t) clamped to ±maxCode. Adding 1.5·2⁵² puts t's
// integer part in the low mantissa bits, rounded to even, for |t| < 2⁵¹
// (quantize's t is at most about 190 in magnitude): no rounding
// instruction or float-to-int conversion, which cost more than the rest
// of the loop on amd64 without SSE4.1 assumed. The explicit float64(t)
// keeps the compiler from fusing t's multiply into the add, which would
// round differently.
func code(t float64) int32 {
	const magic = 0x1.8p52
	return min(max(int32(math.Float64bits(float64(t)+magic)), -maxCode), maxCode)
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
