package face

import (
	"fmt"

	"github.com/xplore/faceauth/models"
)

// answer says how the embedding an Engine answers is made from the lead
// embedder (the one the pipeline's upright and quality checks run on)
// and any further embedders run on the selected face.
type answer struct {
	// leadWeight scales the lead's embedding in the answer; 0 leaves it
	// out (a chosen embedder whose checks another one runs).
	leadWeight float32
	extra      []extraEmbedder
	dims       int
	fused      bool // several parts: concatenate, then normalise
}

// extraEmbedder is an embedder run on the selected face besides the lead,
// with its own chip geometry and normalisation.
type extraEmbedder struct {
	emb    *models.Embedder
	weight float32
	geom   geometry
	enc    encoding
}

// plan picks the lead embedder for a choice and how the answer is
// assembled: the first part leads, unless it names another embedder to
// run the checks (ChecksBy), which then leads without being answered.
func plan(m *models.Manifest, c *models.Choice) (*models.Embedder, answer, error) {
	lead := c.Parts[0]
	ans := answer{dims: c.Dims(), fused: len(c.Parts) > 1}
	first := 0
	if lead.ChecksBy != "" {
		var err error
		if lead, err = m.Embedder(lead.ChecksBy); err != nil {
			return nil, ans, err
		}
	} else {
		ans.leadWeight = c.Weights[0]
		first = 1
	}
	for i := first; i < len(c.Parts); i++ {
		e := c.Parts[i]
		g, err := newGeometry(e)
		if err != nil {
			return nil, ans, err
		}
		mean := uniform(e.Mean)
		if len(e.MeanRGB) == 3 {
			mean = [3]float32(e.MeanRGB)
		}
		ans.extra = append(ans.extra, extraEmbedder{emb: e, weight: c.Weights[i], geom: g,
			enc: encoding{bgr: e.Channels == "BGR", mean: mean, norm: 1 / e.Std}})
	}
	if lead.Size <= 0 {
		return nil, ans, fmt.Errorf("embedder %s has no input size", lead.ID)
	}
	return lead, ans, nil
}

// answer returns the embedding to answer for face f of r, whose lead
// embedding is lead: lead itself when it is the only part; otherwise each
// part's L2-normalised embedding scaled by its weight, concatenated (lead
// first) and L2-normalised, so that dot products of answers are the
// fused score (see models.Fusion).
func (w *worker) answer(r *raster, f *found, lead []float32, ans *answer) ([]float32, error) {
	if len(ans.extra) == 0 {
		return lead, nil
	}
	out := make([]float32, 0, ans.dims)
	if ans.leadWeight != 0 {
		for _, v := range lead {
			out = append(out, v*ans.leadWeight)
		}
	}
	for i := range ans.extra {
		x := &ans.extra[i]
		sim, _, ok := x.geom.fit(&f.lm)
		if !ok {
			return nil, fmt.Errorf("degenerate landmarks for %s", x.emb.ID)
		}
		n := w.extra[i]
		r.sample(sim.invert().then(f.v.toSrc), x.emb.Size, x.emb.Size, maxTaps, x.enc, n.input())
		if err := n.run(); err != nil {
			return nil, err
		}
		start := len(out)
		out = append(out, n.output(0)...)
		normalize(out[start:])
		for j := start; j < len(out); j++ {
			out[j] *= x.weight
		}
	}
	if ans.fused {
		normalize(out)
	}
	return out, nil
}
