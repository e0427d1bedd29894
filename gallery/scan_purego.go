//go:build !cgo

package gallery

// scanDots computes out[r] = q·codes[r*stride:(r+1)*stride] for every row.
// This is the fallback for builds without cgo; it gives the same results as
// the C scan, several times slower.
func scanDots(q, codes []int8, stride int, out []int32) {
	rows := len(codes) / stride
	for r := 0; r < rows; r++ {
		v := codes[r*stride : (r+1)*stride]
		var acc int32
		for j, x := range q[:stride] {
			acc += int32(x) * int32(v[j])
		}
		out[r] = acc
	}
}

// scanImpls lists the implementations this build can run, by name.
func scanImpls() map[string]func(q, codes []int8, stride int, out []int32) {
	return map[string]func(q, codes []int8, stride int, out []int32){"go": scanDots}
}
