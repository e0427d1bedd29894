package face

import "math"

// arcFaceTemplate is where the five points sit in a 112x112 ArcFace input,
// in OpenCV pixel-index coordinates (insightface's reference).
var arcFaceTemplate = [5]pt{
	{38.2946, 51.6963},
	{73.5318, 51.5014},
	{56.0252, 71.7366},
	{41.5493, 92.3655},
	{70.7299, 92.2041},
}

// templatePoints returns the template for a size x size input in this
// package's continuous coordinates (index + 0.5), scaled from 112.
func templatePoints(size int) [5]pt {
	s := float64(size) / 112
	var t [5]pt
	for i, p := range arcFaceTemplate {
		t[i] = pt{(p.x + 0.5) * s, (p.y + 0.5) * s}
	}
	return t
}

// similarity fits the similarity transform (rotation, uniform scale,
// translation; no reflection, no shear) that maps src onto dst with the
// least sum of squared distances, and returns it with the root mean square
// distance that remains.
//
// This is Umeyama's method (IEEE PAMI 13(4), 1991) specialised to 2-D. A
// proper 2-D similarity is z -> c*z + t over complex numbers, so the
// least-squares fit is linear in c: with both point sets centred,
// c = sum(conj(p_i) q_i) / sum(|p_i|^2). This equals Umeyama's SVD solution
// with his reflection correction (S = diag(1, -1) when det(U)det(V) < 0):
// for mirrored points it returns the best rotation, never a reflection.
// Degenerate input (all src points equal) yields ok = false.
func similarity(src, dst []pt) (m affine, rms float64, ok bool) {
	n := float64(len(src))
	var ps, qs pt
	for i := range src {
		ps.x += src[i].x
		ps.y += src[i].y
		qs.x += dst[i].x
		qs.y += dst[i].y
	}
	ps = pt{ps.x / n, ps.y / n}
	qs = pt{qs.x / n, qs.y / n}
	var den, re, im float64
	for i := range src {
		zx, zy := src[i].x-ps.x, src[i].y-ps.y
		wx, wy := dst[i].x-qs.x, dst[i].y-qs.y
		den += zx*zx + zy*zy
		re += zx*wx + zy*wy
		im += zx*wy - zy*wx
	}
	if !(den > 1e-12) {
		return affine{}, 0, false
	}
	a, b := re/den, im/den // c = a + ib
	m = affine{
		a: a, b: -b, c: qs.x - (a*ps.x - b*ps.y),
		d: b, e: a, f: qs.y - (b*ps.x + a*ps.y),
	}
	var ss float64
	for i := range src {
		x, y := m.apply(src[i].x, src[i].y)
		ss += (x-dst[i].x)*(x-dst[i].x) + (y-dst[i].y)*(y-dst[i].y)
	}
	return m, math.Sqrt(ss / n), true
}

// angle is the rotation of similarity m in degrees, counter-clockwise
// positive in image coordinates (y down, so visually clockwise).
func (m affine) angle() float64 { return math.Atan2(m.d, m.a) * 180 / math.Pi }
