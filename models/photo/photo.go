// Package photo turns uploaded image bytes into upright RGB pixels for the
// face pipeline, and refuses everything else with a clear, typed error.
//
// Uploads come from phones, browsers and scripts, so intake has to survive
// whatever arrives:
//
//   - Decompression bombs. A few kilobytes of PNG or JPEG can declare a
//     100000x100000 image. The pixel count is read from the header and
//     checked against Options.MaxPixels before any pixel buffer exists, for
//     every format.
//   - Cost. Phone photos are 12 MP or more while face detection needs about
//     a megapixel. JPEG is decoded through libjpeg-turbo with DCT scaling
//     (M/8 of the full size), so the skipped frequencies are never computed
//     and a 12 MP photo costs about as much as a 2 MP one. Other formats are
//     decoded fully and shrunk with an area filter.
//   - Orientation. Phones store pixels as the sensor saw them and record
//     the rotation in EXIF. A face lying on its side is not found, so the
//     EXIF orientation (JPEG APP1, PNG eXIf, WebP EXIF, TIFF tag 274) is
//     applied and the result is always upright.
//   - Lies and damage. The format is sniffed from the content, never the
//     file name; truncated and corrupt files are errors, not half-grey
//     pictures; no input makes the decoder panic or abort the process.
//
// Every error a user can cause is a *faceauth.Error of kind
// faceauth.KindBadImage (codes "empty_image", "unsupported_format",
// "corrupt_image", "truncated_image", "image_too_small") or
// faceauth.KindTooLarge (code "image_too_large").
//
// Transparency is composited onto white: a cut-out portrait on a
// transparent background then looks like an ID photo, not like a face on
// whatever colour the transparent pixels happen to hold.
//
// The package has no global state; Decode is safe for concurrent use.
package photo

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xplore/faceauth"
)

// Defaults used for zero Options fields.
const (
	// DefaultMaxPixels is the largest header pixel count accepted: more than
	// any phone camera writes (a 200 MP sensor bins to 12-50 MP), far less
	// than a bomb.
	DefaultMaxPixels = 50_000_000
	// DefaultMaxFullDecodePixels is the largest header pixel count decoded
	// at full size, for the formats without a reduced decode (all but
	// JPEG): such a decode holds about 7 bytes a pixel at once (the
	// decoder's RGBA and the packed RGB), so 16 MP cost about 110 MB. Real
	// PNG, WebP, GIF, BMP and TIFF uploads are screenshots and crops far
	// below it; phone photos are JPEG.
	DefaultMaxFullDecodePixels = 16_000_000
	// DefaultMinSide is the smallest accepted shorter side in pixels; below
	// it no face is large enough to recognise.
	DefaultMinSide = 32
	// DefaultTargetSide is the longest side decoding aims for, enough for
	// face detection with small faces in group photos.
	DefaultTargetSide = 1280
)

// Format names as reported in Image.Format and by Config and Sniff.
const (
	FormatJPEG = "jpeg"
	FormatPNG  = "png"
	FormatWebP = "webp"
	FormatGIF  = "gif"
	FormatBMP  = "bmp"
	FormatTIFF = "tiff"
	// FormatPGM covers the whole Netpbm family decoded here: PGM and PPM,
	// ASCII (P2, P3) and binary (P5, P6).
	FormatPGM = "pgm"
)

// Image is a decoded, upright (EXIF orientation applied) picture in packed
// 8-bit RGB.
type Image struct {
	W, H   int    // size of Pix in pixels, upright
	Pix    []byte // len 3*W*H, row-major RGB
	Format string // "jpeg","png","webp","gif","bmp","tiff","pgm"
	// Width and Height of the full-size upright original (before any reduced decode).
	OrigW, OrigH int
	Orientation  int // EXIF orientation that was applied (1 = none)
}

// At returns the colour of the pixel at column x, row y. It panics when the
// point is outside the image, like a slice index.
func (im *Image) At(x, y int) (r, g, b uint8) {
	if x < 0 || y < 0 || x >= im.W || y >= im.H {
		panic(fmt.Sprintf("photo: At(%d, %d) outside %dx%d image", x, y, im.W, im.H))
	}
	i := 3 * (y*im.W + x)
	return im.Pix[i], im.Pix[i+1], im.Pix[i+2]
}

// Options limits and sizes a decode. The zero value gives the defaults.
type Options struct {
	// MaxPixels rejects (KindTooLarge, code "image_too_large") an image whose
	// header W*H exceeds it, before decoding; <= 0 means DefaultMaxPixels.
	MaxPixels int64
	// MaxFullDecodePixels rejects (KindTooLarge, code "image_too_large") an
	// image of a format that can only be decoded at full size (all but
	// JPEG, which decodes at reduced size) whose header W*H exceeds it, so
	// the memory of one decode follows the pixel count the header declares;
	// a 16-bit colour image, which decodes to 8 bytes a pixel instead of 4,
	// gets 7/11 of it. <= 0 means DefaultMaxFullDecodePixels.
	MaxFullDecodePixels int64
	// MinSide rejects (KindBadImage, code "image_too_small") an image whose
	// shorter side is below it; 0 means DefaultMinSide, < 0 disables it.
	MinSide int
	// TargetSide is the longest side the result needs. JPEG decodes at the
	// smallest libjpeg-turbo DCT scale M/8 whose longest side is still >=
	// TargetSide; other formats decode fully and are shrunk with an area
	// filter to a longest side of TargetSide. Images already no larger are
	// not upscaled. 0 means DefaultTargetSide, < 0 decodes at full size.
	TargetSide int
}

func (o Options) withDefaults() Options {
	if o.MaxPixels <= 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	if o.MaxFullDecodePixels <= 0 {
		o.MaxFullDecodePixels = DefaultMaxFullDecodePixels
	}
	if o.MinSide == 0 {
		o.MinSide = DefaultMinSide
	}
	if o.TargetSide == 0 {
		o.TargetSide = DefaultTargetSide
	}
	return o
}

// header is what a format's header says, read without decoding pixels.
type header struct {
	format string
	w, h   int // stored size, before orientation
	orient int // 1..8
	// decoded is how many bytes a pixel of the decoder's image takes, for
	// the formats decoded at full size by Go's decoders (0 for the others).
	decoded int64
	jpeg    jpegHeader
	pnm     pnmHeader
}

// uprightSize returns the size after orientation: 5-8 swap the axes.
func (h *header) uprightSize() (w, ht int) {
	if h.orient >= 5 {
		return h.h, h.w
	}
	return h.w, h.h
}

// Decode decodes an uploaded image, checks it against opt's limits before
// allocating pixels, decodes it no larger than opt.TargetSide needs, and
// applies its EXIF orientation. Errors a user can cause are
// *faceauth.Error values (see the package documentation).
func Decode(data []byte, opt Options) (im *Image, err error) {
	return DecodeInto(data, opt, nil)
}

// DecodeInto is Decode writing a JPEG's pixels into buf when its capacity
// suffices, so that a caller decoding one photo after another (a face
// pipeline worker) does not allocate, zero and fault in a fresh buffer each
// time: about a quarter of the cost of decoding a 640x480 JPEG. The
// returned Image's Pix may alias buf; other formats and EXIF-turned JPEGs
// get new memory as with Decode.
func DecodeInto(data []byte, opt Options, buf []byte) (im *Image, err error) {
	opt = opt.withDefaults()
	defer func() {
		// Third-party decoders (and this package) must not take the
		// process down on hostile input.
		if r := recover(); r != nil {
			im, err = nil, errCorrupt(&panicError{r})
		}
	}()
	h, err := readHeader(data)
	if err != nil {
		return nil, err
	}
	ow, oh := h.uprightSize()
	if px := int64(h.w) * int64(h.h); px > opt.MaxPixels {
		return nil, faceauth.E(faceauth.KindTooLarge, "image_too_large",
			"The image is too large (%dx%d pixels): at most %s megapixels are accepted.",
			ow, oh, megapixels(opt.MaxPixels))
	}
	if px, most := int64(h.w)*int64(h.h), fullDecodePixels(opt.MaxFullDecodePixels, h.decoded); h.format != FormatJPEG && px > most {
		kind := formatName(h.format)
		if most < opt.MaxFullDecodePixels {
			kind = "16-bit " + kind
		}
		return nil, faceauth.E(faceauth.KindTooLarge, "image_too_large",
			"The image is too large (%dx%d pixels): %s images are decoded at full size, so at most %s megapixels are accepted; send a JPEG or a smaller image.",
			ow, oh, kind, megapixels(most))
	}
	if opt.MinSide > 0 && min(h.w, h.h) < opt.MinSide {
		return nil, faceauth.E(faceauth.KindBadImage, "image_too_small",
			"The image is too small (%dx%d pixels): its shorter side must be at least %d pixels.",
			ow, oh, opt.MinSide)
	}

	var pix []byte
	var w, ht int
	switch h.format {
	case FormatJPEG:
		pix, w, ht, err = decodeJPEG(data, h, opt.TargetSide, buf)
	case FormatPGM:
		pix, w, ht, err = decodePNM(data, h)
	default:
		pix, w, ht, err = decodeStd(data, h, opt.MaxPixels)
	}
	if err != nil {
		return nil, err
	}
	if h.format != FormatJPEG {
		if dw, dh, ok := targetSize(w, ht, opt.TargetSide); ok {
			pix = resizeArea(pix, w, ht, dw, dh)
			w, ht = dw, dh
		}
	}
	pix, w, ht = orient(pix, w, ht, h.orient)
	return &Image{W: w, H: ht, Pix: pix, Format: h.format, OrigW: ow, OrigH: oh, Orientation: h.orient}, nil
}

// Config reads only the headers of an image and returns its format and its
// upright size (EXIF orientation applied, so 5-8 swap width and height).
// It does not apply any Options limit.
func Config(data []byte) (format string, w, h int, err error) {
	defer func() {
		if r := recover(); r != nil {
			format, w, h, err = "", 0, 0, errCorrupt(&panicError{r})
		}
	}()
	hd, err := readHeader(data)
	if err != nil {
		return "", 0, 0, err
	}
	w, h = hd.uprightSize()
	return hd.format, w, h, nil
}

// fullDecodeBytes is the bytes a pixel of the full-decode budget stands
// for: the decoder's 8-bit RGBA and the packed RGB it is converted to.
const fullDecodeBytes = 4 + 3

// fullDecodePixels is the most pixels decoded at full size for an image
// whose decoder takes decoded bytes a pixel: the budget, and fewer when
// its memory would exceed the budget's (16-bit colour: 8 bytes a pixel).
func fullDecodePixels(budget, decoded int64) int64 {
	return min(budget, budget*fullDecodeBytes/(decoded+3))
}

// targetSize returns the size that shrinks w x h to a longest side of
// target, keeping the aspect ratio, and whether that is a reduction.
func targetSize(w, h, target int) (dw, dh int, ok bool) {
	long := max(w, h)
	if target <= 0 || long <= target {
		return w, h, false
	}
	dw = max(1, int((int64(w)*int64(target)+int64(long)/2)/int64(long)))
	dh = max(1, int((int64(h)*int64(target)+int64(long)/2)/int64(long)))
	return dw, dh, true
}

func megapixels(n int64) string {
	return fmt.Sprintf("%.3g", float64(n)/1e6)
}

// readHeader sniffs the format and reads the header and orientation.
func readHeader(data []byte) (*header, error) {
	if len(data) == 0 {
		return nil, faceauth.E(faceauth.KindBadImage, "empty_image",
			"The image is empty: no data was uploaded.")
	}
	format, err := sniff(data)
	if err != nil {
		return nil, err
	}
	h := &header{format: format, orient: 1}
	switch format {
	case FormatJPEG:
		err = readJPEGHeader(data, h)
	case FormatPGM:
		err = readPNMHeader(data, h)
	default:
		err = readStdHeader(data, h)
	}
	if err != nil {
		return nil, err
	}
	if h.w <= 0 || h.h <= 0 {
		return nil, errCorrupt(fmt.Errorf("%s header gives size %dx%d", format, h.w, h.h))
	}
	return h, nil
}

// panicError is a panic recovered from a decoder.
type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprintf("decoder panic: %v", p.v) }

func errCorrupt(cause error) error {
	return faceauth.Wrap(cause, faceauth.KindBadImage, "corrupt_image",
		"The image is damaged and cannot be decoded.")
}

func errTruncated(cause error) error {
	return faceauth.Wrap(cause, faceauth.KindBadImage, "truncated_image",
		"The image is truncated: the upload was cut off or the file is damaged.")
}

func errUnsupported(cause error) error {
	return faceauth.Wrap(cause, faceauth.KindBadImage, "unsupported_format",
		"The file is not an image in a supported format (JPEG, PNG, WebP, GIF, BMP, TIFF, PGM or PPM).")
}

// errUnsupportedMsg is unsupported_format with a more specific sentence.
func errUnsupportedMsg(cause error, msg string) error {
	return faceauth.Wrap(cause, faceauth.KindBadImage, "unsupported_format", "%s", msg)
}

var errShort = errors.New("data ends inside the header")

// errTooLargeMemory is image_too_large for an image whose header passed the
// pixel limit but whose decoding needs more memory than it may take.
func errTooLargeMemory(cause error) error {
	return faceauth.Wrap(cause, faceauth.KindTooLarge, "image_too_large",
		"The image is too large to decode.")
}

// formatName is a format as people write it, for messages.
func formatName(format string) string {
	switch format {
	case FormatWebP:
		return "WebP"
	case FormatPGM:
		return "PGM/PPM"
	}
	return strings.ToUpper(format)
}
