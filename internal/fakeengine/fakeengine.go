// Package fakeengine is a faceauth.Engine for the services' logic tests: no
// model files, no cgo, a few microseconds an image, and answers the test
// decides.
//
// It analyses real image bytes. Decoding is package photo's, so an upload
// that is not an image fails with the real engine's KindBadImage codes
// ("corrupt_image", "unsupported_format", "image_too_small", ...) and the
// same pixel limits apply. What it finds in the pixels is decided by the
// test: a Picture encodes its faces (identity, box, quality, liveness) as a
// grid of black and white cells that survives JPEG re-encoding, and the
// fake reads them back. An image without that grid (a photo, a gradient)
// has no face.
//
// A face's embedding is a pseudo-random unit vector seeded by the engine's
// model id and the face's identity, so two pictures of the same identity
// match (similarity 1, or less when the test sets Face.Offset), pictures of
// different identities do not, and an engine with another model id embeds
// every identity differently, as a model switch does. The enrolment rules
// (several faces, a face too small, a face too poor) are the real engine's,
// with the same codes and sentences.
//
// Tests whose subject is face behaviour itself (matching real photos,
// refusals of real pictures, fusion, thresholds) use the real engine,
// models/face.
package fakeengine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sort"
	"sync/atomic"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models/photo"
)

// Defaults used for zero Config fields.
const (
	DefaultModel             = "fake@1"
	DefaultDims              = 128
	DefaultThreshold         = 0.5
	DefaultLivenessModel     = "fake-liveness@1"
	DefaultLivenessThreshold = 0.5
)

// The real engine's enrolment rules (models/face), in the fake's terms.
const (
	// minEyeDist is the smallest usable eye distance in decoded pixels; a
	// fake face's eyes are 0.4 of its box's width apart.
	minEyeDist = 10
	// dominance: an enrolment face's box area must be at least this many
	// times that of every other usable face.
	dominance = 4
	// minEnrollQuality is the lowest Quality an enrolment accepts.
	minEnrollQuality = 0.25
	// eyeSpan is the eye distance over the box width.
	eyeSpan = 0.4
	// detectionScore is every fake face's detector confidence.
	detectionScore = 0.99
)

// Config describes the fake's model. The zero value gives the defaults.
type Config struct {
	// Model is the model id of the embeddings; "" means DefaultModel.
	// Engines with different ids embed the same identity differently.
	Model string
	// Dims is the embedding length; 0 means DefaultDims.
	Dims int
	// Threshold is the match threshold; 0 means DefaultThreshold.
	Threshold float32
	// LivenessModel names the liveness model; "" means DefaultLivenessModel.
	LivenessModel string
	// LivenessThreshold is the live threshold; 0 means
	// DefaultLivenessThreshold.
	LivenessThreshold float32
	// Photo limits image decoding, as face.Config.Photo does.
	Photo photo.Options
}

// Engine is the fake face pipeline. It is safe for concurrent use.
type Engine struct {
	info  faceauth.EngineInfo
	photo photo.Options
	calls atomic.Int64
}

var _ faceauth.Engine = (*Engine)(nil)

// New returns a fake engine for cfg.
func New(cfg Config) *Engine {
	info := faceauth.EngineInfo{
		Model:             cfg.Model,
		Dims:              cfg.Dims,
		Threshold:         cfg.Threshold,
		LivenessModel:     cfg.LivenessModel,
		LivenessThreshold: cfg.LivenessThreshold,
	}
	if info.Model == "" {
		info.Model = DefaultModel
	}
	if info.Dims <= 0 {
		info.Dims = DefaultDims
	}
	if info.Threshold == 0 {
		info.Threshold = DefaultThreshold
	}
	if info.LivenessModel == "" {
		info.LivenessModel = DefaultLivenessModel
	}
	if info.LivenessThreshold == 0 {
		info.LivenessThreshold = DefaultLivenessThreshold
	}
	return &Engine{info: info, photo: cfg.Photo}
}

// Info describes the fake's model.
func (e *Engine) Info() faceauth.EngineInfo { return e.info }

// Calls returns how many analyses were asked of the engine, so a test can
// tell whether its subject ran the pipeline (a re-embedding, a cache).
func (e *Engine) Calls() int64 { return e.calls.Load() }

// Embedding returns the embedding of identity id under this engine's
// model: what a Picture of id with no Offset yields, and what a test
// publishes or stores as id's reference.
func (e *Engine) Embedding(id string) []float32 {
	return unit(e.rng(id, 0, false), e.info.Dims)
}

// Analyze implements faceauth.Engine.
func (e *Engine) Analyze(ctx context.Context, img []byte, req faceauth.Request) (*faceauth.Analysis, error) {
	e.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	im, err := photo.Decode(img, e.photo)
	if err != nil {
		return nil, err
	}
	pic, _ := readGrid(im) // no grid: a picture without a face
	a := &faceauth.Analysis{Selected: -1, Width: im.OrigW, Height: im.OrigH}
	// Boxes in the full-size image; the face's size is judged in the
	// decoded one, like the real engine.
	sx, sy := float32(im.OrigW), float32(im.OrigH)
	dec := float32(im.W) / sx
	type found struct {
		face  faceauth.Face
		spec  Face
		eyes  float32
		area  float32
		order int
	}
	fs := make([]found, 0, len(pic.Faces))
	for i, f := range pic.Faces {
		b := f.box()
		box := faceauth.Box{X1: b.X1 * sx, Y1: b.Y1 * sy, X2: b.X2 * sx, Y2: b.Y2 * sy}
		w, h := box.X2-box.X1, box.Y2-box.Y1
		eyes := eyeSpan * w * dec
		fs = append(fs, found{
			face: faceauth.Face{
				Box:       box,
				Landmarks: landmarks(box),
				Score:     detectionScore,
				Quality:   min(1, eyes/24),
			},
			spec: f, eyes: eyes, area: w * h, order: i,
		})
	}
	// Most dominant (largest) first, as the real engine lists them.
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].area > fs[j].area })
	for _, f := range fs {
		a.Faces = append(a.Faces, f.face)
	}
	if req.Purpose == faceauth.PurposeDetect {
		return a, nil
	}
	sel, usable, rival := -1, 0, false
	for i, f := range fs {
		if f.eyes < minEyeDist {
			continue
		}
		usable++
		if sel < 0 {
			sel = i
		} else if fs[sel].area < dominance*f.area {
			rival = true
		}
	}
	enroll := req.Purpose == faceauth.PurposeEnroll
	switch {
	case len(fs) == 0:
		return nil, faceauth.E(faceauth.KindNoFace, "no_face",
			"No face was found in the image; please use a photo that shows the face clearly.")
	case usable == 0:
		return nil, faceauth.E(faceauth.KindNoFace, "face_too_small",
			"The face is too small in the image; please use a photo where the face is larger.")
	case enroll && rival:
		return nil, faceauth.E(faceauth.KindNoFace, "several_faces",
			"The photo shows %d faces and none is clearly the main one; please use a photo of one person only.", usable)
	}
	s := fs[sel]
	a.Faces[sel].Quality *= s.spec.quality()
	if enroll && a.Faces[sel].Quality < minEnrollQuality {
		return nil, faceauth.E(faceauth.KindNoFace, "face_low_quality",
			"The face is not clear enough to enroll (blurred, turned away, covered or too dark); please use a sharp, frontal photo.")
	}
	a.Selected = sel
	a.Model = e.info.Model
	a.Embedding = e.embed(s.spec, pic.Variant)
	if req.Liveness {
		a.Liveness, a.LivenessChecked = s.spec.liveness(), true
	}
	return a, nil
}

// embed returns the embedding of face f in a picture of variant v: the
// identity's, turned by Offset towards a direction of its own.
func (e *Engine) embed(f Face, v uint16) []float32 {
	base := e.Embedding(f.ID)
	if f.Offset <= 0 {
		return base
	}
	// cos = 1 - Offset along the identity, the rest along a unit vector
	// orthogonal to it, so Similarity(base, emb) is 1 - Offset.
	n := unit(e.rng(f.ID, v, true), e.info.Dims)
	var dot float64
	for i := range n {
		dot += float64(n[i]) * float64(base[i])
	}
	var norm float64
	for i := range n {
		n[i] -= float32(dot) * base[i]
		norm += float64(n[i]) * float64(n[i])
	}
	c := 1 - float64(f.Offset)
	sn := math.Sqrt(max(0, 1-c*c)) / math.Sqrt(norm)
	out := make([]float32, len(base))
	for i := range out {
		out[i] = float32(c*float64(base[i]) + sn*float64(n[i]))
	}
	return out
}

// rng is the random source of identity id under the engine's model, or of
// id's offset direction in picture variant v.
func (e *Engine) rng(id string, v uint16, offset bool) *rand.Rand {
	h := sha256.New()
	h.Write([]byte(e.info.Model))
	h.Write([]byte{0})
	h.Write([]byte(id))
	if offset {
		h.Write([]byte{0, byte(v >> 8), byte(v)})
	}
	sum := h.Sum(nil)
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum), binary.LittleEndian.Uint64(sum[8:])))
}

// unit draws an L2-normalised Gaussian vector of n values.
func unit(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	var s float64
	for i := range v {
		x := r.NormFloat64()
		v[i] = float32(x)
		s += x * x
	}
	inv := 1 / math.Sqrt(s)
	for i := range v {
		v[i] = float32(float64(v[i]) * inv)
	}
	return v
}

// landmarks places the five points where they sit in an upright frontal
// face filling box.
func landmarks(b faceauth.Box) [5]faceauth.Point {
	w, h := b.X2-b.X1, b.Y2-b.Y1
	at := func(fx, fy float32) faceauth.Point { return faceauth.Point{X: b.X1 + fx*w, Y: b.Y1 + fy*h} }
	return [5]faceauth.Point{at(0.3, 0.4), at(0.7, 0.4), at(0.5, 0.6), at(0.35, 0.8), at(0.65, 0.8)}
}
