// C side of the libjpeg-turbo decoder; see jpeg.c.

#ifndef PHOTO_JPEG_H
#define PHOTO_JPEG_H

#include <stddef.h>

// Result classes of photo_jpeg_decode. Go maps them to faceauth error codes.
enum {
	PHOTO_OK = 0,
	PHOTO_CORRUPT = 1,     // libjpeg error or a fatal corrupt-data warning
	PHOTO_TRUNCATED = 2,   // the data ended before the image did
	PHOTO_UNSUPPORTED = 3, // valid JPEG that this libjpeg cannot decode
	PHOTO_TOO_LARGE = 4,   // over the memory cap
	PHOTO_MISMATCH = 5     // libjpeg disagrees with the Go header parser
};

#define PHOTO_MSG_LEN 200

int photo_jpeg_decode(const unsigned char *data, unsigned long len,
	int want_w, int want_h, int scale_num,
	unsigned char *out, int out_w, int out_h,
	long max_memory, char *msg);

#endif
