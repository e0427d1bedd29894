//go:build cgo

package gallery

/*
#cgo CFLAGS: -O3
#include "quant.h"
#include "scan.h"
*/
import "C"

import "unsafe"

// quantize is quantizeGo, done by quant.c where the CPU has AVX2.
func quantize(dst []int8, v []float32) (quantized, bool) {
	if qz, ok, done := quantizeC(dst, v, implAuto); done {
		return qz, ok
	}
	return quantizeGo(dst, v)
}

// quantizeC calls quant.c; done is false when it did nothing (no AVX2, or
// an empty v, which quantizeGo handles).
func quantizeC(dst []int8, v []float32, impl int) (qz quantized, ok, done bool) {
	if len(v) == 0 {
		return quantized{}, false, false
	}
	_ = dst[len(v)-1] // len(dst) >= len(v), or panic as quantizeGo does
	r := C.gallery_quantize((*C.float)(unsafe.Pointer(&v[0])), C.int64_t(len(v)),
		(*C.int8_t)(unsafe.Pointer(&dst[0])), C.int64_t(len(dst)), C.int(impl))
	switch r.status {
	case 1:
		return quantized{float32(r.scale), float64(r.norm), float64(r.err_norm), float64(r.hat_norm)}, true, true
	case 0:
		return quantized{}, false, true
	}
	return quantized{}, false, false
}

// quantizeImpls lists the implementations this machine can run, by name.
func quantizeImpls() map[string]func(dst []int8, v []float32) (quantized, bool) {
	m := map[string]func(dst []int8, v []float32) (quantized, bool){"go": quantizeGo}
	if C.gallery_has_avx2() != 0 {
		m["c-avx2"] = func(dst []int8, v []float32) (quantized, bool) {
			qz, ok, _ := quantizeC(dst, v, implAVX2)
			return qz, ok
		}
	}
	return m
}
