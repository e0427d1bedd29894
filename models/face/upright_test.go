package face

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"path/filepath"
	"testing"

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
		{"bbt/images/facerecjs_raj_22.png", "lfw", "refused: landmarks grossly inconsistent, no face in any other orientation"},
		{"orl_att/images/s2/9.png", "lfw", "refused: landmarks grossly inconsistent, the other orientations far weaker"},
		{"orl_att/images/s2/9.png", "lfwlow", "refused upright; turned 90 or 180 it was embedded upside down (the upright face was vetoed for its landmarks)"},
		{"bbt/images/facerecjs_stuart_4.png", "lfwlow", "refused: landmarks grossly inconsistent, no face in any other orientation"},
		{"orl_att/images/s1/4.png", "orig", "turned 180 it was embedded upside down (norm 3.49, above the old sure-upright level 3.4)"},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.variant, func(t *testing.T) {
			r, err := tryDecode(filepath.Join(shared, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if c.variant != "orig" {
				b := faceBox(t, e, r)
				if c.variant == "lfw" {
					r = lfwLike(t, r, b, 250)
				} else {
					r = lfwLike(t, lfwLikeRaw(r, b, 100), box{x1: 30, y1: 30, x2: 70, y2: 70}, 250)
				}
			}
			up, err := e.Probe(ctx, encodePNG(t, r), Options{})
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
// centre, edges replicated, resized to side x side.
func lfwLikeRaw(r *raster, b box, side int) *raster {
	cx, cy := (b.x1+b.x2)/2, (b.y1+b.y2)/2
	half := 1.25 * b.w()
	x1, y1 := cx-half, cy-half
	step := 2 * half / float64(side)
	out := &raster{w: side, h: side, pix: make([]byte, 3*side*side)}
	k := max(1, int(step+0.999))
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			var acc [3]float64
			for sy := 0; sy < k; sy++ {
				for sx := 0; sx < k; sx++ {
					px := int(x1 + (float64(x)+(float64(sx)+0.5)/float64(k))*step)
					py := int(y1 + (float64(y)+(float64(sy)+0.5)/float64(k))*step)
					px = min(max(px, 0), r.w-1)
					py = min(max(py, 0), r.h-1)
					for c := 0; c < 3; c++ {
						acc[c] += float64(r.pix[3*(py*r.w+px)+c])
					}
				}
			}
			for c := 0; c < 3; c++ {
				out.pix[3*(y*side+x)+c] = uint8(acc[c]/float64(k*k) + 0.5)
			}
		}
	}
	return out
}

// lfwLike is lfwLikeRaw through a JPEG at quality 90 and the engine's
// decoder.
func lfwLike(t *testing.T, r *raster, b box, side int) *raster {
	// bilinear upsampling for the low-resolution variant
	var src *raster
	if r.w < side {
		src = &raster{w: side, h: side, pix: make([]byte, 3*side*side)}
		out := make([]float32, 3*side*side)
		c := float64(r.w) / 2
		bb := box{x1: c - 1.25*b.w(), y1: c - 1.25*b.w(), x2: c + 1.25*b.w(), y2: c + 1.25*b.w()}
		r.sample(rectMap(bb.x1, bb.y1, bb.x2, bb.y2, side, side), side, side, 1, encoding{norm: 1}, out)
		n := side * side
		for i := 0; i < n; i++ {
			for ch := 0; ch < 3; ch++ {
				src.pix[3*i+ch] = uint8(min(max(out[ch*n+i]+0.5, 0), 255))
			}
		}
	} else {
		src = lfwLikeRaw(r, b, side)
	}
	im, err := photo.Decode(encodeJPEG(t, src), photo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &raster{w: im.W, h: im.H, pix: im.Pix}
}

// encodeJPEG encodes r as a JPEG of quality 90.
func encodeJPEG(t *testing.T, r *raster) []byte {
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
