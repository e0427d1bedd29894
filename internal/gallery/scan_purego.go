//go:build !cgo

package gallery

// scanDots computes out[r] = q·codes[r*stride:(r+1)*stride] for every row.
// This is the fallback for builds without cgo; it gives the same results as
// the C scan, about ten times slower (Go does not vectorise).
func scanDots(q, codes []int8, stride int, out []int32) {
	rows := len(codes) / stride
	q = q[:stride]
	for r := 0; r < rows; r++ {
		v := codes[r*stride : (r+1)*stride]
		var a0, a1, a2, a3 int32
		for j := 0; j < stride; j += 4 { // stride is a multiple of 32
			a0 += int32(q[j]) * int32(v[j])
			a1 += int32(q[j+1]) * int32(v[j+1])
			a2 += int32(q[j+2]) * int32(v[j+2])
			a3 += int32(q[j+3]) * int32(v[j+3])
		}
		out[r] = a0 + a1 + a2 + a3
	}
}

// scanImpls lists the implementations this build can run, by name.
func scanImpls() map[string]func(q, codes []int8, stride int, out []int32) {
	return map[string]func(q, codes []int8, stride int, out []int32){"go": scanDots}
}
