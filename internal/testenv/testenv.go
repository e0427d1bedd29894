// Package testenv finds what tests need outside the package under test: the
// repository root, the fetched model files and the shared face photos.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FindRepoRoot walks up from the working directory (a test's package
// folder) to the repository root: the folder with go.mod and faceauth.go.
// For code that has no testing.TB at hand, such as a TestMain.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "faceauth.go")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: cannot find the repository root (go.mod with faceauth.go)")
		}
		dir = parent
	}
}

// RepoRoot is FindRepoRoot for tests: it fails the test when there is none.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// RequireModels names the environment variable that makes missing model
// files fail the tests that need them instead of skipping them. make test
// (and so CI) sets it, so there a model test is never skipped.
const RequireModels = "FACEAUTH_REQUIRE_MODELS"

// ModelsDir returns the folder with the fetched model files: $MODELS_DIR
// or <repo>/models/cache. When the detector is not there the test needs
// the real face engine and cannot run: it fails, with the command to run,
// under $FACEAUTH_REQUIRE_MODELS (make test), and otherwise skips saying
// so, which lets the logic tests (on internal/fakeengine) run without
// model files.
func ModelsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("MODELS_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "models", "cache")
	}
	if _, err := os.Stat(filepath.Join(dir, "fr_detect.onnx")); err != nil {
		missing(t, fmt.Sprintf("model files are not in %s: run `make models-testdata` (or `make test`, which does it)", dir))
	}
	return dir
}

// Sample returns the path of one of the pinned test photos
// (testdata/sample1.jpg ... sample6.jpg from @vladmandic/face-api). It
// fails or skips as ModelsDir does when they are missing.
func Sample(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(ModelsDir(t), "testdata", name)
	if _, err := os.Stat(path); err != nil {
		missing(t, fmt.Sprintf("test image %s is missing: run `make models-testdata`", path))
	}
	return path
}

// missing fails the test for a missing model file under RequireModels and
// skips it, saying why, otherwise.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireModels) != "" {
		t.Fatal(why)
		return
	}
	t.Skipf("skipping: this test needs the real face engine, and the %s (%s is unset; make test sets it and fails instead)", why, RequireModels)
}

// SharedFaces returns ../shared/faces next to the repository, or skips the
// test with a message when that labelled photo set is absent (a fresh
// clone elsewhere).
func SharedFaces(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(RepoRoot(t)), "shared", "faces")
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Skipf("skipping: the labelled photo set %s is absent (it is shared beside the repository, never copied into it)", dir)
	}
	return dir
}
