// The int8 scan behind Gallery.Search: one call computes the integer dot
// product of the quantised query with every stored row. Go does not
// vectorise, and the scan streams the whole slab once per query, so this is
// the one hot loop worth writing in C. Integer arithmetic is exact, which the
// error bound in quant.go relies on.
#include "scan.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

// dots_scalar is the portable version, for CPUs without AVX2 and as the
// reference the tests compare the AVX2 one against. The compiler
// vectorises it for the baseline instruction set (-O3).
static void dots_scalar(const int8_t *q, const int8_t *codes, int64_t rows, int64_t stride, int32_t *out) {
	for (int64_t r = 0; r < rows; r++) {
		const int8_t *v = codes + r * stride;
		int32_t acc = 0;
		for (int64_t j = 0; j < stride; j++)
			acc += (int32_t)q[j] * (int32_t)v[j];
		out[r] = acc;
	}
}

#ifdef HAVE_X86
// dots_avx2 handles 32 bytes per step. maddubs multiplies unsigned by signed
// bytes, so it gets |q| and v with q's sign moved onto it (sign_epi8); the
// pairwise int16 sums cannot saturate because no byte is -128
// (2*127*127 < 32767). madd with ones widens the pairs to int32 lanes.
//
// The scan streams the slab from memory, and is limited by memory
// bandwidth, not arithmetic. Prefetching about 4 KiB ahead (the hardware
// prefetcher stops at page boundaries) cut its time by a third on the
// development VM.
__attribute__((target("avx2")))
static void dots_avx2(const int8_t *q, const int8_t *codes, int64_t rows, int64_t stride, int32_t *out) {
	const __m256i ones = _mm256_set1_epi16(1);
	const int64_t ahead = stride >= 4096 ? 1 : 4096 / stride; // rows
	for (int64_t r = 0; r < rows; r++) {
		const int8_t *v = codes + r * stride;
		if (r + ahead < rows) {
			const int8_t *p = codes + (r + ahead) * stride;
			for (int64_t j = 0; j < stride; j += 64)
				_mm_prefetch((const char *)(p + j), _MM_HINT_T0);
		}
		__m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
		int64_t j = 0;
		for (; j + 64 <= stride; j += 64) {
			__m256i q0 = _mm256_loadu_si256((const __m256i *)(q + j));
			__m256i q1 = _mm256_loadu_si256((const __m256i *)(q + j + 32));
			__m256i v0 = _mm256_loadu_si256((const __m256i *)(v + j));
			__m256i v1 = _mm256_loadu_si256((const __m256i *)(v + j + 32));
			__m256i p0 = _mm256_maddubs_epi16(_mm256_abs_epi8(q0), _mm256_sign_epi8(v0, q0));
			__m256i p1 = _mm256_maddubs_epi16(_mm256_abs_epi8(q1), _mm256_sign_epi8(v1, q1));
			acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(p0, ones));
			acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(p1, ones));
		}
		if (j < stride) { // stride is a multiple of 32: at most one block left
			__m256i q0 = _mm256_loadu_si256((const __m256i *)(q + j));
			__m256i v0 = _mm256_loadu_si256((const __m256i *)(v + j));
			__m256i p0 = _mm256_maddubs_epi16(_mm256_abs_epi8(q0), _mm256_sign_epi8(v0, q0));
			acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(p0, ones));
		}
		__m256i acc = _mm256_add_epi32(acc0, acc1);
		__m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
		s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
		s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
		out[r] = _mm_cvtsi128_si32(s);
	}
}

int gallery_has_avx2(void) {
	return __builtin_cpu_supports("avx2");
}

void gallery_dots(const int8_t *q, const int8_t *codes, int64_t rows, int64_t stride, int32_t *out, int impl) {
	if (impl == 2 || (impl == 0 && __builtin_cpu_supports("avx2")))
		dots_avx2(q, codes, rows, stride, out);
	else
		dots_scalar(q, codes, rows, stride, out);
}
#else
int gallery_has_avx2(void) {
	return 0;
}

void gallery_dots(const int8_t *q, const int8_t *codes, int64_t rows, int64_t stride, int32_t *out, int impl) {
	dots_scalar(q, codes, rows, stride, out);
}
#endif
