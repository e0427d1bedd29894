package faceauth_test

import (
	"os"
	"os/exec"
	"path"
	"strings"
	"testing"
)

// TestTopLevelLayout: the repository's top level is the design card's
// (central, edged, proto, models, deploy and the build files), the shared
// libraries and tools beside them, and the root package's files, so the
// folders show the architecture (docs/architecture.md).
func TestTopLevelLayout(t *testing.T) {
	allowed := map[string]bool{
		// The card.
		"central": true, "edged": true, "proto": true, "models": true, "deploy": true,
		"go.mod": true, "go.sum": true, "Makefile": true, "README.md": true,
		// Beside it.
		"cmd": true, "internal": true, "docs": true, "e2e": true, "scripts": true, "tools": true,
		".ci": true, ".gitignore": true,
	}
	out, err := exec.Command("git", "ls-files").Output()
	if err != nil {
		t.Skipf("skipping: not a git checkout (%v)", err)
	}
	seen := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		top, _, _ := strings.Cut(f, "/")
		if seen[top] {
			continue
		}
		seen[top] = true
		if !allowed[top] && path.Ext(top) != ".go" {
			t.Errorf("%s is at the top level; put it under central/, edged/, internal/ or another folder of the card", top)
		}
	}
}

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

// TestDomainImportsNoHTTP: central's domain (the registry, revocations,
// the sweep) is apart from HTTP; its routes and handlers live in
// central/httpapi. The domain's own (non-test) imports name no HTTP
// package, so it returns its own types and any caller (the HTTP API, the
// commands, the feed) can use it.
func TestDomainImportsNoHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: it runs the go command")
	}
	forbidden := []string{"net/http", "github.com/xplore/faceauth/internal/api"}
	list := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "./central")
	out, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if p == f || strings.HasPrefix(p, f+"/") {
				t.Errorf("package central imports %s; keep HTTP in central/httpapi", p)
			}
		}
	}
}
