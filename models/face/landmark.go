package face

import "math"

// pt is a point in continuous pixel coordinates.
type pt struct{ x, y float64 }

// landmarks runs the 68-point model on the square crop sq of view v and
// returns the points in view coordinates. The model takes the crop as
// 64x64 grey scaled to [0, 1) (pixel/256) and answers each point as a
// fraction of the crop's width and height. With mirror the crop is
// mirrored left to right before the model sees it, and the points are
// mirrored back (so the model's "left eye" is then the face's right one).
func (w *worker) landmarks(r *raster, v view, sq box, mirror bool, out *[landmarkCount]pt) error {
	m := rectMap(sq.x1, sq.y1, sq.x2, sq.y2, landmarkSize, landmarkSize)
	if mirror {
		m = affine{a: -1, c: landmarkSize, e: 1}.then(m)
	}
	r.sample(m.then(v.toSrc), landmarkSize, landmarkSize, maxTaps, encoding{grey: true, norm: 1.0 / 256}, w.lm.input())
	if err := w.lm.run(); err != nil {
		return err
	}
	o := w.lm.output(0)
	for i := range out {
		x, y := float64(o[2*i]), float64(o[2*i+1])
		if mirror {
			x = 1 - x
		}
		out[i] = pt{sq.x1 + x*sq.w(), sq.y1 + y*sq.h()}
	}
	return nil
}

// consistency measures whether the landmark model follows the face: how
// far its five points move, as a fraction of the crop's side, when the
// crop is shifted by a tenth of its side (shift) and when it is mirrored
// (flip). On a face turned sideways or upside down the model is outside
// what it learned and answers much the same shape whatever it sees, so its
// points move with the crop; on the labelled sets this tells upright faces
// from turned ones almost perfectly (docs/face-pipeline.md), for two
// landmark runs. flip is reported as +Inf when the shift alone exceeds
// giveUp. Both are measured once per face and kept in f: every face that
// is embedded needs both (a face that upright is not sure of is compared
// with its turned copies, which weighs its mirror inconsistency), and
// measuring them again there cost two more landmark runs.
func (w *worker) consistency(r *raster, f *found, giveUp float64) (shift, flip float64, err error) {
	if !f.measured {
		if f.shift, f.flip, err = w.measureConsistency(r, f); err != nil {
			return 0, 0, err
		}
		f.measured = true
	}
	if f.shift > giveUp {
		return f.shift, math.Inf(1), nil
	}
	return f.shift, f.flip, nil
}

// measureConsistency runs the landmark model on f's crop shifted and
// mirrored (see consistency).
func (w *worker) measureConsistency(r *raster, f *found) (shift, flip float64, err error) {
	sq := square(f.det)
	side := sq.w()
	var lm [landmarkCount]pt
	d := 0.1 * side
	if err := w.landmarks(r, f.v, box{x1: sq.x1 + d, y1: sq.y1 + d, x2: sq.x2 + d, y2: sq.y2 + d}, false, &lm); err != nil {
		return 0, 0, err
	}
	shift = meanDist(f.fiveV, fivePoints(&lm)) / side
	if err := w.landmarks(r, f.v, sq, true, &lm); err != nil {
		return 0, 0, err
	}
	m := fivePoints(&lm)
	m[0], m[1], m[3], m[4] = m[1], m[0], m[4], m[3] // the mirrored face's left is its right
	return shift, meanDist(f.fiveV, m) / side, nil
}

// meanDist is the mean distance between corresponding points.
func meanDist(a, b [5]pt) float64 {
	var s float64
	for i := range a {
		s += math.Hypot(a[i].x-b[i].x, a[i].y-b[i].y)
	}
	return s / float64(len(a))
}

// fivePoints reduces the 68-point (iBUG 300-W) layout to the five points
// of the ArcFace template, in its order: the eye on the image's left (mean
// of its four eyelid points 37, 38, 40, 41), the other eye (43, 44, 46,
// 47), the nose tip (30), and the mouth corners as the mean of the outer
// and inner lip corner (48 and 60, 54 and 64).
func fivePoints(p *[landmarkCount]pt) [5]pt {
	mean := func(idx ...int) pt {
		var s pt
		for _, i := range idx {
			s.x += p[i].x
			s.y += p[i].y
		}
		n := float64(len(idx))
		return pt{s.x / n, s.y / n}
	}
	return [5]pt{
		mean(37, 38, 40, 41),
		mean(43, 44, 46, 47),
		p[30],
		mean(48, 60),
		mean(54, 64),
	}
}
