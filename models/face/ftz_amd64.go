package face

// #include <xmmintrin.h>
//
// // face_ftz_on sets the SSE control register's flush-to-zero (bit 15) and
// // denormals-are-zero (bit 6) flags and returns the previous value.
// static unsigned int face_ftz_on(void) {
// 	unsigned int old = _mm_getcsr();
// 	_mm_setcsr(old | 0x8040);
// 	return old;
// }
//
// static void face_csr_restore(unsigned int v) { _mm_setcsr(v); }
// static unsigned int face_csr_get(void) { return _mm_getcsr(); }
import "C"

import "runtime"

// withFlushToZero runs f with denormal floats treated as zero on the
// current thread. The models' activations reach denormal values, and x86
// handles each one in microcode: the embedding model ran 8 to 12 times
// slower without this (see docs/face-pipeline.md). With one intra-op thread
// ONNX Runtime computes on the calling thread, so the flags are set there,
// for the duration of the run only: the goroutine is locked to its thread
// and the register is restored before Go code may run elsewhere on it, as
// Go assumes IEEE behaviour.
func withFlushToZero(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old := C.face_ftz_on()
	defer C.face_csr_restore(old)
	return f()
}

func csrGet() uint32 { return uint32(C.face_csr_get()) }
