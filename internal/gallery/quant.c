// quantize (quant.go) for a bulk load, one reference per call: about three
// times faster than the Go loop, which takes quantising 100k references
// from about 200 ms to about 70 ms on the development VM. It must choose
// the same codes and scale as the Go version to the bit (the tests compare
// them); only the float64 norms are summed in another order, which
// relMargin covers.
#include <string.h>
#include "quant.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

// The functions target AVX2 without FMA, so the compiler cannot fuse a
// multiply into an add, which would round differently from Go.

// step quantises 8 values: codes RoundToEven(f·inv) clamped to ±127, as
// Go's code() computes them (f·inv is the same float64 product), and adds
// f², (f − s·c)² and c² to the sums. c² sums are exact in float64.
__attribute__((target("avx2")))
static inline void step(const float *v, int8_t *dst, __m256d s, __m256d inv,
                        __m256d *nn, __m256d *ee, __m256d *cc) {
	const __m256d lo = _mm256_set1_pd(-127), hi = _mm256_set1_pd(127);
	__m256 f8 = _mm256_loadu_ps(v);
	__m256d f0 = _mm256_cvtps_pd(_mm256_castps256_ps128(f8));
	__m256d f1 = _mm256_cvtps_pd(_mm256_extractf128_ps(f8, 1));
	__m256d c0 = _mm256_round_pd(_mm256_mul_pd(f0, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256d c1 = _mm256_round_pd(_mm256_mul_pd(f1, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	c0 = _mm256_min_pd(_mm256_max_pd(c0, lo), hi);
	c1 = _mm256_min_pd(_mm256_max_pd(c1, lo), hi);
	__m128i w = _mm_packs_epi32(_mm256_cvtpd_epi32(c0), _mm256_cvtpd_epi32(c1));
	_mm_storel_epi64((__m128i *)dst, _mm_packs_epi16(w, w));
	__m256d e0 = _mm256_sub_pd(f0, _mm256_mul_pd(s, c0)); // s·c is exact
	__m256d e1 = _mm256_sub_pd(f1, _mm256_mul_pd(s, c1));
	nn[0] = _mm256_add_pd(nn[0], _mm256_mul_pd(f0, f0));
	nn[1] = _mm256_add_pd(nn[1], _mm256_mul_pd(f1, f1));
	ee[0] = _mm256_add_pd(ee[0], _mm256_mul_pd(e0, e0));
	ee[1] = _mm256_add_pd(ee[1], _mm256_mul_pd(e1, e1));
	cc[0] = _mm256_add_pd(cc[0], _mm256_mul_pd(c0, c0));
	cc[1] = _mm256_add_pd(cc[1], _mm256_mul_pd(c1, c1));
}

__attribute__((target("avx2")))
static double hsum(const __m256d *a) {
	__m256d x = _mm256_add_pd(a[0], a[1]);
	__m128d y = _mm_add_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
	return _mm_cvtsd_f64(_mm_add_sd(y, _mm_unpackhi_pd(y, y)));
}

// sqrt_sd is the correctly rounded square root, as Go's math.Sqrt, without
// libm.
__attribute__((target("avx2")))
static double sqrt_sd(double x) {
	return _mm_cvtsd_f64(_mm_sqrt_sd(_mm_setzero_pd(), _mm_set_sd(x)));
}

__attribute__((target("avx2")))
static gallery_quantized quantize_avx2(const float *v, int64_t n, int8_t *dst, int64_t len) {
	gallery_quantized out = {0};
	// max|v_i| from the bits, as in Go: with the sign cleared, unsigned
	// order is float order, and NaN and ±Inf are the patterns from +Inf's.
	const __m256i abs = _mm256_set1_epi32(0x7fffffff);
	__m256i m0 = _mm256_setzero_si256(), m1 = m0;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		m0 = _mm256_max_epu32(m0, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(v + i)), abs));
		m1 = _mm256_max_epu32(m1, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(v + i + 8)), abs));
	}
	uint32_t lanes[8], m = 0;
	_mm256_storeu_si256((__m256i *)lanes, _mm256_max_epu32(m0, m1));
	for (int j = 0; j < 8; j++)
		m = lanes[j] > m ? lanes[j] : m;
	for (; i < n; i++) {
		uint32_t b;
		memcpy(&b, v + i, 4);
		b &= 0x7fffffff;
		m = b > m ? b : m;
	}
	if (m >= 0x7f800000)
		return out;
	out.status = 1;
	memset(dst + n, 0, (size_t)(len - n));
	if (m == 0) {
		memset(dst, 0, (size_t)n);
		return out;
	}
	float max_abs;
	memcpy(&max_abs, &m, 4);
	float scale = (float)((double)max_abs / 127);
	if (scale == 0)
		scale = 0x1p-149f; // as Go: the smallest float32
	const double sd = scale;
	const __m256d s = _mm256_set1_pd(sd), inv = _mm256_set1_pd(1 / sd);
	__m256d nn[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, ee[2] = {nn[0], nn[1]}, cc[2] = {nn[0], nn[1]};
	for (i = 0; i + 8 <= n; i += 8)
		step(v + i, dst + i, s, inv, nn, ee, cc);
	if (i < n) { // the tail, padded with zeros, which add nothing
		float t[8] = {0};
		int8_t d[8];
		memcpy(t, v + i, (size_t)(n - i) * 4);
		step(t, d, s, inv, nn, ee, cc);
		memcpy(dst + i, d, (size_t)(n - i));
	}
	out.scale = scale;
	out.norm = sqrt_sd(hsum(nn));
	out.err_norm = sqrt_sd(hsum(ee));
	out.hat_norm = sd * sqrt_sd(hsum(cc));
	return out;
}

gallery_quantized gallery_quantize(const float *v, int64_t n, int8_t *dst, int64_t len, int impl) {
	if (impl == 2 || __builtin_cpu_supports("avx2"))
		return quantize_avx2(v, n, dst, len);
	return (gallery_quantized){.status = -1};
}
#else
gallery_quantized gallery_quantize(const float *v, int64_t n, int8_t *dst, int64_t len, int impl) {
	return (gallery_quantized){.status = -1};
}
#endif
