package gallery

import "testing"

// TestScanImplementations compares every scan this build can run (AVX2,
// scalar C, or pure Go) with a plain Go loop, extremes included.
func TestScanImplementations(t *testing.T) {
	impls := scanImpls()
	t.Logf("implementations: %d", len(impls))
	rng := newRand(8)
	fill := map[string]func(i int) int8{
		"random": func(int) int8 { return int8(rng.IntN(255) - 127) },
		"max":    func(int) int8 { return 127 },
		"min":    func(int) int8 { return -127 },
		"alternate": func(i int) int8 {
			if i%2 == 0 {
				return 127
			}
			return -127
		},
		"zero": func(int) int8 { return 0 },
	}
	for _, stride := range []int{32, 64, 96, 512, 544, 4096} {
		for fname, f := range fill {
			for _, rows := range []int{1, 3, 17} {
				q := make([]int8, stride)
				codes := make([]int8, rows*stride)
				for i := range q {
					q[i] = f(i)
				}
				for i := range codes {
					if fname == "alternate" { // q alternates; make rows agree or fight
						codes[i] = f(i + i/stride)
					} else {
						codes[i] = f(i)
					}
				}
				want := make([]int32, rows)
				for r := range rows {
					for j := range stride {
						want[r] += int32(q[j]) * int32(codes[r*stride+j])
					}
				}
				for name, scan := range impls {
					got := make([]int32, rows+1)
					got[rows] = 12345 // must stay untouched
					scan(q, codes, stride, got)
					for r := range rows {
						if got[r] != want[r] {
							t.Fatalf("%s stride=%d %s row %d: got %d, want %d", name, stride, fname, r, got[r], want[r])
						}
					}
					if got[rows] != 12345 {
						t.Fatalf("%s wrote past the rows", name)
					}
				}
			}
		}
	}
}
