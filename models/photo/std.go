package photo

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// The formats decoded with Go's decoders: header first, then the pixels.
var stdCodecs = map[string]struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}{
	FormatPNG:  {png.DecodeConfig, png.Decode},
	FormatGIF:  {gif.DecodeConfig, gif.Decode}, // the first frame only
	FormatBMP:  {bmp.DecodeConfig, bmp.Decode},
	FormatTIFF: {tiff.DecodeConfig, tiff.Decode},
	FormatWebP: {webp.DecodeConfig, webp.Decode},
}

func readStdHeader(b []byte, h *header) error {
	c := stdCodecs[h.format]
	cfg, err := c.config(bytes.NewReader(b))
	if err != nil {
		return stdError(err)
	}
	h.w, h.h = cfg.Width, cfg.Height
	h.decoded = bytesPerPixel(cfg.ColorModel)
	switch h.format {
	case FormatPNG:
		h.orient = pngOrientation(b)
	case FormatTIFF:
		h.orient = tiffOrientation(b)
	case FormatWebP:
		flags, o := webpChunks(b)
		if flags&0x02 != 0 {
			return errUnsupportedMsg(errors.New("webp: animation"),
				"Animated WebP images are not supported; please upload a still photo.")
		}
		h.orient = o
	}
	return nil
}

// bytesPerPixel is how many bytes a pixel of a decoded image of colour
// model m takes: 8 for 16-bit colour (PNG, TIFF), 4 at most otherwise.
func bytesPerPixel(m color.Model) int64 {
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	switch m {
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	case color.Gray16Model:
		return 2
	case color.GrayModel:
		return 1
	}
	return 4
}

// decodeStd decodes with Go's decoder and converts to packed RGB.
func decodeStd(b []byte, h *header, maxPixels int64) ([]byte, int, int, error) {
	m, err := stdCodecs[h.format].decode(bytes.NewReader(b))
	if err != nil {
		if !complete(h.format, b) {
			// Go's PNG and GIF decoders report a cut-off file as bad data.
			return nil, 0, 0, errTruncated(err)
		}
		return nil, 0, 0, stdError(err)
	}
	r := m.Bounds()
	screen := image.Rect(0, 0, h.w, h.h)
	if h.format == FormatGIF && r != screen && r.In(screen) && !r.Empty() {
		// A GIF frame may cover only part of the logical screen; the rest
		// shows the page behind it, here white.
		return onWhite(toRGB(m), r, h.w, h.h), h.w, h.h, nil
	}
	// Trust the header only so far: the pixels must be what it promised.
	if int64(r.Dx())*int64(r.Dy()) > maxPixels || r.Size() != screen.Size() {
		return nil, 0, 0, errCorrupt(fmt.Errorf("%s: header says %dx%d, pixels are %v",
			h.format, h.w, h.h, r.Size()))
	}
	return toRGB(m), r.Dx(), r.Dy(), nil
}

// onWhite places packed RGB pix covering r onto a white w x h canvas.
func onWhite(pix []byte, r image.Rectangle, w, h int) []byte {
	out := bytes.Repeat([]byte{255}, 3*w*h)
	rw := 3 * r.Dx()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		copy(out[3*(y*w+r.Min.X):], pix[(y-r.Min.Y)*rw:][:rw])
	}
	return out
}

// stdError classifies an error from Go's image decoders.
func stdError(err error) error {
	var pngU png.UnsupportedError
	var tiffU tiff.UnsupportedError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errTruncated(err)
	case errors.As(err, &pngU), errors.As(err, &tiffU), errors.Is(err, bmp.ErrUnsupported):
		return errUnsupported(err)
	}
	return errCorrupt(err)
}

// toRGB converts any decoded image to packed RGB, compositing alpha onto
// white. The common concrete types take fast paths.
func toRGB(m image.Image) []byte {
	r := m.Bounds()
	w, h := r.Dx(), r.Dy()
	out := make([]byte, 3*w*h)
	o := 0
	switch m := m.(type) {
	case *image.Gray:
		for y := r.Min.Y; y < r.Max.Y; y++ {
			row := m.Pix[m.PixOffset(r.Min.X, y):][:w]
			for _, v := range row {
				out[o], out[o+1], out[o+2] = v, v, v
				o += 3
			}
		}
	case *image.Gray16:
		for y := r.Min.Y; y < r.Max.Y; y++ {
			row := m.Pix[m.PixOffset(r.Min.X, y):][:2*w]
			for x := 0; x < w; x++ {
				v := row[2*x] // big-endian: the high byte
				out[o], out[o+1], out[o+2] = v, v, v
				o += 3
			}
		}
	case *image.NRGBA:
		for y := r.Min.Y; y < r.Max.Y; y++ {
			row := m.Pix[m.PixOffset(r.Min.X, y):][:4*w]
			for x := 0; x < 4*w; x += 4 {
				a := uint32(row[x+3])
				out[o] = overWhite(uint32(row[x]), a)
				out[o+1] = overWhite(uint32(row[x+1]), a)
				out[o+2] = overWhite(uint32(row[x+2]), a)
				o += 3
			}
		}
	case *image.RGBA: // premultiplied: white shows through as 255-a
		for y := r.Min.Y; y < r.Max.Y; y++ {
			row := m.Pix[m.PixOffset(r.Min.X, y):][:4*w]
			for x := 0; x < 4*w; x += 4 {
				t := 255 - int(row[x+3])
				// min: invalid (unpremultiplied) input must not wrap.
				out[o] = byte(min(int(row[x])+t, 255))
				out[o+1] = byte(min(int(row[x+1])+t, 255))
				out[o+2] = byte(min(int(row[x+2])+t, 255))
				o += 3
			}
		}
	case *image.Paletted:
		var lut [256][3]byte
		for i := range lut {
			c := color.Color(color.Black) // out-of-palette indices are black
			if i < len(m.Palette) {
				c = m.Palette[i]
			}
			lut[i] = colorOverWhite(c)
		}
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for _, v := range m.Pix[m.PixOffset(r.Min.X, y):][:w] {
				c := &lut[v]
				out[o], out[o+1], out[o+2] = c[0], c[1], c[2]
				o += 3
			}
		}
	case *image.YCbCr:
		ycbcrToRGB(out, m, nil)
	case *image.NYCbCrA:
		ycbcrToRGB(out, &m.YCbCr, m)
	default: // 16-bit PNG, CMYK TIFF, ...: rare, so the generic path
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				c := colorOverWhite(m.At(x, y))
				out[o], out[o+1], out[o+2] = c[0], c[1], c[2]
				o += 3
			}
		}
	}
	return out
}

// overWhite composites a non-premultiplied 8-bit channel value c with
// alpha a onto white, rounding.
func overWhite(c, a uint32) byte {
	return byte((c*a + 255*(255-a) + 127) / 255)
}

func colorOverWhite(c color.Color) [3]byte {
	r, g, b, a := c.RGBA() // 16-bit, premultiplied
	t := 0xffff - a
	return [3]byte{byte((r + t) >> 8), byte((g + t) >> 8), byte((b + t) >> 8)}
}

// ycbcrToRGB converts a YCbCr image (any subsampling) to packed RGB; with
// alpha non-nil its A plane is composited onto white.
func ycbcrToRGB(out []byte, m *image.YCbCr, alpha *image.NYCbCrA) {
	r := m.Rect
	var sx, sy uint // chroma subsampling shifts
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		sx = 1
	case image.YCbCrSubsampleRatio420:
		sx, sy = 1, 1
	case image.YCbCrSubsampleRatio440:
		sy = 1
	case image.YCbCrSubsampleRatio411:
		sx = 2
	case image.YCbCrSubsampleRatio410:
		sx, sy = 2, 1
	}
	o := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		yrow := m.Y[(y-r.Min.Y)*m.YStride:]
		crow := (y>>sy - r.Min.Y>>sy) * m.CStride
		for x := r.Min.X; x < r.Max.X; x++ {
			ci := crow + (x>>sx - r.Min.X>>sx)
			cr, cg, cb := color.YCbCrToRGB(yrow[x-r.Min.X], m.Cb[ci], m.Cr[ci])
			if alpha != nil {
				a := uint32(alpha.A[(y-r.Min.Y)*alpha.AStride+x-r.Min.X])
				cr = overWhite(uint32(cr), a)
				cg = overWhite(uint32(cg), a)
				cb = overWhite(uint32(cb), a)
			}
			out[o], out[o+1], out[o+2] = cr, cg, cb
			o += 3
		}
	}
}

// complete reports whether a PNG or GIF file has its final marker: an IEND
// chunk reached by walking the chunks, or the GIF trailer byte. Other
// formats report true.
func complete(format string, b []byte) bool {
	switch format {
	case FormatPNG:
		iend := false
		pngChunks(b, func(typ string, _ []byte) bool {
			iend = typ == "IEND"
			return !iend
		})
		return iend
	case FormatGIF:
		return len(b) > 0 && b[len(b)-1] == 0x3B
	}
	return true
}
