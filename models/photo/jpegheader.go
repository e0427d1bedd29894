package photo

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// jpegHeader is what the marker walk finds before the first scan.
type jpegHeader struct {
	sof   byte // the SOFn marker
	comps int  // number of components
}

// readJPEGHeader walks the JPEG markers up to the first scan (SOS): the
// frame header (SOFn) gives the size, an APP1 "Exif" segment the
// orientation. Only segment headers are read. Formats libjpeg-turbo cannot
// decode (12-bit, lossless, hierarchical) are refused here.
func readJPEGHeader(b []byte, h *header) error {
	var exif []byte
	haveSOF := false
	p := 2 // after SOI
	for {
		// Markers are 0xFF, any number of 0xFF fill bytes, then the code.
		// Stray bytes before a marker are tolerated, as libjpeg does.
		for p < len(b) && b[p] != 0xFF {
			p++
		}
		for p < len(b) && b[p] == 0xFF {
			p++
		}
		if p >= len(b) {
			return errTruncated(errors.New("jpeg: data ends before the first scan"))
		}
		m := b[p]
		p++
		switch {
		case m == 0xD8, m == 0x01, m >= 0xD0 && m <= 0xD7: // SOI, TEM, RSTn: no length
			continue
		case m == 0xD9: // EOI
			return errCorrupt(errors.New("jpeg: end of image before any scan"))
		}
		if p+2 > len(b) {
			return errTruncated(errors.New("jpeg: data ends in a marker"))
		}
		l := int(binary.BigEndian.Uint16(b[p:]))
		if l < 2 {
			return errCorrupt(fmt.Errorf("jpeg: marker 0x%02X has length %d", m, l))
		}
		if m == 0xDA { // SOS: the header is over
			if !haveSOF {
				return errCorrupt(errors.New("jpeg: scan before frame header"))
			}
			if exif != nil {
				h.orient = exifOrientation(exif)
			}
			return nil
		}
		if p+l > len(b) {
			return errTruncated(fmt.Errorf("jpeg: data ends in marker 0x%02X", m))
		}
		seg := b[p+2 : p+l]
		p += l
		switch m {
		case 0xE1:
			if exif == nil && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
				exif = seg
			}
		case 0xC0, 0xC1, 0xC2, 0xC9, 0xCA: // baseline, extended, progressive; Huffman or arithmetic
			if haveSOF {
				return errCorrupt(errors.New("jpeg: two frame headers"))
			}
			haveSOF = true
			if len(seg) < 6 {
				return errCorrupt(errors.New("jpeg: short frame header"))
			}
			prec, nc := seg[0], int(seg[5])
			h.h = int(binary.BigEndian.Uint16(seg[1:]))
			h.w = int(binary.BigEndian.Uint16(seg[3:]))
			h.jpeg = jpegHeader{sof: m, comps: nc}
			if len(seg) < 6+3*nc {
				return errCorrupt(errors.New("jpeg: short frame header"))
			}
			if prec != 8 {
				return errUnsupportedMsg(fmt.Errorf("jpeg: %d-bit samples", prec),
					"This JPEG uses 12- or 16-bit samples, which are not supported; please upload an ordinary 8-bit JPEG.")
			}
			if nc != 1 && nc != 3 && nc != 4 {
				return errUnsupported(fmt.Errorf("jpeg: %d components", nc))
			}
		case 0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF:
			return errUnsupportedMsg(fmt.Errorf("jpeg: SOF marker 0x%02X", m),
				"Lossless and hierarchical JPEG are not supported; please upload an ordinary JPEG.")
		}
	}
}

// jpegScale returns the smallest M in 1..8 for which libjpeg-turbo's
// M/8 scaled decode still has a longest side of at least target, and that
// scaled size (libjpeg rounds up).
func jpegScale(w, h, target int) (m, sw, sh int) {
	m = 8
	if target > 0 {
		long := max(w, h)
		for k := 1; k < 8; k++ {
			if ceilDiv(long*k, 8) >= target {
				m = k
				break
			}
		}
	}
	return m, ceilDiv(w*m, 8), ceilDiv(h*m, 8)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
