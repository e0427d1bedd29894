package face

import (
	"math"
	"slices"

	"github.com/xplore/faceauth"
)

// rasterBox is the face's detector box in raster coordinates.
func (f *found) rasterBox() box {
	return viewBoxToRaster(f.det, f.v)
}

func viewBoxToRaster(b box, v view) box {
	x1, y1 := v.toSrc.apply(b.x1, b.y1)
	x2, y2 := v.toSrc.apply(b.x2, b.y2)
	return box{x1: min(x1, x2), y1: min(y1, y2), x2: max(x1, x2), y2: max(y1, y2), score: b.score}
}

func rasterBoxToView(b box, v view) box {
	inv := v.toSrc.invert()
	x1, y1 := inv.apply(b.x1, b.y1)
	x2, y2 := inv.apply(b.x2, b.y2)
	return box{x1: min(x1, x2), y1: min(y1, y2), x2: max(x1, x2), y2: max(y1, y2), score: b.score}
}

// size is the face's size as the distance between the eyes, in raster
// pixels, of the frontal face that best fits its five points: unlike the
// measured eye distance it does not shrink when the head turns sideways.
func (f *found) size(p *params) float64 {
	t := &p.embedTempl
	eyes := math.Hypot(t[1].x-t[0].x, t[1].y-t[0].y) // in the model's input
	return eyes / math.Hypot(f.sim.a, f.sim.d)
}

// sizeQuality is the size term of Face.Quality.
func sizeQuality(f *found, p *params) float64 { return min(1, f.size(p)/24) }

// normQuality is the embedding-strength term of Face.Quality.
func normQuality(norm float64) float64 { return min(max((norm-2)/2, 0), 1) }

// byDominance orders faces largest first (detector box area).
func byDominance(fs []found) {
	slices.SortStableFunc(fs, func(a, b found) int {
		switch aa, ba := a.det.area(), b.det.area(); {
		case aa > ba:
			return -1
		case aa < ba:
			return 1
		}
		return 0
	})
}

// find detects the faces of r, trying the image turned by 90, 270 and 180
// degrees when it finds none upright. The result is sorted by dominance
// and aliases one of w's buffers.
func (w *worker) find(r *raster, p *params) ([]found, error) {
	for _, rot := range [...]int{0, 90, 270, 180} {
		fs, err := w.findIn(r, rot, p)
		if err != nil || len(fs) > 0 {
			return fs, err
		}
	}
	return nil, nil
}

// findIn detects faces in r turned by rot. The detector misses faces that
// fill the frame, so small images (crops) are surrounded by a grey border
// of borderFrac of their longer side, and larger ones are tried again with
// the border when nothing is found or the largest face's box reaches an
// edge of the frame (a face cut off by the crop). Big images are
// first tried without the border, which would shrink their small faces.
func (w *worker) findIn(r *raster, rot int, p *params) ([]found, error) {
	var fs []found
	var err error
	if max(r.w, r.h) > p.smallImage {
		v := newView(r, rot, 0, 0)
		if fs, err = w.attempt(r, v, p, w.bufA[:0]); err != nil {
			return nil, err
		}
		w.bufA = fs[:0]
		byDominance(fs)
		if len(fs) > 0 && !fillsFrame(fs[0].det, v) {
			return fs, nil
		}
	}
	b := p.borderFrac * float64(max(r.w, r.h))
	bs, err := w.attempt(r, newView(r, rot, b, b), p, w.bufB[:0])
	if err != nil {
		return nil, err
	}
	w.bufB = bs[:0]
	if len(bs) > 0 {
		byDominance(bs)
		return bs, nil
	}
	return fs, nil
}

// fillsFrame reports whether a face box reaches an edge of the (unbordered)
// view: a crop the detector may handle badly. A large face that stays
// inside the frame (a kiosk or selfie shot) is kept from the first pass;
// detecting it again with a border cost 5 to 6 ms and changed no result
// on the shared identity sets.
func fillsFrame(b box, v view) bool {
	return b.x1 <= 0 || b.y1 <= 0 || b.x2 >= v.w || b.y2 >= v.h
}

// result is what analyze found.
type result struct {
	faces   []found
	sel     int
	emb     []float32
	norm    float64
	quality float64
	live    float32
}

// analyze finds, selects and embeds a face; see Engine.Enroll and
// Engine.Probe for the rules.
func (w *worker) analyze(r *raster, p *params, enroll, live bool) (*result, error) {
	fs, err := w.find(r, p)
	if err != nil {
		return nil, err
	}
	sel, err := choose(fs, p, enroll)
	if err != nil {
		return nil, err
	}
	// The upright check needs the landmark consistency of the selected
	// face in every case; measured now, the landmark model runs right after
	// it located the faces, while its weights are still in the cache.
	if _, _, err := w.consistency(r, &fs[sel], math.Inf(1)); err != nil {
		return nil, err
	}
	res := &result{faces: fs, sel: sel, emb: make([]float32, p.embedDims)}
	if res.norm, err = w.embed(r, &fs[sel], p, res.emb); err != nil {
		return nil, err
	}
	upright, err := w.upright(r, &fs[sel], res.norm, p)
	if err != nil {
		return nil, err
	}
	if !upright {
		// res.faces aliases buffers that reorient reuses.
		res.faces = slices.Clone(res.faces)
		if err := w.reorient(r, p, res, enroll); err != nil {
			return nil, err
		}
	}
	f := &res.faces[res.sel]
	res.quality = sizeQuality(f, p) * normQuality(res.norm)
	if enroll && res.quality < p.minEnrollQuality {
		return nil, faceauth.E(faceauth.KindNoFace, CodeFaceLowQuality,
			"The face is not clear enough to enroll (blurred, turned away, covered or too dark); please use a sharp, frontal photo.")
	}
	if live {
		probs, err := w.liveness(r, f, p)
		if err != nil {
			return nil, err
		}
		res.live = probs[p.livenessClass]
	}
	return res, nil
}

// choose picks the face to embed: the most dominant face big enough to
// recognise. For enrollment it must also dominate: its box area at least
// dominance times that of every other face big enough to recognise.
func choose(fs []found, p *params, enroll bool) (int, error) {
	if len(fs) == 0 {
		return 0, faceauth.E(faceauth.KindNoFace, CodeNoFace,
			"No face was found in the image; please use a photo that shows the face clearly.")
	}
	sel, usable, rival := -1, 0, false
	for i := range fs {
		if fs[i].size(p) < p.minEyeDist {
			continue
		}
		usable++
		if sel < 0 {
			sel = i
		} else if fs[sel].det.area() < p.dominance*fs[i].det.area() {
			rival = true
		}
	}
	switch {
	case usable == 0:
		return 0, faceauth.E(faceauth.KindNoFace, CodeFaceTooSmall,
			"The face is too small in the image; please use a photo where the face is larger.")
	case enroll && rival:
		return 0, faceauth.E(faceauth.KindNoFace, CodeSeveralFaces,
			"The photo shows %d faces and none is clearly the main one; please use a photo of one person only.", usable)
	}
	return sel, nil
}

// upright tells whether face f, whose embedding has length norm, is
// surely upright in its view, cheaply enough to run on every face. Turned
// faces give weak embeddings and landmarks that do not follow the face
// (see consistency), so it is sure when
//
//   - norm is at or above turnedNormMax (no turned face but a tilted head
//     reached it) and the landmarks are not grossly inconsistent (twice
//     the tolerance: a strongly tilted head mirrors less exactly), or
//   - norm is at least uprightNorm and the landmarks are very consistent
//     (strict tolerances, tighter than any turned face gave), or
//   - norm is at least clearNorm, the landmarks are consistent and the
//     embedding is stronger than that of its aligned crop turned upside
//     down (an upside-down face that fooled the landmark model looks
//     upright then).
//
// Any other face is compared with its turned copies (reorient). The last
// rule used to start at uprightNorm; below clearNorm it let a sideways
// face through (bbt sheldon_6 as a 250x250 portrait turned 90: length
// 2.89, consistent landmarks, the half turn 1.95), which the comparison
// catches.
func (w *worker) upright(r *raster, f *found, norm float64, p *params) (bool, error) {
	if norm < p.uprightNorm {
		return false, nil
	}
	shift, flip, err := w.consistency(r, f, 2*p.shiftTol)
	switch {
	case err != nil:
		return false, err
	case norm >= p.turnedNormMax:
		return shift <= 2*p.shiftTol && flip <= 2*p.flipTol, nil
	case shift <= p.strictShift && flip <= p.strictFlip:
		return true, nil
	case norm < p.clearNorm || shift > p.shiftTol || flip > p.flipTol:
		return false, nil
	}
	// The crop's centre is the template's, so the half turn keeps the
	// face in frame.
	es := float64(p.embedSize)
	half := affine{a: -1, c: es, e: -1, f: es}
	r.sample(half.then(f.sim.invert()).then(f.v.toSrc), p.embedSize, p.embedSize, p.embedTaps,
		encoding{bgr: p.embedBGR, mean: p.embedMean, norm: p.embedNorm}, w.emb.input())
	if err := w.emb.run(); err != nil {
		return false, err
	}
	copy(w.scratch, w.emb.output(0))
	return normalize(w.scratch) < norm, nil
}

// reorient handles a face that upright was not sure of. It detects the
// faces again in the image turned by 180, 90 and 270 degrees, embeds the
// dominant face of every orientation that has one, and keeps the
// orientation whose face is strongest: the longest embedding, less
// mirrorWeight times the mirror inconsistency of its landmarks. On the
// labelled sets and their LFW-style crops the strongest is the upright one
// (docs/face-pipeline.md), while a face seen in a single orientation
// cannot always be told from its turned copy.
//
// Landmark consistency only weighs in the comparison: it vetoes no
// orientation, because the landmark model also loses track of upright
// faces (profiles, faces cut off by the frame, blurred or low-resolution
// faces), and a veto then either refused a clearly strongest upright face
// or, worse, kept a weak turned face because the upright one had been
// vetoed.
//
// Two cases are refused as too poor to tell which way up the face is: the
// best orientation weak (below clearNorm) without a clear lead
// (orientMargin) over the next, and a face found in no other orientation
// whose landmarks are grossly inconsistent and whose embedding is no
// stronger than turned faces often give (soleNorm).
func (w *worker) reorient(r *raster, p *params, res *result, enroll bool) error {
	cur := res.faces[res.sel]
	shift, flip, err := w.consistency(r, &cur, math.Inf(1))
	if err != nil {
		return err
	}
	curGross := shift > 2*p.shiftTol || flip > 2*p.flipTol
	var best []found
	bestJ, bestNorm := -1, res.norm
	bestScore, second := res.norm-p.mirrorWeight*flip, math.Inf(-1)
	for _, extra := range [...]int{180, 90, 270} {
		fs, err := w.findIn(r, (cur.v.rot+extra)%360, p)
		if err != nil {
			return err
		}
		j, err := choose(fs, p, false)
		if err != nil {
			continue // no usable face that way up
		}
		_, flip, err := w.consistency(r, &fs[j], math.Inf(1))
		if err != nil {
			return err
		}
		n, err := w.embed(r, &fs[j], p, w.scratch)
		if err != nil {
			return err
		}
		if s := n - p.mirrorWeight*flip; s > bestScore {
			// findIn reuses its buffers on the next turn.
			best, bestJ, bestNorm, bestScore, second = slices.Clone(fs), j, n, s, bestScore
			copy(res.emb, w.scratch)
		} else {
			second = max(second, s)
		}
	}
	sole := math.IsInf(second, -1)
	if !sole && bestNorm < p.clearNorm && bestScore-second < p.orientMargin ||
		sole && curGross && res.norm < p.soleNorm {
		return faceauth.E(faceauth.KindNoFace, CodeFaceLowQuality,
			"The face could not be analysed reliably (blurred, covered, turned sideways or upside down); please use a sharp photo of an upright face.")
	}
	if bestJ < 0 {
		return nil
	}
	if enroll {
		sel, err := choose(best, p, true)
		if err != nil {
			return err
		}
		if sel != bestJ {
			return faceauth.E(faceauth.KindNoFace, CodeSeveralFaces,
				"The photo shows several faces and none is clearly the main one; please use a photo of one person only.")
		}
	}
	res.faces, res.sel, res.norm = best, bestJ, bestNorm
	return nil
}
