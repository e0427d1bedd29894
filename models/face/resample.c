// The two resampling loops of a probe that Go runs a pixel at a time (Go
// does not vectorise), written with AVX2: the detector's input from a
// 640-pixel-wide frame (an exact 2x2 halving, 76,800 values) and the
// embedders' turned warps (a k x k box filter through any affine map).
// Each computes exactly what its Go loop in raster.go computes (boxRow2,
// box): the same integer sums, converted exactly, then the same IEEE
// single-precision operations in the same order, each rounded. The
// functions are compiled without the FMA extension, so the compiler cannot
// fuse a multiplication and an addition (Go on amd64 does not either, at
// its default GOAMD64=v1). Tests compare both with a plain reference bit
// for bit (unit_test.go).
#include "resample.h"

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

// box_avx2 is raster.box (the embedders' turned warps: the mean of k x k
// taps spread over each destination pixel's footprint, for any affine map)
// for eight destination pixels at a time. Every tap coordinate is the
// same float32 expression as in Go, evaluated in the same order, so each
// lane computes what Go computes for its pixel; the pixels are gathered
// four bytes at a time from one byte before the tap's (from the tap's own
// for offset 0), so no read passes the image's last byte.
__attribute__((target("avx2,no-fma")))
static void box_avx2(const uint8_t *pix, int w, int h, const float *m,
	int dw, int dh, int k, int grey, float *p0, float *p1, float *p2,
	const float *mean, float norm) {
	const __m256 a = _mm256_set1_ps(m[0]), b = _mm256_set1_ps(m[1]), c = _mm256_set1_ps(m[2]);
	const __m256 d = _mm256_set1_ps(m[3]), e = _mm256_set1_ps(m[4]), f = _mm256_set1_ps(m[5]);
	const __m256 zero = _mm256_setzero_ps(), wv = _mm256_set1_ps((float)w), hv = _mm256_set1_ps((float)h);
	const __m256i stride = _mm256_set1_epi32(3 * w), three = _mm256_set1_epi32(3), bytev = _mm256_set1_epi32(0xFF);
	const __m256i fill = _mm256_set1_epi32(127), one = _mm256_set1_epi32(1), lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	const __m256 inv = _mm256_set1_ps(1.0f / (float)(k * k)), nv = _mm256_set1_ps(norm);
	const __m256 m0 = _mm256_set1_ps(mean[0]), m1 = _mm256_set1_ps(mean[1]), m2 = _mm256_set1_ps(mean[2]);
	float offs[4];
	__m256 aoff[4], doff[4];
	for (int i = 0; i < k; i++) {
		offs[i] = ((float)i + 0.5f) / (float)k;
		aoff[i] = _mm256_mul_ps(a, _mm256_set1_ps(offs[i]));
		doff[i] = _mm256_mul_ps(d, _mm256_set1_ps(offs[i]));
	}
	for (int y = 0; y < dh; y++) {
		__m256 bty[4], ety[4];
		for (int j = 0; j < k; j++) {
			const __m256 ty = _mm256_set1_ps((float)y + offs[j]);
			bty[j] = _mm256_mul_ps(b, ty);
			ety[j] = _mm256_mul_ps(e, ty);
		}
		for (int x = 0; x < dw; x += 8) {
			const __m256i xi = _mm256_add_epi32(_mm256_set1_epi32(x), lanes);
			const __m256 fx = _mm256_cvtepi32_ps(xi);
			const __m256 afx = _mm256_mul_ps(a, fx), dfx = _mm256_mul_ps(d, fx);
			__m256i sr = _mm256_setzero_si256(), sg = sr, sb = sr;
			for (int j = 0; j < k; j++) {
				const __m256 u0 = _mm256_add_ps(_mm256_add_ps(afx, bty[j]), c);
				const __m256 v0 = _mm256_add_ps(_mm256_add_ps(dfx, ety[j]), f);
				for (int i = 0; i < k; i++) {
					const __m256 u = _mm256_add_ps(u0, aoff[i]), v = _mm256_add_ps(v0, doff[i]);
					const __m256 inf = _mm256_and_ps(
						_mm256_and_ps(_mm256_cmp_ps(u, zero, _CMP_GE_OQ), _mm256_cmp_ps(v, zero, _CMP_GE_OQ)),
						_mm256_and_ps(_mm256_cmp_ps(u, wv, _CMP_LT_OQ), _mm256_cmp_ps(v, hv, _CMP_LT_OQ)));
					const __m256i in = _mm256_castps_si256(inf);
					__m256i idx = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_cvttps_epi32(v), stride),
						_mm256_mullo_epi32(_mm256_cvttps_epi32(u), three));
					idx = _mm256_and_si256(idx, in);
					const __m256i pos = _mm256_cmpgt_epi32(idx, _mm256_setzero_si256());
					idx = _mm256_sub_epi32(idx, _mm256_and_si256(pos, one));
					__m256i px = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)pix, idx, in, 1);
					px = _mm256_srlv_epi32(px, _mm256_and_si256(pos, _mm256_set1_epi32(8)));
					const __m256i r = _mm256_and_si256(px, bytev);
					const __m256i g = _mm256_and_si256(_mm256_srli_epi32(px, 8), bytev);
					const __m256i bl = _mm256_and_si256(_mm256_srli_epi32(px, 16), bytev);
					sr = _mm256_add_epi32(sr, _mm256_blendv_epi8(fill, r, in));
					sg = _mm256_add_epi32(sg, _mm256_blendv_epi8(fill, g, in));
					sb = _mm256_add_epi32(sb, _mm256_blendv_epi8(fill, bl, in));
				}
			}
			const __m256 fr = _mm256_mul_ps(_mm256_cvtepi32_ps(sr), inv);
			const __m256 fg = _mm256_mul_ps(_mm256_cvtepi32_ps(sg), inv);
			const __m256 fb = _mm256_mul_ps(_mm256_cvtepi32_ps(sb), inv);
			const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(dw), xi); // lanes inside the row
			const int o = y * dw + x;
			if (grey) {
				const __m256 l = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0.299f), fr),
					_mm256_mul_ps(_mm256_set1_ps(0.587f), fg)), _mm256_mul_ps(_mm256_set1_ps(0.114f), fb));
				_mm256_maskstore_ps(p0 + o, keep, _mm256_mul_ps(_mm256_sub_ps(l, m0), nv));
				continue;
			}
			_mm256_maskstore_ps(p0 + o, keep, _mm256_mul_ps(_mm256_sub_ps(fr, m0), nv));
			_mm256_maskstore_ps(p1 + o, keep, _mm256_mul_ps(_mm256_sub_ps(fg, m1), nv));
			_mm256_maskstore_ps(p2 + o, keep, _mm256_mul_ps(_mm256_sub_ps(fb, m2), nv));
		}
	}
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

// face_box_warp writes the dw x dh box filter of raster.box through the
// map m (a, b, c, d, e, f) with k x k taps and returns 1, or returns 0
// without AVX2, when the caller's Go loop does it. The image must have at
// least 4 bytes and fewer than 2^31.
int face_box_warp(const uint8_t *pix, int64_t len, int w, int h, const float *m,
	int dw, int dh, int k, int grey, float *p0, float *p1, float *p2,
	const float *mean, float norm) {
#if defined(__x86_64__)
	if (len >= 4 && len < ((int64_t)1 << 31) && k >= 1 && k <= 4 && __builtin_cpu_supports("avx2")) {
		box_avx2(pix, w, h, m, dw, dh, k, grey, p0, p1, p2, mean, norm);
		return 1;
	}
#endif
	return 0;
}
