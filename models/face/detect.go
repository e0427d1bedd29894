package face

import (
	"slices"
)

// Detector geometry: fr_detect.onnx takes the whole image stretched to
// 320x240 and returns, for each of its 4420 anchors, already-decoded
// normalised corner boxes and softmaxed scores (see
// /work/shared/design/face-models.md).
const (
	detW, detH    = 320, 240
	detAnchors    = 4420
	detTaps       = 2 // supersampling when shrinking the image for the detector
	landmarkSize  = 64
	landmarkCount = 68
)

// box is an axis-aligned rectangle with a score, in continuous pixel
// coordinates of whatever raster it was found in.
type box struct {
	x1, y1, x2, y2 float64
	score          float32
}

func (b box) w() float64    { return b.x2 - b.x1 }
func (b box) h() float64    { return b.y2 - b.y1 }
func (b box) area() float64 { return max(b.w(), 0) * max(b.h(), 0) }

// iou is the intersection over union of two boxes.
func iou(a, b box) float64 {
	ix := min(a.x2, b.x2) - max(a.x1, b.x1)
	iy := min(a.y2, b.y2) - max(a.y1, b.y1)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	return inter / (a.area() + b.area() - inter)
}

// nms keeps the highest-scoring box of every group of boxes that overlap by
// more than thresh (intersection over union), sorting boxes by descending
// score in place and returning the kept prefix.
func nms(boxes []box, thresh float64) []box {
	slices.SortStableFunc(boxes, func(a, b box) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	kept := boxes[:0]
	for _, b := range boxes {
		ok := true
		for _, k := range kept {
			if iou(k, b) > thresh {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, b)
		}
	}
	return kept
}

// square returns the square box of side b.h() centred on b, which is the
// crop the landmark model was used with. It is not clipped: sampling
// outside the image reads a neutral grey.
func square(b box) box {
	s := b.h()
	cx := (b.x1 + b.x2) / 2
	return box{x1: cx - s/2, y1: b.y1, x2: cx + s/2, y2: b.y2, score: b.score}
}

// view is the image as the detector sees it in one attempt: turned
// clockwise by rot degrees and surrounded by a border of padX pixels left
// and right and padY pixels above and below.
type view struct {
	rot        int
	padX, padY float64
	w, h       float64 // size of the turned, padded image
	toSrc      affine  // view coordinates to raster coordinates
	rw, rh     int     // size of the turned image without the border
}

func newView(r *raster, rot int, padX, padY float64) view {
	rw, rh := rotatedSize(rot, r.w, r.h)
	shift := affine{a: 1, c: -padX, e: 1, f: -padY}
	return view{
		rot: rot, padX: padX, padY: padY,
		w: float64(rw) + 2*padX, h: float64(rh) + 2*padY,
		toSrc: shift.then(rotation(rot, r.w, r.h)),
		rw:    rw, rh: rh,
	}
}

// detect runs the detector on v and returns the faces it finds, in view
// coordinates, highest score first. The result aliases w's buffers.
func (w *worker) detect(r *raster, v view, p *params) ([]box, error) {
	m := rectMap(0, 0, v.w, v.h, detW, detH).then(v.toSrc)
	r.sample(m, detW, detH, detTaps, encoding{bgr: p.detectBGR, mean: uniform(127), norm: 1.0 / 128}, w.det.input())
	if err := w.det.run(); err != nil {
		return nil, err
	}
	found := w.dec.candidates(w.det.output, p.detectThreshold, w.boxes[:0])
	cands := found[:0]
	for _, b := range found {
		b.x1, b.y1, b.x2, b.y2 = b.x1*v.w, b.y1*v.h, b.x2*v.w, b.y2*v.h
		if b.w() <= 0 || b.h() <= 0 {
			continue
		}
		cands = append(cands, b)
	}
	w.boxes = cands
	return nms(cands, p.nmsIoU), nil
}
