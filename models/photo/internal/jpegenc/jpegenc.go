// Package jpegenc encodes JPEGs through libjpeg-turbo for the photo tests:
// the variants image/jpeg cannot write (progressive, arithmetic-coded, CMYK
// and YCCK with an Adobe marker); and decodes them the plainest way, as the
// reference the photo decoder must match. It is test support, not for
// production.
package jpegenc

/*
#cgo LDFLAGS: -ljpeg
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>

struct enc_err {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
};

static void enc_error_exit(j_common_ptr cinfo) {
	longjmp(((struct enc_err *)cinfo->err)->jb, 1);
}

// enc compresses w x h pixels of comps bytes each; in_cs and jpeg_cs are
// J_COLOR_SPACE values. On success *out (malloc'd) holds *out_len bytes.
static int enc(const unsigned char *pix, int w, int h, int comps,
	int in_cs, int jpeg_cs, int quality, int progressive, int arith,
	unsigned char **out, unsigned long *out_len) {
	struct jpeg_compress_struct c;
	struct enc_err err;
	c.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = enc_error_exit;
	*out = NULL;
	*out_len = 0;
	if (setjmp(err.jb)) {
		jpeg_destroy_compress(&c);
		free(*out);
		*out = NULL;
		return 1;
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, out, out_len);
	c.image_width = w;
	c.image_height = h;
	c.input_components = comps;
	c.in_color_space = in_cs;
	jpeg_set_defaults(&c);
	jpeg_set_colorspace(&c, jpeg_cs); // CMYK and YCCK also get an Adobe marker
	jpeg_set_quality(&c, quality, TRUE);
	if (progressive)
		jpeg_simple_progression(&c);
	c.arith_code = arith;
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)pix + (size_t)c.next_scanline * w * comps;
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	return 0;
}

// dec decompresses a JPEG of w x h pixels to packed RGB in out (w*h*3
// bytes) the plainest way: one scanline per jpeg_read_scanlines call.
static int dec(const unsigned char *data, unsigned long len, int w, int h, unsigned char *out) {
	struct jpeg_decompress_struct d;
	struct enc_err err;
	d.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = enc_error_exit;
	if (setjmp(err.jb)) {
		jpeg_destroy_decompress(&d);
		return 1;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, data, len);
	jpeg_read_header(&d, TRUE);
	d.out_color_space = JCS_RGB;
	jpeg_start_decompress(&d);
	if ((int)d.output_width != w || (int)d.output_height != h || d.output_components != 3) {
		jpeg_destroy_decompress(&d);
		return 1;
	}
	while (d.output_scanline < d.output_height) {
		JSAMPROW row = out + (size_t)d.output_scanline * w * 3;
		jpeg_read_scanlines(&d, &row, 1);
	}
	jpeg_destroy_decompress(&d);
	return 0;
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// Space is the colour model of the input pixels and of the JPEG.
type Space int

// The supported combinations.
const (
	Gray Space = iota // 1 byte per pixel, greyscale JPEG
	RGB               // 3 bytes per pixel, YCbCr JPEG
	CMYK              // 4 bytes per pixel (Adobe-inverted), CMYK JPEG
	YCCK              // 4 bytes per pixel (Adobe-inverted), YCCK JPEG
)

// Options selects the encoding.
type Options struct {
	Quality     int // 1-100
	Progressive bool
	Arithmetic  bool // arithmetic instead of Huffman coding
}

// Encode compresses pix, w x h in space s, to a JPEG.
func Encode(pix []byte, w, h int, s Space, o Options) ([]byte, error) {
	comps, in, cs := 3, C.JCS_RGB, C.JCS_YCbCr
	switch s {
	case Gray:
		comps, in, cs = 1, C.JCS_GRAYSCALE, C.JCS_GRAYSCALE
	case CMYK:
		comps, in, cs = 4, C.JCS_CMYK, C.JCS_CMYK
	case YCCK:
		comps, in, cs = 4, C.JCS_CMYK, C.JCS_YCCK
	}
	if w <= 0 || h <= 0 || len(pix) != w*h*comps {
		return nil, errors.New("jpegenc: pixel buffer does not match size")
	}
	var out *C.uchar
	var n C.ulong
	if C.enc((*C.uchar)(unsafe.Pointer(&pix[0])), C.int(w), C.int(h), C.int(comps),
		C.int(in), C.int(cs), C.int(o.Quality), cbool(o.Progressive), cbool(o.Arithmetic),
		&out, &n) != 0 {
		return nil, errors.New("jpegenc: libjpeg failed")
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoBytes(unsafe.Pointer(out), C.int(n)), nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// DecodeRowByRow decodes a w x h RGB or greyscale JPEG to packed RGB with
// libjpeg's defaults, one scanline per call: the reference for decoders
// that read several rows per call, which libjpeg defines to give the same
// pixels.
func DecodeRowByRow(data []byte, w, h int) ([]byte, error) {
	if len(data) == 0 || w <= 0 || h <= 0 {
		return nil, errors.New("jpegenc: no data or no size")
	}
	out := make([]byte, w*h*3)
	if C.dec((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), C.int(w), C.int(h), (*C.uchar)(unsafe.Pointer(&out[0]))) != 0 {
		return nil, errors.New("jpegenc: libjpeg failed to decode")
	}
	return out, nil
}
