#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include "common.h"

// libjpeg's default error handler exits the process; this one jumps back with the message.
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int truncated;
} error_t_;

static void on_error(j_common_ptr cinfo) {
    error_t_ *e = (error_t_ *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}
static void on_message(j_common_ptr cinfo, int level) {
    error_t_ *e = (error_t_ *)cinfo->err;
    // A stream that ends early decodes as grey padding with only a warning: treat it as the error it is.
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

/// Clears `e` and installs the handlers above; the result goes into the codec's `err`.
static struct jpeg_error_mgr *init_errors(error_t_ *e) {
    memset(e, 0, sizeof *e);
    struct jpeg_error_mgr *mgr = jpeg_std_error(&e->pub);
    e->pub.error_exit = on_error;
    e->pub.emit_message = on_message;
    return mgr;
}

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
    if (comps != 1 && comps != 3) {
        jpeg_destroy_decompress(&cinfo);
        return ccodecs_fail(err, err_length, "JPEG with %d components is not supported", comps);
    }
    if (comps == 3 && assume_rgb && !cinfo.saw_JFIF_marker && !cinfo.saw_Adobe_marker) cinfo.jpeg_color_space = JCS_RGB;
    int transformed = comps == 3 && cinfo.jpeg_color_space == JCS_YCbCr;
    cinfo.out_color_space = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    uint64_t total = (uint64_t)cinfo.image_width * cinfo.image_height * comps;
    if (total == 0 || total > max_samples) {
        jpeg_destroy_decompress(&cinfo);
        return ccodecs_fail(err, err_length, "JPEG image of %ux%ux%d exceeds the frame's size", cinfo.image_width, cinfo.image_height, comps);
    }
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
    buf = malloc(stride * cinfo.output_height);
    if (!buf) { jpeg_destroy_decompress(&cinfo); return ccodecs_fail(err, err_length, "out of memory"); }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = buf + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    info->width = cinfo.output_width;
    info->height = cinfo.output_height;
    info->components = (uint32_t)cinfo.output_components;
    info->precision = 8;
    info->is_signed = 0;
    info->bytes_per_sample = 1;
    info->color_transformed = transformed;
    jpeg_destroy_decompress(&cinfo);
    if (e.truncated) {
        free(buf);
        return ccodecs_fail(err, err_length, "libjpeg: the JPEG stream ends before the image is complete");
    }
    *out = buf;
    *out_length = stride * info->height;
    return 0;
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
