package face

// #cgo CFLAGS: -O2
// #include "resample.h"
import "C"

import "unsafe"

// halveRow writes the detector's colour 2x2 means of n = len(p0)
// destination pixels whose blocks are source pixels 2x and 2x+1 of the
// packed RGB rows r0 and r1 (6n bytes each), as raster.boxRow2 would,
// bit for bit, eight pixels at a time with AVX2 (resample.c). It returns how
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

// boxWarp is raster.box, bit for bit, eight destination pixels at a time
// with AVX2 (resample.c); it reports false, having written nothing, on a CPU
// without AVX2 or for an image it cannot address with 32-bit offsets.
func (r *raster) boxWarp(m affine, dw, dh, k int, out planes) bool {
	n := dw * dh
	if n == 0 || len(r.pix) < 4 || len(out.p0) < n || !out.grey && (len(out.p1) < n || len(out.p2) < n) {
		return false
	}
	mm := [6]float32{float32(m.a), float32(m.b), float32(m.c), float32(m.d), float32(m.e), float32(m.f)}
	p0 := (*C.float)(unsafe.Pointer(&out.p0[0]))
	p1, p2 := p0, p0
	grey := C.int(1)
	if !out.grey {
		p1, p2, grey = (*C.float)(unsafe.Pointer(&out.p1[0])), (*C.float)(unsafe.Pointer(&out.p2[0])), 0
	}
	return C.face_box_warp((*C.uint8_t)(unsafe.Pointer(&r.pix[0])), C.int64_t(len(r.pix)), C.int(r.w), C.int(r.h),
		(*C.float)(unsafe.Pointer(&mm[0])), C.int(dw), C.int(dh), C.int(k), grey, p0, p1, p2,
		(*C.float)(unsafe.Pointer(&out.mean[0])), C.float(out.norm)) == 1
}
