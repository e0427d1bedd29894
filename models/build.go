package models

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/xplore/faceauth/models/onnxgraph"
)

// BuildFaceRecognitionNet converts face-api.js's FaceRecognitionNet (dlib's
// ResNet face descriptor) from its TF.js weights manifest and shard to
// ONNX (File.Build; From: the manifest, then the shard).
const BuildFaceRecognitionNet = "faceapi-face-recognition-net"

// builder makes a file from the contents of its inputs.
type builder struct {
	inputs int
	build  func(in [][]byte) ([]byte, error)
}

var builders = map[string]builder{
	BuildFaceRecognitionNet: {inputs: 2, build: func(in [][]byte) ([]byte, error) {
		return onnxgraph.BuildFaceRecognitionNet(in[0], in[1])
	}},
}

// build makes the built file f in dir from its sources, which must
// verify, and writes it only when the result has f's pinned digest: the
// conversion is deterministic, so other bytes mean a changed converter.
func build(ctx context.Context, m *Manifest, dir string, f *File, log *slog.Logger) error {
	b := builders[f.Build] // checked by Load
	in := make([][]byte, len(f.From))
	for i, name := range f.From {
		src, _ := m.File(name)
		if err := verifyFile(dir, src); err != nil {
			return fmt.Errorf("build %s: %w", f.Name, err)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("build %s: %w", f.Name, err)
		}
		in[i] = data
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	log.Info("building model", "file", f.Name, "from", f.From)
	out, err := b.build(in)
	if err != nil {
		return fmt.Errorf("build %s from %v: %w", f.Name, f.From, err)
	}
	if got := sum(out); got != f.SHA256 {
		return fmt.Errorf("built %s has sha256 %s, want %s: the converter's output differs from the pinned model; refusing to use it", f.Name, got, f.SHA256)
	}
	return writeAtomic(filepath.Join(dir, f.Name), out)
}
