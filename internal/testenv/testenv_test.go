package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Fatal and Skip instead of ending
// the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                          {}
func (r *recorder) Fatal(args ...any)                { r.fatal = args[0].(string) }
func (r *recorder) Skipf(format string, args ...any) { r.skip = fmt.Sprintf(format, args...) }

// TestModelsDirMissing: without model files a test that needs them skips,
// saying so, unless the run requires them (make test, CI), where it fails.
func TestModelsDirMissing(t *testing.T) {
	tests := []struct {
		require   string
		wantFatal bool
	}{
		{"", false},
		{"1", true},
	}
	for _, tt := range tests {
		t.Setenv("MODELS_DIR", t.TempDir())
		t.Setenv(RequireModels, tt.require)
		r := &recorder{TB: t}
		ModelsDir(r)
		if (r.fatal != "") != tt.wantFatal || (r.skip != "") == tt.wantFatal {
			t.Errorf("%s=%q: fatal %q, skip %q", RequireModels, tt.require, r.fatal, r.skip)
		}
		if msg := r.fatal + r.skip; !strings.Contains(msg, "make models-testdata") {
			t.Errorf("%s=%q: %q does not say what to run", RequireModels, tt.require, msg)
		}
	}
}
