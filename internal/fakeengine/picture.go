package fakeengine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models/photo"
)

// Face is one face in a Picture. The zero value but ID is a good frontal,
// live face filling the middle of the picture.
type Face struct {
	// ID is the identity: faces with the same ID have the same embedding
	// (under one model). At most 64 bytes.
	ID string
	// Box is where the face is, in fractions of the picture's width and
	// height (0..1, kept to 1/255); the zero Box is the middle half.
	Box faceauth.Box
	// Quality is the face's clarity, 0..1 (kept to 1/255): the Face.Quality
	// of the analysis is it times the size term; 0 means 0.9. Below 0.25
	// an enrolment refuses the face ("face_low_quality").
	Quality float32
	// Liveness is the liveness score, 0..1 (kept to 1/255); 0 means 0.99.
	// Set 0.01 for a spoof.
	Liveness float32
	// Offset turns the embedding away from the identity's: its similarity
	// to Engine.Embedding(ID) is 1 - Offset (kept to 1/255), in a direction
	// that depends on the Picture's Variant.
	Offset float32
}

func (f Face) box() faceauth.Box {
	if f.Box == (faceauth.Box{}) {
		return faceauth.Box{X1: 0.25, Y1: 0.25, X2: 0.75, Y2: 0.75}
	}
	return f.Box
}

func (f Face) quality() float32 {
	if f.Quality == 0 {
		return 0.9
	}
	return f.Quality
}

func (f Face) liveness() float32 {
	if f.Liveness == 0 {
		return 0.99
	}
	return f.Liveness
}

// Picture is a fake photo: its faces, and a Variant that changes its bytes
// (another image id) but not what the faces are.
type Picture struct {
	Faces   []Face
	Variant uint16
	// Width and Height in pixels; 0 means 256. The width must be a
	// multiple of 32 (cells of Width/32 pixels; multiples of 256 keep the
	// cells on JPEG's 8x8 blocks, so any JPEG quality keeps them).
	Width, Height int
}

// Person is a picture of one good face of identity id.
func Person(id string, variant uint16) Picture {
	return Picture{Faces: []Face{{ID: id}}, Variant: variant}
}

// The grid: gridCols cells a row from the top-left corner, each holding one
// bit of magic, length, body and CRC-32 of the body; black is 1.
const (
	gridCols   = 32
	gridMagic  = 0xFACE
	maxIDBytes = 64
	black      = 16
	white      = 240
)

// encode returns the bytes the grid holds for p.
func (p Picture) encode() ([]byte, error) {
	body := []byte{1, byte(p.Variant >> 8), byte(p.Variant), byte(len(p.Faces))}
	if len(p.Faces) > 255 {
		return nil, fmt.Errorf("fakeengine: %d faces, at most 255", len(p.Faces))
	}
	for _, f := range p.Faces {
		if len(f.ID) > maxIDBytes {
			return nil, fmt.Errorf("fakeengine: face id %q is longer than %d bytes", f.ID, maxIDBytes)
		}
		b := f.box()
		for _, v := range []float32{b.X1, b.Y1, b.X2, b.Y2, f.Quality, f.Liveness, f.Offset} {
			if v < 0 || v > 1 {
				return nil, fmt.Errorf("fakeengine: face %q: %v is outside 0..1", f.ID, v)
			}
			body = append(body, byte(v*255+0.5))
		}
		if b.X2 <= b.X1 || b.Y2 <= b.Y1 {
			return nil, fmt.Errorf("fakeengine: face %q: empty box %+v", f.ID, b)
		}
		body = append(body, byte(len(f.ID)))
		body = append(body, f.ID...)
	}
	if len(body) > 0xFFFF {
		return nil, errors.New("fakeengine: picture too large to encode")
	}
	out := binary.BigEndian.AppendUint16(nil, gridMagic)
	out = binary.BigEndian.AppendUint16(out, uint16(len(body)))
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(body)), nil
}

// decode parses the body of a grid.
func decode(body []byte) (Picture, error) {
	bad := errors.New("fakeengine: malformed grid")
	if len(body) < 4 || body[0] != 1 {
		return Picture{}, bad
	}
	p := Picture{Variant: uint16(body[1])<<8 | uint16(body[2])}
	n, rest := int(body[3]), body[4:]
	unit := func(b byte) float32 { return float32(b) / 255 }
	for range n {
		if len(rest) < 8 || len(rest) < 8+int(rest[7]) {
			return Picture{}, bad
		}
		f := Face{
			Box:      faceauth.Box{X1: unit(rest[0]), Y1: unit(rest[1]), X2: unit(rest[2]), Y2: unit(rest[3])},
			Quality:  unit(rest[4]),
			Liveness: unit(rest[5]),
			Offset:   unit(rest[6]),
			ID:       string(rest[8 : 8+int(rest[7])]),
		}
		p.Faces = append(p.Faces, f)
		rest = rest[8+int(rest[7]):]
	}
	if len(rest) != 0 {
		return Picture{}, bad
	}
	return p, nil
}

// Image draws the picture: the grid of cells, then cells of grey noise
// seeded by the grid's content.
func (p Picture) Image() (*image.Gray, error) {
	w, h := p.Width, p.Height
	if w == 0 {
		w = 256
	}
	if h == 0 {
		h = 256
	}
	if w%gridCols != 0 {
		return nil, fmt.Errorf("fakeengine: width %d is not a multiple of %d", w, gridCols)
	}
	data, err := p.encode()
	if err != nil {
		return nil, err
	}
	cell := w / gridCols
	rows := h / cell
	if bits := 8 * len(data); bits > rows*gridCols {
		return nil, fmt.Errorf("fakeengine: %d bits do not fit a %dx%d picture (%d cells)", bits, w, h, rows*gridCols)
	}
	// The noise differs with every face and variant, so that no two
	// pictures share a run of bytes (the erasure tests grep for them).
	noise := rand.New(rand.NewPCG(uint64(crc32.ChecksumIEEE(data)), 0xFACE))
	img := image.NewGray(image.Rect(0, 0, w, h))
	for r := range (h + cell - 1) / cell {
		for c := range gridCols {
			i := r*gridCols + c
			var v uint8
			switch {
			case i < 8*len(data) && data[i/8]&(0x80>>(i%8)) != 0:
				v = black
			case i < 8*len(data):
				v = white
			default:
				v = uint8(96 + noise.IntN(64))
			}
			for y := r * cell; y < min(h, (r+1)*cell); y++ {
				for x := c * cell; x < (c+1)*cell; x++ {
					img.SetGray(x, y, color.Gray{Y: v})
				}
			}
		}
	}
	return img, nil
}

// EncodeJPEG returns the picture as a JPEG of quality q (1..100).
func (p Picture) EncodeJPEG(q int) ([]byte, error) {
	img, err := p.Image()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EncodePNG returns the picture as a PNG.
func (p Picture) EncodePNG() ([]byte, error) {
	img, err := p.Image()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// JPEG is EncodeJPEG at quality 90 for tests: it fails the test on error.
func JPEG(t testing.TB, p Picture) []byte {
	t.Helper()
	b, err := p.EncodeJPEG(90)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PNG is EncodePNG for tests: it fails the test on error.
func PNG(t testing.TB, p Picture) []byte {
	t.Helper()
	b, err := p.EncodePNG()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readGrid reads the picture a decoded image holds; an image without a
// valid grid is an error (and has no face).
func readGrid(im *photo.Image) (Picture, error) {
	cell := float64(im.W) / gridCols
	if cell < 1 {
		return Picture{}, errors.New("fakeengine: image too narrow for a grid")
	}
	rows := int(float64(im.H) / cell)
	bit := func(i int) (int, bool) {
		r, c := i/gridCols, i%gridCols
		if r >= rows {
			return 0, false
		}
		// The middle of the cell: away from the edges that JPEG blurs.
		x0, x1 := int(float64(c)*cell+cell/4), int(float64(c+1)*cell-cell/4)
		y0, y1 := int(float64(r)*cell+cell/4), int(float64(r+1)*cell-cell/4)
		x1, y1 = max(x1, x0+1), max(y1, y0+1)
		sum, n := 0, 0
		for y := y0; y < y1 && y < im.H; y++ {
			for x := x0; x < x1 && x < im.W; x++ {
				r, g, b := im.At(x, y)
				sum += int(r) + int(g) + int(b)
				n += 3
			}
		}
		if n == 0 {
			return 0, false
		}
		if sum/n < 128 {
			return 1, true
		}
		return 0, true
	}
	readBytes := func(from, n int) ([]byte, bool) {
		out := make([]byte, n)
		for i := range 8 * n {
			b, ok := bit(8*from + i)
			if !ok {
				return nil, false
			}
			out[i/8] |= byte(b << (7 - i%8))
		}
		return out, true
	}
	head, ok := readBytes(0, 4)
	if !ok || binary.BigEndian.Uint16(head) != gridMagic {
		return Picture{}, errors.New("fakeengine: no grid")
	}
	n := int(binary.BigEndian.Uint16(head[2:]))
	rest, ok := readBytes(4, n+4)
	if !ok {
		return Picture{}, errors.New("fakeengine: grid cut off")
	}
	body := rest[:n]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(rest[n:]) {
		return Picture{}, errors.New("fakeengine: grid checksum mismatch")
	}
	return decode(body)
}
