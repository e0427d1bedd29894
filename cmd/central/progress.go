package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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

// progressBar draws "[#####     ] 12/40 files, 1 failed" on one terminal
// line, at most ten times a second. With a nil writer it draws nothing.
// It is not safe for concurrent use: callers update it under their lock.
type progressBar struct {
	w     io.Writer
	total int
	unit  string
	last  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, total int, unit string) *progressBar {
	return &progressBar{w: w, total: total, unit: unit}
}

// update redraws the bar for ok finished and failed items.
func (p *progressBar) update(ok, failed int) {
	n := ok + failed
	if p.w == nil || (n < p.total && time.Since(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = time.Now()
	const width = 30
	fill := 0
	if p.total > 0 {
		fill = min(n, p.total) * width / p.total
	}
	line := fmt.Sprintf("\r[%s%s] %d/%d %s", strings.Repeat("#", fill), strings.Repeat(" ", width-fill), n, p.total, p.unit)
	if failed > 0 {
		line += fmt.Sprintf(", %d failed", failed)
	}
	io.WriteString(p.w, line)
	p.drawn = true
}

// finish ends the bar's line.
func (p *progressBar) finish() {
	if p.drawn {
		io.WriteString(p.w, "\n")
	}
}
