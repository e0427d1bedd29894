//go:build !cgo

package photo

import (
	"bytes"
	"image/jpeg"
)

// decodeJPEG without cgo decodes with the standard library at full size:
// slower than libjpeg-turbo's scaled decode, and it exists so that the
// packages which only sniff and check images (the services' logic, their
// tests) build with CGO_ENABLED=0. The shipped binaries use jpeg.go.
func decodeJPEG(data []byte, h *header, _ int, buf []byte) (pix []byte, w, ht int, err error) {
	m, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, 0, 0, errCorrupt(err)
	}
	b := m.Bounds()
	w, ht = b.Dx(), b.Dy()
	pix = buf[:0]
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := m.At(x, y).RGBA()
			pix = append(pix, byte(r>>8), byte(g>>8), byte(bl>>8))
		}
	}
	return pix, w, ht, nil
}
