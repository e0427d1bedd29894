#ifndef FACE_RESAMPLE_H
#define FACE_RESAMPLE_H

#include <stdint.h>

int face_halve_row(const uint8_t *r0, const uint8_t *r1, int64_t n,
	float *p0, float *p1, float *p2, const float *mean, float norm);

int face_box_warp(const uint8_t *pix, int64_t len, int w, int h, const float *m,
	int dw, int dh, int k, int grey, float *p0, float *p1, float *p2,
	const float *mean, float norm);

#endif
