package main

import (
	"path/filepath"
	"testing"

	"github.com/xplore/faceauth/cmd/internal/flagdoc"
	"github.com/xplore/faceauth/internal/testenv"
)

// TestConfigurationDocs checks that README.md's `edged run` table names
// exactly the flags and variables of `edged run`: it once documented
// FACE_WORKERS, LIVENESS_CHECK and --max-body, which do not exist.
func TestConfigurationDocs(t *testing.T) {
	readme := filepath.Join(testenv.RepoRoot(t), "README.md")
	rows, err := flagdoc.Table(readme, "### edged run")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range flagdoc.Check("README.md", rows, runCommand().Flags, nil, true) {
		t.Error(p)
	}
}
