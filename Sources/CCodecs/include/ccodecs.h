// C glue for the codec libraries whose APIs Swift cannot call directly: OpenJPEG needs
// stream callbacks over memory, libjpeg (8-bit) and libijg12 (12-bit) report errors by longjmp,
// CharLS's output layout follows the stream's interleave mode. Each function is reentrant; none prints anything.
#ifndef CCODECS_H
#define CCODECS_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t width, height, components;
    uint32_t precision;         // bits per sample in the codestream
    int32_t is_signed;          // codestream signedness (JPEG 2000 only; 0 elsewhere)
    uint32_t bytes_per_sample;  // output width: 1 (precision <= 8), 2 (<= 16) or 4
    int32_t color_transformed;  // the decoder converted colour (J2K MCT, JPEG YCbCr) to RGB
    uint32_t reduce;            // resolution levels discarded (JPEG 2000 only): width, height are ceil(full / 2^reduce)
} ccodecs_info;

/// Decodes a JPEG 2000 or HTJ2K codestream (or JP2 file) with OpenJPEG into a malloc'ed buffer of
/// interleaved little-endian samples, sign-extended when signed. `max_samples` caps width ×
/// height × components before anything is allocated. 0 on success; otherwise a message in `err`.
int ccodecs_j2k_decode(const uint8_t *data, size_t length, int threads, size_t max_samples,
                       ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length);

/// As ccodecs_j2k_decode, decoding only the resolution levels above the `reduce` finest ones
/// (at most the codestream's decomposition levels; `info->reduce` says how many were discarded).
int ccodecs_j2k_decode_reduced(const uint8_t *data, size_t length, int threads, uint32_t reduce, size_t max_samples,
                               ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length);

/// Encodes interleaved little-endian samples (layout and signedness from `info`) as lossless
/// JPEG 2000 (reversible 5/3, one layer), with the RCT when `use_mct` and there are 3 components.
int ccodecs_j2k_encode(const uint8_t *samples, size_t length, const ccodecs_info *info, int use_mct,
                       uint8_t **out, size_t *out_length, char *err, size_t err_length);

/// Decodes 8-bit JPEG (baseline/extended, sequential or progressive) with libjpeg to gray or RGB.
/// `assume_rgb`: a 3-component stream without JFIF/Adobe markers holds RGB, not YCbCr.
int ccodecs_jpeg_decode(const uint8_t *data, size_t length, int assume_rgb, size_t max_samples,
                        ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length);

/// Decodes 12-bit lossy JPEG (processes 2 and 4) with DCMTK's libijg12 to gray or RGB, as 16-bit
/// little-endian samples (precision 12); otherwise as ccodecs_jpeg_decode.
int ccodecs_jpeg12_decode(const uint8_t *data, size_t length, int assume_rgb, size_t max_samples,
                          ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length);

/// The sample precision P of a JPEG stream's frame header (T.81 B.2.2), or -1 when no SOF marker
/// precedes the first scan or the stream ends first.
int ccodecs_jpeg_sof_precision(const uint8_t *data, size_t length);

/// Encodes 8-bit gray (1 component) or interleaved RGB (3) pixels as baseline JPEG at `quality` (1-100),
/// for rendered images. The output is malloc'ed (free with ccodecs_free).
int ccodecs_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t components, int quality,
                        uint8_t **out, size_t *out_length, char *err, size_t err_length);

/// Decodes JPEG-LS with CharLS into interleaved samples.
int ccodecs_jls_decode(const uint8_t *data, size_t length, size_t max_samples,
                       ccodecs_info *info, uint8_t **out, size_t *out_length, char *err, size_t err_length);

/// OpenJPEG's version string.
const char *ccodecs_openjpeg_version(void);

void ccodecs_free(void *p);
#endif
