package face

import (
	"math"
	"slices"
)

// raster is a decoded, upright image: packed 8-bit RGB, row-major, no
// padding between rows.
type raster struct {
	w, h int
	pix  []byte
}

// affine maps a point (x, y) to (a*x + b*y + c, d*x + e*y + f). All
// coordinates in this package are continuous: pixel (i, j) covers the
// square [i, i+1) x [j, j+1) and its centre is (i+0.5, j+0.5).
type affine struct{ a, b, c, d, e, f float64 }

func (m affine) apply(x, y float64) (float64, float64) {
	return m.a*x + m.b*y + m.c, m.d*x + m.e*y + m.f
}

// then returns the map that applies m first and n second.
func (m affine) then(n affine) affine {
	return affine{
		a: n.a*m.a + n.b*m.d, b: n.a*m.b + n.b*m.e, c: n.a*m.c + n.b*m.f + n.c,
		d: n.d*m.a + n.e*m.d, e: n.d*m.b + n.e*m.e, f: n.d*m.c + n.e*m.f + n.f,
	}
}

// invert returns the inverse map; m must not be singular.
func (m affine) invert() affine {
	det := m.a*m.e - m.b*m.d
	ia, ib, id, ie := m.e/det, -m.b/det, -m.d/det, m.a/det
	return affine{a: ia, b: ib, c: -(ia*m.c + ib*m.f), d: id, e: ie, f: -(id*m.c + ie*m.f)}
}

// scale is the largest factor by which m stretches a unit step: how many
// source pixels one destination pixel spans along its longest side.
func (m affine) scale() float64 {
	return math.Max(math.Hypot(m.a, m.d), math.Hypot(m.b, m.e))
}

// rectMap maps the destination raster dw x dh onto the source rectangle
// (x1, y1)-(x2, y2), stretching each axis independently.
func rectMap(x1, y1, x2, y2 float64, dw, dh int) affine {
	return affine{a: (x2 - x1) / float64(dw), c: x1, e: (y2 - y1) / float64(dh), f: y1}
}

// rotation returns the map from the coordinates of the image turned
// clockwise by deg degrees (0, 90, 180, 270) to those of the w x h image.
func rotation(deg, w, h int) affine {
	W, H := float64(w), float64(h)
	switch deg {
	case 90: // view (vx, vy) = (H - sy, sx)
		return affine{a: 0, b: 1, c: 0, d: -1, e: 0, f: H}
	case 180:
		return affine{a: -1, c: W, e: -1, f: H}
	case 270: // view (vx, vy) = (sy, W - sx)
		return affine{a: 0, b: -1, c: W, d: 1, e: 0, f: 0}
	}
	return affine{a: 1, e: 1}
}

// rotatedSize is the size of the w x h image turned by deg degrees.
func rotatedSize(deg, w, h int) (int, int) {
	if deg == 90 || deg == 270 {
		return h, w
	}
	return w, h
}

// Output encodings for sample. Each writes planar float32 (NCHW without
// the batch axis).
type encoding struct {
	grey bool       // one plane: BT.601 luma
	bgr  bool       // three planes in B, G, R order (else R, G, B)
	mean [3]float32 // per channel, R, G, B (grey uses mean[0])
	norm float32    // value = (pixel - mean) * norm
}

// uniform is the same mean for every channel.
func uniform(m float32) [3]float32 { return [3]float32{m, m, m} }

// fillValue is what sample reads outside the image: mid grey, which every
// model here normalises to about zero.
const fillValue = 127

// maxTaps bounds the supersampling grid per axis (so at most maxTaps^2
// bilinear samples per output pixel).
const maxTaps = 4

// sample renders the dw x dh destination raster whose pixel centres map to
// source coordinates through m, into dst with the given encoding. When a
// destination pixel spans at most about one source pixel it is a bilinear
// sample, like OpenCV's INTER_LINEAR. When it spans more, it is the mean of
// a k x k grid of source pixels spread over its footprint (k = ceil(scale),
// at most taps): a box filter, so shrinking does not alias, at the cost of
// k*k reads instead of a full area sum. Points outside the image read
// fillValue.
func (r *raster) sample(m affine, dw, dh, taps int, enc encoding, dst []float32) {
	k := int(math.Ceil(m.scale() - 0.05))
	k = max(min(k, taps, maxTaps), 1)
	out := newPlanes(enc, dst, dw*dh)
	switch {
	case k == 1:
		r.bilinear(m, dw, dh, out)
	case m.b == 0 && m.d == 0 || m.a == 0 && m.e == 0:
		r.boxAxes(m, dw, dh, k, out)
	case !r.boxWarp(m, dw, dh, k, out): // vectorised where the CPU can
		r.box(m, dw, dh, k, out)
	}
}

// planes writes encoded pixels into planar float32 output.
type planes struct {
	p0, p1, p2 []float32
	grey       bool
	mean       [3]float32 // of the colours in R, G, B order
	norm       float32
}

func newPlanes(enc encoding, dst []float32, n int) planes {
	p := planes{grey: enc.grey, mean: enc.mean, norm: enc.norm}
	switch {
	case enc.grey:
		p.p0 = dst[:n]
	case enc.bgr:
		p.p2, p.p1, p.p0 = dst[:n], dst[n:2*n], dst[2*n:3*n]
	default:
		p.p0, p.p1, p.p2 = dst[:n], dst[n:2*n], dst[2*n:3*n]
	}
	return p
}

func (p *planes) set(o int, r, g, b float32) {
	if p.grey {
		p.p0[o] = (0.299*r + 0.587*g + 0.114*b - p.mean[0]) * p.norm
		return
	}
	_, _ = p.p1[o], p.p2[o]
	p.p0[o] = (r - p.mean[0]) * p.norm
	p.p1[o] = (g - p.mean[1]) * p.norm
	p.p2[o] = (b - p.mean[2]) * p.norm
}

// bilinear writes the bilinear sample at each destination pixel.
func (r *raster) bilinear(m affine, dw, dh int, out planes) {
	W, H := float32(r.w), float32(r.h)
	maxX, maxY := float32(r.w-1), float32(r.h-1)
	stride := r.w * 3
	pix := r.pix
	a, b, c := float32(m.a), float32(m.b), float32(m.c)
	d, e, f := float32(m.d), float32(m.e), float32(m.f)
	for y := 0; y < dh; y++ {
		ty := float32(y) + 0.5
		for x := 0; x < dw; x++ {
			tx := float32(x) + 0.5
			u := a*tx + b*ty + c
			v := d*tx + e*ty + f
			if !(u >= 0 && v >= 0 && u < W && v < H) { // also catches NaN
				out.set(y*dw+x, fillValue, fillValue, fillValue)
				continue
			}
			// Between the four nearest pixel centres, clamped at the edges.
			u = min(max(u-0.5, 0), maxX)
			v = min(max(v-0.5, 0), maxY)
			x0, y0 := int(u), int(v)
			wx, wy := u-float32(x0), v-float32(y0)
			dx, dy := 3, stride
			if x0 == r.w-1 {
				dx = 0
			}
			if y0 == r.h-1 {
				dy = 0
			}
			o := y0*stride + x0*3
			q := pix[o : o+dy+dx+3 : o+dy+dx+3]
			w00 := (1 - wx) * (1 - wy)
			w01 := wx * (1 - wy)
			w10 := (1 - wx) * wy
			w11 := wx * wy
			out.set(y*dw+x,
				w00*float32(q[0])+w01*float32(q[dx])+w10*float32(q[dy])+w11*float32(q[dy+dx]),
				w00*float32(q[1])+w01*float32(q[dx+1])+w10*float32(q[dy+1])+w11*float32(q[dy+dx+1]),
				w00*float32(q[2])+w01*float32(q[dx+2])+w10*float32(q[dy+2])+w11*float32(q[dy+dx+2]))
		}
	}
}

// box writes the mean of k x k source pixels spread evenly over each
// destination pixel's footprint, for any affine map. On CPUs with AVX2
// sample uses boxWarp instead, which computes the same values eight
// pixels at a time.
func (r *raster) box(m affine, dw, dh, k int, out planes) {
	W, H := float32(r.w), float32(r.h)
	stride := r.w * 3
	pix := r.pix
	a, b, c := float32(m.a), float32(m.b), float32(m.c)
	d, e, f := float32(m.d), float32(m.e), float32(m.f)
	var offs [maxTaps]float32
	for i := 0; i < k; i++ {
		offs[i] = (float32(i) + 0.5) / float32(k)
	}
	inv := 1 / float32(k*k)
	for y := 0; y < dh; y++ {
		fy := float32(y)
		for x := 0; x < dw; x++ {
			fx := float32(x)
			var sr, sg, sb int
			for j := 0; j < k; j++ {
				ty := fy + offs[j]
				u0 := a*fx + b*ty + c
				v0 := d*fx + e*ty + f
				for i := 0; i < k; i++ {
					u := u0 + a*offs[i]
					v := v0 + d*offs[i]
					if !(u >= 0 && v >= 0 && u < W && v < H) {
						sr += fillValue
						sg += fillValue
						sb += fillValue
						continue
					}
					o := int(v)*stride + int(u)*3
					q := pix[o : o+3 : o+3]
					sr += int(q[0])
					sg += int(q[1])
					sb += int(q[2])
				}
			}
			out.set(y*dw+x, float32(sr)*inv, float32(sg)*inv, float32(sb)*inv)
		}
	}
}

// boxAxes is box for maps that keep or swap the axes (crops, resizes and
// quarter turns): each source offset is then the sum of a part that
// depends only on the destination column and one that depends only on the
// row, so both are tabulated once and the inner loop only adds and reads.
func (r *raster) boxAxes(m affine, dw, dh, k int, out planes) {
	stride := r.w * 3
	swap := !(m.b == 0 && m.d == 0)
	// part returns the offset contribution of destination coordinate t
	// (a column when col), or -1 when the sample falls outside the image.
	part := func(t float64, col bool) int32 {
		var v float64
		var isX bool
		switch {
		case col && !swap:
			v, isX = m.a*t+m.c, true
		case col:
			v = m.d*t + m.f
		case !swap:
			v = m.e*t + m.f
		default:
			v, isX = m.b*t+m.c, true
		}
		if isX {
			if !(v >= 0 && v < float64(r.w)) {
				return -1
			}
			return int32(int(v) * 3)
		}
		if !(v >= 0 && v < float64(r.h)) {
			return -1
		}
		return int32(int(v) * stride)
	}
	cols := make([]int32, dw*k)
	rows := make([]int32, dh*k)
	colsIn := make([]bool, dw)  // every tap inside
	colsOut := make([]bool, dw) // every tap outside
	for x := 0; x < dw; x++ {
		colsIn[x], colsOut[x] = true, true
		for i := 0; i < k; i++ {
			c := part(float64(x)+(float64(i)+0.5)/float64(k), true)
			cols[x*k+i] = c
			colsIn[x] = colsIn[x] && c >= 0
			colsOut[x] = colsOut[x] && c < 0
		}
	}
	for y := 0; y < dh; y++ {
		for j := 0; j < k; j++ {
			rows[y*k+j] = part(float64(y)+(float64(j)+0.5)/float64(k), false)
		}
	}
	// The destination columns hx0 to hx1 whose two taps are neighbouring
	// source pixels inside the image, pixels 2x and 2x+1 of a run: an exact
	// halving (a 640-pixel-wide frame for the detector), which halveRow
	// does eight columns at a time.
	hx0, hx1 := 0, 0
	if k == 2 && !swap && !out.grey {
		if i := slices.Index(colsIn, true); i >= 0 {
			hx0, hx1 = i, i
			for hx1 < dw && colsIn[hx1] && cols[2*hx1] == cols[2*hx0]+int32(6*(hx1-hx0)) && cols[2*hx1+1] == cols[2*hx1]+3 {
				hx1++
			}
		}
	}
	pix := r.pix
	inv := 1 / float32(k*k)
	for y := 0; y < dh; y++ {
		ry := rows[y*k : y*k+k]
		rowIn, rowOut := true, true
		for _, ro := range ry {
			rowIn = rowIn && ro >= 0
			rowOut = rowOut && ro < 0
		}
		if rowOut {
			for x := 0; x < dw; x++ {
				out.set(y*dw+x, fillValue, fillValue, fillValue)
			}
			continue
		}
		var rs [maxTaps][]byte // pix from each row's offset, when all are inside
		if rowIn {
			for j, ro := range ry {
				rs[j] = pix[ro:] // a row, or a column of a turned view
			}
		}
		var r0, r1 []byte // the two source rows when k == 2
		if rowIn && k == 2 {
			r0, r1 = pix[ry[0]:], pix[ry[1]:]
			if !out.grey {
				// The detector's input: a whole row of colour 2x2 means,
				// in one tight loop (a third of the per-pixel path's
				// time), its exact halving vectorised.
				o, done := y*dw, 0
				if hx1-hx0 >= 8 {
					c := cols[2*hx0]
					done = halveRow(r0[c:], r1[c:], out.p0[o+hx0:o+hx1], out.p1[o+hx0:o+hx1], out.p2[o+hx0:o+hx1], &out.mean, out.norm)
				}
				r.boxRow2(r0, r1, cols, colsIn, colsOut, out, o, 0, hx0, inv)
				r.boxRow2(r0, r1, cols, colsIn, colsOut, out, o, hx0+done, dw, inv)
				continue
			}
		}
		o := y * dw
		for x := 0; x < dw; x, o = x+1, o+1 {
			cx := cols[x*k : x*k+k]
			var sr, sg, sb int32
			switch {
			case rowIn && colsIn[x] && k == 2:
				c0, c1 := int(cx[0]), int(cx[1])
				_, _ = r0[c1+2], r1[c1+2] // one bounds check for all reads below
				sr = int32(r0[c0]) + int32(r0[c1]) + int32(r1[c0]) + int32(r1[c1])
				sg = int32(r0[c0+1]) + int32(r0[c1+1]) + int32(r1[c0+1]) + int32(r1[c1+1])
				sb = int32(r0[c0+2]) + int32(r0[c1+2]) + int32(r1[c0+2]) + int32(r1[c1+2])
			case rowIn && colsIn[x] && k == 3:
				// The landmark model's crop of a mid-sized face: the taps
				// of a row written out, which halves the time of the loop
				// below.
				c0, c1, c2 := int(cx[0]), int(cx[1]), int(cx[2])
				for _, row := range rs[:3] {
					p, q, s := row[c0:c0+3:c0+3], row[c1:c1+3:c1+3], row[c2:c2+3:c2+3]
					sr += int32(p[0]) + int32(q[0]) + int32(s[0])
					sg += int32(p[1]) + int32(q[1]) + int32(s[1])
					sb += int32(p[2]) + int32(q[2]) + int32(s[2])
				}
			case rowIn && colsIn[x] && k == 4:
				// The same for a large face.
				c0, c1, c2, c3 := int(cx[0]), int(cx[1]), int(cx[2]), int(cx[3])
				for _, row := range rs[:4] {
					p, q, s, u := row[c0:c0+3:c0+3], row[c1:c1+3:c1+3], row[c2:c2+3:c2+3], row[c3:c3+3:c3+3]
					sr += int32(p[0]) + int32(q[0]) + int32(s[0]) + int32(u[0])
					sg += int32(p[1]) + int32(q[1]) + int32(s[1]) + int32(u[1])
					sb += int32(p[2]) + int32(q[2]) + int32(s[2]) + int32(u[2])
				}
			case rowIn && colsIn[x]:
				for _, row := range rs[:k] {
					for _, co := range cx {
						q := row[co : co+3 : co+3]
						sr += int32(q[0])
						sg += int32(q[1])
						sb += int32(q[2])
					}
				}
			case colsOut[x]:
				out.set(o, fillValue, fillValue, fillValue)
				continue
			default:
				for _, ro := range ry {
					for _, co := range cx {
						if ro < 0 || co < 0 {
							sr += fillValue
							sg += fillValue
							sb += fillValue
							continue
						}
						q := pix[ro+co : ro+co+3 : ro+co+3]
						sr += int32(q[0])
						sg += int32(q[1])
						sb += int32(q[2])
					}
				}
			}
			out.set(o, float32(sr)*inv, float32(sg)*inv, float32(sb)*inv)
		}
	}
}

// boxRow2 is boxAxes's loop over destination columns x0 to x1 of one row
// whose two source rows r0 and r1 lie inside the image, for a colour
// encoding and k == 2. It
// computes exactly what the per-pixel path does (the same integer sums and
// the same float32 operations in the same order), writing the three planes
// directly.
func (r *raster) boxRow2(r0, r1 []byte, cols []int32, colsIn, colsOut []bool, out planes, o, x0, x1 int, inv float32) {
	p0, p1, p2 := out.p0[o+x0:o+x1], out.p1[o+x0:o+x1], out.p2[o+x0:o+x1]
	cols, colsIn, colsOut = cols[2*x0:2*x1], colsIn[x0:x1], colsOut[x0:x1]
	m0, m1, m2, norm := out.mean[0], out.mean[1], out.mean[2], out.norm
	for x := range p0 {
		var fr, fg, fb float32
		switch {
		case colsIn[x]:
			c0, c1 := int(cols[2*x]), int(cols[2*x+1])
			a, b := r0[c0:c0+3:c0+3], r0[c1:c1+3:c1+3]
			c, d := r1[c0:c0+3:c0+3], r1[c1:c1+3:c1+3]
			fr = float32(int32(a[0])+int32(b[0])+int32(c[0])+int32(d[0])) * inv
			fg = float32(int32(a[1])+int32(b[1])+int32(c[1])+int32(d[1])) * inv
			fb = float32(int32(a[2])+int32(b[2])+int32(c[2])+int32(d[2])) * inv
		case colsOut[x]:
			fr, fg, fb = fillValue, fillValue, fillValue
		default: // one column inside, one outside
			var sr, sg, sb int32
			for _, co := range cols[2*x : 2*x+2] {
				if co < 0 {
					sr += 2 * fillValue
					sg += 2 * fillValue
					sb += 2 * fillValue
					continue
				}
				q0, q1 := r0[co:co+3:co+3], r1[co:co+3:co+3]
				sr += int32(q0[0]) + int32(q1[0])
				sg += int32(q0[1]) + int32(q1[1])
				sb += int32(q0[2]) + int32(q1[2])
			}
			fr, fg, fb = float32(sr)*inv, float32(sg)*inv, float32(sb)*inv
		}
		p0[x] = (fr - m0) * norm
		p1[x] = (fg - m1) * norm
		p2[x] = (fb - m2) * norm
	}
}
