#include <stdlib.h>
#include <string.h>
#include <charls/charls.h>
#include "common.h"

int ccodecs_jls_decode(const uint8_t *data, size_t length, size_t max_samples,
                       ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length) {
    *out = NULL;
    *out_length = 0;
    // CharLS 2.4.1 spends seconds on a stream cut short (13 s for a 4 KB one, measured): it keeps
    // decoding past the end. A complete stream ends with EOI (FFD9), perhaps followed by the
    // fragment's padding byte; refuse anything else before CharLS sees it.
    size_t end = length;
    while (end > 0 && data[end - 1] == 0) end--;
    if (end < 4 || data[end - 2] != 0xFF || data[end - 1] != 0xD9)
        return ccodecs_fail(err, err_length, "JPEG-LS stream does not end with an EOI marker (truncated?)");
    charls_jpegls_decoder *d = charls_jpegls_decoder_create();
    if (!d) return ccodecs_fail(err, err_length, "CharLS: out of memory");
    charls_jpegls_errc rc;
    charls_frame_info fi;
    charls_interleave_mode mode = CHARLS_INTERLEAVE_MODE_NONE;
    size_t size = 0;
    uint8_t *buf = NULL, *tmp = NULL;
    int result = 1;
    if ((rc = charls_jpegls_decoder_set_source_buffer(d, data, length)) ||
        (rc = charls_jpegls_decoder_read_header(d)) ||
        (rc = charls_jpegls_decoder_get_frame_info(d, &fi)) ||
        (rc = charls_jpegls_decoder_get_interleave_mode(d, &mode))) {
        ccodecs_fail(err, err_length, "CharLS: %s", charls_get_error_message(rc));
        goto done;
    }
    uint64_t total = (uint64_t)fi.width * fi.height * (uint64_t)fi.component_count;
    if (fi.component_count < 1 || fi.component_count > 4 || total == 0 || total > max_samples || fi.bits_per_sample < 2 || fi.bits_per_sample > 16) {
        ccodecs_fail(err, err_length, "JPEG-LS image of %ux%ux%d at %d bits does not fit the frame", fi.width, fi.height, fi.component_count, fi.bits_per_sample);
        goto done;
    }
    if ((rc = charls_jpegls_decoder_get_destination_size(d, 0, &size))) {
        ccodecs_fail(err, err_length, "CharLS: %s", charls_get_error_message(rc));
        goto done;
    }
    buf = malloc(size);
    if (!buf) { ccodecs_fail(err, err_length, "out of memory"); goto done; }
    if ((rc = charls_jpegls_decoder_decode_to_buffer(d, buf, size, 0))) {
        ccodecs_fail(err, err_length, "CharLS: %s", charls_get_error_message(rc));
        goto done;
    }
    uint32_t width = fi.bits_per_sample <= 8 ? 1 : 2;
    size_t pixels = (size_t)fi.width * fi.height;
    int comps = fi.component_count;
    // Without interleaving CharLS returns one plane per component; callers want interleaved.
    if (mode == CHARLS_INTERLEAVE_MODE_NONE && comps > 1) {
        tmp = malloc(size);
        if (!tmp) { ccodecs_fail(err, err_length, "out of memory"); goto done; }
        for (int c = 0; c < comps; c++)
            for (size_t i = 0; i < pixels; i++)
                memcpy(tmp + (i * comps + c) * width, buf + (c * pixels + i) * width, width);
        free(buf);
        buf = tmp;
        tmp = NULL;
    }
    info->width = fi.width;
    info->height = fi.height;
    info->components = (uint32_t)comps;
    info->precision = (uint32_t)fi.bits_per_sample;
    info->is_signed = 0;
    info->bytes_per_sample = width;
    info->color_transformed = 0;
    *out = buf;
    *out_length = pixels * comps * width;
    buf = NULL;
    result = 0;
done:
    free(buf);
    free(tmp);
    charls_jpegls_decoder_destroy(d);
    return result;
}
