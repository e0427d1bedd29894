package photo

// resizeArea shrinks packed RGB src (sw x sh) to dw x dh (no larger) by area
// averaging: each output pixel is the mean of the source area it covers,
// partial pixels weighted by their overlap. Unlike point sampling this
// cannot alias, which matters for fine texture (hair, print patterns) the
// liveness model looks at.
//
// Overlaps are computed exactly in integer units where a source pixel is
// dw (or dh) long and an output pixel sw (or sh). Rows are filtered
// horizontally once each, then spread over the (at most two) output rows
// they overlap, so the whole pass holds just three float rows.
func resizeArea(src []byte, sw, sh, dw, dh int) []byte {
	dst := make([]byte, 3*dw*dh)
	xs := areaWeights(sw, dw)

	hrow := make([]float32, 3*dw)
	acc := [2][]float32{make([]float32, 3*dw), make([]float32, 3*dw)}
	for sy := 0; sy < sh; sy++ {
		// Horizontal pass of source row sy.
		row := src[3*sy*sw : 3*(sy+1)*sw]
		for dx := range xs {
			s := &xs[dx]
			// Subslices of known length let the compiler drop most
			// bounds checks from these inner loops.
			seg := row[3*s.start : 3*s.start+3*len(s.weights)]
			var r, g, b float32
			for k, wt := range s.weights {
				p := seg[3*k : 3*k+3 : 3*k+3]
				r += wt * float32(p[0])
				g += wt * float32(p[1])
				b += wt * float32(p[2])
			}
			o := hrow[3*dx : 3*dx+3 : 3*dx+3]
			o[0], o[1], o[2] = r, g, b
		}
		// Vertical: source row sy covers [sy*dh, (sy+1)*dh), output row
		// dy covers [dy*sh, (dy+1)*sh).
		lo, hi := sy*dh, (sy+1)*dh
		for dy := lo / sh; dy < dh && dy*sh < hi; dy++ {
			ov := min(hi, (dy+1)*sh) - max(lo, dy*sh)
			wt := float32(ov) / float32(sh)
			a := acc[dy&1][:len(hrow)]
			for i, v := range hrow {
				a[i] += wt * v
			}
			if (dy+1)*sh <= hi { // output row dy is complete
				out := dst[3*dy*dw : 3*(dy+1)*dw][:len(a)]
				for i, v := range a {
					out[i] = clamp8(v)
					a[i] = 0
				}
			}
		}
	}
	return dst
}

// span is the source range and weights (summing to 1) of one output pixel.
type span struct {
	start   int
	weights []float32
}

func areaWeights(n, m int) []span {
	spans := make([]span, m)
	for d := range spans {
		lo, hi := d*n, (d+1)*n // output pixel d in units where a source pixel is m long
		s := span{start: lo / m}
		for j := s.start; j*m < hi; j++ {
			ov := min(hi, (j+1)*m) - max(lo, j*m)
			s.weights = append(s.weights, float32(ov)/float32(n))
		}
		spans[d] = s
	}
	return spans
}

func clamp8(v float32) byte {
	v += 0.5
	if v >= 255 {
		return 255
	}
	if v <= 0 {
		return 0
	}
	return byte(v)
}
