package face

import (
	"math"
	"slices"
)

// maxFaces bounds the faces analysed in one image, so a crowd photo costs
// a bounded number of landmark runs.
const maxFaces = 64

// found is one detected face with its landmarks and alignment.
type found struct {
	det   box  // detector box in view coordinates
	v     view // the attempt that found it
	lm    [landmarkCount]pt
	five  [5]pt  // in raster coordinates
	fiveV [5]pt  // in view coordinates
	sim   affine // view coordinates to the embedding input
	rms   float64
	// The landmark consistency (see worker.consistency), measured once.
	shift, flip float64
	measured    bool
}

// attempt detects faces in one view of r, locates their landmarks and
// appends them to out.
func (w *worker) attempt(r *raster, v view, p *params, out []found) ([]found, error) {
	boxes, err := w.detect(r, v, p)
	if err != nil {
		return nil, err
	}
	if len(boxes) > maxFaces {
		boxes = boxes[:maxFaces]
	}
	for _, b := range boxes {
		f := found{det: b, v: v}
		if err := w.landmarks(r, v, square(b), false, &f.lm); err != nil {
			return nil, err
		}
		if f.locate(p) {
			out = append(out, f)
		}
	}
	return out, nil
}

// locate derives the five points and the alignment from the landmarks,
// reporting false for degenerate landmarks.
func (f *found) locate(p *params) bool {
	f.fiveV = fivePoints(&f.lm)
	for i, q := range f.fiveV {
		x, y := f.v.toSrc.apply(q.x, q.y)
		f.five[i] = pt{x, y}
	}
	var ok bool
	f.sim, f.rms, ok = p.embedGeom.fit(&f.lm)
	return ok
}

// embed warps the face into the embedding model's input and writes the
// L2-normalised embedding to dst. It returns the embedding's length
// before normalising.
func (w *worker) embed(r *raster, f *found, p *params, dst []float32) (float64, error) {
	toSrc := f.sim.invert().then(f.v.toSrc)
	r.sample(toSrc, p.embedSize, p.embedSize, p.embedTaps,
		encoding{bgr: p.embedBGR, mean: p.embedMean, norm: p.embedNorm}, w.emb.input())
	if err := w.emb.run(); err != nil {
		return 0, err
	}
	copy(dst, w.emb.output(0))
	return normalize(dst), nil
}

// liveness returns the softmax of the liveness model's outputs over the
// face's context crop: the squared box scaled by livenessScale about its
// centre, shrunk to fit and shifted inside the (turned, unpadded) image.
func (w *worker) liveness(r *raster, f *found, p *params) ([]float32, error) {
	c := livenessCrop(f.unpaddedSquare(), float64(f.v.rw), float64(f.v.rh), p.livenessScale)
	v := newView(r, f.v.rot, 0, 0)
	n := p.livenessSize
	m := rectMap(c.x1, c.y1, c.x2, c.y2, n, n).then(v.toSrc)
	r.sample(m, n, n, p.livenessTaps, encoding{bgr: p.livenessBGR, mean: p.livenessMean, norm: p.livenessNorm}, w.live.input())
	if err := w.live.run(); err != nil {
		return nil, err
	}
	out := slices.Clone(w.live.output(0))
	softmax(out)
	return out, nil
}

// unpaddedSquare is the face's squared box in its view without the
// detector's grey border: the liveness model must see real pixels.
func (f *found) unpaddedSquare() box {
	sq := square(f.det)
	sq.x1 -= f.v.padX
	sq.x2 -= f.v.padX
	sq.y1 -= f.v.padY
	sq.y2 -= f.v.padY
	return sq
}

// livenessCrop scales b by s about its centre, limited so that it fits in
// a w x h image, and shifts it inside.
func livenessCrop(b box, w, h, s float64) box {
	s = min(s, w/b.w(), h/b.h())
	cw, ch := b.w()*s, b.h()*s
	cx, cy := (b.x1+b.x2)/2, (b.y1+b.y2)/2
	x1 := min(max(cx-cw/2, 0), w-cw)
	y1 := min(max(cy-ch/2, 0), h-ch)
	return box{x1: x1, y1: y1, x2: x1 + cw, y2: y1 + ch, score: b.score}
}

// softmax turns logits into probabilities in place.
func softmax(v []float32) {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	var s float64
	for i, x := range v {
		e := math.Exp(float64(x - m))
		v[i] = float32(e)
		s += e
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / s)
	}
}

// normalize scales v to unit length (leaving a zero vector as it is) and
// returns its former length.
func normalize(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return 0
	}
	n := math.Sqrt(s)
	inv := float32(1 / n)
	for i := range v {
		v[i] *= inv
	}
	return n
}
