package photo

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestDecodeOrientation stores an upright picture the way a camera with
// each EXIF orientation would, in each container that carries EXIF, and
// checks that decoding gives the upright picture back, closer to it than
// to any other of the eight orientations.
func TestDecodeOrientation(t *testing.T) {
	up := blocks(96, 64)
	containers := []struct {
		name string
		enc  func(s pic, o int) []byte
		tol  float64
	}{
		{"jpeg app1 II", func(s pic, o int) []byte { return withJPEGExif(encJPEG(t, s.rgba(), 95), o, binary.LittleEndian) }, 6},
		{"jpeg app1 MM", func(s pic, o int) []byte { return withJPEGExif(encJPEG(t, s.rgba(), 95), o, binary.BigEndian) }, 6},
		{"png eXIf", func(s pic, o int) []byte { return withPNGExif(encPNG(t, s.rgba()), o) }, 0},
		{"webp EXIF", encWebPExif, 0},
		{"tiff II", func(s pic, o int) []byte { return encTIFF(s, o, binary.LittleEndian) }, 0},
		{"tiff MM", func(s pic, o int) []byte { return encTIFF(s, o, binary.BigEndian) }, 0},
	}
	for _, c := range containers {
		for o := 1; o <= 8; o++ {
			t.Run(fmt.Sprintf("%s/%d", c.name, o), func(t *testing.T) {
				s := stored(up, o)
				data := c.enc(s, o)
				_, cw, ch, err := Config(data)
				if err != nil || cw != up.w || ch != up.h {
					t.Errorf("Config = %dx%d %v, want upright %dx%d", cw, ch, err, up.w, up.h)
				}
				im, err := Decode(data, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if im.Orientation != o || im.OrigW != up.w || im.OrigH != up.h {
					t.Errorf("Orientation %d Orig %dx%d, want %d %dx%d", im.Orientation, im.OrigW, im.OrigH, o, up.w, up.h)
				}
				if im.W != up.w || im.H != up.h {
					t.Fatalf("decoded %dx%d, want upright %dx%d", im.W, im.H, up.w, up.h)
				}
				d := meanAbsDiff(t, im, up)
				if d > c.tol {
					t.Errorf("mean abs diff to upright %.2f, want <= %.2f", d, c.tol)
				}
				// Any other orientation of the same size must be clearly worse.
				for o2 := 2; o2 <= 8; o2++ {
					if alt := stored(stored(up, o2), o2); alt.w == up.w && alt.h == up.h {
						if da := meanAbsDiff(t, im, alt); da != d && da < d+20 {
							t.Errorf("orientation %d differs by %.2f, too close to %.2f", o2, da, d)
						}
					}
				}
			})
		}
	}
}

// TestOrient checks orient against the EXIF definitions directly, on
// sizes that cross the 64-pixel tiles.
func TestOrient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src := newPic(131, 70)
	for i := range src.pix {
		src.pix[i] = byte(r.Uint32())
	}
	w, h := src.w, src.h
	// Where displayed pixel (x, y) comes from, per the EXIF definition of
	// which stored row and column are the visual top and left.
	from := map[int]func(x, y int) (int, int){
		1: func(x, y int) (int, int) { return x, y },
		2: func(x, y int) (int, int) { return w - 1 - x, y },
		3: func(x, y int) (int, int) { return w - 1 - x, h - 1 - y },
		4: func(x, y int) (int, int) { return x, h - 1 - y },
		5: func(x, y int) (int, int) { return y, x },
		6: func(x, y int) (int, int) { return y, h - 1 - x },
		7: func(x, y int) (int, int) { return w - 1 - y, h - 1 - x },
		8: func(x, y int) (int, int) { return w - 1 - y, x },
	}
	for o := 1; o <= 8; o++ {
		pix, ow, oh := orient(append([]byte{}, src.pix...), w, h, o)
		wantW, wantH := w, h
		if o >= 5 {
			wantW, wantH = h, w
		}
		if ow != wantW || oh != wantH {
			t.Fatalf("orientation %d: size %dx%d, want %dx%d", o, ow, oh, wantW, wantH)
		}
		got := pic{ow, oh, pix}
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				sx, sy := from[o](x, y)
				if got.at(x, y) != src.at(sx, sy) {
					t.Fatalf("orientation %d: pixel (%d,%d) wrong", o, x, y)
				}
			}
		}
		// The test helper stored() must be the inverse, or the decode test
		// above proves nothing.
		if back, bw, bh := orient(stored(src, o).pix, stored(src, o).w, stored(src, o).h, o); bw != w || bh != h || string(back) != string(src.pix) {
			t.Fatalf("orientation %d: stored() is not its inverse", o)
		}
	}
}
