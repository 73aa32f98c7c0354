#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include "common.h"
#include "jpeg_errors.h"

int ccodecs_jpeg_decode(const uint8_t *data, size_t length, int assume_rgb, size_t max_samples,
                        ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length) {
    *out = NULL;
    *out_length = 0;
    if (length < 4 || data[0] != 0xFF || data[1] != 0xD8) return ccodecs_fail(err, err_length, "not a JPEG stream (no SOI marker)");
    struct jpeg_decompress_struct cinfo;
    error_t_ e;
    cinfo.err = init_errors(&e);
    // Everything the jump may skip to is volatile or set before setjmp.
    uint8_t *volatile buf = NULL;
    if (setjmp(e.jump)) {
        free(buf);
        jpeg_destroy_decompress(&cinfo);
        return ccodecs_fail(err, err_length, "libjpeg: %s", e.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)length);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.data_precision != 8) {
        jpeg_destroy_decompress(&cinfo);
        return ccodecs_fail(err, err_length, "%d-bit JPEG is not supported by this libjpeg", cinfo.data_precision);
    }
    int comps = cinfo.num_components;
    if (ccodecs_jpeg_check(comps, cinfo.image_width, cinfo.image_height, max_samples, err, err_length)) {
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    if (comps == 3 && assume_rgb && !cinfo.saw_JFIF_marker && !cinfo.saw_Adobe_marker) cinfo.jpeg_color_space = JCS_RGB;
    int transformed = comps == 3 && cinfo.jpeg_color_space == JCS_YCbCr;
    cinfo.out_color_space = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
    buf = malloc(stride * cinfo.output_height);
    if (!buf) { jpeg_destroy_decompress(&cinfo); return ccodecs_fail(err, err_length, "out of memory"); }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = buf + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    uint32_t width = cinfo.output_width, height = cinfo.output_height;
    int out_comps = cinfo.output_components;
    jpeg_destroy_decompress(&cinfo);
    return ccodecs_jpeg_result(buf, width, height, out_comps, 8, transformed, e.truncated, "libjpeg", info, out, out_length, err, err_length);
}

int ccodecs_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t components, int quality,
                        uint8_t **out, size_t *out_length, char *err, size_t err_length) {
    *out = NULL;
    *out_length = 0;
    if (width == 0 || height == 0 || width > 65500 || height > 65500) return ccodecs_fail(err, err_length, "JPEG cannot hold a %ux%u image", width, height);
    if (components != 1 && components != 3) return ccodecs_fail(err, err_length, "JPEG output has 1 or 3 components, not %u", components);
    struct jpeg_compress_struct cinfo;
    error_t_ e;
    cinfo.err = init_errors(&e);
    // jpeg_mem_dest owns and grows its buffer; on error it is freed here.
    unsigned char *volatile buf = NULL;
    unsigned long volatile size = 0;
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buf);
        return ccodecs_fail(err, err_length, "libjpeg: %s", e.message);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buf, (unsigned long *)&size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = (int)components;
    cinfo.in_color_space = components == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * components;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + stride * cinfo.next_scanline);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buf;
    *out_length = size;
    return 0;
}
