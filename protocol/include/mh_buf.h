/*
 * mh_buf — a growable byte buffer for encoders.
 *
 * Appends never fail loudly: an allocation failure sets a sticky 'oom' flag
 * and later appends do nothing, so an encoder checks once, at the end.
 */
#ifndef MH_BUF_H
#define MH_BUF_H

#include <stddef.h>

typedef struct mh_buf {
    char *data; /* owned; NUL-terminated after mh_buf_cstr() */
    size_t len;
    size_t cap;
    size_t head; /* bytes reserved before data[0] by mh_buf_init_head() */
    int oom;
} mh_buf;

void mh_buf_init(mh_buf *b);
/**
 * Like mh_buf_init, but keeps 'head' writable bytes before the content
 * (libwebsockets needs LWS_PRE bytes in front of what it writes).
 */
void mh_buf_init_head(mh_buf *b, size_t head);
void mh_buf_free(mh_buf *b);
void mh_buf_reset(mh_buf *b);
void mh_buf_put(mh_buf *b, const void *p, size_t n);
void mh_buf_putc(mh_buf *b, char c);
void mh_buf_puts(mh_buf *b, const char *s);
void mh_buf_printf(mh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** NUL-terminates (not counted in len) and returns data, or NULL after oom. */
char *mh_buf_cstr(mh_buf *b);
/**
 * Hands the allocation to the caller: returns the start of the block
 * (data - head) and resets 'b'. The caller frees it with free().
 */
char *mh_buf_take(mh_buf *b);

#endif
