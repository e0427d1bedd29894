package face

// pt is a point in continuous pixel coordinates.
type pt struct{ x, y float64 }

// landmarks runs the 68-point model on the square crop sq of view v and
// returns the points in view coordinates. The model takes the crop as
// 64x64 grey scaled to [0, 1) (pixel/256) and answers each point as a
// fraction of the crop's width and height.
func (w *worker) landmarks(r *raster, v view, sq box, out *[landmarkCount]pt) error {
	m := rectMap(sq.x1, sq.y1, sq.x2, sq.y2, landmarkSize, landmarkSize).then(v.toSrc)
	r.sample(m, landmarkSize, landmarkSize, maxTaps, encoding{grey: true, norm: 1.0 / 256}, w.lm.input())
	if err := w.lm.run(); err != nil {
		return err
	}
	o := w.lm.output(0)
	for i := range out {
		out[i] = pt{sq.x1 + float64(o[2*i])*sq.w(), sq.y1 + float64(o[2*i+1])*sq.h()}
	}
	return nil
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
