package eval

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// The scores below are binary fractions so that every expected value is
// exact. Case "spread", sorted: .875g .75g .625i .5625g .375i .25i .125i.
var (
	spread = Scores{Genuine: []float64{0.875, 0.75, 0.5625}, Impostor: []float64{0.625, 0.375, 0.25, 0.125}}
	// One genuine and one impostor score tie at 0.5.
	tied = Scores{Genuine: []float64{0.5, 0.5}, Impostor: []float64{0.5, 0.25}}
	// Unscored pairs (no face) on both sides.
	unscored = Scores{Genuine: []float64{0.75, NoScore}, Impostor: []float64{NoScore, 0.125}}
	perfect  = Scores{Genuine: []float64{0.75, 0.5}, Impostor: []float64{0.25, 0.125}}
)

func TestROC(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name string
		s    Scores
		want []Point
	}{
		{"spread", spread, []Point{
			{inf, 0, 0}, {0.875, 0, 1.0 / 3}, {0.75, 0, 2.0 / 3}, {0.625, 0.25, 2.0 / 3},
			{0.5625, 0.25, 1}, {0.375, 0.5, 1}, {0.25, 0.75, 1}, {0.125, 1, 1},
		}},
		// The tie moves both rates in one step: a diagonal segment.
		{"tied", tied, []Point{{inf, 0, 0}, {0.5, 0.5, 1}, {0.25, 1, 1}}},
		{"unscored", unscored, []Point{{inf, 0, 0}, {0.75, 0, 0.5}, {0.125, 0.5, 0.5}, {-1, 1, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.ROC()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d points %v, want %v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("point %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestAUC(t *testing.T) {
	tests := []struct {
		name string
		s    Scores
		want float64
	}{
		// Mann-Whitney by hand: .875 and .75 beat all 4 impostors, .5625
		// beats 3: 11 of 12.
		{"spread", spread, 11.0 / 12},
		// Each 0.5 beats 0.25 (2) and ties 0.5 (2 x 1/2): 3 of 4.
		{"tied", tied, 0.75},
		// .75 beats both (2); -1 ties -1 (1/2); -1 loses to .125: 2.5 of 4.
		{"unscored", unscored, 0.625},
		{"perfect", perfect, 1},
		{"reversed", Scores{Genuine: perfect.Impostor, Impostor: perfect.Genuine}, 0},
		{"all tied", Scores{Genuine: []float64{0.5, 0.5}, Impostor: []float64{0.5}}, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.AUC()
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("AUC = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNoScores(t *testing.T) {
	for _, s := range []Scores{{}, {Genuine: []float64{1}}, {Impostor: []float64{1}}} {
		if _, err := s.AUC(); !errors.Is(err, ErrNoScores) {
			t.Errorf("AUC(%v) error = %v, want ErrNoScores", s, err)
		}
		if _, _, err := s.TARAtFAR(0.1); !errors.Is(err, ErrNoScores) {
			t.Errorf("TARAtFAR(%v) error = %v, want ErrNoScores", s, err)
		}
	}
}

func TestThresholdAtFMR(t *testing.T) {
	above := func(v float64) float64 { return math.Nextafter(v, math.Inf(1)) }
	thousand := Scores{Genuine: []float64{0.9985, 0.5}}
	for i := range 1000 {
		thousand.Impostor = append(thousand.Impostor, float64(i)/1000)
	}
	tests := []struct {
		name    string
		s       Scores
		target  float64
		want    float64 // threshold
		wantTAR float64
		wantFMR float64
	}{
		// No false match allowed: just above the highest impostor.
		{"spread 0", spread, 0, above(0.625), 2.0 / 3, 0},
		// 1e-3 of 4 impostors is still 0 of them.
		{"spread 1e-3", spread, 1e-3, above(0.625), 2.0 / 3, 0},
		// 0.25 of 4 allows exactly one impostor (0.625).
		{"spread 0.25", spread, 0.25, above(0.375), 1, 0.25},
		{"spread 0.24", spread, 0.24, above(0.625), 2.0 / 3, 0},
		// Tied at the top: both tied scores sit on one side.
		{"tied 0", tied, 0, above(0.5), 0, 0},
		{"tied 0.5", tied, 0.5, above(0.25), 1, 0.5},
		// 1e-3 of 1000 allows one impostor: 0.999 is accepted, 0.998 not.
		{"thousand 1e-3", thousand, 1e-3, above(0.998), 0.5, 1e-3},
		{"thousand 1e-2", thousand, 1e-2, above(0.989), 0.5, 1e-2},
		{"thousand 0.9995", thousand, 0.9995, above(0.0), 1, 0.999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.ThresholdAtFMR(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("threshold = %v, want %v", got, tt.want)
			}
			tar, th, err := tt.s.TARAtFAR(tt.target)
			if err != nil || th != got || tar != tt.wantTAR {
				t.Errorf("TARAtFAR = %v at %v (%v), want %v at %v", tar, th, err, tt.wantTAR, got)
			}
			if fmr, _ := tt.s.Rates(got); fmr != tt.wantFMR {
				t.Errorf("FMR at threshold = %v, want %v", fmr, tt.wantFMR)
			}
		})
	}
	for _, bad := range []float64{-0.1, 1, 2, math.NaN()} {
		if _, err := spread.ThresholdAtFMR(bad); err == nil {
			t.Errorf("target %v: no error", bad)
		}
	}
}

// TestThresholdAtFMRIsSmallest checks the definition on random data with
// many ties: the threshold meets the target and the next lower float does
// not.
func TestThresholdAtFMRIsSmallest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		var s Scores
		n := 1 + r.IntN(300)
		for range n {
			// Few distinct values, so ties are common.
			s.Impostor = append(s.Impostor, float64(r.IntN(20))/16)
		}
		target := r.Float64() * 0.5
		th, err := s.ThresholdAtFMR(target)
		if err != nil {
			t.Fatal(err)
		}
		fmr, _ := s.Rates(th)
		lower, _ := s.Rates(math.Nextafter(th, math.Inf(-1)))
		if fmr > target || lower <= target {
			t.Fatalf("trial %d: n=%d target %v: FMR at %v is %v, just below it %v", trial, n, target, th, fmr, lower)
		}
	}
}

func TestRates(t *testing.T) {
	tests := []struct {
		s          Scores
		t          float64
		fmr, fnmr  float64
		apcer      float64
		bpcer      float64
		attacks, l int
	}{
		{spread, 0.5625, 0.25, 0, 0.25, 0, 4, 3},
		{spread, 0.6, 0.25, 1.0 / 3, 0.25, 1.0 / 3, 4, 3},
		{spread, 0.9, 0, 1, 0, 1, 4, 3},
		{spread, -1, 1, 0, 1, 0, 4, 3},
		// Exactly at a tied score: accepted.
		{tied, 0.5, 0.5, 0, 0.5, 0, 2, 2},
		// Unscored pairs are rejected by any threshold above -1.
		{unscored, -0.5, 0.5, 0.5, 0.5, 0.5, 2, 2},
	}
	for _, tt := range tests {
		fmr, fnmr := tt.s.Rates(tt.t)
		if fmr != tt.fmr || fnmr != tt.fnmr {
			t.Errorf("Rates(%v) on %v = %v, %v; want %v, %v", tt.t, tt.s, fmr, fnmr, tt.fmr, tt.fnmr)
		}
		p := PADRates(tt.s, tt.t)
		want := PAD{Threshold: tt.t, APCER: tt.apcer, BPCER: tt.bpcer, Attacks: tt.attacks, Live: tt.l}
		if p != want {
			t.Errorf("PADRates(%v) = %+v, want %+v", tt.t, p, want)
		}
	}
}

func TestEER(t *testing.T) {
	tests := []struct {
		name      string
		s         Scores
		eer, at   float64
		wantError bool
	}{
		// max(FMR, FNMR) per threshold: .875: 2/3, .75: 1/3, .625: 1/3,
		// .5625: 1/4, .375: 1/2 ... so 1/4 at .5625.
		{"spread", spread, 0.25, 0.5625, false},
		{"perfect", perfect, 0, 0.5, false},
		{"tied", tied, 0.5, 0.5, false},
		{"empty", Scores{}, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eer, at, err := tt.s.EER()
			if (err != nil) != tt.wantError {
				t.Fatalf("error = %v", err)
			}
			if eer != tt.eer || at != tt.at {
				t.Errorf("EER = %v at %v, want %v at %v", eer, at, tt.eer, tt.at)
			}
		})
	}
}
