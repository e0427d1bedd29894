package pb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xplore/faceauth/internal/testenv"
)

// TestGeneratedCodeIsFresh regenerates the Go code with the pinned
// protoc-gen-go (and the protoc named in its header) and fails when the
// committed file differs: run `make proto` after editing a .proto file.
func TestGeneratedCodeIsFresh(t *testing.T) {
	root := testenv.RepoRoot(t)
	plugin := filepath.Join(root, ".tools", "bin", "protoc-gen-go")
	protoc, err := exec.LookPath("protoc")
	if err != nil || fileMissing(plugin) {
		if os.Getenv("CI") != "" {
			t.Fatal("protoc and .tools/bin/protoc-gen-go are needed: apt-get install protobuf-compiler; make tools")
		}
		t.Skip("skipping: protoc or .tools/bin/protoc-gen-go is missing (apt-get install protobuf-compiler; make tools)")
	}
	out := t.TempDir()
	cmd := exec.Command(protoc, "--plugin=protoc-gen-go="+plugin, "--go_out="+out,
		"--go_opt=module=github.com/xplore/faceauth", "proto/faceauth.proto")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, msg)
	}
	fresh, err := os.ReadFile(filepath.Join(out, "proto", "faceauth.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(root, "proto", "faceauth.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatal("proto/faceauth.pb.go is stale or was edited by hand: run `make proto` and commit the result")
	}
}

func fileMissing(path string) bool {
	_, err := os.Stat(path)
	return err != nil
}
