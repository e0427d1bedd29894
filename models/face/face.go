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

// Error codes of the faceauth.KindNoFace errors returned here.
const (
	CodeNoFace         = "no_face"
	CodeSeveralFaces   = "several_faces"
	CodeFaceTooSmall   = "face_too_small"
	CodeFaceLowQuality = "face_low_quality"
)

// Analyze implements faceauth.Engine: it decodes img and analyses it for
// req.Purpose.
//
// PurposeEnroll needs one usable face: either the only face found, or one
// that clearly dominates (see dominant). A photo with several faces of
// similar size fails with code "several_faces", one whose face is too small
// with "face_too_small", and one whose face is too poor to enroll (Quality
// below MinEnrollQuality) with "face_low_quality". PurposeProbe embeds the
// most dominant usable face, whatever else is in the picture, and says in
// Selected and Faces which one that was. PurposeDetect lists every face
// without embedding (Selected is -1), so it cannot tell a face turned upside
// down from an upright one; its landmarks assume the orientation in which a
// face was found. Decode errors from package photo pass through.
func (e *Engine) Analyze(ctx context.Context, img []byte, req faceauth.Request) (*faceauth.Analysis, error) {
	// Decode inside the worker slot, so at most Workers decoded images
	// exist at once however many requests wait.
	w, err := e.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	defer e.pool.put(w)
	im, err := photo.DecodeInto(img, e.cfg.Photo, w.pix)
	if err != nil {
		return nil, err
	}
	w.keepPixels(im.Pix)
	r := &raster{w: im.W, h: im.H, pix: im.Pix}
	if req.Purpose == faceauth.PurposeDetect {
		return e.detect(w, r, im)
	}
	return e.analyze(w, r, im, req.Liveness, req.Purpose == faceauth.PurposeEnroll)
}

func (e *Engine) detect(w *worker, r *raster, im *photo.Image) (*faceauth.Analysis, error) {
	fs, err := w.find(r, &e.p)
	if err != nil {
		return nil, e.internal(err)
	}
	return &faceauth.Analysis{Faces: e.publicFaces(fs, im), Selected: -1, Width: im.OrigW, Height: im.OrigH}, nil
}

func (e *Engine) analyze(w *worker, r *raster, im *photo.Image, liveness, enroll bool) (*faceauth.Analysis, error) {
	res, err := w.analyze(r, &e.p, enroll, liveness)
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
	a := &faceauth.Analysis{
		Faces:     e.publicFaces(res.faces, im),
		Selected:  res.sel,
		Embedding: res.emb,
		Model:     e.modelID,
		Width:     im.OrigW,
		Height:    im.OrigH,
		Rotation:  res.faces[res.sel].v.rot,
	}
	a.Faces[res.sel].Quality = float32(res.quality)
	if liveness {
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
func (e *Engine) publicFaces(fs []found, im *photo.Image) []faceauth.Face {
	sx := float64(im.OrigW) / float64(im.W)
	sy := float64(im.OrigH) / float64(im.H)
	out := make([]faceauth.Face, len(fs))
	for i := range fs {
		f := &fs[i]
		b := f.rasterBox()
		b.x1, b.y1 = max(b.x1, 0), max(b.y1, 0)
		b.x2, b.y2 = min(b.x2, float64(im.W)), min(b.y2, float64(im.H))
		out[i] = faceauth.Face{
			Box:     faceauth.Box{X1: float32(b.x1 * sx), Y1: float32(b.y1 * sy), X2: float32(b.x2 * sx), Y2: float32(b.y2 * sy)},
			Score:   f.det.score,
			Quality: float32(sizeQuality(f, &e.p)),
		}
		for j, q := range f.five {
			out[i].Landmarks[j] = faceauth.Point{X: float32(q.x * sx), Y: float32(q.y * sy)}
		}
	}
	return out
}
