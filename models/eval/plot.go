package eval

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// PlotOptions says what a plot shows and how its parts are named.
type PlotOptions struct {
	Title string
	// LogFAR draws the ROC's false-accept axis on a log scale, down to one
	// impostor in the data: the region where a deployed threshold lives.
	LogFAR bool
	// Axis and class names; empty ones default to the face-verification
	// terms (FAR, TAR, genuine, impostor, score).
	FARLabel, TARLabel          string
	FARShort, TARShort          string // in marker captions
	GenuineLabel, ImpostorLabel string
	ScoreLabel                  string
	// Markers are thresholds to show: a dot on the ROC and a vertical line
	// on the histogram.
	Markers []Marker
}

// Marker is a labelled threshold on a plot.
type Marker struct {
	Label     string
	Threshold float64
}

func (o *PlotOptions) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.FARLabel, "false accept rate (FAR)")
	def(&o.TARLabel, "true accept rate (TAR)")
	def(&o.FARShort, "FAR")
	def(&o.TARShort, "TAR")
	def(&o.GenuineLabel, "genuine")
	def(&o.ImpostorLabel, "impostor")
	def(&o.ScoreLabel, "score")
}

// Plot geometry in pixels.
const (
	plotW, plotH = 1200, 540
	panelTop     = 60
	panelBottom  = 450
)

var (
	colGenuine  = color.RGBA{0x1b, 0x7a, 0x3a, 0xff}
	colImpostor = color.RGBA{0xc0, 0x30, 0x30, 0xff}
	colAxis     = color.RGBA{0x20, 0x20, 0x20, 0xff}
	colGrid     = color.RGBA{0xe0, 0xe0, 0xe0, 0xff}
	colMarker   = color.RGBA{0x20, 0x40, 0xc0, 0xff}
	colChance   = color.RGBA{0xa0, 0xa0, 0xa0, 0xff}
)

// WritePlot draws the ROC curve (left) and the score histograms of both
// classes (right) as a PNG.
func WritePlot(w io.Writer, s Scores, opt PlotOptions) error {
	opt.defaults()
	pts, err := s.ROC()
	if err != nil {
		return err
	}
	auc, _ := s.AUC()
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	if opt.Title != "" {
		text(img, 20, 25, opt.Title, colAxis)
	}
	drawROC(img, s, pts, auc, opt)
	drawHistogram(img, s, opt)
	return png.Encode(w, img)
}

// axis maps data values to pixels along one dimension.
type axis struct {
	lo, hi   float64 // data range
	p0, p1   int     // pixel range (p0 at lo)
	log      bool
	logFloor float64 // values below are drawn at lo
}

func (a axis) px(v float64) int {
	lo, hi := a.lo, a.hi
	if a.log {
		v = math.Log10(math.Max(v, a.logFloor))
		lo, hi = math.Log10(lo), math.Log10(hi)
	}
	f := (v - lo) / (hi - lo)
	return a.p0 + int(math.Round(f*float64(a.p1-a.p0)))
}

func drawROC(img *image.RGBA, s Scores, pts []Point, auc float64, opt PlotOptions) {
	x := axis{lo: 0, hi: 1, p0: 80, p1: 560}
	if opt.LogFAR {
		floor := math.Pow(10, math.Floor(math.Log10(1/float64(len(s.Impostor)))))
		x = axis{lo: floor, hi: 1, p0: 80, p1: 560, log: true, logFloor: floor}
	}
	y := axis{lo: 0, hi: 1, p0: panelBottom, p1: panelTop}
	// Grid and ticks.
	for _, v := range []float64{0, 0.2, 0.4, 0.6, 0.8, 1} {
		line(img, x.p0, y.px(v), x.p1, y.px(v), colGrid, 1)
		textRight(img, x.p0-6, y.px(v)+4, fmt.Sprintf("%.1f", v), colAxis)
	}
	if opt.LogFAR {
		for v := x.lo; v <= 1.0000001; v *= 10 {
			line(img, x.px(v), y.p0, x.px(v), y.p1, colGrid, 1)
			textCenter(img, x.px(v), y.p0+18, fmt.Sprintf("1e%d", int(math.Round(math.Log10(v)))), colAxis)
		}
	} else {
		for _, v := range []float64{0, 0.2, 0.4, 0.6, 0.8, 1} {
			line(img, x.px(v), y.p0, x.px(v), y.p1, colGrid, 1)
			textCenter(img, x.px(v), y.p0+18, fmt.Sprintf("%.1f", v), colAxis)
		}
		line(img, x.px(0), y.px(0), x.px(1), y.px(1), colChance, 1)
	}
	frame(img, x.p0, y.p1, x.p1, y.p0)
	textCenter(img, (x.p0+x.p1)/2, y.p0+40, opt.FARLabel, colAxis)
	text(img, x.p0, y.p1-8, opt.TARLabel, colAxis)
	// The curve.
	for k := 1; k < len(pts); k++ {
		line(img, x.px(pts[k-1].FAR), y.px(pts[k-1].TAR), x.px(pts[k].FAR), y.px(pts[k].TAR), colGenuine, 2)
	}
	textRight(img, x.p1-8, y.p0-12, fmt.Sprintf("AUC %.4f", auc), colAxis)
	for i, m := range opt.Markers {
		far, fnmr := s.Rates(m.Threshold)
		px, py := x.px(far), y.px(1-fnmr)
		dot(img, px, py, colMarker)
		textRight(img, x.p1-8, y.p0-30-16*i,
			fmt.Sprintf("%s %.4g: %s %.2g, %s %.3f", m.Label, m.Threshold, opt.FARShort, far, opt.TARShort, 1-fnmr), colMarker)
	}
}

func drawHistogram(img *image.RGBA, s Scores, opt PlotOptions) {
	const bins = 50
	lo, hi := math.Inf(1), math.Inf(-1)
	unscored := 0
	for _, xs := range [][]float64{s.Genuine, s.Impostor} {
		for _, v := range xs {
			if v <= NoScore {
				unscored++
				continue
			}
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	for _, m := range opt.Markers {
		lo, hi = math.Min(lo, m.Threshold), math.Max(hi, m.Threshold)
	}
	if math.IsInf(lo, 0) {
		return
	}
	if hi == lo {
		hi = lo + 1
	}
	width := (hi - lo) / bins
	density := func(xs []float64) []float64 {
		d := make([]float64, bins)
		for _, v := range xs {
			if v <= NoScore {
				continue
			}
			b := int((v - lo) / width)
			if b >= bins {
				b = bins - 1
			}
			d[b] += 1 / float64(len(xs))
		}
		return d
	}
	g, im := density(s.Genuine), density(s.Impostor)
	top := 0.0
	for b := range bins {
		top = math.Max(top, math.Max(g[b], im[b]))
	}
	x := axis{lo: lo, hi: hi, p0: 680, p1: 1160}
	y := axis{lo: 0, hi: top * 1.1, p0: panelBottom, p1: panelTop}
	for k := 0; k <= 5; k++ {
		v := lo + (hi-lo)*float64(k)/5
		line(img, x.px(v), y.p0, x.px(v), y.p1, colGrid, 1)
		textCenter(img, x.px(v), y.p0+18, fmt.Sprintf("%.2f", v), colAxis)
	}
	for b := range bins {
		x0, x1 := x.px(lo+float64(b)*width), x.px(lo+float64(b+1)*width)
		fill(img, x0, y.px(im[b]), x1, y.p0, colImpostor)
		fill(img, x0, y.px(g[b]), x1, y.p0, colGenuine)
	}
	frame(img, x.p0, y.p1, x.p1, y.p0)
	textCenter(img, (x.p0+x.p1)/2, y.p0+40, opt.ScoreLabel, colAxis)
	text(img, x.p0, y.p1-8, "fraction of each class per bin", colAxis)
	for i, m := range opt.Markers {
		for py := y.p1; py < y.p0; py += 8 {
			line(img, x.px(m.Threshold), py, x.px(m.Threshold), py+4, colMarker, 2)
		}
		// Labels go below the plot, staggered, so close thresholds stay legible.
		textCenter(img, x.px(m.Threshold), y.p0+54+14*i, m.Label, colMarker)
	}
	legendY := y.p1 + 20
	for _, l := range []struct {
		c    color.RGBA
		name string
		n    int
	}{{colGenuine, opt.GenuineLabel, len(s.Genuine)}, {colImpostor, opt.ImpostorLabel, len(s.Impostor)}} {
		fill(img, x.p1-250, legendY-9, x.p1-240, legendY+1, l.c)
		text(img, x.p1-234, legendY, fmt.Sprintf("%s (%d)", l.name, l.n), colAxis)
		legendY += 16
	}
	if unscored > 0 {
		text(img, x.p1-250, legendY, fmt.Sprintf("%d unscored (no face), not drawn", unscored), colAxis)
	}
}

// Drawing primitives.

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func textWidth(s string) int {
	return font.MeasureString(basicfont.Face7x13, s).Round()
}

func textRight(img *image.RGBA, x, y int, s string, c color.Color) {
	text(img, x-textWidth(s), y, s, c)
}

func textCenter(img *image.RGBA, x, y int, s string, c color.Color) {
	text(img, x-textWidth(s)/2, y, s, c)
}

// line draws a segment w pixels thick (Bresenham with a square pen).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, w int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		for i := range w {
			for j := range w {
				img.SetRGBA(x0+i-w/2, y0+j-w/2, c)
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

// fill blends a translucent rectangle, so overlapping bars stay visible.
func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	r := image.Rect(x0, y0, x1, y1)
	draw.Draw(img, r, image.NewUniform(color.NRGBA{c.R, c.G, c.B, 0x70}), image.Point{}, draw.Over)
}

func frame(img *image.RGBA, x0, y0, x1, y1 int) {
	line(img, x0, y0, x1, y0, colAxis, 1)
	line(img, x0, y1, x1, y1, colAxis, 1)
	line(img, x0, y0, x0, y1, colAxis, 1)
	line(img, x1, y0, x1, y1, colAxis, 1)
}

func dot(img *image.RGBA, x, y int, c color.RGBA) {
	for i := -4; i <= 4; i++ {
		for j := -4; j <= 4; j++ {
			if i*i+j*j <= 16 {
				img.SetRGBA(x+i, y+j, c)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
