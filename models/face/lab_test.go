package face

import (
	"context"
	"flag"
	"fmt"
	"github.com/xplore/faceauth"
	"math"
	"os"
	"time"

	"github.com/xplore/faceauth/models/photo"
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
		s := float64(faceauth.Similarity(x, y))
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
			fmt.Printf("P,%s,%s,%s,%s,%.4f\n", set, row["file_x"], row["file_y"], row["same"], faceauth.Similarity(x, y))
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
		// The JavaScript reference: the raw box of a plain stretched
		// detection (no border), integer corners, clamped and shifted
		// inside the image one pixel short of its edges.
		{"JS reference crop", func(f *found, r *raster) box {
			v := newView(r, f.v.rot, 0, 0)
			bs, err := w.detect(r, v, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) == 0 {
				return livenessCrop(unpad(f, f.det), float64(f.v.rw), float64(f.v.rh), 2.7)
			}
			return jsLivenessCrop(bs[0], float64(v.rw), float64(v.rh), 2.7)
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
		spoofSetFaces(t, w, p, func(row map[string]string, r *raster, f *found) {
			out := liveOutputs(t, w, r, f, v.crop(f, r), false)
			softmax(out[:])
			if row["liveness"] == "live" {
				live = append(live, float64(out[0]))
			} else {
				spoof = append(spoof, float64(out[0]))
			}
		})
		t.Logf("%-22s AUC %.3f", v.name, auc(live, spoof))
	}
}

// jsLivenessCrop is alignLivenessImage of the package's lib/fr_liveness.js
// (faceplugin-face-recognition-js 0.0.1) on the detector box b.
func jsLivenessCrop(b box, w, h, s float64) box {
	x, y := math.Trunc(b.x1), math.Trunc(b.y1)
	bw, bh := math.Abs(math.Trunc(b.x2)-x), math.Abs(math.Trunc(b.y2)-y)
	s = min((h-1)/bh, (w-1)/bw, s)
	nw, nh := bw*s, bh*s
	cx, cy := bw/2+x, bh/2+y
	l, t, r, bt := cx-nw/2, cy-nh/2, cx+nw/2, cy+nh/2
	if l < 0 {
		r, l = r-l, 0
	}
	if t < 0 {
		bt, t = bt-t, 0
	}
	if r > w-1 {
		l, r = l-(r-w+1), w-1
	}
	if bt > h-1 {
		t, bt = t-(bt-h+1), h-1
	}
	x1, y1 := max(math.Trunc(l), 0), max(math.Trunc(t), 0)
	return box{x1: x1, y1: y1, x2: x1 + min(math.Trunc(r-l), w-1), y2: y1 + min(math.Trunc(bt-t), h-1)}
}

// consistency measures whether landmarks follow the image when the crop
// is shifted or mirrored, for upright and turned faces.
func TestLabConsistency(t *testing.T) {
	labOn(t, "consistency")
	e, w := labWorker(t)
	p := &e.p
	five := func(r *raster, v view, sq box, flip bool) [5]pt {
		var lm [landmarkCount]pt
		m := rectMap(sq.x1, sq.y1, sq.x2, sq.y2, landmarkSize, landmarkSize)
		if flip {
			m = affine{a: -1, c: landmarkSize, e: 1}.then(m)
		}
		r.sample(m.then(v.toSrc), landmarkSize, landmarkSize, maxTaps, encoding{grey: true, norm: 1.0 / 256}, w.lm.input())
		if err := w.lm.run(); err != nil {
			t.Fatal(err)
		}
		o := w.lm.output(0)
		for i := range lm {
			x, y := float64(o[2*i]), float64(o[2*i+1])
			if flip {
				x = 1 - x
			}
			lm[i] = pt{sq.x1 + x*sq.w(), sq.y1 + y*sq.h()}
		}
		f := fivePoints(&lm)
		if flip { // mirrored face: its left eye is the other eye
			f[0], f[1], f[3], f[4] = f[1], f[0], f[4], f[3]
		}
		return f
	}
	dist := func(a, b [5]pt, side float64) float64 {
		var s float64
		for i := range a {
			s += math.Hypot(a[i].x-b[i].x, a[i].y-b[i].y)
		}
		return s / 5 / side
	}
	var upShift, badShift, upFlip, badFlip, upNorm, badNorm []float64
	for _, set := range identitySets {
		files := setFiles(t, set)
		step := max(1, len(files)/40)
		for i := 0; i < len(files); i += step {
			r0, err := tryDecode(files[i])
			if err != nil {
				continue
			}
			for _, d := range []int{0, 90, 180, 270} {
				r := turn(r0, d)
				fs, err := w.find(r, p)
				if err != nil || len(fs) == 0 {
					continue
				}
				sel, err := choose(fs, p, false)
				if err != nil || fs[sel].v.rot != 0 {
					continue
				}
				f := fs[sel]
				n, _ := w.embed(r, &f, p, w.scratch)
				sq := square(f.det)
				base := five(r, f.v, sq, false)
				sh := 0.1 * sq.w()
				moved := five(r, f.v, box{x1: sq.x1 + sh, y1: sq.y1 + sh, x2: sq.x2 + sh, y2: sq.y2 + sh}, false)
				flipped := five(r, f.v, sq, true)
				se, fe := dist(base, moved, sq.w()), dist(base, flipped, sq.w())
				both := five(r, f.v, box{x1: sq.x1 + sh, y1: sq.y1 + sh, x2: sq.x2 + sh, y2: sq.y2 + sh}, true)
				// the same square seen upside down
				v2 := newView(r, 180, 0, 0)
				sq2 := rasterBoxToView(viewBoxToRaster(sq, f.v), v2)
				b2 := five(r, v2, sq2, false)
				m2 := five(r, v2, box{x1: sq2.x1 + sh, y1: sq2.y1 + sh, x2: sq2.x2 + sh, y2: sq2.y2 + sh}, false)
				f2 := five(r, v2, sq2, true)
				// the aligned crop turned upside down
				es := float64(p.embedSize)
				toSrc := affine{a: -1, c: es, e: -1, f: es}.then(f.sim.invert()).then(f.v.toSrc)
				r.sample(toSrc, p.embedSize, p.embedSize, p.embedTaps, encoding{bgr: p.embedBGR, mean: p.embedMean, norm: p.embedNorm}, w.emb.input())
				if err := w.emb.run(); err != nil {
					t.Fatal(err)
				}
				copy(w.scratch, w.emb.output(0))
				nrev := normalize(w.scratch)
				fmt.Printf("C,%d,%.4f,%.4f,%.4f,%.4f,%s,%.4f,%.4f,%.4f\n", d, n, se, fe, dist(base, both, sq.w()), files[i], dist(b2, m2, sq.w()), dist(b2, f2, sq.w()), nrev)
				if d == 0 {
					upShift, upFlip, upNorm = append(upShift, se), append(upFlip, fe), append(upNorm, n)
				} else {
					badShift, badFlip, badNorm = append(badShift, se), append(badFlip, fe), append(badNorm, n)
				}
			}
		}
	}
	t.Logf("shift error upright %s turned %s AUC %.3f", quant(upShift), quant(badShift), auc(badShift, upShift))
	t.Logf("flip error upright %s turned %s AUC %.3f", quant(upFlip), quant(badFlip), auc(badFlip, upFlip))
	t.Logf("norm upright %s turned %s AUC %.3f", quant(upNorm), quant(badNorm), auc(upNorm, badNorm))
	// combined: upright if norm high, else if both errors small
	for _, T := range []float64{3.0, 3.2, 3.4} {
		for _, S := range []float64{0.02, 0.03, 0.04, 0.05} {
			acceptUp, acceptBad := 0, 0
			for i := range upNorm {
				if upNorm[i] >= 3.4 || (upNorm[i] >= T && upShift[i] < S) {
					acceptUp++
				}
			}
			for i := range badNorm {
				if badNorm[i] >= 3.4 || (badNorm[i] >= T && badShift[i] < S) {
					acceptBad++
				}
			}
			t.Logf("accept if norm>=3.4 or (norm>=%.1f and shift<%.2f): upright %d/%d, turned %d/%d", T, S, acceptUp, len(upNorm), acceptBad, len(badNorm))
		}
	}
}

// livetta writes per-image liveness outputs for crop scales and mirroring
// to $LAB_OUT (CSV) for offline analysis of test-time averaging.
func TestLabLivenessTTA(t *testing.T) {
	labOn(t, "livetta")
	e, w := labWorker(t)
	var b strings.Builder
	b.WriteString("file,label,scale,flip,l0,l1,l2\n")
	spoofSetFaces(t, w, &e.p, func(row map[string]string, r *raster, f *found) {
		sq := f.unpaddedSquare()
		for _, sc := range []float64{0.9, 1.0, 1.2, 1.5, 2.0, 2.7} {
			c := livenessCrop(sq, float64(f.v.rw), float64(f.v.rh), sc)
			for _, mirror := range []bool{false, true} {
				o := liveOutputs(t, w, r, f, c, mirror)
				fmt.Fprintf(&b, "%s,%s,%.1f,%v,%g,%g,%g\n", row["file"], row["liveness"], sc, mirror, o[0], o[1], o[2])
			}
		}
	})
	if err := os.WriteFile(os.Getenv("LAB_OUT"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// spoofSetFaces calls fn with the selected face of every photo of the
// spoof set.
func spoofSetFaces(t *testing.T, w *worker, p *params, fn func(row map[string]string, r *raster, f *found)) {
	dir := testenvShared(t) + "/spoof"
	for _, row := range csvRows(t, dir+"/manifest.csv") {
		r, err := tryDecode(dir + "/" + row["file"])
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.analyze(r, p, false, false)
		if err != nil {
			t.Fatal(err)
		}
		fn(row, r, &res.faces[res.sel])
	}
}

// liveOutputs runs the liveness model (BGR, raw values) on crop c of f's
// unpadded view, mirrored when asked, and returns the raw logits.
func liveOutputs(t *testing.T, w *worker, r *raster, f *found, c box, mirror bool) [3]float32 {
	x1, x2 := c.x1, c.x2
	if mirror {
		x1, x2 = x2, x1
	}
	v := newView(r, f.v.rot, 0, 0)
	n := w.live.in.GetShape()[3]
	m := rectMap(x1, c.y1, x2, c.y2, int(n), int(n)).then(v.toSrc)
	r.sample(m, int(n), int(n), 1, encoding{bgr: true, norm: 1}, w.live.input())
	if err := w.live.run(); err != nil {
		t.Fatal(err)
	}
	var out [3]float32
	copy(out[:], w.live.output(0))
	return out
}

// cost250 prints, for each face of the Embeddings250 set, the probe time
// (best of 5) and the path it took through the upright check.
func TestLabCost250(t *testing.T) {
	labOn(t, "cost250")
	e := testEngine(t, 1)
	photos := faces250(t, e) // before taking the engine's only worker
	w, err := e.pool.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer e.pool.put(w)
	p := &e.p
	for i, img := range photos {
		im, err := photo.Decode(img, photo.Options{TargetSide: -1})
		if err != nil {
			t.Fatal(err)
		}
		r := &raster{w: im.W, h: im.H, pix: im.Pix}
		best := time.Duration(math.MaxInt64)
		var aerr error
		for range 5 {
			start := time.Now()
			_, aerr = w.analyze(r, p, false, false)
			best = min(best, time.Since(start))
		}
		fs, _ := w.find(r, p)
		line := fmt.Sprintf("%2d %6.1f ms faces=%d", i, float64(best.Microseconds())/1000, len(fs))
		if sel, err := choose(fs, p, false); err == nil {
			f := fs[sel]
			emb := make([]float32, p.embedDims)
			norm, _ := w.embed(r, &f, p, emb)
			shift, flip, _ := w.consistency(r, &f, 2*p.shiftTol)
			up, _ := w.upright(r, &f, norm, p)
			line += fmt.Sprintf(" rot=%d norm=%.2f shift=%.3f flip=%.3f upright=%v", f.v.rot, norm, shift, flip, up)
		}
		if aerr != nil {
			line += " err=" + aerr.Error()
		}
		t.Log(line)
	}
}

// smallfaces shrinks photos of the identity sets until the face's eye
// distance is d pixels and matches each shrunken face against the
// full-size photos: the evidence for minEyeDist.
func TestLabSmallFaces(t *testing.T) {
	labOn(t, "smallfaces")
	e, w := labWorker(t)
	p := e.p
	p.minEyeDist = 0
	type ref struct {
		id   string
		file string
		emb  []float32
		r    *raster
		size float64
	}
	var refs []ref
	for _, set := range []string{"celebs_misc", "azure_face", "compreface_people", "orl_att"} {
		dir := testenvShared(t) + "/" + set
		for i, row := range csvRows(t, dir+"/manifest.csv") {
			if set == "orl_att" && i%4 != 0 {
				continue
			}
			r, err := tryDecode(dir + "/" + row["file"])
			if err != nil {
				continue
			}
			res, err := w.analyze(r, &p, false, false)
			if err != nil {
				continue
			}
			refs = append(refs, ref{set + "/" + row["identity"], row["file"], res.emb, r, res.faces[res.sel].size(&p)})
		}
	}
	for _, d := range []float64{6, 8, 10, 12, 14, 16, 20} {
		var gen, imp []float32
		refused, n := 0, 0
		for i, a := range refs {
			s := d / a.size
			if s >= 1 {
				continue
			}
			n++
			sw, sh := max(1, int(math.Round(float64(a.r.w)*s))), max(1, int(math.Round(float64(a.r.h)*s)))
			planar := make([]float32, 3*sw*sh)
			a.r.sample(rectMap(0, 0, float64(a.r.w), float64(a.r.h), sw, sh), sw, sh, maxTaps, encoding{norm: 1}, planar)
			small := &raster{w: sw, h: sh, pix: make([]byte, 3*sw*sh)}
			for k := 0; k < sw*sh; k++ {
				for c := 0; c < 3; c++ {
					small.pix[3*k+c] = uint8(min(max(planar[c*sw*sh+k]+0.5, 0), 255))
				}
			}
			res, err := w.analyze(small, &p, false, false)
			if err != nil {
				refused++
				continue
			}
			for j, b := range refs {
				if j == i {
					continue
				}
				sim := faceauth.Similarity(res.emb, b.emb)
				if a.id == b.id {
					gen = append(gen, sim)
				} else {
					imp = append(imp, sim)
				}
			}
		}
		tar, fm := 0, 0
		var mx, mean float32
		for _, v := range gen {
			if v >= 0.4 {
				tar++
			}
			mean += v
		}
		for _, v := range imp {
			if v >= 0.4 {
				fm++
			}
			mx = max(mx, v)
		}
		t.Logf("eye distance %2.0f px: %3d faces, %2d refused; genuine %4d mean %.3f TAR@0.40 %.3f; impostor %6d FMR@0.40 %.5f max %.3f",
			d, n, refused, len(gen), mean/float32(max(len(gen), 1)), float64(tar)/float64(max(len(gen), 1)), len(imp), float64(fm)/float64(max(len(imp), 1)), mx)
	}
}
