package eval

import (
	"math"
	"testing"
)

func TestFMRUpperBound(t *testing.T) {
	tests := []struct {
		k, n int
		conf float64
		want float64
	}{
		// k = 0: (1-p)^n = 1-conf.
		{0, 1, 0.95, 0.95},
		{0, 1000, 0.95, 1 - math.Pow(0.05, 1.0/1000)},
		// k = 1, n = 2: P(X <= 1) = 1 - p^2 = 0.05.
		{1, 2, 0.95, math.Sqrt(0.95)},
		{3, 3, 0.95, 1},
		// k = 1, n = 1000 at 95%: the textbook value 4.74/1000.
		{1, 1000, 0.95, 0.004735},
	}
	for _, tt := range tests {
		got, err := FMRUpperBound(tt.k, tt.n, tt.conf)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-tt.want) > 1e-6 {
			t.Errorf("FMRUpperBound(%d, %d, %v) = %v, want %v", tt.k, tt.n, tt.conf, got, tt.want)
		}
	}
	for _, bad := range [][3]float64{{-1, 10, 0.9}, {11, 10, 0.9}, {0, 0, 0.9}, {0, 10, 1}} {
		if _, err := FMRUpperBound(int(bad[0]), int(bad[1]), bad[2]); err == nil {
			t.Errorf("FMRUpperBound%v: no error", bad)
		}
	}
	// Large n stays finite.
	if got, err := FMRUpperBound(78, 78000, 0.95); err != nil || got < 1e-3 || got > 1.3e-3 {
		t.Errorf("FMRUpperBound(78, 78000) = %v, %v", got, err)
	}
}

func TestNormalTailThreshold(t *testing.T) {
	// Mean 0.25, sample standard deviation sqrt(0.125); the NoScore pair
	// is left out of the fit.
	s := Scores{Impostor: []float64{0, 0.5, NoScore}}
	sd := math.Sqrt(0.125)
	oneSigma := 0.5 * math.Erfc(1/math.Sqrt2) // P(Z > 1)
	tests := []struct {
		target, want float64
	}{
		{0.5, 0.25},
		{oneSigma, 0.25 + sd},
		{1 - oneSigma, 0.25 - sd},
	}
	for _, tt := range tests {
		got, mean, gotSD, err := s.NormalTailThreshold(tt.target)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-tt.want) > 1e-9 || mean != 0.25 || math.Abs(gotSD-sd) > 1e-12 {
			t.Errorf("target %v: %v (mean %v sd %v), want %v", tt.target, got, mean, gotSD, tt.want)
		}
	}
	if _, _, _, err := (Scores{Impostor: []float64{0.5, NoScore}}).NormalTailThreshold(0.1); err == nil {
		t.Error("one scored pair: no error")
	}
	if _, _, _, err := s.NormalTailThreshold(0); err == nil {
		t.Error("target 0: no error")
	}
}
