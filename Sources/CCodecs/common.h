#ifndef CCODECS_COMMON_H
#define CCODECS_COMMON_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "ccodecs.h"

static inline int ccodecs_fail(char *err, size_t n, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return 1;
}

static inline uint32_t ccodecs_width_for(uint32_t precision) {
    return precision <= 8 ? 1 : (precision <= 16 ? 2 : 4);
}

static inline void ccodecs_put(uint8_t *dst, uint32_t width, int32_t v) {
    dst[0] = (uint8_t)v;
    if (width > 1) dst[1] = (uint8_t)(v >> 8);
    if (width > 2) { dst[2] = (uint8_t)(v >> 16); dst[3] = (uint8_t)(v >> 24); }
}

/// What both JPEG decoders (jpeg.c, jpeg12.c) check once the header is read: gray or three-component
/// colour, and no more than `max_samples` samples. 0 when the frame may be decoded.
static inline int ccodecs_jpeg_check(int comps, uint32_t width, uint32_t height, size_t max_samples, char *err, size_t n) {
    if (comps != 1 && comps != 3) return ccodecs_fail(err, n, "JPEG with %d components is not supported", comps);
    uint64_t total = (uint64_t)width * height * (uint32_t)comps;
    if (total == 0 || total > max_samples) return ccodecs_fail(err, n, "JPEG image of %ux%ux%d exceeds the frame's size", width, height, comps);
    return 0;
}

/// How both JPEG decoders end, after jpeg_destroy_decompress: `buf` (malloc'ed, width × height ×
/// comps samples of ccodecs_width_for(precision) bytes) handed out with its description, or freed
/// when the stream ended early, which libjpeg reports only as a warning (`truncated`).
static inline int ccodecs_jpeg_result(uint8_t *buf, uint32_t width, uint32_t height, int comps, uint32_t precision,
                                      int transformed, int truncated, const char *library, ccodecs_info *info,
                                      uint8_t **out, size_t *out_length, char *err, size_t n) {
    if (truncated) {
        free(buf);
        return ccodecs_fail(err, n, "%s: the JPEG stream ends before the image is complete", library);
    }
    info->width = width;
    info->height = height;
    info->components = (uint32_t)comps;
    info->precision = precision;
    info->is_signed = 0;
    info->bytes_per_sample = ccodecs_width_for(precision);
    info->color_transformed = transformed;
    *out = buf;
    *out_length = (size_t)width * height * (uint32_t)comps * info->bytes_per_sample;
    return 0;
}
#endif
