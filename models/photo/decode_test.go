package photo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	gifenc "image/gif"
	"strings"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models/photo/internal/jpegenc"
)

// meanAbsDiff compares decoded pixels with a picture of the same size.
func meanAbsDiff(t *testing.T, im *Image, want pic) float64 {
	t.Helper()
	if im.W != want.w || im.H != want.h || len(im.Pix) != 3*im.W*im.H {
		t.Fatalf("decoded %dx%d (%d bytes), want %dx%d", im.W, im.H, len(im.Pix), want.w, want.h)
	}
	var sum int
	for i, v := range im.Pix {
		d := int(v) - int(want.pix[i])
		sum += max(d, -d)
	}
	return float64(sum) / float64(len(im.Pix))
}

// cmyk converts a picture to Adobe (inverted) CMYK: 255 means no ink.
func cmyk(p pic) []byte {
	out := make([]byte, 0, 4*p.w*p.h)
	for i := 0; i < len(p.pix); i += 3 {
		r, g, b := int(p.pix[i]), int(p.pix[i+1]), int(p.pix[i+2])
		k := max(r, g, b, 1) // inverted K: 255 - ink
		out = append(out, byte(r*255/k), byte(g*255/k), byte(b*255/k), byte(k))
	}
	return out
}

func mustEnc(t *testing.T, pix []byte, w, h int, s jpegenc.Space, o jpegenc.Options) []byte {
	t.Helper()
	b, err := jpegenc.Encode(pix, w, h, s, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeFormats(t *testing.T) {
	const w, h = 96, 64
	col := blocks(w, h)
	gr := col.gray()

	// Alpha: left half opaque colour, then transparent (black underneath),
	// then half-transparent black, all composited onto white.
	nrgba := image.NewNRGBA(image.Rect(0, 0, w, h))
	alphaWant := newPic(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := col.at(x, y)
			switch {
			case x < w/2:
				nrgba.SetNRGBA(x, y, color.NRGBA{c[0], c[1], c[2], 255})
				alphaWant.set(x, y, c)
			case x < 3*w/4:
				nrgba.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 0})
				alphaWant.set(x, y, [3]byte{255, 255, 255})
			default:
				nrgba.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 128})
				alphaWant.set(x, y, [3]byte{127, 127, 127})
			}
		}
	}
	// 16-bit: high bytes carry the picture, low bytes noise to be dropped.
	rgba64 := image.NewRGBA64(image.Rect(0, 0, w, h))
	gray16 := image.NewGray16(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := col.at(x, y)
			lo := uint16(x * y % 256)
			rgba64.SetRGBA64(x, y, color.RGBA64{uint16(c[0])<<8 | lo, uint16(c[1])<<8 | lo, uint16(c[2])<<8 | lo, 0xffff})
			gray16.SetGray16(x, y, color.Gray16{uint16(gr.at(x, y)[0])<<8 | lo})
		}
	}
	gif := col.paletted()
	gifTransparent := col.paletted()
	gifTransparent.Palette[0] = color.RGBA{}
	gifTWant := newPic(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := col.at(x, y)
			if gifTransparent.ColorIndexAt(x, y) == 0 {
				c = [3]byte{255, 255, 255}
			}
			gifTWant.set(x, y, c)
		}
	}
	// A GIF whose only frame covers part of the logical screen.
	var gifFrame bytes.Buffer
	frame := blocks(40, 20).paletted()
	frame.Rect = image.Rect(30, 16, 70, 36)
	if err := gifenc.EncodeAll(&gifFrame, &gifenc.GIF{Image: []*image.Paletted{frame}, Delay: []int{0},
		Config: image.Config{ColorModel: frame.Palette, Width: w, Height: h}}); err != nil {
		t.Fatal(err)
	}
	gifFrameWant := newPic(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := [3]byte{255, 255, 255}
			if image.Pt(x, y).In(frame.Rect) {
				c = blocks(40, 20).at(x-30, y-16)
			}
			gifFrameWant.set(x, y, c)
		}
	}
	// A picture whose values survive 4-bit PNM samples (maxval 15).
	coarse := newPic(w, h)
	for i, v := range col.pix {
		coarse.pix[i] = byte((int(v)*15 + 127) / 255 * 17) // multiples of 17 survive 4 bits
	}

	tests := []struct {
		name   string
		data   []byte
		format string
		want   pic
		tol    float64 // mean absolute error allowed; 0 = exact
	}{
		{"jpeg baseline", encJPEG(t, col.rgba(), 95), FormatJPEG, col, 6},
		{"jpeg grey", encJPEG(t, gr.grayImage(), 95), FormatJPEG, gr, 1},
		{"jpeg progressive", mustEnc(t, col.pix, w, h, jpegenc.RGB, jpegenc.Options{Quality: 95, Progressive: true}), FormatJPEG, col, 6},
		{"jpeg arithmetic", mustEnc(t, col.pix, w, h, jpegenc.RGB, jpegenc.Options{Quality: 95, Arithmetic: true}), FormatJPEG, col, 6},
		{"jpeg grey progressive", mustEnc(t, gr.grayImage().Pix, w, h, jpegenc.Gray, jpegenc.Options{Quality: 95, Progressive: true}), FormatJPEG, gr, 1},
		{"jpeg cmyk", mustEnc(t, cmyk(col), w, h, jpegenc.CMYK, jpegenc.Options{Quality: 95}), FormatJPEG, col, 6},
		{"jpeg ycck", mustEnc(t, cmyk(col), w, h, jpegenc.YCCK, jpegenc.Options{Quality: 95}), FormatJPEG, col, 6},
		{"png rgb", encPNG(t, col.rgba()), FormatPNG, col, 0},
		{"png grey", encPNG(t, gr.grayImage()), FormatPNG, gr, 0},
		{"png palette", encPNG(t, col.paletted()), FormatPNG, col, 0},
		{"png rgba", encPNG(t, nrgba), FormatPNG, alphaWant, 0},
		{"png 16-bit rgb", encPNG(t, rgba64), FormatPNG, col, 0},
		{"png 16-bit grey", encPNG(t, gray16), FormatPNG, gr, 0},
		{"gif", encGIF(t, gif), FormatGIF, col, 0},
		{"gif transparent", encGIF(t, gifTransparent), FormatGIF, gifTWant, 0},
		{"gif partial frame", gifFrame.Bytes(), FormatGIF, gifFrameWant, 0},
		{"bmp", encBMP(t, col.rgba()), FormatBMP, col, 0},
		{"bmp palette", encBMP(t, col.paletted()), FormatBMP, col, 0},
		{"tiff little-endian", encTIFF(col, 0, binary.LittleEndian), FormatTIFF, col, 0},
		{"tiff big-endian", encTIFF(col, 1, binary.BigEndian), FormatTIFF, col, 0},
		{"webp lossless", encWebP(col), FormatWebP, col, 0},
		{"webp extended", encWebPExif(col, 1), FormatWebP, col, 0},
		{"pgm P5", encPNM(gr, '5', 255), FormatPGM, gr, 0},
		{"pgm P2", encPNM(gr, '2', 255), FormatPGM, gr, 0},
		{"ppm P6", encPNM(col, '6', 255), FormatPGM, col, 0},
		{"ppm P3", encPNM(col, '3', 255), FormatPGM, col, 0},
		{"ppm P6 16-bit", encPNM(col, '6', 65535), FormatPGM, col, 0},
		{"ppm P3 maxval 15", encPNM(coarse, '3', 15), FormatPGM, coarse, 0},
		{"pgm P5 16-bit", encPNM(gr, '5', 1000), FormatPGM, gr, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sniff(tt.data); got != tt.format {
				t.Errorf("Sniff = %q, want %q", got, tt.format)
			}
			f, cw, ch, err := Config(tt.data)
			if err != nil || f != tt.format || cw != w || ch != h {
				t.Errorf("Config = %q %dx%d %v, want %q %dx%d", f, cw, ch, err, tt.format, w, h)
			}
			im, err := Decode(tt.data, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if im.Format != tt.format || im.OrigW != w || im.OrigH != h || im.Orientation != 1 {
				t.Errorf("got format %q orig %dx%d orientation %d", im.Format, im.OrigW, im.OrigH, im.Orientation)
			}
			d := meanAbsDiff(t, im, tt.want)
			if d > tt.tol {
				t.Errorf("mean abs diff %.2f, want <= %.2f", d, tt.tol)
			}
			if tt.tol == 0 && d == 0 {
				r, g, b := im.At(w-1, h-1)
				if c := tt.want.at(w-1, h-1); [3]byte{r, g, b} != c {
					t.Errorf("At(%d,%d) = %v, want %v", w-1, h-1, [3]byte{r, g, b}, c)
				}
			}
		})
	}
}

// wantErr checks that err is a *faceauth.Error of the given kind and code
// with a user sentence.
func wantErr(t *testing.T, err error, kind faceauth.Kind, code string) {
	t.Helper()
	var fe *faceauth.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T), want *faceauth.Error %s", err, err, code)
	}
	if fe.Kind != kind || fe.Code != code {
		t.Fatalf("error %s/%s (%v), want %s/%s", fe.Kind, fe.Code, err, kind, code)
	}
	if fe.Msg == "" || fe.Msg[len(fe.Msg)-1] != '.' {
		t.Errorf("message %q is not a sentence", fe.Msg)
	}
	var pe *panicError
	if errors.As(err, &pe) {
		t.Errorf("error comes from a recovered panic: %v", err)
	}
}

// truncate cuts data to a fraction of its length.
func truncate(b []byte, frac float64) []byte { return b[:int(float64(len(b))*frac)] }

// corruptJPEGScan puts an EOI marker into the middle of the entropy-coded
// data, as a damaged transfer would.
func corruptJPEGScan(t *testing.T, j []byte) []byte {
	t.Helper()
	sos := -1
	for i := 2; i+1 < len(j); i++ {
		if j[i] == 0xFF && j[i+1] == 0xDA {
			sos = i
			break
		}
	}
	if sos < 0 {
		t.Fatal("no SOS")
	}
	out := append([]byte{}, j...)
	mid := sos + (len(j)-sos)/2
	out[mid], out[mid+1] = 0xFF, 0xD9
	return out
}

// manyScans repeats the last scan of a progressive JPEG n times: valid
// enough for libjpeg (a bogus progression only warns), but each scan costs
// a pass over the coefficients.
func manyScans(t *testing.T, j []byte, n int) []byte {
	t.Helper()
	last := bytes.LastIndex(j, []byte{0xFF, 0xDA}) // entropy data never holds FF DA
	if last < 0 || !bytes.HasSuffix(j, []byte{0xFF, 0xD9}) {
		t.Fatal("not a progressive JPEG ending in EOI")
	}
	scan := j[last : len(j)-2]
	out := append([]byte{}, j[:len(j)-2]...)
	for i := 0; i < n; i++ {
		out = append(out, scan...)
	}
	return append(out, 0xFF, 0xD9)
}

func TestDecodeErrors(t *testing.T) {
	col := blocks(96, 64)
	jpg := encJPEG(t, col.rgba(), 90)
	prog := mustEnc(t, col.pix, 96, 64, jpegenc.RGB, jpegenc.Options{Quality: 90, Progressive: true})
	pngb := encPNG(t, col.rgba())
	corruptPNG := append([]byte{}, pngb...)
	corruptPNG[len(corruptPNG)-30] ^= 0xFF // inside IDAT: bad zlib data or CRC
	badIHDR := append([]byte{}, pngb...)
	badIHDR[11] = 32 // IHDR length 32 instead of 13, as in the wild

	// 12-bit and lossless JPEGs: patch the frame header of a normal one.
	patchSOF := func(marker, prec byte) []byte {
		b := append([]byte{}, jpg...)
		for i := 2; i+4 < len(b); i++ {
			if b[i] == 0xFF && b[i+1] == 0xC0 {
				b[i+1], b[i+4] = marker, prec
				return b
			}
		}
		t.Fatal("no SOF0")
		return nil
	}
	tests := []struct {
		name string
		data []byte
		kind faceauth.Kind
		code string
	}{
		{"empty", nil, faceauth.KindBadImage, "empty_image"},
		{"5-byte text file", []byte("test\n"), faceauth.KindBadImage, "unsupported_format"},
		{"5-byte jpeg start", jpg[:5], faceauth.KindBadImage, "truncated_image"},
		{"2-byte jpeg start", jpg[:2], faceauth.KindBadImage, "truncated_image"},
		{"png signature only", pngb[:8], faceauth.KindBadImage, "truncated_image"},
		{"jpeg truncated in scan", truncate(jpg, 0.6), faceauth.KindBadImage, "truncated_image"},
		{"jpeg truncated in header", jpg[:100], faceauth.KindBadImage, "truncated_image"},
		{"jpeg missing EOI", jpg[:len(jpg)-2], faceauth.KindBadImage, "truncated_image"},
		{"progressive jpeg truncated", truncate(prog, 0.7), faceauth.KindBadImage, "truncated_image"},
		{"jpeg corrupt scan", corruptJPEGScan(t, jpg), faceauth.KindBadImage, "corrupt_image"},
		{"jpeg with 600 scans", manyScans(t, prog, 600), faceauth.KindBadImage, "corrupt_image"},
		{"jpeg 12-bit", patchSOF(0xC1, 12), faceauth.KindBadImage, "unsupported_format"},
		{"jpeg lossless", patchSOF(0xC3, 8), faceauth.KindBadImage, "unsupported_format"},
		{"png corrupt data", corruptPNG, faceauth.KindBadImage, "corrupt_image"},
		{"png bad IHDR", badIHDR, faceauth.KindBadImage, "corrupt_image"},
		{"png truncated", truncate(pngb, 0.5), faceauth.KindBadImage, "truncated_image"},
		{"gif truncated", truncate(encGIF(t, col.paletted()), 0.5), faceauth.KindBadImage, "truncated_image"},
		{"bmp truncated", truncate(encBMP(t, col.rgba()), 0.5), faceauth.KindBadImage, "truncated_image"},
		{"webp truncated", truncate(encWebP(col), 0.5), faceauth.KindBadImage, "truncated_image"},
		{"tiff truncated", truncate(encTIFF(col, 1, binary.LittleEndian), 0.5), faceauth.KindBadImage, "truncated_image"},
		{"ppm truncated", truncate(encPNM(col, '6', 255), 0.5), faceauth.KindBadImage, "truncated_image"},
		{"pgm ascii truncated", truncate(encPNM(col, '2', 255), 0.5), faceauth.KindBadImage, "truncated_image"},
		{"pgm bad sample", []byte("P2 32 32 255\n" + strings.Repeat("1 ", 500) + "x " + strings.Repeat("1 ", 523)), faceauth.KindBadImage, "corrupt_image"},
		{"pgm maxval 0", []byte("P5 2 2 0\n\x00\x00\x00\x00"), faceauth.KindBadImage, "corrupt_image"},
		{"pbm", []byte("P4 8 8\n\x00\x00\x00\x00\x00\x00\x00\x00"), faceauth.KindBadImage, "unsupported_format"},
		{"heic", append([]byte("\x00\x00\x00\x18ftypheic"), make([]byte, 64)...), faceauth.KindBadImage, "unsupported_format"},
		{"bigtiff", []byte("II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00"), faceauth.KindBadImage, "unsupported_format"},
		{"animated webp", riffWebP(vp8x(0x02, 96, 64), riffChunk("ANIM", make([]byte, 6))), faceauth.KindBadImage, "unsupported_format"},
		{"pdf", []byte("%PDF-1.7\n..."), faceauth.KindBadImage, "unsupported_format"},
		{"too small", encPNG(t, blocks(20, 40).rgba()), faceauth.KindBadImage, "image_too_small"},
		{"too small jpeg", encJPEG(t, blocks(200, 31).rgba(), 90), faceauth.KindBadImage, "image_too_small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := Decode(tt.data, Options{})
			if im != nil {
				t.Fatalf("decoded %dx%d, want error %s", im.W, im.H, tt.code)
			}
			wantErr(t, err, tt.kind, tt.code)
		})
	}
}

func TestScanLimit(t *testing.T) {
	p := blocks(96, 64)
	prog := mustEnc(t, p.pix, p.w, p.h, jpegenc.RGB, jpegenc.Options{Quality: 90, Progressive: true})
	if _, err := Decode(manyScans(t, prog, 100), Options{}); err != nil {
		t.Fatalf("100 extra scans: %v", err)
	}
	// Over the limit, it is the scan cap that stops the decode.
	if _, err := Decode(manyScans(t, prog, 600), Options{}); err == nil || !strings.Contains(err.Error(), "more than 500 scans") {
		t.Fatalf("600 extra scans: %v, want the scan limit", err)
	}
}

func TestMinSideDisabled(t *testing.T) {
	im, err := Decode(encPNG(t, blocks(20, 10).rgba()), Options{MinSide: -1})
	if err != nil || im.W != 20 || im.H != 10 {
		t.Fatalf("got %v, %v; want a 20x10 image", im, err)
	}
}

// The JPEG decoder reads up to 16 rows per libjpeg call; the pixels must
// be exactly those of reading one row per call, for chroma subsampled and
// full, progressive and greyscale JPEGs, heights that leave a partial
// last batch and odd sizes.
func TestDecodeJPEGRowsExact(t *testing.T) {
	for _, tc := range []struct {
		name string
		w, h int
		enc  func(p pic) []byte
	}{
		{"4:2:0 640x480", 640, 480, func(p pic) []byte { return encJPEG(t, p.rgba(), 90) }},
		{"4:2:0 odd 641x481", 641, 481, func(p pic) []byte { return encJPEG(t, p.rgba(), 90) }},
		{"4:2:0 33x47", 33, 47, func(p pic) []byte { return encJPEG(t, p.rgba(), 75) }},
		{"progressive 97x35", 97, 35, func(p pic) []byte {
			return mustEnc(t, p.pix, p.w, p.h, jpegenc.RGB, jpegenc.Options{Quality: 90, Progressive: true})
		}},
		{"grey 50x83", 50, 83, func(p pic) []byte { return encJPEG(t, p.gray().grayImage(), 90) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.enc(blocks(tc.w, tc.h))
			want, err := jpegenc.DecodeRowByRow(data, tc.w, tc.h)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(data, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got.W != tc.w || got.H != tc.h {
				t.Fatalf("decoded %dx%d, want %dx%d", got.W, got.H, tc.w, tc.h)
			}
			for i := range want {
				if got.Pix[i] != want[i] {
					t.Fatalf("pixel (%d, %d) channel %d is %d, one row per call gives %d", i/3%tc.w, i/3/tc.w, i%3, got.Pix[i], want[i])
				}
			}
		})
	}
}

// DecodeInto gives exactly Decode's image, writing a JPEG into the
// caller's buffer when it is large enough (whatever it held before) and
// leaving it alone otherwise: too small, another format, or an EXIF turn
// (which needs a second buffer).
func TestDecodeInto(t *testing.T) {
	const w, h = 96, 64
	col := blocks(w, h)
	for _, tc := range []struct {
		name  string
		img   []byte
		buf   int // capacity of the buffer passed
		reuse bool
	}{
		{"jpeg, buffer of the exact size", encJPEG(t, col.rgba(), 90), 3 * w * h, true},
		{"jpeg, larger buffer", mustEnc(t, col.pix, w, h, jpegenc.RGB, jpegenc.Options{Quality: 95, Progressive: true}), 3*w*h + 999, true},
		{"jpeg, buffer too small", encJPEG(t, col.rgba(), 90), 3*w*h - 1, false},
		{"jpeg, no buffer", encJPEG(t, col.rgba(), 90), 0, false},
		{"png", encPNG(t, col.rgba()), 3 * w * h, false},
		{"jpeg turned by EXIF", withJPEGExif(encJPEG(t, col.rgba(), 90), 6, binary.LittleEndian), 3 * w * h, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := Decode(tc.img, Options{})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, tc.buf)
			for i := range buf {
				buf[i] = 0xA5 // stale pixels of a previous image
			}
			got, err := DecodeInto(tc.img, Options{}, buf)
			if err != nil {
				t.Fatal(err)
			}
			if got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
				t.Fatalf("DecodeInto gives %dx%d, different pixels from Decode's %dx%d", got.W, got.H, want.W, want.H)
			}
			reused := tc.buf > 0 && &got.Pix[0] == &buf[0]
			if reused != tc.reuse {
				t.Fatalf("buffer reused: %v, want %v", reused, tc.reuse)
			}
		})
	}
}
