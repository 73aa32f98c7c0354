#include "copenjph.h"
#include <openjph/ojph_arch.h>
#include <openjph/ojph_codestream.h>
#include <openjph/ojph_file.h>
#include <openjph/ojph_mem.h>
#include <openjph/ojph_message.h>
#include <openjph/ojph_params.h>
#include <openjph/ojph_version.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#define COPENJPH_STR2(x) #x
#define COPENJPH_STR(x) COPENJPH_STR2(x)

extern "C" const char *copenjph_version(void) {
    return COPENJPH_STR(OPENJPH_VERSION_MAJOR) "." COPENJPH_STR(OPENJPH_VERSION_MINOR) "." COPENJPH_STR(OPENJPH_VERSION_PATCH);
}

namespace {

constexpr uint64_t kMaxSamples = uint64_t(1) << 28;

// OpenJPH 0.9.0's configure_error() copy-assigns into a base-class reference, so a custom
// handler never takes effect; the only hook is the FILE* the default handler prints to before
// it throws. That stream is process-wide, so it is unbuffered (each fprintf reaches the cookie
// on the calling thread, under the FILE lock) and the text lands in a per-thread buffer.
thread_local std::string t_message;

int capture_flag;  // cookie marking the error stream; the sink stream gets null

ssize_t stream_write(void *cookie, const char *buf, size_t size) {
    if (cookie && t_message.size() < 512) t_message.append(buf, std::min(size, 512 - t_message.size()));
    return ssize_t(size);
}

FILE *open_stream(bool capture) {
    void *cookie = capture ? &capture_flag : nullptr;
#ifdef __APPLE__
    FILE *f = funopen(cookie, nullptr, [](void *c, const char *b, int n) { return int(stream_write(c, b, size_t(n))); },
                      nullptr, nullptr);
#else
    FILE *f = fopencookie(cookie, "w", cookie_io_functions_t{nullptr, stream_write, nullptr, nullptr});
#endif
    if (!f) f = fopen("/dev/null", "w");
    if (f) setvbuf(f, nullptr, _IONBF, 0);
    return f;
}

void warm_up();

// The streams must never be null: 0.9.0's info/warning handlers fprintf to them unchecked,
// and later versions' error handler returns without throwing (carrying on with bad state).
void configure_once() {
    static const bool done = [] {
        ojph::set_error_stream(open_stream(true));
        FILE *sink = open_stream(false);
        ojph::set_warning_stream(sink);
        ojph::set_info_stream(sink);
        warm_up();
        return true;
    }();
    (void)done;
}

int fail(int code, char *err, size_t err_len, const char *msg) {
    if (err && err_len) {
        std::snprintf(err, err_len, "%s", msg);
    }
    return code;
}

// Converts whatever OpenJPH threw into an error code; the text of OpenJPH's own errors comes
// from the capture stream because its exceptions only say "ojph error".
int fail_current(char *err, size_t err_len) {
    std::string msg;
    int code = COPENJPH_ECODEC;
    try {
        throw;
    } catch (const std::bad_alloc &) {
        code = COPENJPH_ENOMEM;
        msg = "out of memory";
    } catch (const std::exception &e) {
        msg = e.what();
    } catch (const char *s) {  // OpenJPH's allocator throws string literals
        msg = s;
    } catch (...) {
        msg = "unknown OpenJPH failure";
    }
    std::string detail = t_message;
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
    if (!detail.empty()) msg = detail;
    if (msg.find("malloc") != std::string::npos) code = COPENJPH_ENOMEM;
    return fail(code, err, err_len, msg.c_str());
}

inline int32_t read_sample(const uint8_t *p, size_t bps, bool is_signed) {
    if (bps == 1) return is_signed ? int32_t(int8_t(p[0])) : int32_t(p[0]);
    uint16_t v = uint16_t(p[0] | (p[1] << 8));
    return is_signed ? int32_t(int16_t(v)) : int32_t(v);
}

inline void write_sample(uint8_t *p, size_t bps, int32_t v) {
    p[0] = uint8_t(v & 0xFF);
    if (bps == 2) p[1] = uint8_t((v >> 8) & 0xFF);
}

uint32_t decomposition_levels(uint32_t w, uint32_t h) {
    uint32_t m = std::min(w, h), levels = 0;
    while (levels < 5 && (m >> (levels + 1)) >= 1) ++levels;
    return levels;
}

// OpenJPH 0.9 decodes a stream cut short inside its tile data without complaint (the missing
// code-block bytes read as zeros), so walk the tile-parts by their Psot lengths and insist on
// the EOC marker. Trailing zero bytes are tolerated because DICOM pads fragments to even length.
const char *check_complete(const uint8_t *d, size_t n) {
    while (n > 0 && d[n - 1] == 0) --n;
    if (n < 4 || d[n - 2] != 0xFF || d[n - 1] != 0xD9) return "codestream truncated (no EOC marker)";
    const size_t end = n - 2;
    size_t p = 2;
    for (;;) {  // main header: length-prefixed marker segments up to the first SOT
        if (end - p < 4) return "codestream truncated in main header";
        if (d[p] == 0xFF && d[p + 1] == 0x90) break;
        p += 2 + size_t(d[p + 2] << 8 | d[p + 3]);
        if (p > end) return "codestream truncated in main header";
    }
    while (p < end) {
        if (end - p < 12 || d[p] != 0xFF || d[p + 1] != 0x90) return "malformed or truncated tile-part";
        uint32_t psot = uint32_t(d[p + 6]) << 24 | d[p + 7] << 16 | d[p + 8] << 8 | d[p + 9];
        if (psot == 0) break;  // the last tile-part may run up to EOC
        if (psot < 14 || psot > end - p) return "codestream truncated in tile data";
        p += psot;
    }
    return nullptr;
}

int decode_impl(const uint8_t *data, size_t length, copenjph_image_info *info, uint8_t *out,
                size_t out_capacity, char *err, size_t err_len) {
    ojph::mem_infile in;
    in.open(data, length);
    ojph::codestream cs;
    cs.read_headers(&in);

    ojph::param_siz siz = cs.access_siz();
    ojph::point extent = siz.get_image_extent(), offset = siz.get_image_offset();
    const uint32_t nc = siz.get_num_components();
    if (extent.x <= offset.x || extent.y <= offset.y || nc == 0)
        return fail(COPENJPH_ECODEC, err, err_len, "empty image");
    copenjph_image_info hdr;
    hdr.width = extent.x - offset.x;
    hdr.height = extent.y - offset.y;
    hdr.components = nc;
    hdr.bit_depth = siz.get_bit_depth(0);
    hdr.is_signed = siz.is_signed(0) ? 1 : 0;
    for (uint32_t c = 0; c < nc; ++c) {
        ojph::point ds = siz.get_downsampling(c);
        if (ds.x != 1 || ds.y != 1)
            return fail(COPENJPH_EINVAL, err, err_len, "subsampled components are not supported");
        if (siz.get_bit_depth(c) != hdr.bit_depth || (siz.is_signed(c) ? 1 : 0) != hdr.is_signed)
            return fail(COPENJPH_EINVAL, err, err_len, "components differ in bit depth or signedness");
    }
    *info = hdr;
    if (!out) return COPENJPH_OK;

    if (hdr.bit_depth < 1 || hdr.bit_depth > 16)
        return fail(COPENJPH_EINVAL, err, err_len, "bit depth above 16 is not supported");
    const uint64_t samples = uint64_t(hdr.width) * hdr.height * nc;
    if (samples > kMaxSamples) return fail(COPENJPH_EINVAL, err, err_len, "image too large");
    const size_t bps = hdr.bit_depth <= 8 ? 1 : 2;
    if (out_capacity < samples * bps)
        return fail(COPENJPH_ETOOSMALL, err, err_len, "output buffer too small");

    const int32_t lo = hdr.is_signed ? -(int32_t(1) << (hdr.bit_depth - 1)) : 0;
    const int32_t hi = hdr.is_signed ? (int32_t(1) << (hdr.bit_depth - 1)) - 1
                                     : int32_t((uint32_t(1) << hdr.bit_depth) - 1);
    const size_t stride = size_t(hdr.width) * nc * bps;
    if (const char *why = check_complete(data, length)) return fail(COPENJPH_ECODEC, err, err_len, why);
    cs.set_planar(false);
    cs.create();
    for (uint32_t y = 0; y < hdr.height; ++y) {
        uint8_t *row = out + y * stride;
        for (uint32_t c = 0; c < nc; ++c) {
            ojph::ui32 comp = 0;
            ojph::line_buf *line = cs.pull(comp);
            if (!line || comp != c || line->size < hdr.width)
                return fail(COPENJPH_ECODEC, err, err_len, "unexpected line from decoder");
            const ojph::si32 *src = line->i32;
            uint8_t *dst = row + c * bps;
            for (uint32_t x = 0; x < hdr.width; ++x, dst += nc * bps)
                write_sample(dst, bps, std::clamp<int32_t>(src[x], lo, hi));
        }
    }
    return COPENJPH_OK;
}

int encode_impl(const uint8_t *samples, size_t samples_length, const copenjph_image_info *info,
                int use_color_transform, uint8_t **out, size_t *out_length, char *err, size_t err_len) {
    const uint32_t w = info->width, h = info->height, nc = info->components, depth = info->bit_depth;
    const bool is_signed = info->is_signed != 0;
    if (w == 0 || h == 0 || nc == 0 || nc > 16384 || depth < 1 || depth > 16)
        return fail(COPENJPH_EINVAL, err, err_len, "invalid image dimensions, components or bit depth");
    const uint64_t count = uint64_t(w) * h * nc;
    const size_t bps = depth <= 8 ? 1 : 2;
    if (count > kMaxSamples) return fail(COPENJPH_EINVAL, err, err_len, "image too large");
    if (!samples || samples_length < count * bps)
        return fail(COPENJPH_EINVAL, err, err_len, "sample buffer too small");

    ojph::codestream cs;
    ojph::param_siz siz = cs.access_siz();
    siz.set_image_extent(ojph::point(w, h));
    siz.set_image_offset(ojph::point(0, 0));
    siz.set_tile_size(ojph::size(w, h));
    siz.set_tile_offset(ojph::point(0, 0));
    siz.set_num_components(nc);
    for (uint32_t c = 0; c < nc; ++c) siz.set_component(c, ojph::point(1, 1), depth, is_signed);
    ojph::param_cod cod = cs.access_cod();
    cod.set_num_decomposition(decomposition_levels(w, h));
    cod.set_block_dims(64, 64);
    cod.set_progression_order("RPCL");
    cod.set_color_transform(use_color_transform && nc == 3);
    cod.set_reversible(true);
    cs.set_planar(false);

    const int32_t lo = is_signed ? -(int32_t(1) << (depth - 1)) : 0;
    const int32_t hi = is_signed ? (int32_t(1) << (depth - 1)) - 1 : int32_t((uint32_t(1) << depth) - 1);
    const size_t stride = size_t(w) * nc * bps;

    ojph::mem_outfile file;
    file.open();
    cs.write_headers(&file);
    ojph::ui32 comp = 0;
    ojph::line_buf *line = cs.exchange(nullptr, comp);
    for (uint32_t y = 0; y < h; ++y) {
        const uint8_t *row = samples + y * stride;
        for (uint32_t c = 0; c < nc; ++c) {
            if (!line || comp != c || line->size < w)
                return fail(COPENJPH_ECODEC, err, err_len, "unexpected line from encoder");
            const uint8_t *src = row + c * bps;
            ojph::si32 *dst = line->i32;
            for (uint32_t x = 0; x < w; ++x, src += nc * bps) {
                int32_t v = read_sample(src, bps, is_signed);
                // Out-of-range samples would not survive the round trip, so refuse them.
                if (v < lo || v > hi)
                    return fail(COPENJPH_EINVAL, err, err_len, "sample outside the range of bit_depth");
                dst[x] = v;
            }
            line = cs.exchange(line, comp);
        }
    }
    cs.flush();

    const size_t n = size_t(file.tell());
    uint8_t *buf = static_cast<uint8_t *>(std::malloc(n ? n : 1));
    if (!buf) return fail(COPENJPH_ENOMEM, err, err_len, "out of memory");
    std::memcpy(buf, file.get_data(), n);
    *out = buf;
    *out_length = n;
    return COPENJPH_OK;
}

// OpenJPH picks its SIMD kernels lazily through unsynchronised "initialised" flags; one
// encode/decode of every path while still inside the once-only initialiser keeps
// concurrent first calls from racing on them.
void warm_up() {
    try {
        uint8_t px[8 * 8 * 3] = {};
        for (size_t i = 0; i < sizeof px; ++i) px[i] = uint8_t(i * 7);
        copenjph_image_info info = {8, 8, 3, 8, 0};
        uint8_t *enc = nullptr;
        size_t n = 0;
        if (encode_impl(px, sizeof px, &info, 1, &enc, &n, nullptr, 0) == COPENJPH_OK) {
            uint8_t back[sizeof px];
            decode_impl(enc, n, &info, back, sizeof back, nullptr, 0);
            std::free(enc);
        }
    } catch (...) {
    }
    t_message.clear();
}

}  // namespace

extern "C" int copenjph_decode(const uint8_t *data, size_t length, copenjph_image_info *info,
                               uint8_t *out, size_t out_capacity, char *err, size_t err_len) {
    if (err && err_len) err[0] = '\0';
    if (!data || length == 0 || !info) return fail(COPENJPH_EINVAL, err, err_len, "no input");
    configure_once();
    t_message.clear();
    try {
        return decode_impl(data, length, info, out, out_capacity, err, err_len);
    } catch (...) {
        return fail_current(err, err_len);
    }
}

extern "C" int copenjph_encode(const uint8_t *samples, size_t samples_length,
                               const copenjph_image_info *info, int use_color_transform,
                               uint8_t **out, size_t *out_length, char *err, size_t err_len) {
    if (err && err_len) err[0] = '\0';
    if (!info || !out || !out_length) return fail(COPENJPH_EINVAL, err, err_len, "null argument");
    *out = nullptr;
    *out_length = 0;
    configure_once();
    t_message.clear();
    try {
        return encode_impl(samples, samples_length, info, use_color_transform, out, out_length,
                           err, err_len);
    } catch (...) {
        return fail_current(err, err_len);
    }
}

extern "C" void copenjph_free(void *p) { std::free(p); }
