package face

import (
	"context"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models/photo"
)

// Engines are costly to start (about 100 ms per worker), so tests in this
// package share one per model choice and worker count.
type engineKey struct {
	model   string
	workers int
}

var (
	enginesMu sync.Mutex
	engines   = map[engineKey]*Engine{}
)

// modelEngine returns the shared engine of model with workers workers.
func modelEngine(t testing.TB, model string, workers int) *Engine {
	t.Helper()
	enginesMu.Lock()
	defer enginesMu.Unlock()
	k := engineKey{model, workers}
	if e, ok := engines[k]; ok {
		return e
	}
	e, err := New(context.Background(), Config{ModelsDir: testenv.ModelsDir(t), Model: model, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	engines[k] = e
	return e
}

// testEngine is ArcFace alone: these tests check the pipeline and
// ArcFace's embeddings; fusion_test.go and TestDefaultModel cover the
// default fusion.
func testEngine(t testing.TB, workers int) *Engine {
	t.Helper()
	return modelEngine(t, "ArcFace", workers)
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, e := range engines {
		e.Close()
	}
	os.Exit(code)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeRaster decodes an image file as the engine does.
func decodeRaster(t testing.TB, path string) *raster {
	t.Helper()
	im, err := photo.Decode(readFile(t, path), photo.Options{})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &raster{w: im.W, h: im.H, pix: im.Pix}
}

// turn returns r turned clockwise by deg degrees, pixel for pixel.
func turn(r *raster, deg int) *raster {
	w, h := rotatedSize(deg, r.w, r.h)
	out := &raster{w: w, h: h, pix: make([]byte, len(r.pix))}
	for y := 0; y < r.h; y++ {
		for x := 0; x < r.w; x++ {
			var vx, vy int
			switch deg {
			case 0:
				vx, vy = x, y
			case 90:
				vx, vy = r.h-1-y, x
			case 180:
				vx, vy = r.w-1-x, r.h-1-y
			case 270:
				vx, vy = y, r.w-1-x
			}
			copy(out.pix[(vy*w+vx)*3:][:3], r.pix[(y*r.w+x)*3:][:3])
		}
	}
	return out
}

// csvRows reads a CSV file with a header into maps keyed by column name.
func csvRows(t testing.TB, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, k := range recs[0] {
			if i < len(rec) {
				row[k] = rec[i]
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// setFiles lists the image files of a labelled set, from its manifest.
func setFiles(t testing.TB, set string) []string {
	t.Helper()
	dir := filepath.Join(testenv.SharedFaces(t), set)
	var files []string
	if _, err := os.Stat(filepath.Join(dir, "manifest.csv")); err != nil {
		// deepface has only pairs.csv.
		seen := map[string]bool{}
		for _, row := range csvRows(t, filepath.Join(dir, "pairs.csv")) {
			for _, f := range []string{row["file_x"], row["file_y"]} {
				if !seen[f] {
					seen[f] = true
					files = append(files, filepath.Join(dir, f))
				}
			}
		}
		sort.Strings(files)
		return files
	}
	for _, row := range csvRows(t, filepath.Join(dir, "manifest.csv")) {
		files = append(files, filepath.Join(dir, row["file"]))
	}
	return files
}

// auc is the area under the ROC curve of scores for positives against
// negatives: the probability that a random positive scores above a random
// negative (ties count half).
func auc(pos, neg []float64) float64 {
	type s struct {
		v   float64
		pos bool
	}
	all := make([]s, 0, len(pos)+len(neg))
	for _, v := range pos {
		all = append(all, s{v, true})
	}
	for _, v := range neg {
		all = append(all, s{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Mann-Whitney U with mid-ranks for ties.
	var rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mid := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if all[k].pos {
				rankSum += mid
			}
		}
		i = j
	}
	np, nn := float64(len(pos)), float64(len(neg))
	return (rankSum - np*(np+1)/2) / (np * nn)
}

func testenvShared(t testing.TB) string { return testenv.SharedFaces(t) }

// tryDecode decodes a file as the engine does, returning decode errors.
func tryDecode(path string) (*raster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	im, err := photo.Decode(b, photo.Options{})
	if err != nil {
		return nil, err
	}
	return &raster{w: im.W, h: im.H, pix: im.Pix}, nil
}

// errCode returns the code of err's *faceauth.Error, or "" when it has none.
func errCode(err error) string {
	var fe *faceauth.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return ""
}

// detectFaces lists the faces of img with the image's upright size.
func detectFaces(ctx context.Context, e *Engine, img []byte) ([]faceauth.Face, int, int, error) {
	a, err := e.Analyze(ctx, img, faceauth.Request{Purpose: faceauth.PurposeDetect})
	if err != nil {
		return nil, 0, 0, err
	}
	return a.Faces, a.Width, a.Height, nil
}
