#include "mh_msg.h"

#include <stdlib.h>
#include <string.h>

/* One allocation: the header, then the payload. */
mh_msg *mh_msg_new(const void *payload, size_t len)
{
    mh_msg *m = malloc(sizeof *m + len + 1);
    if (!m)
        return NULL;
    m->refs = 1;
    m->len = (uint32_t)len;
    m->ts_ms = 0;
    m->opcode = 0;
    m->data = m->block;
    memcpy(m->data, payload, len);
    m->data[len] = '\0';
    return m;
}

mh_msg *mh_msg_from_buf(mh_buf *b)
{
    mh_msg *m;

    if (b->oom || !mh_buf_cstr(b)) {
        mh_buf_free(b);
        return NULL;
    }
    m = mh_msg_new(b->data, b->len);
    mh_buf_reset(b);
    return m;
}

void mh_msg_unref(mh_msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}
