// The detector's input for a 640-pixel-wide frame is the frame halved: each
// value the mean of a 2x2 block, encoded per channel as
// (sum * 0.25 - mean) * norm into three float32 planes. Go does not
// vectorise, and this loop over 76,800 pixels was a tenth of a probe's
// Go-side time, so it is written with AVX2 here. It computes exactly what
// raster.boxRow2 computes: the same integer sums, converted exactly, then
// the same three IEEE single-precision operations in the same order, each
// rounded: the functions are compiled without the FMA extension, so the
// compiler cannot fuse a multiplication and a subtraction (Go on amd64
// does not either, at its default GOAMD64=v1).
#include "halve.h"

#if defined(__x86_64__)
#include <immintrin.h>

// split3 separates 16 packed RGB pixels (48 bytes at p) into their R, G
// and B bytes.
__attribute__((target("avx2,no-fma")))
static inline void split3(const uint8_t *p, __m128i *r, __m128i *g, __m128i *b) {
	const __m128i a = _mm_loadu_si128((const __m128i *)p);
	const __m128i m = _mm_loadu_si128((const __m128i *)(p + 16));
	const __m128i c = _mm_loadu_si128((const __m128i *)(p + 32));
	const __m128i ra = _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m128i rb = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1);
	const __m128i rc = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13);
	const __m128i ga = _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m128i gb = _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1);
	const __m128i gc = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14);
	const __m128i ba = _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m128i bb = _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1);
	const __m128i bc = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15);
	*r = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, ra), _mm_shuffle_epi8(m, rb)), _mm_shuffle_epi8(c, rc));
	*g = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, ga), _mm_shuffle_epi8(m, gb)), _mm_shuffle_epi8(c, gc));
	*b = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, ba), _mm_shuffle_epi8(m, bb)), _mm_shuffle_epi8(c, bc));
}

// encode8 turns the 16 bytes of one channel of each row into the eight
// encoded 2x2 means.
__attribute__((target("avx2,no-fma")))
static inline __m256 encode8(__m128i top, __m128i bottom, __m256 inv, __m256 mean, __m256 norm) {
	const __m256i v = _mm256_add_epi16(_mm256_cvtepu8_epi16(top), _mm256_cvtepu8_epi16(bottom));
	const __m256i s = _mm256_madd_epi16(v, _mm256_set1_epi16(1)); // neighbours' sums, in order
	return _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), inv), mean), norm);
}

__attribute__((target("avx2,no-fma")))
static int64_t halve_avx2(const uint8_t *r0, const uint8_t *r1, int64_t n,
	float *p0, float *p1, float *p2, const float *mean, float norm) {
	const __m256 inv = _mm256_set1_ps(0.25f), nv = _mm256_set1_ps(norm);
	const __m256 m0 = _mm256_set1_ps(mean[0]), m1 = _mm256_set1_ps(mean[1]), m2 = _mm256_set1_ps(mean[2]);
	int64_t x = 0;
	for (; x + 8 <= n; x += 8) {
		__m128i ra, ga, ba, rb, gb, bb;
		split3(r0 + 6 * x, &ra, &ga, &ba);
		split3(r1 + 6 * x, &rb, &gb, &bb);
		_mm256_storeu_ps(p0 + x, encode8(ra, rb, inv, m0, nv));
		_mm256_storeu_ps(p1 + x, encode8(ga, gb, inv, m1, nv));
		_mm256_storeu_ps(p2 + x, encode8(ba, bb, inv, m2, nv));
	}
	return x;
}
#endif

// face_halve_row writes the first 8*floor(n/8) of n destination pixels
// whose 2x2 blocks are the source pixels 2x and 2x+1 of rows r0 and r1
// (packed RGB, 6n bytes each), and returns how many it wrote: 0 without
// AVX2, when the caller's Go loop does them all.
int face_halve_row(const uint8_t *r0, const uint8_t *r1, int64_t n,
	float *p0, float *p1, float *p2, const float *mean, float norm) {
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2"))
		return (int)halve_avx2(r0, r1, n, p0, p1, p2, mean, norm);
#endif
	return 0;
}
