#include "mh_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mh_buf_init(mh_buf *b)
{
    mh_buf_init_head(b, 0);
}

void mh_buf_init_head(mh_buf *b, size_t head)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->head = head;
    b->oom = 0;
}

void mh_buf_free(mh_buf *b)
{
    if (b->data)
        free(b->data - b->head);
    b->data = NULL;
    b->len = b->cap = 0;
}

void mh_buf_reset(mh_buf *b)
{
    b->len = 0;
    b->oom = 0;
}

/* Makes room for 'n' more bytes plus a NUL. */
static int reserve(mh_buf *b, size_t n)
{
    size_t want, cap;
    char *block;

    if (b->oom)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    want = b->len + n + 1;
    cap = b->cap ? b->cap : 64;
    while (cap < want)
        cap *= 2;
    block = realloc(b->data ? b->data - b->head : NULL, cap + b->head);
    if (!block) {
        b->oom = 1;
        return -1;
    }
    b->data = block + b->head;
    b->cap = cap;
    return 0;
}

void mh_buf_put(mh_buf *b, const void *p, size_t n)
{
    if (n == 0 || reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void mh_buf_putc(mh_buf *b, char c)
{
    mh_buf_put(b, &c, 1);
}

void mh_buf_puts(mh_buf *b, const char *s)
{
    mh_buf_put(b, s, strlen(s));
}

void mh_buf_printf(mh_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    size_t spare = b->data && !b->oom ? b->cap - b->len : 0;

    /* Most fit in the room already there: one formatting pass, not two. */
    va_start(ap, fmt);
    n = vsnprintf(spare ? b->data + b->len : NULL, spare, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < spare) {
        b->len += (size_t)n;
        return;
    }
    if (n < 0 || reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *mh_buf_cstr(mh_buf *b)
{
    if (reserve(b, 0))
        return NULL;
    b->data[b->len] = '\0';
    return b->data;
}

char *mh_buf_take(mh_buf *b)
{
    char *block;

    if (!mh_buf_cstr(b))
        return NULL;
    block = b->data - b->head;
    b->data = NULL;
    b->len = b->cap = 0;
    return block;
}
