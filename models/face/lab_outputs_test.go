package face

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/testenv"
)

// TestLabOutputs records what the default engine answers for every file
// under ../shared/faces, one after another on one worker (LAB_OUT=FILE:
// the outcome, rotation, face count, selected face and embedding of each),
// and, with LAB_BEFORE=FILE, compares them with an earlier record: a
// change meant to be faster only must change no outcome and move
// embeddings by float rounding at most (docs/evaluation.md, "Speed
// changes"). go test ./models/face -run LabOutputs -lab outputs
func TestLabOutputs(t *testing.T) {
	labOn(t, "outputs")
	out := os.Getenv("LAB_OUT")
	if out == "" {
		t.Fatal("set LAB_OUT to the file to write")
	}
	e, err := New(context.Background(), Config{ModelsDir: testenv.ModelsDir(t), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	root := testenv.SharedFaces(t)
	var lines []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".csv") || strings.HasSuffix(path, ".md") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		a, err := e.Analyze(context.Background(), readFile(t, path), faceauth.Request{Purpose: faceauth.PurposeProbe})
		if err != nil {
			lines = append(lines, fmt.Sprintf("%s\tERR %s\t", rel, strings.ReplaceAll(err.Error(), "\t", " ")))
			return nil
		}
		var emb strings.Builder
		for i, v := range a.Embedding {
			if i > 0 {
				emb.WriteByte(' ')
			}
			emb.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		lines = append(lines, fmt.Sprintf("%s\tOK rotation %d, %d faces, selected %d\t%s", rel, a.Rotation, len(a.Faces), a.Selected, emb.String()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files recorded in %s", len(lines), out)
	before := os.Getenv("LAB_BEFORE")
	if before == "" {
		return
	}
	old := readOutputs(t, before)
	cur := readOutputs(t, out)
	type moved struct {
		cos  float64
		file string
	}
	var outcomes int
	var ms []moved
	for f, o := range old {
		c, ok := cur[f]
		switch {
		case !ok:
			t.Logf("%s: not in the new record", f)
		case o.outcome != c.outcome:
			outcomes++
			t.Logf("%s: %s -> %s", f, o.outcome, c.outcome)
		case len(o.emb) > 0 && len(o.emb) == len(c.emb):
			var dot float64
			for i := range o.emb {
				dot += o.emb[i] * c.emb[i]
			}
			if !equalFloats(o.emb, c.emb) {
				ms = append(ms, moved{dot, f})
			}
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].cos < ms[j].cos })
	t.Logf("%d files: %d outcomes changed, %d embeddings changed", len(old), outcomes, len(ms))
	for _, m := range ms[:min(len(ms), 10)] {
		t.Logf("  cosine to before %.7f  %s", m.cos, m.file)
	}
}

type labOutput struct {
	outcome string
	emb     []float64
}

func readOutputs(t *testing.T, path string) map[string]labOutput {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]labOutput{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("%s: malformed line %q", path, sc.Text())
		}
		o := labOutput{outcome: parts[1]}
		for _, s := range strings.Fields(parts[2]) {
			v, err := strconv.ParseFloat(s, 32)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			o.emb = append(o.emb, v)
		}
		m[parts[0]] = o
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func equalFloats(a, b []float64) bool {
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}
