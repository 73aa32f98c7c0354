#ifndef CCODECS_COMMON_H
#define CCODECS_COMMON_H
#include <stdarg.h>
#include <stdio.h>
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
#endif
