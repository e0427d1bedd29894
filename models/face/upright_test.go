package face

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"path/filepath"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/internal/testenv"
	"github.com/xplore/faceauth/models/photo"
)

// Upright faces that the orientation check used to refuse ("could not be
// analysed reliably") or to turn the wrong way once turned in the pixels.
// Each must now be embedded upright, and every quarter turn of it must be
// turned back upright or refused, never embedded the wrong way up
// (docs/face-pipeline.md, "Faces turned in the pixels").
func TestFormerlyRefusedUprightFaces(t *testing.T) {
	shared := testenv.SharedFaces(t)
	e := testEngine(t, 1)
	ctx := context.Background()
	cases := []struct {
		file, variant, why string
	}{
		{"bbt/images/facerecjs_raj_22.png", "orig", "refused: landmarks grossly inconsistent, although no other orientation came close (2.51 against 1.71)"},
		{"orl_att/images/s2/9.png", "lfw", "refused: landmarks grossly inconsistent, the other orientations far weaker"},
		{"orl_att/images/s2/9.png", "lfwlow", "refused upright; turned 90 or 180 it was embedded upside down (the upright face was vetoed for its landmarks)"},
		{"orl_att/images/s1/4.png", "orig", "turned 180 it was embedded upside down (norm 3.49, above the old sure-upright level 3.4)"},
		{"orl_att/images/s1/2.png", "lfw", "turned 90 or 180 it was embedded upside down (the upright face's view vetoed, 3.41 upside down)"},
		{"bbt/images/facerecjs_sheldon_6.png", "lfwlow", "turned 90 it was embedded sideways (consistent landmarks, the half turn weaker)"},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.variant, func(t *testing.T) {
			r, err := tryDecode(filepath.Join(shared, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if c.variant != "orig" {
				r = lfwLike(t, r, faceBox(t, e, r), c.variant == "lfwlow")
			}
			up, err := e.Analyze(ctx, encodePNG(t, r), faceauth.Request{})
			if err != nil {
				t.Fatalf("upright face refused (formerly %s): %v", c.why, err)
			}
			if up.Rotation != 0 {
				t.Fatalf("upright face analysed turned by %d", up.Rotation)
			}
			ok, refused := rotationCheck(t, e, c.file+"/"+c.variant, func(deg int) []byte { return encodePNG(t, turn(r, deg)) }, up.Embedding, 0.8)
			t.Logf("turned three ways: %d upright, %d refused", ok, refused)
		})
	}
}

// faceBox is the detector box, in r's pixels, of the face the engine
// selects in r upright.
func faceBox(t *testing.T, e *Engine, r *raster) box {
	t.Helper()
	w, err := e.pool.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer e.pool.put(w)
	fs, err := w.find(r, &e.p)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := choose(fs, &e.p, false)
	if err != nil || fs[sel].v.rot != 0 {
		t.Fatalf("no upright face to cut out: %v", err)
	}
	return fs[sel].rasterBox()
}

// lfwLikeRaw cuts a square of 2.5 times the box's width around its
// centre (grey outside the photo, as the engine itself pads), resampled to
// side x side: a face photo framed like a deep-funneled LFW portrait.
func lfwLikeRaw(r *raster, b box, side int) *raster {
	cx, cy := (b.x1+b.x2)/2, (b.y1+b.y2)/2
	half := 1.25 * b.w()
	out := make([]float32, 3*side*side)
	r.sample(rectMap(cx-half, cy-half, cx+half, cy+half, side, side), side, side, maxTaps, encoding{norm: 1}, out)
	n := side * side
	dst := &raster{w: side, h: side, pix: make([]byte, 3*n)}
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			dst.pix[3*i+c] = uint8(min(max(out[c*n+i]+0.5, 0), 255))
		}
	}
	return dst
}

// lfwLike is lfwLikeRaw at 250x250 through a JPEG of quality 90 and the
// engine's decoder; with low, the portrait is cut at 100x100 first and
// scaled up, like LFW's upscaled low-resolution news photos.
func lfwLike(t *testing.T, r *raster, b box, low bool) *raster {
	t.Helper()
	p := lfwLikeRaw(r, b, 250)
	if low {
		p = lfwLikeRaw(lfwLikeRaw(r, b, 100), box{x1: 30, y1: 30, x2: 70, y2: 70}, 250)
	}
	im, err := photo.Decode(encodeJPEG(t, p), photo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &raster{w: im.W, h: im.H, pix: im.Pix}
}

// encodeJPEG encodes r as a JPEG of quality 90.
func encodeJPEG(t testing.TB, r *raster) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, r.w, r.h))
	for i := 0; i < r.w*r.h; i++ {
		copy(m.Pix[4*i:], r.pix[3*i:3*i+3])
		m.Pix[4*i+3] = 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
