package deploy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xplore/faceauth/internal/testenv"
)

// TestDist builds the release tarball with scripts/dist.sh (make dist)
// and installs it as deploy/aws/user-data.sh does: it must hold the
// binaries, the verified runtime model files and deploy/, no Go sources or
// test data, match its .sha256 file, and its central must verify its
// models where they land.
func TestDist(t *testing.T) {
	root := testenv.RepoRoot(t)
	modelsDir := testenv.ModelsDir(t)
	bin, dist, opt := t.TempDir(), t.TempDir(), t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/central", "./cmd/edged")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "dist.sh"))
	cmd.Env = append(os.Environ(), "BIN="+bin, "MODELS_DIR="+modelsDir, "DIST_DIR="+dist, "VERSION=test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dist.sh: %v\n%s", err, out)
	}
	tarball := filepath.Join(dist, "faceauth-test-linux-amd64.tar.gz")
	if got := strings.TrimSpace(string(out)); got != tarball {
		t.Fatalf("dist.sh printed %q, want the tarball's path %q", got, tarball)
	}

	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(tarball + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	if want := hex.EncodeToString(h[:]) + "  " + filepath.Base(tarball) + "\n"; string(sum) != want {
		t.Fatalf(".sha256 file %q, want %q", sum, want)
	}

	list, err := exec.Command("tar", "-tzf", tarball).Output()
	if err != nil {
		t.Fatal(err)
	}
	files := strings.Fields(string(list))
	for _, want := range []string{
		"./bin/central", "./bin/edged", "./models/manifest.json", "./models/fr_feature.onnx", "./models/libonnxruntime.so.1",
		"./deploy/aws/user-data.sh", "./deploy/systemd/xplore-central.service", "./deploy/env/central.env.example", "./README.md",
	} {
		if !slices.Contains(files, want) {
			t.Errorf("the tarball lacks %s", want)
		}
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".go") || strings.Contains(f, "testdata") {
			t.Errorf("the tarball holds %s, which a release does not need", f)
		}
	}

	// Installed as user-data.sh does it.
	if out, err := exec.Command("tar", "-xzf", tarball, "-C", opt).CombinedOutput(); err != nil {
		t.Fatalf("extract: %v\n%s", err, out)
	}
	verify := exec.Command(filepath.Join(opt, "bin", "central"), "models", "verify")
	verify.Env = append(os.Environ(), "MODELS_DIR="+filepath.Join(opt, "models"))
	if out, err := verify.CombinedOutput(); err != nil || !strings.Contains(string(out), "models verified") {
		t.Fatalf("central models verify in the installed tree: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(opt, "deploy", "aws", "user-data.sh")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("user-data.sh lost its execute bit: %v %v", fi, err)
	}
}
