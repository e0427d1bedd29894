package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressBar(t *testing.T) {
	// The last line drawn is what the terminal shows; \r starts each.
	last := func(s string) string {
		s = strings.TrimSuffix(s, "\n")
		return s[strings.LastIndex(s, "\r")+1:]
	}
	tests := []struct {
		name       string
		ok, failed int
		want       []string
	}{
		{"complete", 4, 0, []string{"[==============================]", "4/4", "files"}},
		{"with failures", 2, 2, []string{"4/4", "files, 2 failed"}},
		{"interrupted", 1, 0, []string{"1/4", "files"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			bar := newProgressBar(&buf, 4, "files")
			bar.update(tt.ok, tt.failed)
			bar.finish()
			got := buf.String()
			if !strings.HasSuffix(got, "\n") {
				t.Errorf("the bar's line is not ended: %q", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(last(got), w) {
					t.Errorf("bar %q lacks %q", last(got), w)
				}
			}
		})
	}
	// Without a terminal nothing is drawn, not even the final newline.
	bar := newProgressBar(nil, 4, "files")
	bar.update(4, 0)
	bar.finish()
}
