package onnxgraph

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
)

// TestDecodeTFJSWeights checks the TF.js weights-manifest rules the dlib
// conversion relies on: tensors follow each other in the shard in
// manifest order, uint8 and uint16 values are dequantised as min + scale*q,
// float32 values are little-endian, and a shard of the wrong length is
// refused.
func TestDecodeTFJSWeights(t *testing.T) {
	manifest := `[{"paths": ["m.bin"], "weights": [
	  {"name": "q8", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1}},
	  {"name": "f32", "shape": [2], "dtype": "float32"},
	  {"name": "q16", "shape": [1], "dtype": "float32", "quantization": {"dtype": "uint16", "scale": 0.25, "min": 2}}]}]`
	shard := []byte{0, 1, 2, 255}
	shard = binary.LittleEndian.AppendUint32(shard, math.Float32bits(3.5))
	shard = binary.LittleEndian.AppendUint32(shard, math.Float32bits(-0.125))
	shard = binary.LittleEndian.AppendUint16(shard, 1000)
	w, err := decodeTFJSWeights([]byte(manifest), shard)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float32{"q8": {-1, -0.5, 0, 126.5}, "f32": {3.5, -0.125}, "q16": {252}}
	for name, v := range want {
		if got := w[name].v; !slices.Equal(got, v) {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	if _, err := decodeTFJSWeights([]byte(manifest), shard[:len(shard)-1]); err == nil {
		t.Error("a short shard was accepted")
	}
	if _, err := decodeTFJSWeights([]byte(manifest), append(shard, 0)); err == nil {
		t.Error("a shard with bytes left over was accepted")
	}
	if _, err := decodeTFJSWeights([]byte(strings.Replace(manifest, `"uint16"`, `"float16"`, 1)), shard); err == nil {
		t.Error("an unsupported quantisation was accepted")
	}
}

// TestBuildFaceRecognitionNetRefusesOtherWeights: weights that are not
// FaceRecognitionNet's (missing, extra or misshapen tensors) are refused
// with the tensor's name rather than built into a wrong graph.
func TestBuildFaceRecognitionNetRefusesOtherWeights(t *testing.T) {
	for name, manifest := range map[string]string{
		"missing":          `[{"paths": ["m.bin"], "weights": [{"name": "fc", "shape": [256, 128], "dtype": "float32"}]}]`,
		"wrong first conv": `[{"paths": ["m.bin"], "weights": [{"name": "conv32_down/conv/filters", "shape": [7, 7, 4, 32], "dtype": "float32"}]}]`,
	} {
		n := 256 * 128
		if name == "wrong first conv" {
			n = 7 * 7 * 4 * 32
		}
		_, err := BuildFaceRecognitionNet([]byte(manifest), make([]byte, 4*n))
		if err == nil || !strings.Contains(err.Error(), "conv32_down") {
			t.Errorf("%s: err = %v, want one naming conv32_down", name, err)
		}
	}
}
