// libjpeg's error handling for jpeg.c (8-bit libjpeg) and jpeg12.c (DCMTK's 12-bit libijg12):
// included after the one jpeglib header each file sees, whose names (jpeg_std_error, JWRN_JPEG_EOF,
// struct jpeg_error_mgr) it then means. Not a standalone header.
#include <setjmp.h>
#include <string.h>

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
