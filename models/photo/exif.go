package photo

import (
	"bytes"
	"encoding/binary"
)

// tagOrientation is the TIFF/EXIF Orientation tag.
const tagOrientation = 0x0112

// tiffOrientation returns the Orientation tag of the first IFD (IFD0) of a
// TIFF structure: an EXIF payload after its "Exif\0\0" prefix, or a whole
// TIFF file. It returns 1 when the tag is absent, out of range or the
// structure is malformed: a bad EXIF block must not fail an otherwise good
// photo. Every read is bounds-checked, and only IFD0 is read.
func tiffOrientation(b []byte) int {
	if len(b) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(b[2:]) != 42 {
		return 1
	}
	// uint64 arithmetic: offsets are attacker-chosen 32-bit values.
	n := uint64(len(b))
	ifd := uint64(bo.Uint32(b[4:]))
	if ifd+2 > n {
		return 1
	}
	count := uint64(bo.Uint16(b[ifd:]))
	for i := uint64(0); i < count; i++ {
		e := ifd + 2 + 12*i
		if e+12 > n {
			return 1
		}
		if bo.Uint16(b[e:]) != tagOrientation {
			continue
		}
		var v uint32
		switch typ := bo.Uint16(b[e+2:]); typ {
		case 3: // SHORT, the only type the standard allows
			v = uint32(bo.Uint16(b[e+8:]))
		case 4: // LONG, written by a few careless tools
			v = bo.Uint32(b[e+8:])
		default:
			return 1
		}
		if bo.Uint32(b[e+4:]) == 0 || v < 1 || v > 8 {
			return 1
		}
		return int(v)
	}
	return 1
}

var exifPrefix = []byte("Exif\x00")

// exifOrientation reads the orientation from an EXIF payload as found in a
// JPEG APP1 segment, a PNG eXIf chunk or a WebP EXIF chunk: a TIFF
// structure, in JPEG always and elsewhere sometimes preceded by "Exif\0\0".
func exifOrientation(b []byte) int {
	if bytes.HasPrefix(b, exifPrefix) {
		b = b[len(exifPrefix):]
		// The second NUL of the prefix; some writers put another byte there.
		if len(b) > 0 && b[0] != 'I' && b[0] != 'M' {
			b = b[1:]
		}
	}
	return tiffOrientation(b)
}

// pngChunks calls f with the type and data of each complete PNG chunk
// after the signature until f returns false. Only chunk headers are read;
// CRCs are left to the decoder.
func pngChunks(b []byte, f func(typ string, data []byte) bool) {
	p := uint64(8)
	n := uint64(len(b))
	for p+8 <= n {
		l := uint64(binary.BigEndian.Uint32(b[p:]))
		end := p + 8 + l
		if end+4 > n {
			return
		}
		if !f(string(b[p+4:p+8]), b[p+8:end]) {
			return
		}
		p = end + 4 // CRC
	}
}

// pngOrientation finds the orientation in an eXIf chunk.
func pngOrientation(b []byte) int {
	o := 1
	pngChunks(b, func(typ string, data []byte) bool {
		if typ == "eXIf" {
			o = exifOrientation(data)
			return false
		}
		return typ != "IEND"
	})
	return o
}

// webpChunks walks the RIFF chunks of a WebP file and reports the VP8X
// flags (0 without VP8X) and the orientation from an EXIF chunk.
func webpChunks(b []byte) (flags byte, orient int) {
	orient = 1
	p := uint64(12)
	n := uint64(len(b))
	for p+8 <= n {
		l := uint64(binary.LittleEndian.Uint32(b[p+4:]))
		end := p + 8 + l
		if end > n {
			break
		}
		switch string(b[p : p+4]) {
		case "VP8X":
			if l >= 1 {
				flags = b[p+8]
			}
		case "EXIF":
			orient = exifOrientation(b[p+8 : end])
		}
		p = end + l&1 // chunks are padded to an even size
	}
	return flags, orient
}
