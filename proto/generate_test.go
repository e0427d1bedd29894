package pb_test

import (
	"testing"

	"github.com/xplore/faceauth/internal/testenv"
)

// TestGeneratedCodeIsFresh fails when faceauth.pb.go does not match
// faceauth.proto: run `make proto` after editing the .proto file.
func TestGeneratedCodeIsFresh(t *testing.T) {
	testenv.GeneratedProtoIsFresh(t, "proto/faceauth.proto")
}
