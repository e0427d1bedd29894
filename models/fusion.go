package models

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
)

// Fusion combines the scores of several embedders into one, as score
// fusion does: each model's cosine c_i is z-normalised with the mean m_i
// and standard deviation s_i of impostor (different-person) cosines
// measured on labelled photos, and the z-scores are summed.
//
// The engine answers one embedding per face for a fusion: the components'
// L2-normalised embeddings, each scaled by 1/sqrt(s_i), concatenated and
// L2-normalised again. The dot product of two such vectors is then
//
//	score = sum(c_i/s_i) / sum(1/s_i)
//
// an increasing affine function of the z-sum (z = score*sum(1/s_i) -
// sum(m_i/s_i)), so it ranks and thresholds exactly like the z-sum while
// every store, gallery and comparison of embeddings works unchanged. The
// threshold is on that score; ZSum converts it for reports.
type Fusion struct {
	ID        string   `json:"id"`
	Embedders []string `json:"embedders"`
	// ImpostorMean and ImpostorSD are m_i and s_i, one per embedder.
	ImpostorMean []float64 `json:"impostor_mean"`
	ImpostorSD   []float64 `json:"impostor_sd"`
	// StatsNote says on which data the statistics were measured.
	StatsNote string  `json:"stats_note,omitempty"`
	Threshold float32 `json:"threshold"`
	// TargetFMR is the false-match rate the threshold was chosen for.
	TargetFMR     float64 `json:"target_fmr,omitempty"`
	ThresholdNote string  `json:"threshold_note,omitempty"`
	Comment       string  `json:"comment,omitempty"`

	parts []*Embedder
	id    string // ModelID
}

func (m *Manifest) checkFusion(f *Fusion, ids map[string]bool) error {
	if ids[strings.ToLower(f.ID)] || f.ID == "" {
		return fmt.Errorf("model manifest: fusion %q needs an id no embedder or other fusion has", f.ID)
	}
	n := len(f.Embedders)
	if n < 2 || len(f.ImpostorMean) != n || len(f.ImpostorSD) != n {
		return fmt.Errorf("model manifest: fusion %q needs two or more embedders and an impostor mean and sd for each", f.ID)
	}
	if err := checkThreshold(f.Threshold); err != nil {
		return fmt.Errorf("model manifest: fusion %q: %w", f.ID, err)
	}
	f.parts = nil
	h := sha256.New()
	for i, id := range f.Embedders {
		e, err := m.Embedder(id)
		if err != nil {
			return fmt.Errorf("model manifest: fusion %q: %w", f.ID, err)
		}
		if !(f.ImpostorSD[i] > 0) || math.IsInf(f.ImpostorSD[i], 0) || !(math.Abs(f.ImpostorMean[i]) <= 1) {
			return fmt.Errorf("model manifest: fusion %q: the impostor statistics of %s must be a mean in [-1, 1] and a positive sd", f.ID, id)
		}
		for _, p := range f.parts {
			if p == e {
				return fmt.Errorf("model manifest: fusion %q lists %s twice", f.ID, id)
			}
		}
		f.parts = append(f.parts, e)
		fmt.Fprintf(h, "%s %v %v\n", e.ModelID(), f.ImpostorMean[i], f.ImpostorSD[i])
	}
	f.id = f.ID + "@" + hex.EncodeToString(h.Sum(nil))[:8]
	return nil
}

// Choice is what VERIFICATION_MODEL selects: one embedder, or a fusion.
type Choice struct {
	// ID is the name as written in the manifest.
	ID string
	// Parts are the embedders whose embeddings make the answer, with the
	// weight of each in the concatenated embedding (1 for one embedder).
	Parts   []*Embedder
	Weights []float32
	// Threshold, TargetFMR: the shipped decision threshold of the score.
	Threshold float32
	TargetFMR float64
	// Fusion is the fusion chosen, nil for one embedder.
	Fusion *Fusion

	modelID string
}

// ModelID names the choice and its exact weights (and, for a fusion, its
// statistics): embeddings are comparable only within one ModelID.
func (c *Choice) ModelID() string { return c.modelID }

// Dims is the length of the answered embedding.
func (c *Choice) Dims() int {
	n := 0
	for _, e := range c.Parts {
		n += e.Dims
	}
	return n
}

// ZSum converts a fused score (the dot product of two fused embeddings)
// to the sum of the components' z-scores; for one embedder it returns the
// score.
func (c *Choice) ZSum(score float64) float64 {
	f := c.Fusion
	if f == nil {
		return score
	}
	var inv, off float64
	for i := range f.ImpostorSD {
		inv += 1 / f.ImpostorSD[i]
		off += f.ImpostorMean[i] / f.ImpostorSD[i]
	}
	return score*inv - off
}

// Choose returns the embedder or fusion named id (case-insensitive); an
// unknown id is an error that lists the choices.
func (m *Manifest) Choose(id string) (*Choice, error) {
	for i := range m.Fusions {
		f := &m.Fusions[i]
		if !strings.EqualFold(f.ID, id) {
			continue
		}
		c := &Choice{ID: f.ID, Parts: f.parts, Threshold: f.Threshold, TargetFMR: f.TargetFMR, Fusion: f, modelID: f.id}
		for _, sd := range f.ImpostorSD {
			c.Weights = append(c.Weights, float32(1/math.Sqrt(sd)))
		}
		return c, nil
	}
	e, err := m.Embedder(id)
	if err != nil {
		return nil, err
	}
	return &Choice{ID: e.ID, Parts: []*Embedder{e}, Weights: []float32{1}, Threshold: e.Threshold, TargetFMR: e.TargetFMR, modelID: e.ModelID()}, nil
}
