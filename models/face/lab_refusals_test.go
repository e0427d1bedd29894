package face

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xplore/faceauth/models/photo"
)

// refusals probes every image of the identity sets as it is and as a
// 250x250 LFW-style portrait (lfwLike; "lfwlow" through 100x100 first),
// and prints every refusal with the upright test's signals.
func TestLabRefusals(t *testing.T) {
	labOn(t, "refusals")
	e, w := labWorker(t)
	p := &e.p
	type count struct{ n, refused int }
	counts := map[string]*count{}
	for _, set := range identitySets {
		for _, f := range setFiles(t, set) {
			r0, err := tryDecode(f)
			if err != nil {
				continue
			}
			rel := f[strings.Index(f, set):]
			variants := map[string]*raster{"orig": r0}
			if fs, err := w.find(r0, p); err == nil {
				if sel, err := choose(fs, p, false); err == nil && fs[sel].v.rot == 0 {
					b := fs[sel].rasterBox()
					variants["lfw"] = lfwLike(t, r0, b, false)
					variants["lfwlow"] = lfwLike(t, r0, b, true)
				}
			}
			for _, name := range []string{"orig", "lfw", "lfwlow"} {
				r := variants[name]
				if r == nil {
					continue
				}
				k := set + "/" + name
				if counts[k] == nil {
					counts[k] = &count{}
				}
				counts[k].n++
				_, err := w.analyze(r, p, false, false)
				if err != nil {
					counts[k].refused++
					fmt.Printf("R,%s,%s,%s,%s\n", name, rel, errCode(err), diagnose(t, w, r, p))
				}
			}
		}
	}
	for _, set := range identitySets {
		for _, name := range []string{"orig", "lfw", "lfwlow"} {
			if c := counts[set+"/"+name]; c != nil {
				t.Logf("%-18s %-7s refused %d of %d", set, name, c.refused, c.n)
			}
		}
	}
}

// diagnose describes the upright test's inputs in every orientation.
func diagnose(t *testing.T, w *worker, r *raster, p *params) string {
	var s []string
	for _, rot := range []int{0, 180, 90, 270} {
		fs, err := w.findIn(r, rot, p)
		if err != nil {
			t.Fatal(err)
		}
		j, err := choose(fs, p, false)
		if err != nil {
			s = append(s, fmt.Sprintf("%d:-", rot))
			continue
		}
		f := fs[j]
		n, _ := w.embed(r, &f, p, w.scratch)
		sh, fl, _ := w.consistency(r, &f, 1)
		s = append(s, fmt.Sprintf("%d:n=%.2f sh=%.3f fl=%.3f sz=%.0f sc=%.2f", rot, n, sh, fl, f.size(p), f.det.score))
	}
	return strings.Join(s, " | ")
}

// TestLabOrientFeatures writes, to $LAB_OUT as CSV, the upright test's
// signals for the dominant face found in each of the four orientations of
// every image of the identity sets (as is, and as LFW-style 250x250
// portraits) and of the sample faces: a turned copy's view is one of these
// orientations, so a decision rule can be replayed offline for every
// upright and turned copy.
func TestLabOrientFeatures(t *testing.T) {
	labOn(t, "orientfeatures")
	out, err := os.Create(os.Getenv("LAB_OUT"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	crops := sampleFaces(t, testEngine(t, 1)) // before taking the only worker
	e, w := labWorker(t)
	p := &e.p
	fmt.Fprintln(out, "set,file,variant,rot,found,norm,shpp,shmm,shpm,shmp,sh05,flip,nrev,score,size,nfaces")
	row := func(set, rel, variant string, r *raster) {
		for _, rot := range []int{0, 90, 180, 270} {
			fs, err := w.findIn(r, rot, p)
			if err != nil {
				t.Fatal(err)
			}
			j, err := choose(fs, p, false)
			if err != nil {
				fmt.Fprintf(out, "%s,%s,%s,%d,0,,,,,,,,,,,\n", set, rel, variant, rot)
				continue
			}
			f := fs[j]
			n, _ := w.embed(r, &f, p, w.scratch)
			sq := square(f.det)
			side := sq.w()
			var lm [landmarkCount]pt
			shift := func(dx, dy float64) float64 {
				if err := w.landmarks(r, f.v, box{x1: sq.x1 + dx*side, y1: sq.y1 + dy*side, x2: sq.x2 + dx*side, y2: sq.y2 + dy*side}, false, &lm); err != nil {
					t.Fatal(err)
				}
				return meanDist(f.fiveV, fivePoints(&lm)) / side
			}
			pp, mm, pm, mp, s05 := shift(0.1, 0.1), shift(-0.1, -0.1), shift(0.1, -0.1), shift(-0.1, 0.1), shift(0.05, 0.05)
			_, fl, _ := w.consistency(r, &f, 10)
			es := float64(p.embedSize)
			half := affine{a: -1, c: es, e: -1, f: es}
			r.sample(half.then(f.sim.invert()).then(f.v.toSrc), p.embedSize, p.embedSize, p.embedTaps,
				encoding{bgr: p.embedBGR, mean: p.embedMean, norm: p.embedNorm}, w.emb.input())
			if err := w.emb.run(); err != nil {
				t.Fatal(err)
			}
			copy(w.scratch, w.emb.output(0))
			nrev := normalize(w.scratch)
			fmt.Fprintf(out, "%s,%s,%s,%d,1,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.3f,%.1f,%d\n", set, rel, variant, rot, n, pp, mm, pm, mp, s05, fl, nrev, f.det.score, f.size(p), len(fs))
		}
	}
	for _, set := range identitySets {
		for _, f := range setFiles(t, set) {
			r0, err := tryDecode(f)
			if err != nil {
				continue
			}
			rel := f[strings.Index(f, set)+len(set)+1:]
			row(set, rel, "orig", r0)
			if fs, err := w.find(r0, p); err == nil {
				if sel, err := choose(fs, p, false); err == nil && fs[sel].v.rot == 0 {
					b := fs[sel].rasterBox()
					row(set, rel, "lfw", lfwLike(t, r0, b, false))
					row(set, rel, "lfwlow", lfwLike(t, r0, b, true))
				}
			}
		}
	}
	for i, c := range crops {
		im, err := photo.Decode(c, photo.Options{})
		if err != nil {
			t.Fatal(err)
		}
		row("samples", strconv.Itoa(i), "orig", &raster{w: im.W, h: im.H, pix: im.Pix})
	}
}

// TestLabLFWSets writes LFW-style copies of the identity sets to the
// folder $LAB_OUT: every image as a 250x250 JPEG portrait (lfwLikeRaw, around the
// centre when no face is found upright), under the same paths, with the sets' pairs.csv and
// manifest.csv, so that central eval can run on them.
func TestLabLFWSets(t *testing.T) {
	labOn(t, "lfwsets")
	dir := os.Getenv("LAB_OUT")
	e, w := labWorker(t)
	p := &e.p
	for _, set := range identitySets {
		src := filepath.Join(testenvShared(t), set)
		for _, f := range setFiles(t, set) {
			r0, err := tryDecode(f)
			if err != nil {
				continue
			}
			b := box{x1: 0, y1: 0, x2: float64(r0.w) / 2.5, y2: float64(r0.h) / 2.5}
			b.x1, b.y1 = (float64(r0.w)-b.x2)/2, (float64(r0.h)-b.y2)/2
			b.x2, b.y2 = b.x1+float64(r0.w)/2.5, b.y1+float64(r0.h)/2.5
			if fs, err := w.find(r0, p); err == nil {
				if sel, err := choose(fs, p, false); err == nil && fs[sel].v.rot == 0 {
					b = fs[sel].rasterBox()
				}
			}
			out := filepath.Join(dir, set, strings.TrimPrefix(f, src+"/"))
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(out, encodeJPEG(t, lfwLikeRaw(r0, b, 250)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{"pairs.csv", "manifest.csv"} {
			if b, err := os.ReadFile(filepath.Join(src, name)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, set, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
