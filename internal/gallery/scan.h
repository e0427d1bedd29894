// Declarations shared by scan.c and scan_cgo.go.
#include <stdint.h>

// gallery_dots writes out[r] = sum_j q[j]*codes[r*stride+j] for r < rows.
// stride must be a multiple of 32 and every byte must be in [-127, 127].
// impl: 0 picks AVX2 when the CPU has it, 1 forces scalar, 2 forces AVX2.
void gallery_dots(const int8_t *q, const int8_t *codes, int64_t rows, int64_t stride, int32_t *out, int impl);

// gallery_has_avx2 reports whether the CPU supports AVX2.
int gallery_has_avx2(void);
