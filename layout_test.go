package faceauth_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestServicesNeedNoONNX: the services reach the face pipeline only through
// the faceauth.Engine interface, so their packages (the commands excluded)
// neither link ONNX Runtime nor need cgo, and their logic tests can run on a
// fake engine without model files.
func TestServicesNeedNoONNX(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: it runs the go command")
	}
	pkgs := []string{"./central/...", "./edged/...", "./internal/..."}
	list := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)...)
	out, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "onnxruntime") || p == "github.com/xplore/faceauth/models/face" {
			t.Errorf("%s is a dependency of the services' packages; they must use faceauth.Engine", p)
		}
	}
	build := exec.Command("go", append([]string{"build", "-o", os.DevNull}, pkgs...)...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Errorf("CGO_ENABLED=0 go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
}
