// C interface to OpenJPH (HTJ2K), implemented in C++ in copenjph.cpp.
// All functions may be called from many threads at once. The first call installs a SIGABRT
// handler (chained to the previous one) that turns an assertion failure inside OpenJPH's
// decoder into an error return; see copenjph.cpp.
#ifndef COPENJPH_H
#define COPENJPH_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/// Version string of the linked OpenJPH, e.g. "0.9.0".
const char *copenjph_version(void);

typedef struct {
    uint32_t width, height, components;
    uint32_t bit_depth;  // per component, all equal
    int32_t is_signed;   // 0/1
    uint32_t reduce;     // resolution levels discarded (copenjph_decode_reduced); width and height are the reduced ones
} copenjph_image_info;

/// Error codes.
enum {
    COPENJPH_OK = 0,
    COPENJPH_EINVAL = 1,     // bad argument, or an image layout this interface cannot return
    COPENJPH_ECODEC = 2,     // malformed or unsupported codestream, or OpenJPH failed
    COPENJPH_ENOMEM = 3,     // allocation failed
    COPENJPH_ETOOSMALL = 4,  // out_capacity too small
};

/// Decodes an HTJ2K codestream (raw J2C, not JP2) into `out`: samples interleaved per pixel
/// (c0 c1 c2 ...), row-major, as little-endian unsigned/signed integers of
/// bytes_per_sample = (bit_depth <= 8 ? 1 : 2) bytes, clamped to the range of bit_depth.
/// With out == NULL only `info` is filled in (the marker structure is still checked).
/// Refused: plain J2K (part-1) code-blocks, more than one quality layer, COC/QCC/POC/PPM/RGN
/// or tile-part COD/QCD/PPT markers (OpenJPH 0.9 would ignore them), a stream not ending in EOC
/// (zero padding after it is fine), bit_depth > 16, subsampled components, components differing
/// in depth or signedness, and more than 2^28 samples.
/// Returns 0 on success; otherwise a COPENJPH_E* code and a NUL-terminated message in err
/// (if err_len > 0).
int copenjph_decode(const uint8_t *data, size_t length, copenjph_image_info *info,
                    uint8_t *out, size_t out_capacity, char *err, size_t err_len);

/// As copenjph_decode, reconstructing only the resolutions above the `reduce` finest (at most
/// the codestream's decomposition levels): the image is ceil(width / 2^reduce) × ceil(height / 2^reduce),
/// and the code-blocks of the skipped levels are not decoded.
int copenjph_decode_reduced(const uint8_t *data, size_t length, uint32_t reduce, copenjph_image_info *info,
                            uint8_t *out, size_t out_capacity, char *err, size_t err_len);

/// Encodes samples laid out as for copenjph_decode losslessly as HTJ2K: reversible 5/3, RPCL,
/// RCT only when use_color_transform and components == 3, min(5, floor(log2(min(w, h))))
/// decomposition levels, 64x64 code-blocks, one tile. bit_depth must be 1...16 and every
/// sample within its range. *out is malloc'ed; release it with copenjph_free.
/// Returns 0 on success; otherwise a COPENJPH_E* code and a NUL-terminated message in err.
int copenjph_encode(const uint8_t *samples, size_t samples_length, const copenjph_image_info *info,
                    int use_color_transform, uint8_t **out, size_t *out_length,
                    char *err, size_t err_len);

void copenjph_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
