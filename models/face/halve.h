#ifndef FACE_HALVE_H
#define FACE_HALVE_H

#include <stdint.h>

int face_halve_row(const uint8_t *r0, const uint8_t *r1, int64_t n,
	float *p0, float *p1, float *p2, const float *mean, float norm);

#endif
