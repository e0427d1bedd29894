package photo

// orient applies EXIF orientation o (1-8) to packed RGB pix of w x h and
// returns the upright pixels and size. Orientation 1 returns pix itself.
//
// Every orientation is a linear walk over the source: output pixel (x, y)
// is source pixel base + x*dx + y*dy. The walk goes in 64x64 output tiles
// so that the rotations, which read the source by columns, stay in cache.
func orient(pix []byte, w, h, o int) ([]byte, int, int) {
	var base, dx, dy int
	ow, oh := w, h
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
	if o >= 5 {
		ow, oh = h, w
	}
	out := make([]byte, len(pix))
	const tile = 64
	for ty := 0; ty < oh; ty += tile {
		for tx := 0; tx < ow; tx += tile {
			xe := min(tx+tile, ow)
			for y := ty; y < min(ty+tile, oh); y++ {
				s := 3 * (base + tx*dx + y*dy)
				row := out[3*(y*ow+tx) : 3*(y*ow+xe)]
				for d := 0; d+3 <= len(row); d += 3 {
					// Three-byte subslices: one bounds check each.
					o, p := row[d:d+3:d+3], pix[s:s+3:s+3]
					o[0], o[1], o[2] = p[0], p[1], p[2]
					s += 3 * dx
				}
			}
		}
	}
	return out, ow, oh
}
