/* Configuration for the application side of DCMTK's 12-bit IJG library (libijg12, IJG 6b with
 * DCMTK's lossless extensions). Written for Tessera in place of DCMTK's jconfig12.h, which derives
 * these from DCMTK's osconfig.h: these are the values that file yields on Linux with an ANSI C
 * compiler, and the only ones the public header (jpeglib12.h, jmorecfg12.h) reads. The layout of
 * the structs is checked at run time: jpeg_create_decompress passes sizeof, and libijg12 refuses a
 * mismatch (JERR_BAD_STRUCT_SIZE). */
#define HAVE_PROTOTYPES
#define HAVE_UNSIGNED_CHAR
#define HAVE_UNSIGNED_SHORT
#undef NEED_FAR_POINTERS
#undef INCOMPLETE_TYPES_BROKEN
#define NEED_SYS_TYPES_H
/* libijg12 is built with its entry points renamed jpeg12_*, jinit12_*, ...; jpeglib12.h maps the
 * standard names onto them under this symbol. */
#define NEED_SHORT_EXTERNAL_NAMES
