package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Trial is one labelled comparison for accuracy measurements.
type Trial struct {
	Score   float64
	Genuine bool   // the two images show the same person
	Fold    string // cross-validation fold; empty when the data has none
}

// BestAccuracy returns the highest fraction of trials classified correctly
// by a single threshold, and that threshold. It is measured and chosen on the
// same trials, so it is optimistic; CrossValidate is the honest figure when
// the data has folds.
//
// All thresholds between two adjacent distinct scores classify the trials
// alike; the one returned is the midpoint of the best such gap, and among
// equally accurate gaps the widest, so that a new score near the boundary
// falls on the side the data supports best.
func BestAccuracy(trials []Trial) (accuracy, threshold float64, err error) {
	if len(trials) == 0 {
		return 0, 0, errors.New("eval: no trials to measure accuracy on")
	}
	ts := append([]Trial(nil), trials...)
	sort.Slice(ts, func(a, b int) bool { return ts[a].Score > ts[b].Score })
	var genuine int
	for _, t := range ts {
		if t.Genuine {
			genuine++
		}
	}
	impostor := len(ts) - genuine
	// Start by accepting nothing: every impostor is right.
	correct := impostor
	best, bestWidth := correct, 0.0
	threshold = math.Nextafter(ts[0].Score, math.Inf(1))
	for i := 0; i < len(ts); {
		// Accept the whole group of trials tied at ts[i].Score.
		s := ts[i].Score
		for ; i < len(ts) && ts[i].Score == s; i++ {
			if ts[i].Genuine {
				correct++
			} else {
				correct--
			}
		}
		// The gap below s: thresholds in (next, s] give this result.
		var t, width float64
		if i < len(ts) {
			t, width = (s+ts[i].Score)/2, s-ts[i].Score
		} else {
			// Accepting everything: no gap below, so no preference.
			t, width = s, 0
		}
		if correct > best || (correct == best && width > bestWidth) {
			best, bestWidth, threshold = correct, width, t
		}
	}
	return float64(best) / float64(len(ts)), threshold, nil
}

// FoldResult is the outcome on one held-out fold.
type FoldResult struct {
	Fold      string  `json:"fold"`
	Trials    int     `json:"trials"`
	Threshold float64 `json:"threshold"` // chosen on the other folds
	Accuracy  float64 `json:"accuracy"`  // on this fold
}

// CrossValidation is the result of k-fold cross-validated accuracy.
type CrossValidation struct {
	// Accuracy is the mean of the per-fold accuracies (the LFW protocol).
	Accuracy float64 `json:"accuracy"`
	// StdDev is the sample standard deviation of the per-fold accuracies.
	StdDev float64      `json:"stddev"`
	Folds  []FoldResult `json:"folds"`
}

// CrossValidate measures accuracy with k-fold cross-validation over the
// trials' Fold labels: for each fold, the threshold that maximises accuracy
// on all other folds (BestAccuracy) is applied to the held-out fold. Every
// trial needs a fold and there must be at least two.
func CrossValidate(trials []Trial) (CrossValidation, error) {
	byFold := map[string][]Trial{}
	var order []string
	for i, t := range trials {
		if t.Fold == "" {
			return CrossValidation{}, fmt.Errorf("eval: trial %d has no fold", i)
		}
		if _, ok := byFold[t.Fold]; !ok {
			order = append(order, t.Fold)
		}
		byFold[t.Fold] = append(byFold[t.Fold], t)
	}
	if len(order) < 2 {
		return CrossValidation{}, fmt.Errorf("eval: cross-validation needs at least two folds, got %d", len(order))
	}
	sort.Strings(order)
	var cv CrossValidation
	var sum float64
	for _, f := range order {
		var train []Trial
		for _, g := range order {
			if g != f {
				train = append(train, byFold[g]...)
			}
		}
		_, t, err := BestAccuracy(train)
		if err != nil {
			return CrossValidation{}, err
		}
		acc := accuracyAt(byFold[f], t)
		cv.Folds = append(cv.Folds, FoldResult{Fold: f, Trials: len(byFold[f]), Threshold: t, Accuracy: acc})
		sum += acc
	}
	k := float64(len(cv.Folds))
	cv.Accuracy = sum / k
	var ss float64
	for _, r := range cv.Folds {
		ss += (r.Accuracy - cv.Accuracy) * (r.Accuracy - cv.Accuracy)
	}
	cv.StdDev = math.Sqrt(ss / (k - 1))
	return cv, nil
}

// accuracyAt is the fraction of trials classified correctly at threshold t.
func accuracyAt(trials []Trial, t float64) float64 {
	var correct int
	for _, tr := range trials {
		if (tr.Score >= t) == tr.Genuine {
			correct++
		}
	}
	return fraction(correct, len(trials))
}
