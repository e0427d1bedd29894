package photo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/draw"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/xplore/faceauth"
)

// bombs are headers that declare a huge image over a few bytes of data.
func bombs(t *testing.T) map[string][]byte {
	jpegSOF := []byte{0xFF, 0xD8, // SOI
		0xFF, 0xC0, 0, 17, 8, 0xFF, 0xFF, 0xFF, 0xFF, 3, // SOF0 65535x65535, 3 components
		1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1,
		0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0} // SOS
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, 100000)
	binary.BigEndian.PutUint32(ihdr[4:], 100000)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	png := append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...)
	png = append(png, pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)

	gif := []byte("GIF89a\xff\xff\xff\xff\x00\x00\x00;")

	bmp := make([]byte, 54)
	copy(bmp, "BM")
	binary.LittleEndian.PutUint32(bmp[10:], 54)
	binary.LittleEndian.PutUint32(bmp[14:], 40)
	binary.LittleEndian.PutUint32(bmp[18:], 100000)
	binary.LittleEndian.PutUint32(bmp[22:], 100000)
	binary.LittleEndian.PutUint16(bmp[26:], 1)
	binary.LittleEndian.PutUint16(bmp[28:], 24)

	tiff := encTIFF(pic{w: 100000, h: 100000}, 1, binary.LittleEndian)

	var vp8l bitWriter
	vp8l.put(0x2f, 8)
	vp8l.put(16383, 14)
	vp8l.put(16383, 14)
	vp8l.put(0, 4)

	return map[string][]byte{
		"jpeg":      jpegSOF,
		"png":       png,
		"gif":       gif,
		"bmp":       bmp,
		"tiff":      tiff,
		"webp vp8l": riffWebP(riffChunk("VP8L", vp8l.b)),
		"webp vp8x": riffWebP(vp8x(0, 20000, 20000), riffChunk("VP8L", vp8l.b)),
		"pgm":       []byte("P5\n100000 100000\n255\n\x00\x00\x00"),
		"ppm ascii": []byte("P3\n100000 100000\n255\n0 0 0"),
	}
}

// TestDecompressionBombs checks that a huge header is refused from the
// header alone, without allocating its pixels.
func TestDecompressionBombs(t *testing.T) {
	for name, data := range bombs(t) {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			im, err := Decode(data, Options{})
			runtime.ReadMemStats(&after)
			if im != nil {
				t.Fatal("decoded a bomb")
			}
			wantErr(t, err, faceauth.KindTooLarge, "image_too_large")
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("allocated %d bytes before refusing", n)
			}
		})
	}
}

func TestMaxPixels(t *testing.T) {
	data := encPNG(t, blocks(100, 50).rgba())
	for _, tt := range []struct {
		max int64
		ok  bool
	}{{5000, true}, {4999, false}, {0, true}} {
		_, err := Decode(data, Options{MaxPixels: tt.max})
		if tt.ok && err != nil {
			t.Errorf("MaxPixels %d: %v", tt.max, err)
		}
		if !tt.ok {
			wantErr(t, err, faceauth.KindTooLarge, "image_too_large")
		}
	}
}

// TestTargetSide checks the reduced decode: JPEG at the smallest DCT scale
// M/8 that keeps the longest side >= TargetSide, others shrunk to it.
func TestTargetSide(t *testing.T) {
	big := blocks(1000, 600)
	jpg := encJPEG(t, big.rgba(), 90)
	jpgRot := withJPEGExif(jpg, 6, binary.BigEndian)
	png := encPNG(t, big.rgba())
	tests := []struct {
		name   string
		data   []byte
		target int
		w, h   int
	}{
		{"jpeg 3/8", jpg, 300, 375, 225},    // 2/8 would be 250 < 300
		{"jpeg 2/8", jpg, 250, 250, 150},    // exactly 250
		{"jpeg 1/8", jpg, 100, 125, 75},     // smallest scale
		{"jpeg full", jpg, 1280, 1000, 600}, // no upscaling
		{"jpeg disabled", jpg, -1, 1000, 600},
		{"jpeg default", jpg, 0, 1000, 600},
		{"jpeg rotated", jpgRot, 300, 225, 375},
		{"png", png, 300, 300, 180},
		{"png full", png, 1000, 1000, 600},
		{"png disabled", png, -1, 1000, 600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := Decode(tt.data, Options{TargetSide: tt.target})
			if err != nil {
				t.Fatal(err)
			}
			if im.W != tt.w || im.H != tt.h || len(im.Pix) != 3*im.W*im.H {
				t.Errorf("got %dx%d, want %dx%d", im.W, im.H, tt.w, tt.h)
			}
			ow, oh := 1000, 600
			if im.Orientation >= 5 {
				ow, oh = oh, ow
			}
			if im.OrigW != ow || im.OrigH != oh {
				t.Errorf("Orig %dx%d, want %dx%d", im.OrigW, im.OrigH, ow, oh)
			}
			// The reduced picture still shows the blocks: compare with the
			// original sampled at the centre of each output pixel.
			var sum, n float64
			for y := 0; y < im.H; y++ {
				for x := 0; x < im.W; x++ {
					sx, sy := (2*x+1)*ow/(2*im.W), (2*y+1)*oh/(2*im.H)
					if im.Orientation == 6 { // upright (sx,sy) is stored (sy, h-1-sx)
						sx, sy = sy, 600-1-sx
					}
					if sx%16 < 3 || sx%16 > 12 || sy%16 < 3 || sy%16 > 12 {
						continue // block edges blur
					}
					r, g, b := im.At(x, y)
					c := big.at(sx, sy)
					sum += math.Abs(float64(r)-float64(c[0])) + math.Abs(float64(g)-float64(c[1])) + math.Abs(float64(b)-float64(c[2]))
					n += 3
				}
			}
			if d := sum / n; d > 8 {
				t.Errorf("mean abs diff inside blocks %.2f, want <= 8", d)
			}
		})
	}
}

// TestResizeArea compares the streaming area filter with a direct
// float64 computation of each output pixel's area mean.
func TestResizeArea(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, sz := range [][4]int{{10, 10, 5, 5}, {7, 5, 3, 2}, {100, 37, 33, 12}, {64, 64, 64, 1}, {1, 50, 1, 7}, {97, 89, 96, 88}} {
		sw, sh, dw, dh := sz[0], sz[1], sz[2], sz[3]
		src := make([]byte, 3*sw*sh)
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		got := resizeArea(src, sw, sh, dw, dh)
		sx, sy := float64(sw)/float64(dw), float64(sh)/float64(dh)
		for y := 0; y < dh; y++ {
			for x := 0; x < dw; x++ {
				for c := 0; c < 3; c++ {
					var sum float64
					for j := 0; j < sh; j++ {
						oy := math.Min(float64(j+1), float64(y+1)*sy) - math.Max(float64(j), float64(y)*sy)
						if oy <= 0 {
							continue
						}
						for i := 0; i < sw; i++ {
							ox := math.Min(float64(i+1), float64(x+1)*sx) - math.Max(float64(i), float64(x)*sx)
							if ox > 0 {
								sum += ox * oy * float64(src[3*(j*sw+i)+c])
							}
						}
					}
					want := sum / (sx * sy)
					if g := float64(got[3*(y*dw+x)+c]); math.Abs(g-want) > 0.51 {
						t.Fatalf("%v: pixel (%d,%d,%d) = %v, want %.2f", sz, x, y, c, g, want)
					}
				}
			}
		}
	}
	// A one-pixel checkerboard halved is uniform grey: no aliasing.
	cb := make([]byte, 3*8*8)
	for i := range cb {
		if (i/3%8+i/24)%2 == 0 {
			cb[i] = 255
		}
	}
	for _, v := range resizeArea(cb, 8, 8, 4, 4) {
		if v < 127 || v > 128 {
			t.Fatalf("checkerboard halves to %d, want 127 or 128", v)
		}
	}
}

// TestConcurrentDecode decodes from several goroutines (run with -race).
func TestConcurrentDecode(t *testing.T) {
	jpg := encJPEG(t, blocks(320, 240).rgba(), 90)
	want, err := Decode(jpg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 10; i++ {
				im, err := Decode(jpg, Options{})
				if err == nil && !bytes.Equal(im.Pix, want.Pix) {
					err = fmt.Errorf("decode %d differs", i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestMaxFullDecodePixels checks the full-decode budget: a format decoded
// at full size is refused above it from the header, a JPEG of the same
// size (decoded reduced) is not.
//
// The budget is of memory: about 7 bytes a pixel, the decoder's 8-bit RGBA
// and the packed RGB. A 16-bit colour image decodes to 8 bytes a pixel
// before the 3 of RGB, so a flat one of a few hundred kilobytes would
// otherwise cost 11/7 of what the budget allows; it gets 7/11 of the
// pixels.
func TestMaxFullDecodePixels(t *testing.T) {
	img := blocks(100, 50).rgba()
	png, jpg := encPNG(t, img), encJPEG(t, img, 90)
	wide := image.NewNRGBA64(img.Bounds())
	draw.Draw(wide, wide.Bounds(), img, image.Point{}, draw.Src)
	png16 := encPNG(t, wide)
	for _, tt := range []struct {
		name   string
		data   []byte
		budget int64
		ok     bool
	}{
		{"png within", png, 5000, true},
		{"png over", png, 4999, false},
		{"png default", png, 0, true},
		{"jpeg over the budget decodes reduced", jpg, 4999, true},
		{"16-bit png within its share", png16, 7858, true}, // 5000 px x 11 bytes <= 7858 x 7
		{"16-bit png over its share", png16, 7857, false},
		{"16-bit png within the pixels but over the bytes", png16, 5000, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.data, Options{MaxFullDecodePixels: tt.budget})
			if tt.ok && err != nil {
				t.Fatalf("budget %d: %v", tt.budget, err)
			}
			if !tt.ok {
				wantErr(t, err, faceauth.KindTooLarge, "image_too_large")
			}
		})
	}
}
