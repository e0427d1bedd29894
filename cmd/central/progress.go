package main

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// terminal returns w when it is a terminal, else nil: a progress bar in a
// log file or a pipe is noise.
func terminal(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

// progressBar is the one-line bar of import and eval, drawn by
// schollz/progressbar: " 30% [=========>    ] (12/40, 5 files/s) [2s:6s] files, 1 failed".
// It redraws on every update, unthrottled, so that the line left by an
// interrupted run is its real state (the library's throttle can hold back
// the last update: TestProgressBar/interrupted). With a nil writer it draws
// nothing. Callers update it under their lock.
type progressBar struct {
	w    io.Writer
	bar  *progressbar.ProgressBar
	unit string
	desc string
}

func newProgressBar(w io.Writer, total int, unit string) *progressBar {
	p := &progressBar{w: w, unit: unit}
	if w == nil {
		return p
	}
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetDescription(unit),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetRenderBlankState(false),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "=", SaucerHead: ">", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}),
	)
	return p
}

// update redraws the bar for ok finished and failed items.
func (p *progressBar) update(ok, failed int) {
	if p.bar == nil {
		return
	}
	desc := p.unit
	if failed > 0 {
		desc = fmt.Sprintf("%s, %d failed", p.unit, failed)
	}
	if desc != p.desc {
		p.bar.Describe(desc)
		p.desc = desc
	}
	p.bar.Set(ok + failed)
}

// finish ends the bar's line, where it stands (an interrupted run is not
// drawn as complete).
func (p *progressBar) finish() {
	if p.bar == nil {
		return
	}
	p.bar.Exit()
	io.WriteString(p.w, "\n")
}
