package httpapi

import (
	"encoding/csv"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models/face/realface"
)

// TestDeepFacePairs registers one photo of each pair and verifies the other
// through the HTTP API: pairs of the same person must mostly verify, pairs
// of different people must almost never. The rates are those the shipped
// threshold is meant to reach on this set.
func TestDeepFacePairs(t *testing.T) {
	dir := filepath.Join(testenv.SharedFaces(t), "deepface")
	f, err := os.Open(filepath.Join(dir, "pairs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ts := realServer(t, func(c *Config) { c.Limiter = nil })
	registered := map[string]bool{} // file -> registered
	userOf := func(file string) string { return "df-" + strings.TrimSuffix(file, filepath.Ext(file)) }
	register := func(file string) bool {
		if ok, seen := registered[file]; seen {
			return ok
		}
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		r := ts.do(t, "POST", "/api/register", ts.admin, part{name: "user_id", value: userOf(file)}, part{name: "image", file: data})
		if r.status != 201 && (r.status < 400 || r.status >= 500) {
			t.Fatalf("register %s: %d %s", file, r.status, r.raw)
		}
		registered[file] = r.status == 201
		return registered[file]
	}
	var same, sameOK, diff, diffOK, skipped int
	for _, row := range rows[1:] {
		isSame := row[2] == "1"
		if !isSame && diff >= 80 {
			continue // enough impostor pairs for the rate
		}
		if !register(row[0]) {
			skipped++
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, row[1]))
		if err != nil {
			t.Fatal(err)
		}
		r := ts.do(t, "POST", "/api/verify", ts.verify, part{name: "user_id", value: userOf(row[0])}, part{name: "image", file: data})
		if r.status == 422 {
			skipped++
			continue
		}
		if r.status != 200 {
			t.Fatalf("verify %s against %s: %d %s", row[1], row[0], r.status, r.raw)
		}
		ok := r.body["verified"] == true
		if isSame {
			same++
			if ok {
				sameOK++
			} else {
				t.Logf("same person not verified: %s vs %s, similarity %.3f", row[0], row[1], r.body["similarity"])
			}
		} else {
			diff++
			if ok {
				diffOK++
				t.Logf("different people verified: %s vs %s, similarity %.3f", row[0], row[1], r.body["similarity"])
			}
		}
	}
	t.Logf("same person: %d/%d verified; different people: %d/%d verified; %d pairs without a usable face", sameOK, same, diffOK, diff, skipped)
	if same < 20 || diff < 40 {
		t.Fatalf("too few usable pairs (%d same, %d different)", same, diff)
	}
	if float64(sameOK) < 0.8*float64(same) {
		t.Errorf("only %d of %d same-person pairs verified", sameOK, same)
	}
	if float64(diffOK) > 0.05*float64(diff) {
		t.Errorf("%d of %d different-person pairs verified", diffOK, diff)
	}
}

// TestRobustnessPhotos sends every photo of the robustness set (no faces,
// many faces, tiny faces, rotations, odd formats, broken files) to register
// and verify: each answer is a success or a clear 4xx, never a 5xx.
func TestRobustnessPhotos(t *testing.T) {
	dir := filepath.Join(testenv.SharedFaces(t), "robustness")
	crops := realface.Crops(t)
	ts := realServer(t, func(c *Config) { c.Limiter = nil })
	if r := ts.do(t, "POST", "/api/register", ts.admin, part{name: "user_id", value: "known"}, part{name: "image", file: crops[0]}); r.status != 201 {
		t.Fatal(r.status, string(r.raw))
	}
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(path, ".csv") {
			files = append(files, path)
		}
		return err
	})
	if len(files) < 50 {
		t.Fatalf("only %d files in %s", len(files), dir)
	}
	codes := map[string]int{}
	for i, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(dir, path)
		for _, req := range []struct{ path, user, token string }{
			{"/api/register", fmt.Sprintf("rb%03d", i), ts.admin},
			{"/api/verify", "known", ts.verify},
		} {
			r := ts.do(t, "POST", req.path, req.token, part{name: "user_id", value: req.user}, part{name: "image", file: data})
			switch {
			case r.status >= 500:
				t.Errorf("%s %s: %d %s", req.path, name, r.status, r.raw)
			case r.status >= 400:
				if r.str("error") == "" || r.str("code") == "" || r.status == 401 || r.status == 403 {
					t.Errorf("%s %s: unclear %d %s", req.path, name, r.status, r.raw)
				}
				codes[fmt.Sprintf("%d %s", r.status, r.str("code"))]++
			default:
				codes[fmt.Sprint(r.status)]++
			}
		}
	}
	t.Logf("answers over %d files: %v", len(files), codes)
}
