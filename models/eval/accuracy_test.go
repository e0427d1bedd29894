package eval

import (
	"math"
	"testing"
)

func trials(s Scores, fold string) []Trial {
	var out []Trial
	for _, g := range s.Genuine {
		out = append(out, Trial{Score: g, Genuine: true, Fold: fold})
	}
	for _, i := range s.Impostor {
		out = append(out, Trial{Score: i, Fold: fold})
	}
	return out
}

func TestBestAccuracy(t *testing.T) {
	tests := []struct {
		name      string
		trials    []Trial
		acc, at   float64
		wantError bool
	}{
		// Accepting down to .75 or down to .5625 both get 6 of 7 right; the
		// gap below .5625 (to .375) is wider than the one below .75 (to
		// .625), so its midpoint wins.
		{"spread", trials(spread, ""), 6.0 / 7, 0.46875, false},
		{"perfect", trials(perfect, ""), 1, 0.375, false},
		// Only impostors: accepting nothing is right, just above the top.
		{"impostors only", trials(Scores{Impostor: []float64{0.5, 0.25}}, ""), 1, math.Nextafter(0.5, 2), false},
		// Only genuine: accepting everything is right.
		{"genuine only", trials(Scores{Genuine: []float64{0.5, 0.25}}, ""), 1, 0.25, false},
		// The tie at 0.5 cannot be split: best is accept both 0.5 (3 of 4).
		{"tied", trials(tied, ""), 0.75, 0.375, false},
		{"empty", nil, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc, at, err := BestAccuracy(tt.trials)
			if (err != nil) != tt.wantError {
				t.Fatalf("error = %v", err)
			}
			if acc != tt.acc || at != tt.at {
				t.Errorf("BestAccuracy = %v at %v, want %v at %v", acc, at, tt.acc, tt.at)
			}
		})
	}
}

func TestCrossValidate(t *testing.T) {
	// Fold a: g .875, i .25. Fold b: g .5, i .75 (inverted).
	a := trials(Scores{Genuine: []float64{0.875}, Impostor: []float64{0.25}}, "a")
	b := trials(Scores{Genuine: []float64{0.5}, Impostor: []float64{0.75}}, "b")
	// Held-out a, trained on b: accepting nothing or everything both get 1
	// of 2; neither has a gap, so the first (nothing accepted: just above
	// .75) stays. On a: .875 accepted, .25 rejected: 1.0.
	// Held-out b, trained on a: midpoint of .875 and .25 = .5625. On b:
	// .5 rejected and .75 accepted, both wrong: 0.
	cv, err := CrossValidate(append(a, b...))
	if err != nil {
		t.Fatal(err)
	}
	want := []FoldResult{
		{Fold: "a", Trials: 2, Threshold: math.Nextafter(0.75, 1), Accuracy: 1},
		{Fold: "b", Trials: 2, Threshold: 0.5625, Accuracy: 0},
	}
	if len(cv.Folds) != 2 || cv.Folds[0] != want[0] || cv.Folds[1] != want[1] {
		t.Errorf("folds = %+v, want %+v", cv.Folds, want)
	}
	if cv.Accuracy != 0.5 || math.Abs(cv.StdDev-math.Sqrt(0.5)) > 1e-12 {
		t.Errorf("accuracy %v ± %v, want 0.5 ± %v", cv.Accuracy, cv.StdDev, math.Sqrt(0.5))
	}

	// Three consistent folds: every held-out fold is classified perfectly.
	var three []Trial
	for _, f := range []string{"1", "2", "3"} {
		three = append(three, trials(perfect, f)...)
	}
	cv, err = CrossValidate(three)
	if err != nil {
		t.Fatal(err)
	}
	if cv.Accuracy != 1 || cv.StdDev != 0 || len(cv.Folds) != 3 {
		t.Errorf("three folds: %+v", cv)
	}

	for name, bad := range map[string][]Trial{
		"one fold": trials(perfect, "x"),
		"no fold":  append(trials(perfect, "x"), Trial{Score: 1, Genuine: true}),
	} {
		if _, err := CrossValidate(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
