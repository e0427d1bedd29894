package eval

import (
	"bytes"
	"image"
	"image/png"
	"testing"
)

func TestWritePlot(t *testing.T) {
	tests := []struct {
		name string
		s    Scores
		opt  PlotOptions
	}{
		{"linear", spread, PlotOptions{Title: "spread", Markers: []Marker{{"shipped", 0.6}}}},
		{"log FAR with unscored", unscored, PlotOptions{LogFAR: true, GenuineLabel: "live", ImpostorLabel: "attack"}},
		{"all tied", Scores{Genuine: []float64{0.5}, Impostor: []float64{0.5}}, PlotOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WritePlot(&buf, tt.s, tt.opt); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds() != image.Rect(0, 0, plotW, plotH) {
				t.Errorf("size %v", img.Bounds())
			}
			// The ROC curve is drawn in the genuine colour inside the left
			// panel; the histogram bars blend it on the right.
			left, right := 0, 0
			for y := panelTop; y <= panelBottom; y++ {
				for x := 0; x < plotW; x++ {
					r, g, b, _ := img.At(x, y).RGBA()
					if r>>8 == uint32(colGenuine.R) && g>>8 == uint32(colGenuine.G) && b>>8 == uint32(colGenuine.B) {
						if x < plotW/2 {
							left++
						}
					}
					if g > r+0x1000 && g > b+0x1000 && x > plotW/2 {
						right++
					}
				}
			}
			if left < 50 || right < 50 {
				t.Errorf("ROC curve pixels %d, greenish histogram pixels %d: plot looks empty", left, right)
			}
		})
	}
	if err := WritePlot(&bytes.Buffer{}, Scores{}, PlotOptions{}); err == nil {
		t.Error("no scores: no error")
	}
}
