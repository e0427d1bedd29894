package face

import (
	"context"
	"flag"
	"fmt"
	"github.com/xplore/faceauth"
	"sort"
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

// liveness compares channel orders and output classes on the spoof set.
func TestLabLiveness(t *testing.T) {
	labOn(t, "liveness")
	e, w := labWorker(t)
	dir := testenvShared(t) + "/spoof"
	rows := csvRows(t, dir+"/manifest.csv")
	for _, v := range []struct {
		bgr  bool
		taps int
	}{{true, 1}, {true, 2}, {true, 4}, {false, 1}} {
		bgr := v.bgr
		p := e.p
		p.livenessBGR = bgr
		p.livenessTaps = v.taps
		var live, spoof [3][]float64
		failed := 0
		for _, row := range rows {
			r, err := tryDecode(dir + "/" + row["file"])
			if err != nil {
				failed++
				continue
			}
			res, err := w.analyze(r, &p, false, false)
			if err != nil {
				failed++
				continue
			}
			probs, err := w.liveness(r, &res.faces[res.sel], &p)
			if err != nil {
				t.Fatal(err)
			}
			for c := range probs {
				if row["liveness"] == "live" {
					live[c] = append(live[c], float64(probs[c]))
				} else {
					spoof[c] = append(spoof[c], float64(probs[c]))
				}
			}
		}
		for c := 0; c < 3; c++ {
			t.Logf("taps=%d bgr=%v class %d as P(live): AUC %.3f (live %d, spoof %d, failed %d) live %s spoof %s",
				v.taps, bgr, c, auc(live[c], spoof[c]), len(live[c]), len(spoof[c]), failed, quant(live[c]), quant(spoof[c]))
		}
	}
}

// quant formats the 0, 5, 25, 50, 75, 95, 100th percentiles.
func quant(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	var b strings.Builder
	for _, q := range []float64{0, 0.05, 0.25, 0.5, 0.75, 0.95, 1} {
		fmt.Fprintf(&b, " %.2f", s[int(q*float64(len(s)-1))])
	}
	return "[" + b.String()[1:] + "]"
}

// livenessCrops compares context crops for the liveness model (BGR, class 0).
func TestLabLivenessCrops(t *testing.T) {
	labOn(t, "livecrops")
	e, w := labWorker(t)
	p := &e.p
	dir := testenvShared(t) + "/spoof"
	rows := csvRows(t, dir+"/manifest.csv")
	type variant struct {
		name string
		crop func(f *found, r *raster) box // in unpadded view coordinates
	}
	unpad := func(f *found, b box) box {
		b.x1 -= f.v.padX
		b.x2 -= f.v.padX
		b.y1 -= f.v.padY
		b.y2 -= f.v.padY
		return b
	}
	scaled := func(b box, s float64) box {
		cx, cy := (b.x1+b.x2)/2, (b.y1+b.y2)/2
		return box{x1: cx - b.w()*s/2, y1: cy - b.h()*s/2, x2: cx + b.w()*s/2, y2: cy + b.h()*s/2}
	}
	vs := []variant{
		{"square 2.7 clamp", func(f *found, r *raster) box {
			return livenessCrop(unpad(f, square(f.det)), float64(f.v.rw), float64(f.v.rh), 2.7)
		}},
		{"detbox 2.7 clamp", func(f *found, r *raster) box {
			return livenessCrop(unpad(f, f.det), float64(f.v.rw), float64(f.v.rh), 2.7)
		}},
		{"whole image", func(f *found, r *raster) box {
			return box{x2: float64(f.v.rw), y2: float64(f.v.rh)}
		}},
		{"square 2.7 grey fill", func(f *found, r *raster) box { return scaled(unpad(f, square(f.det)), 2.7) }},
		{"square 1.5 clamp", func(f *found, r *raster) box {
			return livenessCrop(unpad(f, square(f.det)), float64(f.v.rw), float64(f.v.rh), 1.5)
		}},
		{"square 1.0", func(f *found, r *raster) box { return unpad(f, square(f.det)) }},
	}
	for _, sc := range []float64{0.8, 1.2, 1.5, 2.0} {
		vs = append(vs, variant{fmt.Sprintf("square %.1f no clamp", sc), func(f *found, r *raster) box { return scaled(unpad(f, square(f.det)), sc) }})
	}
	for _, v := range vs {
		var live, spoof []float64
		for _, row := range rows {
			r, err := tryDecode(dir + "/" + row["file"])
			if err != nil {
				t.Fatal(err)
			}
			res, err := w.analyze(r, p, false, false)
			if err != nil {
				t.Fatal(err)
			}
			f := &res.faces[res.sel]
			c := v.crop(f, r)
			vv := newView(r, f.v.rot, 0, 0)
			m := rectMap(c.x1, c.y1, c.x2, c.y2, livenessSize, livenessSize).then(vv.toSrc)
			r.sample(m, livenessSize, livenessSize, 1, encoding{bgr: true, norm: 1}, w.live.input())
			if err := w.live.run(); err != nil {
				t.Fatal(err)
			}
			var out [3]float32
			copy(out[:], w.live.output(0))
			softmax(out[:])
			if row["liveness"] == "live" {
				live = append(live, float64(out[0]))
			} else {
				spoof = append(spoof, float64(out[0]))
			}
		}
		t.Logf("%-22s AUC %.3f", v.name, auc(live, spoof))
	}
}
