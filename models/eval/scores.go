// Package eval measures a face engine from its scores: ROC curves and their
// area, the true-accept rate at a fixed false-accept rate, the threshold for
// a target false-match rate, accuracy with k-fold cross-validation, and the
// presentation-attack error rates APCER and BPCER (ISO/IEC 30107-3). It also
// reads the labelled pair and spoof lists and draws ROC plots.
//
// The formulas know nothing about images or models, so each is tested with
// hand-computed numbers. RunPairs, RunSpoof and RunSets turn labelled photos
// into scores through an Engine (the face pipeline, behind a small interface)
// and build the reports `central eval` prints.
//
// Everywhere, a higher score means "more alike" (or "more live"), and a
// comparison is accepted when its score is at least the threshold.
package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// NoScore is the score given to a comparison that could not be made (an
// image with no usable face, or one that does not decode). It is the lowest
// cosine similarity, so such a pair counts as a non-match at any threshold
// above -1: a false non-match when the people are the same.
const NoScore = -1

// Scores holds the outcome of one experiment. Genuine are the scores of
// pairs of the same person (or of live presentations); Impostor those of
// different people (or of attacks).
type Scores struct {
	Genuine  []float64
	Impostor []float64
}

// ErrNoScores is returned when a measure needs scores of a class that has
// none.
var ErrNoScores = errors.New("eval: need at least one genuine and one impostor score")

func (s Scores) check() error {
	if len(s.Genuine) == 0 || len(s.Impostor) == 0 {
		return ErrNoScores
	}
	return nil
}

// Rates returns the false-match rate (impostor scores >= t) and the
// false-non-match rate (genuine scores < t) at threshold t. A class with no
// scores has rate 0.
func (s Scores) Rates(t float64) (fmr, fnmr float64) {
	return fraction(countAtLeast(s.Impostor, t), len(s.Impostor)),
		fraction(len(s.Genuine)-countAtLeast(s.Genuine, t), len(s.Genuine))
}

func countAtLeast(xs []float64, t float64) int {
	n := 0
	for _, x := range xs {
		if x >= t {
			n++
		}
	}
	return n
}

func fraction(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// Point is one operating point of a ROC curve: at Threshold, a fraction FAR
// of impostor scores and a fraction TAR of genuine scores are accepted.
type Point struct {
	Threshold float64
	FAR       float64
	TAR       float64
}

// ROC returns the curve from (0,0) to (1,1): one point per distinct score,
// taken as the threshold, in order of decreasing threshold, after a first
// point at threshold +Inf that accepts nothing. Tied genuine and impostor
// scores move both rates in one step, so the curve has a diagonal segment
// there instead of an optimistic or pessimistic staircase.
func (s Scores) ROC() ([]Point, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	g := sortedDesc(s.Genuine)
	im := sortedDesc(s.Impostor)
	pts := []Point{{Threshold: math.Inf(1)}}
	i, j := 0, 0
	for i < len(g) || j < len(im) {
		// The next threshold is the largest score not yet passed.
		var t float64
		switch {
		case i == len(g):
			t = im[j]
		case j == len(im):
			t = g[i]
		default:
			t = math.Max(g[i], im[j])
		}
		for i < len(g) && g[i] >= t {
			i++
		}
		for j < len(im) && im[j] >= t {
			j++
		}
		pts = append(pts, Point{
			Threshold: t,
			FAR:       fraction(j, len(im)),
			TAR:       fraction(i, len(g)),
		})
	}
	return pts, nil
}

func sortedDesc(xs []float64) []float64 {
	out := append([]float64(nil), xs...)
	sort.Sort(sort.Reverse(sort.Float64Slice(out)))
	return out
}

// AUC returns the area under the ROC curve by the trapezoid rule. Because
// ties make diagonal segments (see ROC), it equals exactly the probability
// that a random genuine score beats a random impostor score, with ties
// counting one half (the Mann-Whitney statistic).
func (s Scores) AUC() (float64, error) {
	pts, err := s.ROC()
	if err != nil {
		return 0, err
	}
	var area float64
	for k := 1; k < len(pts); k++ {
		area += (pts[k].FAR - pts[k-1].FAR) * (pts[k].TAR + pts[k-1].TAR) / 2
	}
	return area, nil
}

// ThresholdAtFMR returns the smallest threshold whose false-match rate is at
// most target. With n impostor scores, at most k = floor(target*n) of them
// may be accepted, so the threshold lies just above the (k+1)-th highest
// impostor score: it is the next float64 above that score. Nothing is
// interpolated. When target allows every impostor score, the threshold is the
// lowest impostor score.
func (s Scores) ThresholdAtFMR(target float64) (float64, error) {
	if len(s.Impostor) == 0 {
		return 0, ErrNoScores
	}
	if !(target >= 0 && target < 1) {
		return 0, fmt.Errorf("eval: target false-match rate %v is not in [0, 1)", target)
	}
	im := sortedDesc(s.Impostor)
	// Multiplying first keeps 1e-3*1000 from flooring to 0.999...
	k := int(math.Floor(target*float64(len(im)) + 1e-9))
	if k >= len(im) {
		return im[len(im)-1], nil
	}
	return math.Nextafter(im[k], math.Inf(1)), nil
}

// TARAtFAR returns the true-accept rate at the threshold ThresholdAtFMR
// gives for target, and that threshold.
func (s Scores) TARAtFAR(target float64) (tar, threshold float64, err error) {
	if err := s.check(); err != nil {
		return 0, 0, err
	}
	threshold, err = s.ThresholdAtFMR(target)
	if err != nil {
		return 0, 0, err
	}
	return fraction(countAtLeast(s.Genuine, threshold), len(s.Genuine)), threshold, nil
}

// EER returns the smallest achievable value of max(FMR, FNMR) and the
// threshold that achieves it: the equal error rate where the two rates can
// be equal, and its conservative stand-in where the scores only allow
// unequal rates. Nothing is interpolated.
func (s Scores) EER() (eer, threshold float64, err error) {
	pts, err := s.ROC()
	if err != nil {
		return 0, 0, err
	}
	eer = math.Inf(1)
	for _, p := range pts[1:] {
		// Rates at threshold p.Threshold; the point at +Inf (accept nothing)
		// has FNMR 1 and is never better than the last point.
		if m := math.Max(p.FAR, 1-p.TAR); m < eer {
			eer, threshold = m, p.Threshold
		}
	}
	return eer, threshold, nil
}
