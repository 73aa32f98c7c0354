#include "copenjph.h"
#include <openjph/ojph_arch.h>  // must come first: the other OpenJPH headers rely on its macros
#include <openjph/ojph_codestream.h>
#include <openjph/ojph_file.h>
#include <openjph/ojph_mem.h>
#include <openjph/ojph_message.h>
#include <openjph/ojph_params.h>
#include <openjph/ojph_version.h>

#include <algorithm>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#define COPENJPH_STR2(x) #x
#define COPENJPH_STR(x) COPENJPH_STR2(x)

extern "C" const char *copenjph_version(void) {
    return COPENJPH_STR(OPENJPH_VERSION_MAJOR) "." COPENJPH_STR(OPENJPH_VERSION_MINOR) "." COPENJPH_STR(OPENJPH_VERSION_PATCH);
}

namespace {

constexpr uint64_t kMaxSamples = uint64_t(1) << 28;

// OpenJPH 0.9.0's configure_error() copy-assigns into a base-class reference, so a custom
// handler never takes effect; the only hook is the FILE* the stock handler prints to before it
// throws. That stream is process-wide, so it is unbuffered (each fprintf reaches the cookie on
// the calling thread) and the text lands in a per-thread buffer.
thread_local std::string t_message;
int capture_flag;  // cookie of the error stream; the discarding stream gets null

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

// Debian builds OpenJPH with assertions on, and its block decoder asserts on properties of the
// entropy-coded data that no header check can rule out, so malformed data would abort() the
// process. While a thread is inside copenjph_decode a SIGABRT handler jumps back to it instead;
// that call's allocations are leaked, and glibc has already printed the assertion to stderr.
// Aborts anywhere else go to the handler that was installed before.
thread_local sigjmp_buf *t_abort_target;
struct sigaction g_previous_abort;

void on_abort(int sig, siginfo_t *si, void *ctx) {
    if (sigjmp_buf *target = t_abort_target) siglongjmp(*target, 1);
    if (g_previous_abort.sa_flags & SA_SIGINFO) {
        g_previous_abort.sa_sigaction(sig, si, ctx);
    } else if (g_previous_abort.sa_handler != SIG_DFL && g_previous_abort.sa_handler != SIG_IGN) {
        g_previous_abort.sa_handler(sig);
    }
}  // returning lets abort() restore the default action and terminate

void configure_once() {
    static const bool done = [] {
        // No stream may be null: 0.9.0's handlers fprintf to it unchecked.
        ojph::set_error_stream(open_stream(true));
        FILE *sink = open_stream(false);
        ojph::set_warning_stream(sink);
        ojph::set_info_stream(sink);
        struct sigaction sa = {};
        sa.sa_sigaction = on_abort;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGABRT, &sa, &g_previous_abort);
        // Constructing a codestream makes OpenJPH pick its SIMD kernels behind unsynchronised
        // static flags; doing it once here keeps concurrent first calls from racing on them.
        ojph::codestream warm_up;
        return true;
    }();
    (void)done;
}

int fail(int code, char *err, size_t err_len, const char *msg) {
    if (err && err_len) std::snprintf(err, err_len, "%s", msg);
    return code;
}

// OpenJPH's exceptions only say "ojph error"; the real text is in the captured stream output.
int fail_current(char *err, size_t err_len) {
    int code = COPENJPH_ECODEC;
    std::string msg = "unknown OpenJPH failure";
    try {
        throw;
    } catch (const std::bad_alloc &) {
        code = COPENJPH_ENOMEM, msg = "out of memory";
    } catch (const std::exception &e) {
        msg = e.what();
    } catch (const char *s) {  // OpenJPH's allocator throws "malloc failed"
        code = COPENJPH_ENOMEM, msg = s;
    } catch (...) {
    }
    while (!t_message.empty() && (t_message.back() == '\n' || t_message.back() == '\r')) t_message.pop_back();
    return fail(code, err, err_len, (code == COPENJPH_ECODEC && !t_message.empty() ? t_message : msg).c_str());
}

uint32_t be(const uint8_t *p, int n) {
    uint32_t v = 0;
    while (n--) v = v << 8 | *p++;
    return v;
}

// OpenJPH 0.9 is not hardened: it aborts or loops forever on some inconsistent headers, skips
// markers it cannot apply (COC, QCC, POC, PPM, RGN, tile-part COD/QCD) and so decodes wrong
// pixels, segfaults on more than one quality layer, decodes data cut short inside a tile as
// zeros, leaves missing tiles as zeros and trusts the tile index. So the marker structure is
// checked here, accepting only what it decodes correctly. The stream must end in EOC; trailing
// zero bytes are allowed because DICOM pads fragments to even length.
const char *validate(const uint8_t *d, size_t n) {
    while (n > 0 && d[n - 1] == 0) --n;
    if (n < 6 || be(d, 2) != 0xFF4F || be(d + 2, 2) != 0xFF51) return "not a JPEG 2000 codestream";
    if (be(d + n - 2, 2) != 0xFFD9) return "codestream truncated (no EOC marker)";
    const size_t end = n - 2;
    const uint8_t *cod = nullptr, *qcd = nullptr;
    size_t p = 2, cod_len = 0, qcd_len = 0;
    uint64_t tiles = 0;
    for (;;) {  // main header
        if (end - p < 4) return "codestream truncated in main header";
        const uint32_t m = be(d + p, 2), len = be(d + p + 2, 2);
        if (m == 0xFF90) break;
        if (len < 2 || len > end - p - 2) return "codestream truncated in main header";
        if ((m == 0xFF51 && tiles) || (m == 0xFF52 && cod) || (m == 0xFF5C && qcd)) return "duplicate SIZ, COD or QCD";
        const uint8_t *s = d + p + 4;
        if (m == 0xFF51) {
            const uint32_t csiz = len >= 38 ? be(s + 34, 2) : 0;
            if (csiz == 0 || len != 38 + 3 * csiz) return "malformed SIZ";
            const uint64_t xs = be(s + 2, 4), ys = be(s + 6, 4), xo = be(s + 10, 4), yo = be(s + 14, 4);
            const uint64_t tw = be(s + 18, 4), th = be(s + 22, 4), txo = be(s + 26, 4), tyo = be(s + 30, 4);
            if (xo >= xs || yo >= ys || !tw || !th || txo > xo || tyo > yo || txo + tw <= xo || tyo + th <= yo)
                return "invalid image or tile geometry";
            tiles = ((xs - txo + tw - 1) / tw) * ((ys - tyo + th - 1) / th);
            if (tiles > 65535) return "too many tiles";
        } else if (m == 0xFF52) {
            cod = s, cod_len = len - 2;
        } else if (m == 0xFF5C) {
            qcd = s, qcd_len = len - 2;
        } else if (m != 0xFF50 && m != 0xFF55 && m != 0xFF57 && m != 0xFF59 && m != 0xFF63 && m != 0xFF64) {
            return "main header marker not supported by OpenJPH 0.9 (e.g. COC, QCC, POC, PPM, RGN)";
        }
        p += 2 + len;
    }
    if (!cod || !qcd || cod_len < 10) return "SIZ, COD or QCD missing or too short";
    // COD: Scod, progression, layers(2), MCT, levels, xcb, ycb, style, transform[, precincts]
    const uint32_t levels = cod[5], bands = 1 + 3 * levels, reversible = cod[9] == 1;
    if (levels > 32 || cod[1] > 4 || be(cod + 2, 2) != 1 || cod[4] > 1 || cod[6] > 8 || cod[7] > 8 ||
        cod[6] + cod[7] > 8 || cod[9] > 1 || ((cod[0] & 1) && cod_len < 10 + levels + 1))
        return "COD parameters not supported";
    for (uint32_t r = 1; (cod[0] & 1) && r <= levels; ++r)  // PPx, PPy = 0 only for r = 0
        if ((cod[10 + r] & 0x0F) == 0 || (cod[10 + r] >> 4) == 0) return "invalid precinct size";
    if ((cod[8] & 0xC0) != 0x40) return "code-blocks are not HTJ2K (OpenJPH 0.9 decodes HT code-blocks only)";
    // QCD: no quantization for 5/3 (a byte per band), expounded for 9/7 (two bytes per band).
    if (qcd_len < 1 + (reversible ? 1 : 2) * bands || (qcd[0] & 0x1F) != (reversible ? 0 : 2))
        return "QCD quantization style not supported";
    for (uint32_t b = 0; b < bands; ++b)
        if ((qcd[0] >> 5) + (reversible ? qcd[1 + b] >> 3 : be(qcd + 1 + 2 * b, 2) >> 11) > 31)
            return "QCD implies more than 30 magnitude bits";

    std::vector<uint16_t> parts(tiles), expected(tiles);
    while (p < end) {  // tile-parts
        if (end - p < 14 || be(d + p, 2) != 0xFF90 || be(d + p + 2, 2) != 10) return "malformed tile-part";
        const uint32_t isot = be(d + p + 4, 2), psot = be(d + p + 6, 4);
        if (isot >= tiles) return "tile index out of range";
        if (psot != 0 && (psot < 14 || psot > end - p)) return "codestream truncated in tile data";
        const size_t part_end = psot ? p + psot : end;  // Psot = 0: the last tile-part runs up to EOC
        ++parts[isot];
        expected[isot] = d[p + 11];
        size_t q = p + 12;
        for (;;) {  // only PLT and COM may precede SOD
            if (part_end - q < 2) return "tile-part without SOD";
            if (be(d + q, 2) == 0xFF93) break;
            const uint32_t m = be(d + q, 2), len = part_end - q >= 4 ? be(d + q + 2, 2) : 0;
            if ((m != 0xFF58 && m != 0xFF64) || len < 2 || len > part_end - q - 2)
                return "tile-part header marker not supported by OpenJPH 0.9";
            q += 2 + len;
        }
        // Packet data never holds FF90..FFFF other than SOP/EPH; the HT decoder asserts on it.
        for (const uint8_t *b = d + q + 2, *e = d + part_end;
             (b = static_cast<const uint8_t *>(std::memchr(b, 0xFF, size_t(e - b)))) && e - b > 1; ++b)
            if (b[1] > 0x8F && b[1] != 0x91 && b[1] != 0x92) return "marker code inside tile data";
        p = part_end;
    }
    for (uint64_t t = 0; t < tiles; ++t)
        if (parts[t] == 0 || (expected[t] && parts[t] != expected[t])) return "codestream lacks a tile or tile-part";
    return nullptr;
}

int decode_impl(const uint8_t *data, size_t length, uint32_t reduce, copenjph_image_info *info, uint8_t *out,
                size_t out_capacity, char *err, size_t err_len) {
    if (const char *why = validate(data, length)) return fail(COPENJPH_ECODEC, err, err_len, why);
    ojph::mem_infile in;
    in.open(data, length);
    ojph::codestream cs;
    cs.read_headers(&in);
    // Skipping the finest levels both when reading and when reconstructing decodes only the
    // lower resolutions' code-blocks; the image is then ceil(extent / 2^reduce) on each side.
    reduce = std::min<uint32_t>(reduce, cs.access_cod().get_num_decompositions());
    if (reduce > 0) cs.restrict_input_resolution(reduce, reduce);

    ojph::param_siz siz = cs.access_siz();
    const ojph::point extent = siz.get_image_extent(), offset = siz.get_image_offset();
    const uint32_t nc = siz.get_num_components();
    if (extent.x <= offset.x || extent.y <= offset.y || nc == 0)
        return fail(COPENJPH_ECODEC, err, err_len, "empty image");
    copenjph_image_info hdr = {siz.get_recon_width(0), siz.get_recon_height(0), nc, siz.get_bit_depth(0), siz.is_signed(0), reduce};
    for (uint32_t c = 0; c < nc; ++c) {
        const ojph::point ds = siz.get_downsampling(c);
        if (ds.x != 1 || ds.y != 1)
            return fail(COPENJPH_EINVAL, err, err_len, "subsampled components are not supported");
        if (siz.get_bit_depth(c) != hdr.bit_depth || int32_t(siz.is_signed(c)) != hdr.is_signed)
            return fail(COPENJPH_EINVAL, err, err_len, "components differ in bit depth or signedness");
    }
    *info = hdr;
    if (!out) return COPENJPH_OK;

    if (hdr.bit_depth < 1 || hdr.bit_depth > 16) return fail(COPENJPH_EINVAL, err, err_len, "bit depth above 16");
    const uint64_t samples = uint64_t(hdr.width) * hdr.height * nc;
    if (samples > kMaxSamples) return fail(COPENJPH_EINVAL, err, err_len, "image too large");
    const size_t bps = hdr.bit_depth <= 8 ? 1 : 2;
    if (out_capacity < samples * bps) return fail(COPENJPH_ETOOSMALL, err, err_len, "output buffer too small");

    // Lossy streams can overshoot the nominal range, so every sample is clamped.
    const int32_t lo = hdr.is_signed ? -(int32_t(1) << (hdr.bit_depth - 1)) : 0;
    const int32_t hi = hdr.is_signed ? (int32_t(1) << (hdr.bit_depth - 1)) - 1 : int32_t((1u << hdr.bit_depth) - 1);
    const size_t step = nc * bps, stride = size_t(hdr.width) * step;
    cs.set_planar(false);
    cs.create();
    for (uint32_t y = 0; y < hdr.height; ++y) {
        for (uint32_t c = 0; c < nc; ++c) {
            ojph::ui32 comp = 0;
            const ojph::line_buf *line = cs.pull(comp);
            if (!line || comp != c || line->size < hdr.width)
                return fail(COPENJPH_ECODEC, err, err_len, "unexpected line from decoder");
            uint8_t *dst = out + y * stride + c * bps;
            for (uint32_t x = 0; x < hdr.width; ++x, dst += step) {
                const int32_t v = std::clamp<int32_t>(line->i32[x], lo, hi);
                dst[0] = uint8_t(v);
                if (bps == 2) dst[1] = uint8_t(v >> 8);
            }
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
    if (!samples || samples_length < count * bps) return fail(COPENJPH_EINVAL, err, err_len, "sample buffer too small");

    ojph::codestream cs;
    ojph::param_siz siz = cs.access_siz();
    siz.set_image_extent(ojph::point(w, h));
    siz.set_tile_size(ojph::size(w, h));
    siz.set_num_components(nc);
    for (uint32_t c = 0; c < nc; ++c) siz.set_component(c, ojph::point(1, 1), depth, is_signed);
    ojph::param_cod cod = cs.access_cod();
    uint32_t levels = 0;  // each level halves the smaller side, which must stay >= 1
    while (levels < 5 && (std::min(w, h) >> (levels + 1)) != 0) ++levels;
    cod.set_num_decomposition(levels);
    cod.set_block_dims(64, 64);
    cod.set_progression_order("RPCL");
    cod.set_color_transform(use_color_transform && nc == 3);
    cod.set_reversible(true);
    cs.set_planar(false);

    // Out-of-range samples would not survive the round trip, so they are refused.
    const int32_t lo = is_signed ? -(int32_t(1) << (depth - 1)) : 0;
    const int32_t hi = is_signed ? (int32_t(1) << (depth - 1)) - 1 : int32_t((1u << depth) - 1);
    const size_t step = nc * bps, stride = size_t(w) * step;
    ojph::mem_outfile file;
    file.open();
    cs.write_headers(&file);
    ojph::ui32 comp = 0;
    ojph::line_buf *line = cs.exchange(nullptr, comp);
    for (uint32_t y = 0; y < h; ++y) {
        for (uint32_t c = 0; c < nc; ++c) {
            if (!line || comp != c || line->size < w)
                return fail(COPENJPH_ECODEC, err, err_len, "unexpected line from encoder");
            const uint8_t *src = samples + y * stride + c * bps;
            for (uint32_t x = 0; x < w; ++x, src += step) {
                const int32_t u = bps == 1 ? src[0] : src[0] | src[1] << 8;
                const int32_t v = !is_signed ? u : bps == 1 ? int32_t(int8_t(u)) : int32_t(int16_t(u));
                if (v < lo || v > hi)
                    return fail(COPENJPH_EINVAL, err, err_len, "sample outside the range of bit_depth");
                line->i32[x] = v;
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

}  // namespace

extern "C" int copenjph_decode(const uint8_t *data, size_t length, copenjph_image_info *info, uint8_t *out,
                               size_t out_capacity, char *err, size_t err_len) {
    return copenjph_decode_reduced(data, length, 0, info, out, out_capacity, err, err_len);
}

extern "C" int copenjph_decode_reduced(const uint8_t *data, size_t length, uint32_t reduce, copenjph_image_info *info,
                                       uint8_t *out, size_t out_capacity, char *err, size_t err_len) {
    if (err && err_len) err[0] = '\0';
    if (!data || length == 0 || !info) return fail(COPENJPH_EINVAL, err, err_len, "no input");
    configure_once();
    t_message.clear();
    sigjmp_buf target;
    if (sigsetjmp(target, 1)) {
        t_abort_target = nullptr;
        return fail(COPENJPH_ECODEC, err, err_len, "malformed codestream (OpenJPH assertion failed)");
    }
    t_abort_target = &target;
    int rc;
    try {
        rc = decode_impl(data, length, reduce, info, out, out_capacity, err, err_len);
    } catch (...) {
        rc = fail_current(err, err_len);
    }
    t_abort_target = nullptr;
    return rc;
}

extern "C" int copenjph_encode(const uint8_t *samples, size_t samples_length, const copenjph_image_info *info,
                               int use_color_transform, uint8_t **out, size_t *out_length, char *err, size_t err_len) {
    if (err && err_len) err[0] = '\0';
    if (!info || !out || !out_length) return fail(COPENJPH_EINVAL, err, err_len, "null argument");
    *out = nullptr;
    *out_length = 0;
    configure_once();
    t_message.clear();
    try {
        return encode_impl(samples, samples_length, info, use_color_transform, out, out_length, err, err_len);
    } catch (...) {
        return fail_current(err, err_len);
    }
}

extern "C" void copenjph_free(void *p) { std::free(p); }
