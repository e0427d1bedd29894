package photo

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// pnmHeader is a Netpbm header: P2/P5 greymaps (PGM), P3/P6 pixmaps (PPM).
type pnmHeader struct {
	kind   byte // '2', '3', '5' or '6'
	maxval int
	off    int // first byte of the raster
}

func isPNMSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// pnmScanner reads the whitespace-separated decimal numbers of a Netpbm
// header or ASCII raster; '#' starts a comment up to the end of the line.
type pnmScanner struct {
	b []byte
	p int
}

var errPNMEnd = errors.New("pnm: data ends early")

// next returns the next number. Numbers above limit are an error.
func (s *pnmScanner) next(limit int) (int, error) {
	for s.p < len(s.b) {
		c := s.b[s.p]
		if c == '#' {
			for s.p < len(s.b) && s.b[s.p] != '\n' && s.b[s.p] != '\r' {
				s.p++
			}
			continue
		}
		if !isPNMSpace(c) {
			break
		}
		s.p++
	}
	if s.p >= len(s.b) {
		return 0, errPNMEnd
	}
	v, digits := 0, 0
	for ; s.p < len(s.b) && s.b[s.p] >= '0' && s.b[s.p] <= '9'; s.p++ {
		v = v*10 + int(s.b[s.p]-'0')
		if v > limit {
			return 0, fmt.Errorf("pnm: number above %d", limit)
		}
		digits++
	}
	if digits == 0 || (s.p < len(s.b) && !isPNMSpace(s.b[s.p]) && s.b[s.p] != '#') {
		return 0, fmt.Errorf("pnm: bad character at byte %d", s.p)
	}
	return v, nil
}

// pnmMaxSide bounds the sides a header may declare; anything bigger would
// overflow the pixel-count check, and is far over any limit anyway.
const pnmMaxSide = 1 << 30

func readPNMHeader(b []byte, h *header) error {
	s := pnmScanner{b: b, p: 2}
	var v [3]int
	limits := [3]int{pnmMaxSide, pnmMaxSide, 65535}
	for i := range v {
		n, err := s.next(limits[i])
		if err == errPNMEnd {
			return errTruncated(err)
		}
		if err != nil {
			return errCorrupt(err)
		}
		v[i] = n
	}
	if v[2] == 0 {
		return errCorrupt(errors.New("pnm: maxval 0"))
	}
	// Exactly one whitespace byte separates the header from the raster.
	if s.p >= len(b) {
		return errTruncated(errPNMEnd)
	}
	h.w, h.h = v[0], v[1]
	h.pnm = pnmHeader{kind: b[1], maxval: v[2], off: s.p + 1}
	return nil
}

// decodePNM decodes the raster into packed RGB, scaling samples to 0-255.
// The data's length is checked against the declared size before anything
// is allocated.
func decodePNM(b []byte, h *header) ([]byte, int, int, error) {
	p := h.pnm
	ch := 1
	if p.kind == '3' || p.kind == '6' {
		ch = 3
	}
	n := h.w * h.h * ch // samples; fits: the pixel limit was checked
	raster := b[min(p.off, len(b)):]

	// lut maps a sample to 0-255 with rounding; samples above maxval
	// (invalid, but written by some tools) saturate.
	lut := make([]byte, 65536)
	for i := range lut {
		lut[i] = byte((min(i, p.maxval)*255 + p.maxval/2) / p.maxval)
	}
	samples := make([]byte, n)
	switch p.kind {
	case '5', '6':
		if p.maxval < 256 {
			if len(raster) < n {
				return nil, 0, 0, errTruncated(errPNMEnd)
			}
			for i, c := range raster[:n] {
				samples[i] = lut[c]
			}
		} else {
			if len(raster) < 2*n {
				return nil, 0, 0, errTruncated(errPNMEnd)
			}
			for i := range samples {
				samples[i] = lut[binary.BigEndian.Uint16(raster[2*i:])]
			}
		}
	default: // ASCII: each sample takes a digit and a separator
		if len(raster) < 2*n-1 {
			return nil, 0, 0, errTruncated(errPNMEnd)
		}
		s := pnmScanner{b: b, p: p.off - 1}
		for i := range samples {
			v, err := s.next(65535)
			if err == errPNMEnd {
				return nil, 0, 0, errTruncated(err)
			}
			if err != nil {
				return nil, 0, 0, errCorrupt(err)
			}
			samples[i] = lut[v]
		}
	}
	if ch == 3 {
		return samples, h.w, h.h, nil
	}
	return grayToRGB(samples), h.w, h.h, nil
}

func grayToRGB(g []byte) []byte {
	out := make([]byte, 3*len(g))
	for i, v := range g {
		out[3*i], out[3*i+1], out[3*i+2] = v, v, v
	}
	return out
}
