package photo

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/models/photo/internal/jpegenc"
)

func TestTIFFOrientation(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	withType := func(typ uint16, v uint32) []byte {
		b := exifTIFF(1, le)
		le.PutUint16(b[12:], typ)
		le.PutUint32(b[18:], v)
		return b
	}
	twoEntries := func() []byte { // another tag first, orientation second
		b := make([]byte, 8+2+24+4)
		copy(b, "MM\x00\x2a\x00\x00\x00\x08\x00\x02")
		be.PutUint16(b[10:], 0x010F) // Make
		be.PutUint16(b[22:], tagOrientation)
		be.PutUint16(b[24:], 3)
		be.PutUint32(b[26:], 1)
		be.PutUint16(b[30:], 8)
		return b
	}
	huge := exifTIFF(6, le)
	le.PutUint16(huge[8:], 0xFFFF) // entry count past the end
	far := exifTIFF(6, le)
	le.PutUint32(far[4:], 0xFFFFFFF0) // IFD offset past the end
	tests := []struct {
		name string
		b    []byte
		want int
	}{
		{"le 6", exifTIFF(6, le), 6},
		{"be 8", exifTIFF(8, be), 8},
		{"be 3 prefixed", append([]byte("Exif\x00\x00"), exifTIFF(3, be)...), 3},
		{"odd prefix byte", append([]byte("Exif\x00\xff"), exifTIFF(5, be)...), 5},
		{"second entry", twoEntries(), 8},
		{"LONG type", withType(4, 7), 7},
		{"BYTE type", withType(1, 6), 1},
		{"zero", exifTIFF(0, le), 1},
		{"nine", exifTIFF(9, le), 1},
		{"count past end", huge[:len(huge)-4], 6}, // the entry is still in range
		{"entry cut", exifTIFF(6, le)[:20], 1},
		{"ifd past end", far, 1},
		{"bad magic", append([]byte("II\x2b\x00"), exifTIFF(6, le)[4:]...), 1},
		{"bad order", append([]byte("XX"), exifTIFF(6, le)[2:]...), 1},
		{"empty", nil, 1},
		{"short", []byte("II*"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exifOrientation(tt.b); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// FuzzTIFFOrientation: the IFD reader never panics and returns 1..8.
func FuzzTIFFOrientation(f *testing.F) {
	for o := 1; o <= 8; o++ {
		f.Add(exifTIFF(o, binary.LittleEndian))
		f.Add(append([]byte("Exif\x00\x00"), exifTIFF(o, binary.BigEndian)...))
	}
	f.Add(encTIFF(blocks(16, 16), 6, binary.BigEndian))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := exifOrientation(b); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
		// A well-formed block built from the fuzzed value reads back.
		if len(b) > 0 {
			want := int(b[0]%8) + 1
			if got := tiffOrientation(exifTIFF(want, binary.BigEndian)); got != want {
				t.Fatalf("round trip %d -> %d", want, got)
			}
		}
	})
}

// FuzzDecode: for any input Decode returns an upright image or a
// *faceauth.Error of kind BadImage/TooLarge, never a recovered panic.
func FuzzDecode(f *testing.F) {
	p := blocks(48, 32)
	prog, err := jpegenc.Encode(p.pix, p.w, p.h, jpegenc.RGB, jpegenc.Options{Quality: 80, Progressive: true})
	if err != nil {
		f.Fatal(err)
	}
	seeds := [][]byte{
		withJPEGExif(encJPEG(f, p.rgba(), 80), 6, binary.LittleEndian),
		prog,
		withPNGExif(encPNG(f, p.rgba()), 8),
		encPNG(f, p.paletted()),
		encGIF(f, p.paletted()),
		encBMP(f, p.rgba()),
		encTIFF(p, 3, binary.BigEndian),
		encWebPExif(p, 5),
		encPNM(p, '6', 255),
		encPNM(p, '2', 1000),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// A small limit keeps each run cheap.
		im, err := Decode(b, Options{MaxPixels: 1 << 16, MinSide: -1})
		if err != nil {
			var fe *faceauth.Error
			if !errors.As(err, &fe) || (fe.Kind != faceauth.KindBadImage && fe.Kind != faceauth.KindTooLarge) {
				t.Fatalf("error %v is not a BadImage/TooLarge *faceauth.Error", err)
			}
			var pe *panicError
			if errors.As(err, &pe) {
				t.Fatalf("decoder panicked: %v", err)
			}
			return
		}
		if im.W <= 0 || im.H <= 0 || len(im.Pix) != 3*im.W*im.H || im.Orientation < 1 || im.Orientation > 8 {
			t.Fatalf("bad image %dx%d, %d bytes, orientation %d", im.W, im.H, len(im.Pix), im.Orientation)
		}
	})
}
