// The JPEG decoder: one call into libjpeg-turbo per image.
//
// libjpeg reports fatal errors by calling error_exit, which must not return.
// We longjmp from it back to photo_jpeg_decode, which is the only function
// that calls setjmp, and only libjpeg frames lie between the two: a longjmp
// never crosses Go frames. Everything libjpeg allocates lives in its pools
// and is freed by jpeg_destroy_decompress, also after a longjmp.

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "jpeg.h"

// A progressive JPEG may carry any number of scans, each costing a pass over
// the coefficients; real encoders write about ten. Capping them stops a
// small file from burning seconds of CPU (a known libjpeg DoS).
#define MAX_SCANS 500

struct photo_err {
	struct jpeg_error_mgr pub; // must be first: libjpeg sees only this
	jmp_buf jb;
	int cls;   // PHOTO_* class of the failure
	char *msg; // PHOTO_MSG_LEN bytes owned by the caller
};

_Noreturn static void fail(j_common_ptr cinfo, int cls) {
	struct photo_err *e = (struct photo_err *)cinfo->err;
	char buf[JMSG_LENGTH_MAX];
	e->cls = cls;
	(*cinfo->err->format_message)(cinfo, buf);
	snprintf(e->msg, PHOTO_MSG_LEN, "%s", buf);
	longjmp(e->jb, 1);
}

// error_exit replaces libjpeg's default, which prints and calls exit().
static void error_exit(j_common_ptr cinfo) {
	switch (cinfo->err->msg_code) {
	case JERR_BAD_PRECISION: // 12-bit and 16-bit JPEG
	case JERR_CONVERSION_NOTIMPL:
	case JERR_NOT_COMPILED:
	case JERR_ARITH_NOTIMPL:
		fail(cinfo, PHOTO_UNSUPPORTED);
	case JERR_OUT_OF_MEMORY:
	case JERR_NO_BACKING_STORE: // over max_memory_to_use
		fail(cinfo, PHOTO_TOO_LARGE);
	default:
		fail(cinfo, PHOTO_CORRUPT);
	}
}

// emit_message turns the warnings that mean "these pixels are wrong" into
// errors; libjpeg would otherwise fill the missing part with grey and carry
// on. Other warnings (extraneous bytes, unknown JFIF revision, ...) are
// harmless and ignored, as are trace messages (level >= 0).
static void emit_message(j_common_ptr cinfo, int level) {
	if (level >= 0)
		return;
	switch (cinfo->err->msg_code) {
	case JWRN_JPEG_EOF: // "Premature end of JPEG file"
		fail(cinfo, PHOTO_TRUNCATED);
	case JWRN_HIT_MARKER:
	case JWRN_HUFF_BAD_CODE:
	case JWRN_ARITH_BAD_CODE:
	case JWRN_MUST_RESYNC:
		fail(cinfo, PHOTO_CORRUPT);
	}
}

static void progress(j_common_ptr cinfo) {
	if (((j_decompress_ptr)cinfo)->input_scan_number > MAX_SCANS) {
		struct photo_err *e = (struct photo_err *)cinfo->err;
		e->cls = PHOTO_CORRUPT;
		snprintf(e->msg, PHOTO_MSG_LEN, "more than %d scans", MAX_SCANS);
		longjmp(e->jb, 1);
	}
}

// photo_jpeg_decode decodes data into out as packed RGB, out_w x out_h, at
// scale_num/8 of the full size (libjpeg-turbo's DCT scaling: the skipped
// frequencies are never computed). want_w and want_h are the size the Go
// header parser read, out_w and out_h the scaled size it expects; any
// disagreement is an error rather than a buffer overrun.
int photo_jpeg_decode(const unsigned char *data, unsigned long len,
	int want_w, int want_h, int scale_num,
	unsigned char *out, int out_w, int out_h,
	long max_memory, char *msg) {
	struct jpeg_decompress_struct cinfo;
	struct photo_err err;
	struct jpeg_progress_mgr prog;
	int cmyk = 0;

	memset(&cinfo, 0, sizeof cinfo);
	cinfo.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = error_exit;
	err.pub.emit_message = emit_message;
	err.cls = PHOTO_OK;
	err.msg = msg;
	msg[0] = 0;
	if (setjmp(err.jb)) {
		jpeg_destroy_decompress(&cinfo);
		return err.cls;
	}
	jpeg_create_decompress(&cinfo);
	// Without a backing store, exceeding this is JERR_NO_BACKING_STORE.
	cinfo.mem->max_memory_to_use = max_memory;
	prog.progress_monitor = progress;
	cinfo.progress = &prog;
	jpeg_mem_src(&cinfo, data, len);
	jpeg_read_header(&cinfo, TRUE);

	if ((int)cinfo.image_width != want_w || (int)cinfo.image_height != want_h) {
		snprintf(msg, PHOTO_MSG_LEN, "libjpeg reads %ux%u, header parser %dx%d",
			cinfo.image_width, cinfo.image_height, want_w, want_h);
		jpeg_destroy_decompress(&cinfo);
		return PHOTO_MISMATCH;
	}
	// libjpeg-turbo converts greyscale and YCbCr to RGB itself, but not
	// CMYK/YCCK: those come out as CMYK and are converted below.
	if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
		cmyk = 1;
		cinfo.out_color_space = JCS_CMYK;
	} else {
		cinfo.out_color_space = JCS_RGB;
	}
	cinfo.scale_num = scale_num;
	cinfo.scale_denom = 8;
	jpeg_calc_output_dimensions(&cinfo);
	if ((int)cinfo.output_width != out_w || (int)cinfo.output_height != out_h) {
		snprintf(msg, PHOTO_MSG_LEN, "libjpeg scales to %ux%u, expected %dx%d",
			cinfo.output_width, cinfo.output_height, out_w, out_h);
		jpeg_destroy_decompress(&cinfo);
		return PHOTO_MISMATCH;
	}
	jpeg_start_decompress(&cinfo);

	const size_t stride = (size_t)out_w * 3;
	if (!cmyk) {
		// Several rows per call: with one, libjpeg upsamples two-row
		// chroma groups into a spare buffer and copies each row out.
		JSAMPROW rows[16];
		while (cinfo.output_scanline < cinfo.output_height) {
			JDIMENSION n = cinfo.output_height - cinfo.output_scanline;
			if (n > 16)
				n = 16;
			for (JDIMENSION i = 0; i < n; i++)
				rows[i] = out + (size_t)(cinfo.output_scanline + i) * stride;
			jpeg_read_scanlines(&cinfo, rows, n);
		}
	} else {
		// Photoshop (which writes the Adobe marker) stores CMYK inverted,
		// so there 255 means no ink; others store plain CMYK.
		const int inverted = cinfo.saw_Adobe_marker;
		JSAMPARRAY tmp = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo,
			JPOOL_IMAGE, (JDIMENSION)out_w * 4, 1);
		while (cinfo.output_scanline < cinfo.output_height) {
			unsigned char *o = out + (size_t)cinfo.output_scanline * stride;
			const unsigned char *p = tmp[0];
			jpeg_read_scanlines(&cinfo, tmp, 1);
			for (int x = 0; x < out_w; x++, p += 4, o += 3) {
				int c = p[0], m = p[1], y = p[2], k = p[3];
				if (!inverted) {
					c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k;
				}
				// Naive CMYK->RGB without an ICC profile: R = (1-C)(1-K).
				o[0] = (unsigned char)((c * k + 127) / 255);
				o[1] = (unsigned char)((m * k + 127) / 255);
				o[2] = (unsigned char)((y * k + 127) / 255);
			}
		}
	}
	// All scanlines are in. jpeg_finish_decompress would only look for the
	// EOI marker, and the entropy decoder reads ahead into it, so a cut-off
	// file has failed above with JWRN_JPEG_EOF, in practice even when only
	// the EOI marker is missing.
	jpeg_destroy_decompress(&cinfo);
	return PHOTO_OK;
}
