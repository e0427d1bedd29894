// Declarations shared by quant.c and quant_cgo.go.
#include <stdint.h>

// gallery_quantized is quantize's result (quant.go) with a status: 1, or 0
// when v has a NaN or an infinity, or -1 when the CPU lacks AVX2 and the
// caller must use the Go version. It is returned by value: a pointer to a
// Go result would make cgo allocate it on the heap, once per reference.
typedef struct {
	int32_t status;
	float scale;
	double norm, err_norm, hat_norm;
} gallery_quantized;

// gallery_quantize is quantize (quant.go) for CPUs with AVX2: it writes
// v's n codes into dst and zeroes dst[n:len] (n <= len), or writes nothing
// when the status is -1. impl 2 forces AVX2.
gallery_quantized gallery_quantize(const float *v, int64_t n, int8_t *dst, int64_t len, int impl);
