package face

import (
	"math"
	"math/rand"
	"testing"

	"github.com/xplore/faceauth/models"
)

// TestGeometryTemplates checks where each geometry puts its reference
// points: the ArcFace template as insightface has it, dlib's mean face
// padded and scaled as get_face_chip_details computes it, and an
// operator's five points as written.
func TestGeometryTemplates(t *testing.T) {
	near := func(a, b pt) bool { return math.Abs(a.x-b.x) < 1e-6 && math.Abs(a.y-b.y) < 1e-6 }
	arc, err := newGeometry(&models.Embedder{ID: "a", Size: 112, Alignment: models.AlignArcFace})
	if err != nil {
		t.Fatal(err)
	}
	if len(arc.dst) != 5 || !near(arc.dst[2], pt{56.0252 + 0.5, 71.7366 + 0.5}) || arc.five != templatePoints(112) {
		t.Errorf("ArcFace geometry = %+v", arc)
	}
	d, err := newGeometry(&models.Embedder{ID: "d", Size: 150, Alignment: models.AlignDlib, Padding: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	// dlib fits points 27-54 and 60-64; the nose tip (30) goes to
	// (0.25+0.490127)/1.5*150, (0.25+0.515625)/1.5*150 in dlib's
	// pixel-index coordinates.
	if len(d.dst) != 33 || d.src[0][0] != 27 || d.src[27][0] != 54 || d.src[28][0] != 60 || d.src[32][0] != 64 {
		t.Errorf("dlib geometry fits landmarks %v, want 27-54 and 60-64", d.src)
	}
	if !near(d.dst[3], pt{74.0127, 76.5625}) || d.src[3][0] != 30 {
		t.Errorf("nose tip at %v, want (74.0127, 76.5625)", d.dst[3])
	}
	// The five points of the dlib chip: eyes level and symmetric about
	// the chip's middle column, below the top third.
	if f := d.five; math.Abs(f[0].y-f[1].y) > 1e-9 || math.Abs((f[0].x+f[1].x)/2-74.0127-0.5) > 0.01 || f[0].y < 40 || f[0].y > 55 {
		t.Errorf("dlib five points = %v", f)
	}
	op, err := newGeometry(&models.Embedder{ID: "o", Size: 96, Alignment: models.AlignTemplate,
		Template: [][2]float64{{30, 40}, {66, 40}, {48, 60}, {34, 78}, {62, 78}}})
	if err != nil {
		t.Fatal(err)
	}
	if !near(op.dst[4], pt{62.5, 78.5}) || op.five[0] != (pt{30.5, 40.5}) {
		t.Errorf("operator geometry = %+v", op)
	}
}

// TestDlibChipMatchesDlib compares the engine's dlib chip with dlib's own
// construction, written out step by step as dlib's interpolation.h does
// it (chip_details from points, then get_mapping_to_chip from three
// rotated rectangle corners), for noisy landmarks of a scaled, turned and
// shifted face: every image point must land on the same chip position.
func TestDlibChipMatchesDlib(t *testing.T) {
	const size, padding = 150, 0.25
	g, err := newGeometry(&models.Embedder{ID: "d", Size: size, Alignment: models.AlignDlib, Padding: padding})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	for _, c := range []struct{ scale, deg, tx, ty float64 }{
		{1, 0, 0, 0}, {2.3, 17, 40, -12}, {0.7, -35, 300, 220}, {4.1, 178, 900, 40},
	} {
		rad := c.deg * math.Pi / 180
		s := affine{a: c.scale * math.Cos(rad), b: -c.scale * math.Sin(rad), c: c.tx,
			d: c.scale * math.Sin(rad), e: c.scale * math.Cos(rad), f: c.ty}
		// Landmarks in dlib's pixel-index coordinates, and in ours.
		var idx, lm [landmarkCount]pt
		for i := range idx {
			p := pt{rng.Float64() * size, rng.Float64() * size}
			if i >= 17 {
				p = dlibChipPoint(i, size, padding)
			}
			x, y := s.apply(p.x, p.y)
			idx[i] = pt{x + rng.NormFloat64()*c.scale, y + rng.NormFloat64()*c.scale}
			lm[i] = pt{idx[i].x + 0.5, idx[i].y + 0.5}
		}
		ours, rms, ok := g.fit(&lm)
		if !ok {
			t.Fatal("fit failed")
		}
		want := dlibReference(t, &idx, size, padding)
		for _, q := range []pt{idx[30], idx[36], idx[0], {c.tx, c.ty}, {c.tx + 500, c.ty - 80}} {
			wx, wy := want.apply(q.x, q.y)
			gx, gy := ours.apply(q.x+0.5, q.y+0.5)
			if math.Hypot(gx-0.5-wx, gy-0.5-wy) > 1e-6 {
				t.Errorf("scale %v angle %v: image point %v lands at chip (%.4f, %.4f), dlib puts it at (%.4f, %.4f)",
					c.scale, c.deg, q, gx-0.5, gy-0.5, wx, wy)
			}
		}
		// With one-pixel landmark noise the template points land within
		// about a pixel (scaled into the chip) of where dlib puts them.
		if rms > 2.5 {
			t.Errorf("scale %v angle %v: rms %.2f chip pixels", c.scale, c.deg, rms)
		}
	}
}

// dlibReference is dlib's get_face_chip_details(det, size, padding)
// followed by get_mapping_to_chip, in dlib's pixel-index coordinates:
// the map from image to chip.
func dlibReference(t *testing.T, det *[landmarkCount]pt, size int, padding float64) affine {
	t.Helper()
	var from, to []pt
	for i := 17; i < landmarkCount; i++ {
		if (55 <= i && i <= 59) || (65 <= i && i <= 67) || (17 <= i && i <= 26) {
			continue
		}
		m := dlibMeanFace[i-17]
		from = append(from, pt{(padding + m.x) / (2*padding + 1) * float64(size), (padding + m.y) / (2*padding + 1) * float64(size)})
		to = append(to, det[i])
	}
	tform, _, ok := similarity(from, to) // find_similarity_transform(chip, img)
	if !ok {
		t.Fatal("degenerate reference")
	}
	px, py := tform.a, tform.d // tform.get_m() * (1, 0)
	angle := math.Atan2(py, px)
	scale := math.Hypot(px, py)
	cx, cy := tform.apply(float64(size)/2, float64(size)/2)
	w := float64(size)*scale - 1 // centered_drect: width--, height--
	l, tp, r, b := cx-w/2, cy-w/2, cx+w/2, cy+w/2
	rot := func(x, y float64) pt { // rotate_point(center, p, angle)
		x, y = x-cx, y-cy
		return pt{cx + x*math.Cos(angle) - y*math.Sin(angle), cy + x*math.Sin(angle) + y*math.Cos(angle)}
	}
	src := [3]pt{rot(l, tp), rot(r, tp), rot(r, b)}
	n := float64(size - 1)
	dst := [3]pt{{0, 0}, {n, 0}, {n, n}}
	return affine3(t, src, dst)
}

// affine3 solves for the affine map that takes three points onto three
// others (dlib's find_affine_transform with three points).
func affine3(t *testing.T, src, dst [3]pt) affine {
	// [x y 1] rows; solve by Cramer's rule for each output coordinate.
	det := src[0].x*(src[1].y-src[2].y) - src[0].y*(src[1].x-src[2].x) + (src[1].x*src[2].y - src[2].x*src[1].y)
	if math.Abs(det) < 1e-12 {
		t.Fatal("collinear points")
	}
	solve := func(v [3]float64) (float64, float64, float64) {
		a := (v[0]*(src[1].y-src[2].y) - src[0].y*(v[1]-v[2]) + (v[1]*src[2].y - v[2]*src[1].y)) / det
		b := (src[0].x*(v[1]-v[2]) - v[0]*(src[1].x-src[2].x) + (src[1].x*v[2] - src[2].x*v[1])) / det
		c := (src[0].x*(src[1].y*v[2]-src[2].y*v[1]) - src[0].y*(src[1].x*v[2]-src[2].x*v[1]) + v[0]*(src[1].x*src[2].y-src[2].x*src[1].y)) / det
		return a, b, c
	}
	a, b, c := solve([3]float64{dst[0].x, dst[1].x, dst[2].x})
	d, e, f := solve([3]float64{dst[0].y, dst[1].y, dst[2].y})
	return affine{a: a, b: b, c: c, d: d, e: e, f: f}
}
