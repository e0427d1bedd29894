package photo

// Synthetic test images and hand-built containers: every format and every
// EXIF placement the tests need, generated from code so the tests run on a
// fresh clone.

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strconv"
	"testing"

	"golang.org/x/image/bmp"
)

// pic is a packed RGB test picture.
type pic struct {
	w, h int
	pix  []byte
}

func (p pic) at(x, y int) [3]byte {
	i := 3 * (y*p.w + x)
	return [3]byte{p.pix[i], p.pix[i+1], p.pix[i+2]}
}

func (p pic) set(x, y int, c [3]byte) {
	i := 3 * (y*p.w + x)
	p.pix[i], p.pix[i+1], p.pix[i+2] = c[0], c[1], c[2]
}

func newPic(w, h int) pic { return pic{w, h, make([]byte, 3*w*h)} }

// The eight colours of the block pattern: every channel takes one of two
// values, so the pattern fits a GIF palette and the two-symbol prefix
// codes of the tiny WebP encoder below.
var (
	twoR = [2]byte{40, 220}
	twoG = [2]byte{30, 200}
	twoB = [2]byte{60, 250}
)

// blocks returns a w x h picture of 16x16 blocks in eight colours with no
// symmetry, so any wrong flip or turn shows. 16-pixel blocks keep JPEG
// (4:2:0, 16x16 MCUs) nearly exact.
func blocks(w, h int) pic {
	p := newPic(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			bx, by := x/16, y/16
			k := (bx*5 + by*3 + bx*by + bx/2) % 8
			p.set(x, y, [3]byte{twoR[k&1], twoG[k>>1&1], twoB[k>>2&1]})
		}
	}
	return p
}

// gray returns the picture's luma as a greyscale picture (R=G=B).
func (p pic) gray() pic {
	q := newPic(p.w, p.h)
	for i := 0; i < len(p.pix); i += 3 {
		y := color.GrayModel.Convert(color.RGBA{p.pix[i], p.pix[i+1], p.pix[i+2], 255}).(color.Gray).Y
		q.pix[i], q.pix[i+1], q.pix[i+2] = y, y, y
	}
	return q
}

func (p pic) rgba() *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, p.w, p.h))
	for y := 0; y < p.h; y++ {
		for x := 0; x < p.w; x++ {
			c := p.at(x, y)
			m.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 255})
		}
	}
	return m
}

func (p pic) grayImage() *image.Gray {
	m := image.NewGray(image.Rect(0, 0, p.w, p.h))
	for y := 0; y < p.h; y++ {
		for x := 0; x < p.w; x++ {
			m.Pix[y*m.Stride+x] = p.at(x, y)[0]
		}
	}
	return m
}

func (p pic) paletted() *image.Paletted {
	var pal color.Palette
	for k := 0; k < 8; k++ {
		pal = append(pal, color.RGBA{twoR[k&1], twoG[k>>1&1], twoB[k>>2&1], 255})
	}
	m := image.NewPaletted(image.Rect(0, 0, p.w, p.h), pal)
	for y := 0; y < p.h; y++ {
		for x := 0; x < p.w; x++ {
			c := p.at(x, y)
			m.SetColorIndex(x, y, uint8(pal.Index(color.RGBA{c[0], c[1], c[2], 255})))
		}
	}
	return m
}

// --- geometric transforms, written independently of orient() ---

func transform(p pic, f func(x, y int) (int, int), w, h int) pic {
	q := newPic(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			sx, sy := f(x, y)
			q.set(x, y, p.at(sx, sy))
		}
	}
	return q
}

func flipH(p pic) pic {
	return transform(p, func(x, y int) (int, int) { return p.w - 1 - x, y }, p.w, p.h)
}
func flipV(p pic) pic {
	return transform(p, func(x, y int) (int, int) { return x, p.h - 1 - y }, p.w, p.h)
}
func transpose(p pic) pic {
	return transform(p, func(x, y int) (int, int) { return y, x }, p.h, p.w)
}

// rotCW turns the picture 90 degrees clockwise: its left column becomes
// the top row.
func rotCW(p pic) pic {
	return transform(p, func(x, y int) (int, int) { return y, p.h - 1 - x }, p.h, p.w)
}
func rotCCW(p pic) pic { return rotCW(rotCW(rotCW(p))) }

// stored returns the pixels a camera writes for an upright picture u when
// it records EXIF orientation o: the inverse of the transform o names.
// Orientation 6 says "turn clockwise to view", so the stored pixels are u
// turned counter-clockwise, and so on.
func stored(u pic, o int) pic {
	switch o {
	case 2:
		return flipH(u)
	case 3:
		return flipH(flipV(u))
	case 4:
		return flipV(u)
	case 5:
		return transpose(u)
	case 6:
		return rotCCW(u)
	case 7:
		return flipH(flipV(transpose(u))) // the anti-diagonal mirror
	case 8:
		return rotCW(u)
	}
	return u
}

// --- encoders ---

func encJPEG(t testing.TB, m image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encPNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encGIF(t testing.TB, m *image.Paletted) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encBMP(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := bmp.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encPNM writes P2, P3, P5 or P6 with the given maxval, scaling samples.
func encPNM(p pic, kind byte, maxval int) []byte {
	var b bytes.Buffer
	b.WriteString("P" + string(kind) + "\n# a comment\n")
	b.WriteString(strconv.Itoa(p.w) + " " + strconv.Itoa(p.h) + "\n" + strconv.Itoa(maxval) + "\n")
	ch := 3
	if kind == '2' || kind == '5' {
		ch = 1
	}
	for i := 0; i < len(p.pix); i += 3 {
		for c := 0; c < ch; c++ {
			v := (int(p.pix[i+c])*maxval + 127) / 255
			switch {
			case kind == '2' || kind == '3':
				b.WriteString(strconv.Itoa(v) + " ")
			case maxval > 255:
				b.Write([]byte{byte(v >> 8), byte(v)})
			default:
				b.WriteByte(byte(v))
			}
		}
	}
	return b.Bytes()
}

// exifTIFF builds the TIFF structure of an EXIF block: IFD0 holding only
// the Orientation tag.
func exifTIFF(o int, bo binary.ByteOrder) []byte {
	b := make([]byte, 8+2+12+4)
	if bo == binary.LittleEndian {
		copy(b, "II")
	} else {
		copy(b, "MM")
	}
	bo.PutUint16(b[2:], 42)
	bo.PutUint32(b[4:], 8)
	bo.PutUint16(b[8:], 1)
	e := b[10:]
	bo.PutUint16(e[0:], tagOrientation)
	bo.PutUint16(e[2:], 3) // SHORT
	bo.PutUint32(e[4:], 1)
	bo.PutUint16(e[8:], uint16(o))
	return b
}

// withJPEGExif inserts an APP1 Exif segment right after SOI.
func withJPEGExif(j []byte, o int, bo binary.ByteOrder) []byte {
	payload := append([]byte("Exif\x00\x00"), exifTIFF(o, bo)...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(2+len(payload)))
	seg = append(seg, payload...)
	out := append([]byte{}, j[:2]...)
	out = append(out, seg...)
	return append(out, j[2:]...)
}

func pngChunk(typ string, data []byte) []byte {
	c := make([]byte, 8, 12+len(data))
	binary.BigEndian.PutUint32(c, uint32(len(data)))
	copy(c[4:], typ)
	c = append(c, data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}

// withPNGExif inserts an eXIf chunk after IHDR.
func withPNGExif(p []byte, o int) []byte {
	const afterIHDR = 8 + 12 + 13
	out := append([]byte{}, p[:afterIHDR]...)
	out = append(out, pngChunk("eXIf", exifTIFF(o, binary.BigEndian))...)
	return append(out, p[afterIHDR:]...)
}

// encTIFF writes an uncompressed 8-bit RGB TIFF with an Orientation tag (0
// leaves it out).
func encTIFF(p pic, o int, bo binary.ByteOrder) []byte {
	type entry struct {
		tag, typ uint16
		val      uint32
	}
	const nEntries = 10
	bpsOff := uint32(8 + 2 + nEntries*12 + 4)
	pixOff := bpsOff + 6
	entries := []entry{
		{256, 4, uint32(p.w)},
		{257, 4, uint32(p.h)},
		{258, 3, bpsOff}, // 3 SHORTs, out of line
		{259, 3, 1},      // no compression
		{262, 3, 2},      // RGB
		{273, 4, pixOff},
		{274, 3, uint32(o)},
		{277, 3, 3},
		{278, 4, uint32(p.h)},
		{279, 4, uint32(len(p.pix))},
	}
	b := make([]byte, pixOff)
	if bo == binary.LittleEndian {
		copy(b, "II")
	} else {
		copy(b, "MM")
	}
	bo.PutUint16(b[2:], 42)
	bo.PutUint32(b[4:], 8)
	n := 0
	for _, e := range entries {
		if e.tag == tagOrientation && o == 0 {
			continue
		}
		d := b[10+12*n:]
		bo.PutUint16(d, e.tag)
		bo.PutUint16(d[2:], e.typ)
		count := uint32(1)
		if e.tag == 258 {
			count = 3
		}
		bo.PutUint32(d[4:], count)
		if e.typ == 3 && count == 1 {
			bo.PutUint16(d[8:], uint16(e.val))
		} else {
			bo.PutUint32(d[8:], e.val)
		}
		n++
	}
	bo.PutUint16(b[8:], uint16(n))
	for i := 0; i < 3; i++ {
		bo.PutUint16(b[bpsOff+uint32(2*i):], 8)
	}
	return append(b, p.pix...)
}

// bitWriter writes the LSB-first bit stream of WebP lossless (VP8L).
type bitWriter struct {
	b    []byte
	nbit uint
}

func (w *bitWriter) put(v uint32, n uint) {
	for i := uint(0); i < n; i++ {
		if w.nbit%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (w.nbit % 8)
		w.nbit++
	}
}

// encVP8L encodes a picture whose channels each take at most two values
// (like blocks) as WebP lossless: no transforms, no colour cache, and
// "simple" one- or two-symbol prefix codes, so each channel costs one bit
// per pixel. Tiny, but a real VP8L stream.
func encVP8L(p pic) []byte {
	var w bitWriter
	w.put(0x2f, 8)
	w.put(uint32(p.w-1), 14)
	w.put(uint32(p.h-1), 14)
	w.put(0, 1) // alpha unused
	w.put(0, 3) // version
	w.put(0, 1) // no transform
	w.put(0, 1) // no colour cache
	w.put(0, 1) // no meta prefix codes
	// The values each channel uses, sorted: canonical codes give the smaller
	// symbol the bit 0.
	var vals [3][]byte // R, G, B
	for i := 0; i < len(p.pix); i += 3 {
		for c := 0; c < 3; c++ {
			v := p.pix[i+c]
			switch {
			case len(vals[c]) == 0:
				vals[c] = []byte{v}
			case len(vals[c]) == 1 && vals[c][0] != v:
				vals[c] = append(vals[c], v)
				if vals[c][0] > vals[c][1] {
					vals[c][0], vals[c][1] = v, vals[c][0]
				}
			}
		}
	}
	simple := func(syms []byte) {
		w.put(1, 1) // simple code
		w.put(uint32(len(syms)-1), 1)
		w.put(1, 1) // 8-bit first symbol
		for _, s := range syms {
			w.put(uint32(s), 8)
		}
	}
	simple(vals[1])     // green (and length prefixes, unused)
	simple(vals[0])     // red
	simple(vals[2])     // blue
	simple([]byte{255}) // alpha
	w.put(1, 1)         // distance: simple code,
	w.put(0, 1)         // one symbol,
	w.put(0, 1)         // 1-bit wide,
	w.put(0, 1)         // symbol 0
	bit := func(c int, v byte) {
		if len(vals[c]) == 2 {
			if v == vals[c][1] {
				w.put(1, 1)
			} else {
				w.put(0, 1)
			}
		}
	}
	for i := 0; i < len(p.pix); i += 3 {
		bit(1, p.pix[i+1])
		bit(0, p.pix[i])
		bit(2, p.pix[i+2])
	}
	return w.b
}

func riffChunk(fourcc string, data []byte) []byte {
	c := make([]byte, 8, 9+len(data))
	copy(c, fourcc)
	binary.LittleEndian.PutUint32(c[4:], uint32(len(data)))
	c = append(c, data...)
	if len(data)%2 == 1 {
		c = append(c, 0)
	}
	return c
}

func riffWebP(chunks ...[]byte) []byte {
	body := []byte("WEBP")
	for _, c := range chunks {
		body = append(body, c...)
	}
	out := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(len(body)))
	return append(out, body...)
}

func vp8x(flags byte, w, h int) []byte {
	d := make([]byte, 10)
	d[0] = flags
	d[4], d[5], d[6] = byte(w-1), byte((w-1)>>8), byte((w-1)>>16)
	d[7], d[8], d[9] = byte(h-1), byte((h-1)>>8), byte((h-1)>>16)
	return riffChunk("VP8X", d)
}

// encWebP is a simple-format lossless WebP.
func encWebP(p pic) []byte { return riffWebP(riffChunk("VP8L", encVP8L(p))) }

// encWebPExif is an extended-format lossless WebP with an EXIF chunk.
func encWebPExif(p pic, o int) []byte {
	return riffWebP(vp8x(0x08, p.w, p.h), riffChunk("VP8L", encVP8L(p)),
		riffChunk("EXIF", exifTIFF(o, binary.LittleEndian)))
}
