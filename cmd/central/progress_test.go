package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	bar := newProgressBar(&buf, 4, "files")
	bar.update(4, 0) // the last update always draws
	bar.finish()
	if got := buf.String(); got != "\r[##############################] 4/4 files\n" {
		t.Errorf("bar = %q", got)
	}
	buf.Reset()
	bar = newProgressBar(&buf, 4, "files")
	bar.update(2, 2)
	if got := buf.String(); !strings.Contains(got, "4/4 files, 2 failed") {
		t.Errorf("bar with failures = %q", got)
	}
	// Without a terminal nothing is drawn, not even the final newline.
	bar = newProgressBar(nil, 4, "files")
	bar.update(4, 0)
	bar.finish()
}
