package face

// #cgo CFLAGS: -O2
// #include "halve.h"
import "C"

import "unsafe"

// halveRow writes the detector's colour 2x2 means of n = len(p0)
// destination pixels whose blocks are source pixels 2x and 2x+1 of the
// packed RGB rows r0 and r1 (6n bytes each), as raster.boxRow2 would,
// bit for bit, eight pixels at a time with AVX2 (halve.c). It returns how
// many leading pixels it wrote: a multiple of 8, and 0 on a CPU without
// AVX2; boxRow2 does the rest.
func halveRow(r0, r1 []byte, p0, p1, p2 []float32, mean *[3]float32, norm float32) int {
	n := len(p0)
	if n < 8 || len(r0) < 6*n || len(r1) < 6*n || len(p1) < n || len(p2) < n {
		return 0
	}
	return int(C.face_halve_row((*C.uint8_t)(unsafe.Pointer(&r0[0])), (*C.uint8_t)(unsafe.Pointer(&r1[0])), C.int64_t(n),
		(*C.float)(unsafe.Pointer(&p0[0])), (*C.float)(unsafe.Pointer(&p1[0])), (*C.float)(unsafe.Pointer(&p2[0])),
		(*C.float)(unsafe.Pointer(&mean[0])), C.float(norm)))
}
