package photo

/*
#cgo LDFLAGS: -ljpeg
#include "jpeg.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// decodeJPEG decodes through libjpeg-turbo (jpeg.c) at the scale target
// asks for, into buf when it is large enough (every byte is written).
// Both buffers are Go memory without pointers, passed for the duration of
// the call only, as cgo allows.
func decodeJPEG(data []byte, h *header, target int, buf []byte) (pix []byte, w, ht int, err error) {
	m, w, ht := jpegScale(h.w, h.h, target)
	if n := 3 * w * ht; cap(buf) >= n {
		pix = buf[:n]
	} else {
		pix = make([]byte, n)
	}
	// Progressive files keep every coefficient in memory: 2 bytes per sample
	// and component at most, with MCU padding. This bounds libjpeg's memory
	// by the (already limited) header size.
	maxMem := int64(h.jpeg.comps)*int64(h.w+32)*int64(h.h+32)*2 + 64<<20
	var msg [C.PHOTO_MSG_LEN]byte
	rc := C.photo_jpeg_decode(
		(*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)),
		C.int(h.w), C.int(h.h), C.int(m),
		(*C.uchar)(unsafe.Pointer(&pix[0])), C.int(w), C.int(ht),
		C.long(maxMem), (*C.char)(unsafe.Pointer(&msg[0])))
	if rc == C.PHOTO_OK {
		return pix, w, ht, nil
	}
	cause := fmt.Errorf("libjpeg: %s", C.GoString((*C.char)(unsafe.Pointer(&msg[0]))))
	switch rc {
	case C.PHOTO_TRUNCATED:
		err = errTruncated(cause)
	case C.PHOTO_UNSUPPORTED:
		err = errUnsupported(cause)
	case C.PHOTO_TOO_LARGE:
		err = errTooLargeMemory(cause)
	default: // PHOTO_CORRUPT, PHOTO_MISMATCH
		err = errCorrupt(cause)
	}
	return nil, 0, 0, err
}
