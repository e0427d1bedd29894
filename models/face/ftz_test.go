//go:build amd64

package face

import "testing"

// The flags must be on inside a run and restored after it.
func TestFlushToZeroScoped(t *testing.T) {
	const ftzDaz = 0x8040
	before := csrGet()
	var inside uint32
	withFlushToZero(func() error { inside = csrGet(); return nil })
	after := csrGet()
	if inside&ftzDaz != ftzDaz {
		t.Errorf("MXCSR inside = %#x, want FTZ and DAZ set", inside)
	}
	if after != before {
		t.Errorf("MXCSR after = %#x, want %#x as before", after, before)
	}
}
