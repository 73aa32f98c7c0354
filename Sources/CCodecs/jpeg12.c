// 12-bit lossy JPEG (DICOM 1.2.840.10008.1.2.4.51, processes 2 and 4) through DCMTK's libijg12:
// the IJG 6b library built with 12-bit samples and jpeg12_* entry points. Debian's libjpeg-turbo
// 2.1 decodes 8-bit samples only. The headers are DCMTK's (ijg12/, see its README); this file
// must not see the 8-bit jpeglib.h, whose include guard is the same.
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "ijg12/jpeglib12.h"
#include "ijg12/jerror12.h"
#include "common.h"
#include "jpeg_errors.h"

// libjpeg 6b has no jpeg_mem_src: a source manager over the caller's bytes, which past the end
// supplies a fake EOI and the premature-EOF warning, as libjpeg's own sources do.
static const JOCTET fake_eoi[2] = {0xFF, JPEG_EOI};
static void src_init(j_decompress_ptr cinfo) { (void)cinfo; }
static boolean src_fill(j_decompress_ptr cinfo) {
    WARNMS(cinfo, JWRN_JPEG_EOF);
    cinfo->src->next_input_byte = fake_eoi;
    cinfo->src->bytes_in_buffer = 2;
    return TRUE;
}
static void src_skip(j_decompress_ptr cinfo, long count) {
    struct jpeg_source_mgr *src = cinfo->src;
    if (count <= 0) return;
    if ((size_t)count > src->bytes_in_buffer) {
        src_fill(cinfo);
        return;
    }
    src->next_input_byte += count;
    src->bytes_in_buffer -= (size_t)count;
}
static void src_term(j_decompress_ptr cinfo) { (void)cinfo; }

int ccodecs_jpeg12_decode(const uint8_t *data, size_t length, int assume_rgb, size_t max_samples,
                          ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length) {
    *out = NULL;
    *out_length = 0;
    if (length < 4 || data[0] != 0xFF || data[1] != 0xD8) return ccodecs_fail(err, err_length, "not a JPEG stream (no SOI marker)");
    struct jpeg_decompress_struct cinfo;
    error_t_ e;
    cinfo.err = init_errors(&e);
    struct jpeg_source_mgr src = {
        .next_input_byte = data, .bytes_in_buffer = length,
        .init_source = src_init, .fill_input_buffer = src_fill, .skip_input_data = src_skip,
        .resync_to_restart = jpeg_resync_to_restart, .term_source = src_term,
    };
    // Everything the jump may skip to is volatile or set before setjmp.
    uint8_t *volatile buf = NULL;
    JSAMPLE *volatile row = NULL;
    if (setjmp(e.jump)) {
        free(buf);
        free(row);
        jpeg_destroy_decompress(&cinfo);
        return ccodecs_fail(err, err_length, "libijg12: %s", e.message);
    }
    jpeg_create_decompress(&cinfo);
    cinfo.src = &src;
    jpeg_read_header(&cinfo, TRUE);
    int comps = cinfo.num_components;
    if (ccodecs_jpeg_check(comps, cinfo.image_width, cinfo.image_height, max_samples, err, err_length)) {
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    if (comps == 3 && assume_rgb && !cinfo.saw_JFIF_marker && !cinfo.saw_Adobe_marker) cinfo.jpeg_color_space = JCS_RGB;
    int transformed = comps == 3 && cinfo.jpeg_color_space == JCS_YCbCr;
    cinfo.out_color_space = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_start_decompress(&cinfo);
    size_t samples_per_row = (size_t)cinfo.output_width * cinfo.output_components;
    buf = malloc(samples_per_row * 2 * cinfo.output_height);
    row = malloc(samples_per_row * sizeof(JSAMPLE));
    if (!buf || !row) {
        free(buf);
        free(row);
        jpeg_destroy_decompress(&cinfo);
        return ccodecs_fail(err, err_length, "out of memory");
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = buf + samples_per_row * 2 * cinfo.output_scanline;
        JSAMPROW rows[1] = {row};
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) { e.truncated = 1; break; }
        // JSAMPLE is a short holding 0...4095: out as little-endian 16-bit samples.
        for (size_t i = 0; i < samples_per_row; i++) ccodecs_put(dst + 2 * i, 2, row[i]);
    }
    free(row);
    row = NULL;
    if (!e.truncated) jpeg_finish_decompress(&cinfo);
    uint32_t width = cinfo.output_width, height = cinfo.output_height;
    int out_comps = cinfo.output_components;
    jpeg_destroy_decompress(&cinfo);
    return ccodecs_jpeg_result(buf, width, height, out_comps, 12, transformed, e.truncated, "libijg12", info, out, out_length, err, err_length);
}

int ccodecs_jpeg_sof_precision(const uint8_t *data, size_t length) {
    if (length < 4 || data[0] != 0xFF || data[1] != 0xD8) return -1;
    size_t pos = 2;
    while (pos + 1 < length) {
        if (data[pos] != 0xFF) return -1;
        while (pos < length && data[pos] == 0xFF) pos++;  // fill bytes (T.81 B.1.1.2)
        if (pos >= length) return -1;
        uint8_t marker = data[pos++];
        // Markers without a segment: TEM, RSTn, SOI; EOI or SOS before any SOF ends the search.
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;
        if (marker == 0xD9 || marker == 0xDA || pos + 2 > length) return -1;
        size_t segment = (size_t)data[pos] << 8 | data[pos + 1];
        // SOF0...SOF15 but DHT (C4), JPG (C8), DAC (CC): P is the first byte after the length.
        if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
            return pos + 2 < length && segment >= 3 ? data[pos + 2] : -1;
        }
        if (segment < 2) return -1;
        pos += segment;
    }
    return -1;
}
