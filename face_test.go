package faceauth

import (
	"math"
	"testing"
)

func TestSimilarity(t *testing.T) {
	tests := []struct {
		name string
		a, b []float32
		want float32
	}{
		{"cosine of unit vectors", []float32{0.6, 0.8}, []float32{0.8, 0.6}, 0.96},
		{"identical", []float32{0.6, 0.8}, []float32{0.6, 0.8}, 1},
		{"opposite", []float32{1, 0}, []float32{-1, 0}, -1},
		{"different models' lengths", []float32{1}, []float32{1, 0}, 0},
		{"empty", nil, nil, 0},
	}
	for _, tt := range tests {
		if got := Similarity(tt.a, tt.b); math.Abs(float64(got-tt.want)) > 1e-6 {
			t.Errorf("%s: Similarity = %g, want %g", tt.name, got, tt.want)
		}
	}
}

func TestSelectedFace(t *testing.T) {
	two := []Face{{Score: 0.9}, {Score: 0.8}}
	tests := []struct {
		name   string
		a      *Analysis
		ok     bool
		scored float32
	}{
		{"selected second", &Analysis{Faces: two, Selected: 1}, true, 0.8},
		{"detect only", &Analysis{Faces: two, Selected: -1}, false, 0},
		{"out of range", &Analysis{Faces: two, Selected: 2}, false, 0},
		{"nil analysis", nil, false, 0},
	}
	for _, tt := range tests {
		f, ok := tt.a.SelectedFace()
		if ok != tt.ok || f.Score != tt.scored {
			t.Errorf("%s: SelectedFace = %+v, %v; want score %g, %v", tt.name, f, ok, tt.scored, tt.ok)
		}
	}
}
