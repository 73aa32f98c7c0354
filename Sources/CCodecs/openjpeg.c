#include <stdlib.h>
#include <string.h>
#include <openjpeg.h>
#include "common.h"

// Memory streams: OpenJPEG reads and writes only through callbacks.
typedef struct { const uint8_t *data; size_t length, pos; } reader_t;
typedef struct { uint8_t *data; size_t length, capacity, pos; int failed; } writer_t;

static OPJ_SIZE_T read_fn(void *buf, OPJ_SIZE_T n, void *user) {
    reader_t *r = user;
    if (r->pos >= r->length) return (OPJ_SIZE_T)-1;
    size_t k = r->length - r->pos < n ? r->length - r->pos : n;
    memcpy(buf, r->data + r->pos, k);
    r->pos += k;
    return k;
}
static OPJ_OFF_T skip_fn(OPJ_OFF_T n, void *user) {
    reader_t *r = user;
    if (n < 0) { if ((size_t)(-n) > r->pos) n = -(OPJ_OFF_T)r->pos; }
    else if ((size_t)n > r->length - r->pos) n = (OPJ_OFF_T)(r->length - r->pos);
    r->pos += n;
    return n;
}
static OPJ_BOOL seek_fn(OPJ_OFF_T n, void *user) {
    reader_t *r = user;
    if (n < 0 || (size_t)n > r->length) return OPJ_FALSE;
    r->pos = (size_t)n;
    return OPJ_TRUE;
}
static int reserve(writer_t *w, size_t end) {
    if (end <= w->capacity) return 1;
    size_t cap = w->capacity ? w->capacity : 65536;
    while (cap < end) cap *= 2;
    uint8_t *p = realloc(w->data, cap);
    if (!p) { w->failed = 1; return 0; }
    w->data = p;
    w->capacity = cap;
    return 1;
}
static OPJ_SIZE_T write_fn(void *buf, OPJ_SIZE_T n, void *user) {
    writer_t *w = user;
    if (!reserve(w, w->pos + n)) return (OPJ_SIZE_T)-1;
    memcpy(w->data + w->pos, buf, n);
    w->pos += n;
    if (w->pos > w->length) w->length = w->pos;
    return n;
}
static OPJ_OFF_T wskip_fn(OPJ_OFF_T n, void *user) {
    writer_t *w = user;
    if (n < 0 || !reserve(w, w->pos + (size_t)n)) return -1;
    w->pos += (size_t)n;
    if (w->pos > w->length) { memset(w->data + w->length, 0, w->pos - w->length); w->length = w->pos; }
    return n;
}
static OPJ_BOOL wseek_fn(OPJ_OFF_T n, void *user) {
    writer_t *w = user;
    if (n < 0 || !reserve(w, (size_t)n)) return OPJ_FALSE;
    if ((size_t)n > w->length) { memset(w->data + w->length, 0, (size_t)n - w->length); w->length = (size_t)n; }
    w->pos = (size_t)n;
    return OPJ_TRUE;
}

// OpenJPEG reports through handlers; keep the first error as the message, print nothing.
typedef struct { char *err; size_t n; int has; } msg_t;
static void on_error(const char *msg, void *user) {
    msg_t *m = user;
    if (m->has || !m->err || !m->n) return;
    snprintf(m->err, m->n, "OpenJPEG: %s", msg);
    size_t l = strlen(m->err);
    if (l && m->err[l - 1] == '\n') m->err[l - 1] = 0;
    m->has = 1;
}
static void on_quiet(const char *msg, void *user) { (void)msg; (void)user; }

static void report_errors_only(opj_codec_t *codec, msg_t *m) {
    opj_set_error_handler(codec, on_error, m);
    opj_set_warning_handler(codec, on_quiet, NULL);
    opj_set_info_handler(codec, on_quiet, NULL);
}

const char *ccodecs_openjpeg_version(void) { return opj_version(); }

int ccodecs_j2k_decode(const uint8_t *data, size_t length, int threads, size_t max_samples,
                       ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length) {
    return ccodecs_j2k_decode_reduced(data, length, threads, 0, max_samples, info, out, out_length, err, err_length);
}

int ccodecs_j2k_decode_reduced(const uint8_t *data, size_t length, int threads, uint32_t reduce, size_t max_samples,
                               ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length) {
    *out = NULL;
    *out_length = 0;
    if (length < 12) return ccodecs_fail(err, err_length, "JPEG 2000 codestream of %zu bytes is too short", length);
    static const uint8_t jp2sig[] = {0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20};
    OPJ_CODEC_FORMAT format = memcmp(data, jp2sig, 8) == 0 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K;
    if (format == OPJ_CODEC_J2K && !(data[0] == 0xFF && data[1] == 0x4F))
        return ccodecs_fail(err, err_length, "not a JPEG 2000 codestream (no SOC marker)");

    reader_t r = {data, length, 0};
    msg_t m = {err, err_length, 0};
    opj_codec_t *codec = opj_create_decompress(format);
    opj_stream_t *stream = opj_stream_create(length < 1 << 20 ? length : 1 << 20, OPJ_TRUE);
    opj_image_t *image = NULL;
    int rc = 1;
    if (!codec || !stream) { ccodecs_fail(err, err_length, "OpenJPEG: out of memory"); goto done; }
    report_errors_only(codec, &m);
    opj_stream_set_user_data(stream, &r, NULL);
    opj_stream_set_user_data_length(stream, length);
    opj_stream_set_read_function(stream, read_fn);
    opj_stream_set_skip_function(stream, skip_fn);
    opj_stream_set_seek_function(stream, seek_fn);

    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    if (!opj_setup_decoder(codec, &params)) { if (!m.has) ccodecs_fail(err, err_length, "OpenJPEG: setup failed"); goto done; }
    if (threads > 1) opj_codec_set_threads(codec, threads);
    if (!opj_read_header(stream, codec, &image) || !image) {
        if (!m.has) ccodecs_fail(err, err_length, "OpenJPEG: cannot read the codestream header");
        goto done;
    }
    int mct = 0;
    uint32_t levels = 0;  // decompositions every component has (numresolutions - 1)
    opj_codestream_info_v2_t *cstr = opj_get_cstr_info(codec);
    if (cstr) {
        mct = cstr->m_default_tile_info.mct;
        if (cstr->m_default_tile_info.tccp_info) {
            levels = UINT32_MAX;
            for (uint32_t c = 0; c < cstr->nbcomps; c++) {
                uint32_t n = cstr->m_default_tile_info.tccp_info[c].numresolutions;
                if (n >= 1 && n - 1 < levels) levels = n - 1;
            }
            if (levels == UINT32_MAX) levels = 0;
        }
        opj_destroy_cstr_info(&cstr);
    }
    uint32_t comps = image->numcomps;
    if (comps < 1 || comps > 4) { ccodecs_fail(err, err_length, "JPEG 2000 image has %u components", comps); goto done; }
    uint64_t w = image->x1 - image->x0, h = image->y1 - image->y0;
    if (w == 0 || h == 0 || w * h * comps > max_samples) {
        ccodecs_fail(err, err_length, "JPEG 2000 image of %llux%llux%u exceeds the frame's size",
                     (unsigned long long)w, (unsigned long long)h, comps);
        goto done;
    }
    // Only the resolution levels asked for are decoded (T.800 B.5): each discarded level halves
    // the image, rounding up (the reduced grid is ceil(x1 / 2^r) - ceil(x0 / 2^r) wide).
    if (reduce > levels) reduce = levels;
    if (reduce > 0) {
        if (!opj_set_decoded_resolution_factor(codec, reduce)) {
            if (!m.has) ccodecs_fail(err, err_length, "OpenJPEG: cannot reduce the resolution");
            goto done;
        }
        uint64_t d = (uint64_t)1 << reduce;
        w = (image->x1 + d - 1) / d - (image->x0 + d - 1) / d;
        h = (image->y1 + d - 1) / d - (image->y0 + d - 1) / d;
    }
    if (!opj_decode(codec, stream, image) || !opj_end_decompress(codec, stream)) {
        if (!m.has) ccodecs_fail(err, err_length, "OpenJPEG: decoding failed");
        goto done;
    }
    uint32_t prec = image->comps[0].prec;
    int sgnd = image->comps[0].sgnd;
    for (uint32_t c = 0; c < comps; c++) {
        opj_image_comp_t *k = &image->comps[c];
        if (!k->data || k->w != w || k->h != h || k->dx != 1 || k->dy != 1) {
            ccodecs_fail(err, err_length, "JPEG 2000 component %u is subsampled or missing", c);
            goto done;
        }
        if (k->prec != prec || k->sgnd != sgnd) {
            ccodecs_fail(err, err_length, "JPEG 2000 components differ in precision or signedness");
            goto done;
        }
    }
    if (prec < 1 || prec > 32) { ccodecs_fail(err, err_length, "JPEG 2000 precision %u", prec); goto done; }
    uint32_t width = ccodecs_width_for(prec);
    size_t count = (size_t)(w * h);
    uint8_t *buf = malloc(count * comps * width);
    if (!buf) { ccodecs_fail(err, err_length, "out of memory"); goto done; }
    for (uint32_t c = 0; c < comps; c++) {
        const OPJ_INT32 *src = image->comps[c].data;
        uint8_t *dst = buf + (size_t)c * width;
        size_t step = (size_t)comps * width;
        for (size_t i = 0; i < count; i++, dst += step) ccodecs_put(dst, width, src[i]);
    }
    info->width = (uint32_t)w;
    info->height = (uint32_t)h;
    info->components = comps;
    info->precision = prec;
    info->is_signed = sgnd;
    info->bytes_per_sample = width;
    info->reduce = reduce;
    // OpenJPEG undoes the codestream's multiple component transform (COD's MCT flag) itself.
    info->color_transformed = comps == 3 && mct != 0;
    *out = buf;
    *out_length = count * comps * width;
    rc = 0;
done:
    if (image) opj_image_destroy(image);
    if (stream) opj_stream_destroy(stream);
    if (codec) opj_destroy_codec(codec);
    return rc;
}

int ccodecs_j2k_encode(const uint8_t *samples, size_t length, const ccodecs_info *info, int use_mct,
                       uint8_t **out, size_t *out_length, char *err, size_t err_length) {
    *out = NULL;
    *out_length = 0;
    uint32_t comps = info->components, w = info->width, h = info->height, bps = info->bytes_per_sample;
    if (comps < 1 || comps > 4 || w == 0 || h == 0 || (bps != 1 && bps != 2 && bps != 4) || info->precision < 1 || info->precision > 8 * bps)
        return ccodecs_fail(err, err_length, "cannot encode %ux%ux%u samples of %u bits", w, h, comps, info->precision);
    size_t count = (size_t)w * h;
    if (length < count * comps * bps) return ccodecs_fail(err, err_length, "frame is shorter than its description");

    opj_image_cmptparm_t parms[4];
    memset(parms, 0, sizeof parms);
    for (uint32_t c = 0; c < comps; c++) {
        parms[c].dx = parms[c].dy = 1;
        parms[c].w = w;
        parms[c].h = h;
        parms[c].prec = info->precision;
        parms[c].sgnd = info->is_signed ? 1 : 0;
    }
    opj_image_t *image = opj_image_create(comps, parms, comps >= 3 ? OPJ_CLRSPC_SRGB : OPJ_CLRSPC_GRAY);
    if (!image) return ccodecs_fail(err, err_length, "out of memory");
    image->x0 = image->y0 = 0;
    image->x1 = w;
    image->y1 = h;
    uint32_t shift = 32 - 8 * bps;
    for (uint32_t c = 0; c < comps; c++) {
        OPJ_INT32 *dst = image->comps[c].data;
        const uint8_t *src = samples + (size_t)c * bps;
        for (size_t i = 0; i < count; i++, src += (size_t)comps * bps) {
            uint32_t v = src[0];
            if (bps > 1) v |= (uint32_t)src[1] << 8;
            if (bps > 2) v |= (uint32_t)src[2] << 16 | (uint32_t)src[3] << 24;
            dst[i] = info->is_signed ? (OPJ_INT32)(v << shift) >> shift : (OPJ_INT32)v;
        }
    }
    opj_cparameters_t p;
    opj_set_default_encoder_parameters(&p);
    p.tcp_numlayers = 1;
    p.tcp_rates[0] = 0;
    p.cp_disto_alloc = 1;
    p.irreversible = 0;
    p.tcp_mct = (use_mct && comps == 3) ? 1 : 0;
    // Up to 5 decompositions, fewer for small images (each level halves the smallest side).
    int levels = 0;
    uint32_t side = w < h ? w : h;
    while (levels < 5 && (side >> (levels + 1)) >= 1) levels++;
    p.numresolution = levels + 1;

    writer_t wr = {0};
    msg_t m = {err, err_length, 0};
    int rc = 1;
    opj_codec_t *codec = opj_create_compress(OPJ_CODEC_J2K);
    opj_stream_t *stream = opj_stream_create(1 << 20, OPJ_FALSE);
    if (!codec || !stream) { ccodecs_fail(err, err_length, "OpenJPEG: out of memory"); goto done; }
    report_errors_only(codec, &m);
    opj_stream_set_user_data(stream, &wr, NULL);
    opj_stream_set_write_function(stream, write_fn);
    opj_stream_set_skip_function(stream, wskip_fn);
    opj_stream_set_seek_function(stream, wseek_fn);
    if (!opj_setup_encoder(codec, &p, image) || !opj_start_compress(codec, image, stream) ||
        !opj_encode(codec, stream) || !opj_end_compress(codec, stream) || wr.failed) {
        if (!m.has) ccodecs_fail(err, err_length, "OpenJPEG: encoding failed");
        goto done;
    }
    *out = wr.data;
    *out_length = wr.length;
    wr.data = NULL;
    rc = 0;
done:
    free(wr.data);
    if (stream) opj_stream_destroy(stream);
    if (codec) opj_destroy_codec(codec);
    opj_image_destroy(image);
    return rc;
}
