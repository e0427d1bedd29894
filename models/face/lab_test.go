package face

import (
	"context"
	"flag"
	"fmt"
	"github.com/xplore/faceauth"
	"strconv"
	"strings"
	"testing"
)

// The lab tests print the measurements behind docs/face-pipeline.md. They
// run only when asked: go test ./models/face -run Lab -lab detect,...
var labFlag = flag.String("lab", "", "comma-separated measurements to print (detect, rotation, channels, liveness)")

func labOn(t *testing.T, name string) {
	if !strings.Contains(","+*labFlag+",", ","+name+",") {
		t.Skipf("measurement %q not requested with -lab", name)
	}
}

func labWorker(t *testing.T) (*Engine, *worker) {
	e := testEngine(t, 1)
	w, err := e.pool.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.pool.put(w) })
	return e, w
}

// framing compares ways to fit the image into the detector's 4:3 input.
func TestLabFraming(t *testing.T) {
	labOn(t, "framing")
	e, w := labWorker(t)
	type strat struct {
		name string
		view func(r *raster) view
	}
	border := func(f float64) func(r *raster) view {
		return func(r *raster) view {
			b := f * float64(max(r.w, r.h))
			return newView(r, 0, b, b)
		}
	}
	letter := func(f float64) func(r *raster) view {
		return func(r *raster) view {
			b := f * float64(max(r.w, r.h))
			W, H := float64(r.w)+2*b, float64(r.h)+2*b
			px, py := b, b
			if W*3 > H*4 {
				py += (W*3/4 - H) / 2
			} else {
				px += (H*4/3 - W) / 2
			}
			return newView(r, 0, px, py)
		}
	}
	strats := []strat{
		{"stretch", border(0)}, {"border.15", border(0.15)}, {"border.3", border(0.3)},
		{"letterbox", letter(0)}, {"letter+.15", letter(0.15)},
	}
	sets := []string{"orl_att", "bbt", "deepface", "celebs_misc", "azure_face", "compreface_people", "spoof"}
	for _, set := range sets {
		files := setFiles(t, set)
		line := fmt.Sprintf("%-18s n=%3d", set, len(files))
		for _, s := range strats {
			none, multi := 0, 0
			for _, f := range files {
				r := decodeRaster(t, f)
				fs, err := w.attempt(r, s.view(r), &e.p, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(fs) == 0 {
					none++
				} else if len(fs) > 1 {
					multi++
				}
			}
			line += fmt.Sprintf(" | %s none %d multi %d", s.name, none, multi)
		}
		t.Log(line)
	}
	// robustness: counts against annotations
	dir := testenvShared(t) + "/robustness"
	rows := csvRows(t, dir+"/manifest.csv")
	for _, s := range strats {
		var exact, under, over, n int
		var detail []string
		for _, row := range rows {
			want, err := strconv.Atoi(row["expected_faces"])
			if err != nil || row["category"] == "pixel_rotated" || row["category"] == "exif_rotated" {
				continue
			}
			r, err := tryDecode(dir + "/" + row["file"])
			if err != nil {
				continue
			}
			fs, err := w.attempt(r, s.view(r), &e.p, nil)
			if err != nil {
				t.Fatal(err)
			}
			n++
			switch {
			case len(fs) == want:
				exact++
			case len(fs) < want:
				under++
				detail = append(detail, fmt.Sprintf("%s %d/%d", row["file"], len(fs), want))
			default:
				over++
				detail = append(detail, fmt.Sprintf("%s %d/%d", row["file"], len(fs), want))
			}
		}
		t.Logf("robustness %-10s n=%d exact %d under %d over %d: %s", s.name, n, exact, under, over, strings.Join(detail, ", "))
	}
}

// pairAUC embeds every file of a labelled set with params p (Probe rules)
// and scores its pairs.csv.
func pairAUC(t *testing.T, w *worker, set string, p *params) (a, genMean, impMean float64, failed int) {
	dir := testenvShared(t) + "/" + set
	embs := map[string][]float32{}
	for _, row := range csvRows(t, dir+"/pairs.csv") {
		for _, f := range []string{row["file_x"], row["file_y"]} {
			if _, ok := embs[f]; ok {
				continue
			}
			embs[f] = nil
			r, err := tryDecode(dir + "/" + f)
			if err != nil {
				failed++
				continue
			}
			res, err := w.analyze(r, p, false, false)
			if err != nil {
				failed++
				continue
			}
			embs[f] = res.emb
		}
	}
	var gen, imp []float64
	for _, row := range csvRows(t, dir+"/pairs.csv") {
		x, y := embs[row["file_x"]], embs[row["file_y"]]
		if x == nil || y == nil {
			continue
		}
		s := float64(Similarity(x, y))
		if row["same"] == "1" {
			gen = append(gen, s)
		} else {
			imp = append(imp, s)
		}
	}
	return auc(gen, imp), mean(gen), mean(imp), failed
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

var identitySets = []string{"deepface", "orl_att", "bbt", "celebs_misc", "azure_face", "compreface_people", "spoof"}

// channels compares RGB and BGR input for the embedding model.
func TestLabChannels(t *testing.T) {
	labOn(t, "channels")
	e, w := labWorker(t)
	for _, set := range identitySets {
		line := fmt.Sprintf("%-18s", set)
		for _, bgr := range []bool{true, false} {
			p := e.p
			p.embedBGR = bgr
			a, g, i, failed := pairAUC(t, w, set, &p)
			line += fmt.Sprintf(" | bgr=%v AUC %.4f gen %.3f imp %.3f failed %d", bgr, a, g, i, failed)
		}
		t.Log(line)
	}
}

// failures lists the files of the identity sets that Probe and Enroll refuse.
func TestLabFailures(t *testing.T) {
	labOn(t, "failures")
	e, w := labWorker(t)
	for _, set := range identitySets {
		for _, f := range setFiles(t, set) {
			r, err := tryDecode(f)
			if err != nil {
				t.Logf("%s: decode: %v", f, err)
				continue
			}
			_, perr := w.analyze(r, &e.p, false, false)
			_, eerr := w.analyze(r, &e.p, true, false)
			if perr != nil || eerr != nil {
				t.Logf("%s: probe: %v; enroll: %v", f, perr, eerr)
			}
		}
	}
}

// quality dumps per-image features and pair similarities as CSV lines
// (prefixes F, and P,) for offline analysis.
func TestLabQualityCSV(t *testing.T) {
	labOn(t, "qualitycsv")
	e, w := labWorker(t)
	for _, set := range identitySets {
		dir := testenvShared(t) + "/" + set
		embs := map[string][]float32{}
		for _, f := range setFiles(t, set) {
			rel := strings.TrimPrefix(f, dir+"/")
			r, err := tryDecode(f)
			if err != nil {
				fmt.Printf("F,%s,%s,decode,,,,,\n", set, rel)
				continue
			}
			p := e.p
			p.minEyeDist = 0
			res, err := w.analyze(r, &p, false, false)
			if err != nil {
				fmt.Printf("F,%s,%s,%v,,,,,\n", set, rel, faceauth.KindOf(err))
				continue
			}
			embs[rel] = res.emb
			f0 := &res.faces[res.sel]
			fmt.Printf("F,%s,%s,ok,%d,%.1f,%.3f,%.4f,%d,%d\n", set, rel, len(res.faces), f0.size(&p), res.norm, f0.det.score, f0.v.rot, max(r.w, r.h))
		}
		for _, row := range csvRows(t, dir+"/pairs.csv") {
			x, y := embs[row["file_x"]], embs[row["file_y"]]
			if x == nil || y == nil {
				continue
			}
			fmt.Printf("P,%s,%s,%s,%s,%.4f\n", set, row["file_x"], row["file_y"], row["same"], Similarity(x, y))
		}
	}
}

