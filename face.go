package faceauth

import "context"

// Point is a position in pixels of the full-size upright image (EXIF
// orientation applied), with (0, 0) the top-left corner of the top-left
// pixel.
type Point struct{ X, Y float32 }

// Box is an axis-aligned face rectangle in the same coordinates as Point.
// It is the one box type: the engine returns it, the HTTP API writes it and
// package proto carries it (pb.Box, converted by pb.BoxOf and Box.Box).
type Box struct {
	X1 float32 `json:"x1"`
	Y1 float32 `json:"y1"`
	X2 float32 `json:"x2"`
	Y2 float32 `json:"y2"`
}

// Face is one detected face.
type Face struct {
	// Box is the detector's box, clipped to the image.
	Box Box
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

// Analysis is what an Engine says about one photo.
type Analysis struct {
	// Faces lists every face found, most dominant (largest) first.
	Faces []Face
	// Selected is the index in Faces of the face that was embedded; -1
	// when nothing was embedded (PurposeDetect).
	Selected int
	// Embedding is the selected face's L2-normalised embedding.
	Embedding []float32
	// Model is the EngineInfo.Model of the embedding.
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

// SelectedFace returns the face that was embedded, or false when none was.
func (a *Analysis) SelectedFace() (Face, bool) {
	if a == nil || a.Selected < 0 || a.Selected >= len(a.Faces) {
		return Face{}, false
	}
	return a.Faces[a.Selected], true
}

// Purpose says what a photo is analysed for, which decides how strict the
// engine is about the faces in it.
type Purpose uint8

// The purposes.
const (
	// PurposeProbe embeds the most dominant usable face, whatever else is
	// in the picture: a photo to verify or identify.
	PurposeProbe Purpose = iota
	// PurposeEnroll needs one usable face that clearly dominates: a
	// reference photo. Several similar faces fail with code
	// "several_faces", a small face with "face_too_small" and a poor one
	// with "face_low_quality".
	PurposeEnroll
	// PurposeDetect lists the faces without embedding any (Selected is
	// -1). It cannot tell a face turned upside down from an upright one.
	PurposeDetect
)

// Request asks an Engine for one analysis.
type Request struct {
	Purpose Purpose
	// Liveness runs the presentation-attack check on the selected face.
	Liveness bool
}

// Engine is the face pipeline as the services see it: models/face runs it
// on ONNX Runtime, and a fake stands in for it in logic tests. It must be
// safe for concurrent use.
type Engine interface {
	// Analyze decodes img and analyses its faces for req. A photo that is
	// not an image fails with KindBadImage, one with no usable face with
	// KindNoFace; a context that ends while waiting for a worker fails
	// with its error.
	Analyze(ctx context.Context, img []byte, req Request) (*Analysis, error)
}

// EngineInfo describes an Engine's models: what the services need to store,
// compare and judge its embeddings.
type EngineInfo struct {
	// Model names the embedding model or fusion, e.g. "ArcFace+dlib@…";
	// only embeddings of the same Model are ever compared.
	Model string
	// Dims is the length of an embedding.
	Dims int
	// Threshold is the cosine similarity at or above which faces match.
	Threshold float32
	// LivenessModel names the liveness model, e.g. "fr_liveness@afa783b7".
	LivenessModel string
	// LivenessThreshold is the score at or above which a face is live.
	LivenessThreshold float32
}

// Match is one user found by a 1:N search.
type Match struct {
	UserID string `json:"user_id"`
	// Name is the user's display name where the searcher knows it.
	Name string `json:"name,omitempty"`
	// Similarity is the best cosine similarity over the user's references.
	Similarity float32 `json:"similarity"`
}

// Similarity returns the cosine similarity of two L2-normalised embeddings:
// their dot product. Embeddings of different lengths (different models)
// have similarity 0.
func Similarity(a, b []float32) float32 {
	if len(a) != len(b) {
		return 0
	}
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
