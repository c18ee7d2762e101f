/*
 * mh_msg — a frame encoded once and shared by every recipient.
 *
 * Every connection's queue holds a reference, and the last one to let go
 * frees it. The writer frames it on the fly (a WebSocket header in its own
 * iovec, a stream's `data:` around it in a batch), so it carries no head
 * room.
 */
#ifndef MH_MSG_H
#define MH_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "mh_buf.h"

typedef struct mh_msg {
    uint32_t refs;
    uint32_t len;        /* payload bytes */
    uint8_t opcode;      /* 0: a text frame; else a WebSocket control opcode (own sockets),
                          * or MH_MSG_RAW: bytes written as they are (the 101) */
    double ts_ms;        /* publisher time (ms since epoch), 0 when unknown */
    unsigned char *data; /* payload, NUL-terminated (block) */
    unsigned char block[];
} mh_msg;

/* An entry of an own socket's queue written without a frame header. */
#define MH_MSG_RAW 0xff

/**
 * The contents of 'b' as a new message with one reference. Returns NULL on
 * OOM, and 'b' is reset either way.
 */
mh_msg *mh_msg_from_buf(mh_buf *b);

/** A message copied from bytes, one reference. */
mh_msg *mh_msg_new(const void *payload, size_t len);

static inline mh_msg *mh_msg_ref(mh_msg *m)
{
    m->refs++;
    return m;
}

void mh_msg_unref(mh_msg *m);

#endif
