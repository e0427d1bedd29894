package onnxgraph

import (
	"testing"

	"github.com/xplore/faceauth/internal/testenv"
)

// TestGeneratedCodeIsFresh fails when onnx.pb.go does not match onnx.proto.
func TestGeneratedCodeIsFresh(t *testing.T) {
	testenv.GeneratedProtoIsFresh(t, "models/onnxgraph/onnx.proto")
}
