package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// GeneratedProtoIsFresh regenerates the Go code of protoFile (a path from
// the repository root) with the pinned protoc-gen-go and the local protoc,
// and fails when the committed .pb.go beside it differs: run `make proto`
// after editing a .proto file. Without the tools it skips, except in CI.
func GeneratedProtoIsFresh(t *testing.T, protoFile string) {
	t.Helper()
	root := RepoRoot(t)
	plugin := filepath.Join(root, ".tools", "bin", "protoc-gen-go")
	protoc, err := exec.LookPath("protoc")
	if _, serr := os.Stat(plugin); err != nil || serr != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("protoc and .tools/bin/protoc-gen-go are needed: apt-get install protobuf-compiler; make tools")
		}
		t.Skip("skipping: protoc or .tools/bin/protoc-gen-go is missing (apt-get install protobuf-compiler; make tools)")
	}
	out := t.TempDir()
	cmd := exec.Command(protoc, "--plugin=protoc-gen-go="+plugin, "--go_out="+out,
		"--go_opt=module=github.com/xplore/faceauth", protoFile)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, msg)
	}
	goFile := strings.TrimSuffix(protoFile, ".proto") + ".pb.go"
	fresh, err := os.ReadFile(filepath.Join(out, goFile))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(root, goFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatalf("%s is stale or was edited by hand: run `make proto` and commit the result", goFile)
	}
}
