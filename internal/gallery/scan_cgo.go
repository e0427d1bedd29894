//go:build cgo

package gallery

/*
#cgo CFLAGS: -O3
#include "scan.h"
*/
import "C"

import "unsafe"

// Implementations of the scan, for tests.
const (
	implAuto   = 0
	implScalar = 1
	implAVX2   = 2
)

// scanDots computes out[r] = q·codes[r*stride:(r+1)*stride] for every row
// in one cgo call: the call costs far less than the scan, but only when it
// is made once per search rather than once per row.
func scanDots(q, codes []int8, stride int, out []int32) {
	scanDotsImpl(q, codes, stride, out, implAuto)
}

func scanDotsImpl(q, codes []int8, stride int, out []int32, impl int) {
	rows := len(codes) / stride
	if rows == 0 {
		return
	}
	if len(q) != stride || len(out) < rows || stride%32 != 0 {
		panic("gallery: scanDots: bad arguments")
	}
	C.gallery_dots((*C.int8_t)(unsafe.Pointer(&q[0])), (*C.int8_t)(unsafe.Pointer(&codes[0])),
		C.int64_t(rows), C.int64_t(stride), (*C.int32_t)(unsafe.Pointer(&out[0])), C.int(impl))
}

// scanImpls lists the implementations this machine can run, by name.
func scanImpls() map[string]func(q, codes []int8, stride int, out []int32) {
	m := map[string]func(q, codes []int8, stride int, out []int32){
		"c-auto":   func(q, c []int8, s int, o []int32) { scanDotsImpl(q, c, s, o, implAuto) },
		"c-scalar": func(q, c []int8, s int, o []int32) { scanDotsImpl(q, c, s, o, implScalar) },
	}
	if C.gallery_has_avx2() != 0 {
		m["c-avx2"] = func(q, c []int8, s int, o []int32) { scanDotsImpl(q, c, s, o, implAVX2) }
	}
	return m
}
