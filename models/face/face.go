// Package face finds faces in photos and turns them into embeddings that
// can be compared, on ONNX Runtime with the pinned models of package
// models.
//
// The pipeline, with the measurements behind each choice in
// docs/face-pipeline.md:
//
//  1. Decode with package photo (EXIF orientation applied, large photos
//     decoded at reduced size).
//  2. Detect: the whole image stretched to the detector's 320x240 input;
//     small images and images whose face fills the frame are first
//     surrounded by a grey border, because the detector misses faces that
//     touch the edges. No face upright: the image is tried turned by 90, 270
//     and 180 degrees.
//  3. Landmarks: 68 points on a 64x64 grey crop of the squared box, reduced
//     to the five ArcFace points.
//  4. Align: a least-squares similarity (Umeyama) onto the embedder's chip
//     geometry (the ArcFace 112x112 template, dlib's 150x150 chip or an
//     operator's template), sampled from the decoded pixels.
//  5. Embed, L2-normalise. The embedding's norm before normalising tells an
//     upright face from a turned one; when it is low the face is also tried
//     turned by 90, 180 and 270 degrees and the best orientation wins, so a
//     face rotated in the pixels never yields a garbage embedding silently.
//  6. Liveness, on request: the liveness model over a 2.7x context crop.
//
// An Engine is safe for concurrent use: it holds a pool of workers, each
// with its own ONNX sessions and preallocated buffers.
package face

import (
	"context"
	"errors"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models/photo"
)

// Point is a position in pixels of the full-size upright image (EXIF
// orientation applied), with (0, 0) the top-left corner of the top-left
// pixel.
type Point struct{ X, Y float32 }

// Rect is an axis-aligned rectangle in the same coordinates as Point.
type Rect struct{ X1, Y1, X2, Y2 float32 }

// Face is one detected face.
type Face struct {
	// Box is the detector's box, clipped to the image.
	Box Rect
	// Landmarks are the five alignment points: the eye on the image's
	// left, the other eye, the nose tip, the mouth corner on the left and
	// the one on the right, as seen with the face upright.
	Landmarks [5]Point
	// Score is the detector's confidence, 0..1.
	Score float32
	// Quality is 0..1: how well this face can be recognised. It is the
	// product of a size term, min(1, eye distance / 40 px of decoded
	// image), and, for the face that was embedded, an embedding-strength
	// term, clamp((norm - 2.5) / 1.5, 0, 1), where norm is the embedding's
	// length before normalising, which falls for blurred, turned, occluded
	// and profile faces (see docs/face-pipeline.md). Faces that were not
	// embedded carry only the size term.
	Quality float32
}

// Analysis is the result of Enroll and Probe.
type Analysis struct {
	// Faces lists every face found, most dominant (largest) first.
	Faces []Face
	// Selected is the index in Faces of the face that was embedded.
	Selected int
	// Embedding is the selected face's L2-normalised embedding.
	Embedding []float32
	// Model is the ModelID of the embedding model.
	Model string
	// Liveness is the probability that the selected face is live (not a
	// photo or a screen); valid when LivenessChecked.
	Liveness        float32
	LivenessChecked bool
	// Width and Height are the size of the full-size upright image.
	Width, Height int
	// Rotation is how many degrees clockwise the image had to be turned
	// for the selected face to be upright: 0, 90, 180 or 270.
	Rotation int
}

// Options asks for optional stages.
type Options struct {
	// Liveness runs the liveness model on the selected face.
	Liveness bool
}

// Error codes of the faceauth.KindNoFace errors returned here.
const (
	CodeNoFace         = "no_face"
	CodeSeveralFaces   = "several_faces"
	CodeFaceTooSmall   = "face_too_small"
	CodeFaceLowQuality = "face_low_quality"
)

// Enroll analyses a reference photo. It needs one usable face: either the
// only face found, or one that clearly dominates (see dominant). A photo
// with several faces of similar size fails with code "several_faces", one
// whose face is too small with "face_too_small", and one whose face is
// too poor to enroll (Quality below MinEnrollQuality) with
// "face_low_quality". Decode errors from package photo pass through.
func (e *Engine) Enroll(ctx context.Context, img []byte, opt Options) (*Analysis, error) {
	return e.analyze(ctx, img, opt, true)
}

// Probe analyses a photo to verify: it embeds the most dominant usable
// face, whatever else is in the picture, and says in Selected and Faces
// which one that was.
func (e *Engine) Probe(ctx context.Context, img []byte, opt Options) (*Analysis, error) {
	return e.analyze(ctx, img, opt, false)
}

// Detect returns every face in the image, most dominant first, with the
// image's full-size upright width and height. Detect does not embed, so
// it cannot tell a face turned upside down from an upright one; its
// landmarks assume the orientation in which a face was found.
func (e *Engine) Detect(ctx context.Context, img []byte) ([]Face, int, int, error) {
	// Decode inside the worker slot, so at most Workers decoded images
	// exist at once however many requests wait.
	w, err := e.pool.get(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	defer e.pool.put(w)
	im, err := photo.Decode(img, e.cfg.Photo)
	if err != nil {
		return nil, 0, 0, err
	}
	r := &raster{w: im.W, h: im.H, pix: im.Pix}
	fs, err := w.find(r, &e.p)
	if err != nil {
		return nil, 0, 0, e.internal(err)
	}
	return e.publicFaces(fs, im), im.OrigW, im.OrigH, nil
}

func (e *Engine) analyze(ctx context.Context, img []byte, opt Options, enroll bool) (*Analysis, error) {
	// Decode inside the worker slot (see Detect).
	w, err := e.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	defer e.pool.put(w)
	im, err := photo.Decode(img, e.cfg.Photo)
	if err != nil {
		return nil, err
	}
	r := &raster{w: im.W, h: im.H, pix: im.Pix}
	res, err := w.analyze(r, &e.p, enroll, opt.Liveness)
	if err == nil {
		res.emb, err = w.answer(r, &res.faces[res.sel], res.emb, &e.ans)
	}
	if err != nil {
		var fe *faceauth.Error
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, e.internal(err)
	}
	a := &Analysis{
		Faces:     e.publicFaces(res.faces, im),
		Selected:  res.sel,
		Embedding: res.emb,
		Model:     e.modelID,
		Width:     im.OrigW,
		Height:    im.OrigH,
		Rotation:  res.faces[res.sel].v.rot,
	}
	a.Faces[res.sel].Quality = float32(res.quality)
	if opt.Liveness {
		a.Liveness, a.LivenessChecked = res.live, true
	}
	return a, nil
}

// internal wraps an ONNX Runtime failure, which no user input causes.
func (e *Engine) internal(err error) error {
	e.log.Error("face pipeline failed", "err", err)
	return faceauth.Wrap(err, faceauth.KindInternal, "face_pipeline", "The face pipeline failed.")
}

// publicFaces converts faces to full-size image coordinates.
func (e *Engine) publicFaces(fs []found, im *photo.Image) []Face {
	sx := float64(im.OrigW) / float64(im.W)
	sy := float64(im.OrigH) / float64(im.H)
	out := make([]Face, len(fs))
	for i := range fs {
		f := &fs[i]
		b := f.rasterBox()
		b.x1, b.y1 = max(b.x1, 0), max(b.y1, 0)
		b.x2, b.y2 = min(b.x2, float64(im.W)), min(b.y2, float64(im.H))
		out[i] = Face{
			Box:     Rect{float32(b.x1 * sx), float32(b.y1 * sy), float32(b.x2 * sx), float32(b.y2 * sy)},
			Score:   f.det.score,
			Quality: float32(sizeQuality(f, &e.p)),
		}
		for j, q := range f.five {
			out[i].Landmarks[j] = Point{float32(q.x * sx), float32(q.y * sy)}
		}
	}
	return out
}
