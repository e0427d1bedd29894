package photo

import "unsafe"

// orient applies EXIF orientation o (1-8) to packed RGB pix of w x h and
// returns the upright pixels and size. Orientation 1 returns pix itself.
//
// Every orientation is an affine walk over the source: output pixel (x, y)
// is source pixel base + x*dx + y*dy. The walk goes in 64x64 output tiles
// so that the rotations, which read the source by columns, stay in cache.
func orient(pix []byte, w, h, o int) ([]byte, int, int) {
	var base, dx, dy int
	switch o {
	case 2: // mirrored left-right
		base, dx, dy = w-1, -1, w
	case 3: // rotated 180
		base, dx, dy = (h-1)*w+w-1, -1, -w
	case 4: // mirrored top-bottom
		base, dx, dy = (h-1)*w, 1, -w
	case 5: // transposed
		base, dx, dy = 0, w, 1
	case 6: // needs a 90 degree clockwise turn
		base, dx, dy = (h-1)*w, -w, 1
	case 7: // transversed
		base, dx, dy = (h-1)*w+w-1, -w, -1
	case 8: // needs a 90 degree counter-clockwise turn
		base, dx, dy = w-1, w, -1
	default:
		return pix, w, h
	}
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	if w <= 0 || h <= 0 || len(pix) != 3*w*h {
		panic("photo: orient: bad buffer")
	}
	// The copy loop below uses unsafe pointers: with bounds checks on
	// strided, partly backwards indices it ran three to five times slower,
	// which is most of the cost of turning a phone photo upright. It is
	// safe because the source index is affine in (x, y), so over the output
	// rectangle it is extreme at the corners, and all four corners are
	// checked here; the output index runs over exactly len(out).
	for _, c := range [4][2]int{{0, 0}, {ow - 1, 0}, {0, oh - 1}, {ow - 1, oh - 1}} {
		if s := base + c[0]*dx + c[1]*dy; s < 0 || s >= w*h {
			panic("photo: orient: index out of range")
		}
	}
	out := make([]byte, len(pix))
	src, dst := unsafe.Pointer(&pix[0]), unsafe.Pointer(&out[0])
	const tile = 64
	for ty := 0; ty < oh; ty += tile {
		for tx := 0; tx < ow; tx += tile {
			xe := min(tx+tile, ow)
			for y := ty; y < min(ty+tile, oh); y++ {
				s := 3 * (base + tx*dx + y*dy)
				d := 3 * (y*ow + tx)
				for x := tx; x < xe; x++ {
					*(*[3]byte)(unsafe.Add(dst, d)) = *(*[3]byte)(unsafe.Add(src, s))
					s += 3 * dx
					d += 3
				}
			}
		}
	}
	return out, ow, oh
}
