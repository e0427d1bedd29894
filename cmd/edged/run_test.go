package main

import (
	"strings"
	"testing"
)

// TestModelDims: the edge sizes its gallery from the chosen model, a
// fusion's embedding holding all of its parts'.
func TestModelDims(t *testing.T) {
	dir := t.TempDir() // the built-in manifest alone
	for model, want := range map[string]int{"ArcFace": 512, "dlib": 128, "arcface+DLIB": 640} {
		got, err := modelDims(dir, model)
		if err != nil || got != want {
			t.Errorf("modelDims(%q) = %d, %v; want %d", model, got, err, want)
		}
	}
	if _, err := modelDims(dir, "FaceNet"); err == nil || !strings.Contains(err.Error(), "ArcFace+dlib") {
		t.Errorf("unknown model: %v, want an error listing the choices", err)
	}
}
