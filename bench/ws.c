#include "ws.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 6455 1.3: the GUID every server appends to the client's key. */
static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* An assembly buffer larger than this is freed after its message, so a rare
 * big message does not pin memory on one of thousands of connections. */
#define MSG_KEEP_MAX 4096

int mh_ws_accept(const char *key, size_t key_len, char out[MH_WS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char buf[128];
    size_t guid_len = sizeof(WS_GUID) - 1;

    if (key_len + guid_len > sizeof(buf))
        return -1;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, WS_GUID, guid_len);
    if (!EVP_Digest(buf, key_len + guid_len, md, &md_len, EVP_sha1(), NULL) || md_len != 20)
        return -1;
    /* 20 bytes -> 28 base64 characters plus the NUL EVP_EncodeBlock writes. */
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != MH_WS_ACCEPT_LEN)
        return -1;
    return 0;
}

const char *mh_ws_http_header(const char *head, size_t n, const char *name, size_t *vlen)
{
    const char *end = head + n, *line = memchr(head, '\n', n);
    size_t name_len = strlen(name);

    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line)), *v, *ve;

        if (!eol)
            return NULL;
        ve = eol;
        if (ve > line && ve[-1] == '\r')
            ve--;
        if (ve == line) /* the blank line ends the head */
            return NULL;
        if ((size_t)(ve - line) > name_len && line[name_len] == ':' &&
            strncasecmp(line, name, name_len) == 0) {
            v = line + name_len + 1;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

int mh_ws_new_key(char key[MH_WS_KEY_LEN + 1])
{
    unsigned char raw[16];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    if (EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw)) != MH_WS_KEY_LEN)
        return -1;
    return 0;
}

size_t mh_ws_header(uint8_t out[MH_WS_HDR_MAX], int opcode, uint64_t len, const uint8_t *mask)
{
    size_t n = 0;
    uint8_t mbit = mask ? 0x80 : 0;

    out[n++] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[n++] = (uint8_t)(mbit | len);
    } else if (len <= 0xffff) {
        out[n++] = (uint8_t)(mbit | 126);
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = (uint8_t)(mbit | 127);
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void mh_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

size_t mh_ws_encode(uint8_t *out, int opcode, const void *payload, size_t len, const uint8_t *mask)
{
    size_t h = mh_ws_header(out, opcode, len, mask);

    if (len)
        memcpy(out + h, payload, len);
    if (mask)
        mh_ws_mask(out + h, len, mask, 0);
    return h + len;
}

void mh_ws_dec_init(mh_ws_dec *d, int expect_masked, size_t max_message)
{
    memset(d, 0, offsetof(mh_ws_dec, ctl));
    d->hdr_need = 2;
    d->expect_masked = (uint8_t)(expect_masked ? 1 : 0);
    d->max_message = max_message;
}

void mh_ws_dec_free(mh_ws_dec *d)
{
    free(d->msg);
    d->msg = NULL;
    d->msg_len = d->msg_cap = 0;
}

int mh_ws_error_close_code(int err)
{
    switch (err) {
    case MH_WS_E_TOO_BIG:
        return 1009;
    case MH_WS_E_NOMEM:
        return 1011;
    default:
        return 1002;
    }
}

static int is_control(int op)
{
    return op >= MH_WS_OP_CLOSE;
}

/* The header is complete: check it against RFC 6455 5.2 and set the frame up. */
static int start_frame(mh_ws_dec *d)
{
    const uint8_t *h = d->hdr;
    uint64_t len = h[1] & 0x7f;
    size_t p = 2;
    int op = h[0] & 0x0f;

    if (h[0] & 0x70) /* RSV1-3: we negotiate no extension */
        return MH_WS_E_PROTO;
    if (op != MH_WS_OP_CONT && op != MH_WS_OP_TEXT && op != MH_WS_OP_BINARY &&
        op != MH_WS_OP_CLOSE && op != MH_WS_OP_PING && op != MH_WS_OP_PONG)
        return MH_WS_E_PROTO;
    d->fin = (h[0] & 0x80) ? 1 : 0;
    d->masked = (h[1] & 0x80) ? 1 : 0;
    if (d->masked != d->expect_masked)
        return MH_WS_E_PROTO;
    if (len == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        p = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
        if (len >> 63)
            return MH_WS_E_PROTO;
        p = 10;
    }
    if (d->masked)
        memcpy(d->mask, h + p, 4);

    if (is_control(op)) {
        if (!d->fin || len > MH_WS_CTL_MAX)
            return MH_WS_E_PROTO;
    } else if (op == MH_WS_OP_CONT) {
        if (!d->msg_opcode)
            return MH_WS_E_PROTO;
    } else {
        if (d->msg_opcode) /* a new message inside a fragmented one */
            return MH_WS_E_PROTO;
        d->msg_opcode = (uint8_t)op;
    }
    if (!is_control(op) && len > d->max_message - d->msg_len)
        return MH_WS_E_TOO_BIG;

    d->opcode = (uint8_t)op;
    d->plen = len;
    d->remaining = len;
    d->in_payload = 1;
    return 0;
}

static void next_header(mh_ws_dec *d)
{
    d->in_payload = 0;
    d->hdr_len = 0;
    d->hdr_need = 2;
}

static int append_msg(mh_ws_dec *d, const uint8_t *p, size_t n)
{
    if (d->msg_len + n > d->msg_cap) {
        size_t cap = d->msg_cap ? d->msg_cap : 256;
        uint8_t *m;

        while (cap < d->msg_len + n)
            cap *= 2;
        m = realloc(d->msg, cap);
        if (!m)
            return MH_WS_E_NOMEM;
        d->msg = m;
        d->msg_cap = cap;
    }
    memcpy(d->msg + d->msg_len, p, n);
    d->msg_len += n;
    return 0;
}

/* All payload bytes of the current frame are buffered: deliver what is complete. */
static int finish_frame(mh_ws_dec *d, const mh_ws_handler *h, void *ctx)
{
    static uint8_t empty[1];
    int op = d->opcode, rc = 0;

    next_header(d);
    if (is_control(op))
        return h->on_control(ctx, op, d->plen ? d->ctl : empty, (size_t)d->plen);
    if (!d->fin)
        return 0;
    op = d->msg_opcode;
    d->msg_opcode = 0;
    rc = h->on_message(ctx, op, d->msg_len ? d->msg : empty, d->msg_len);
    d->msg_len = 0;
    if (d->msg_cap > MSG_KEEP_MAX) {
        free(d->msg);
        d->msg = NULL;
        d->msg_cap = 0;
    }
    return rc;
}

int mh_ws_feed(mh_ws_dec *d, uint8_t *data, size_t len, const mh_ws_handler *h, void *ctx)
{
    size_t i = 0;
    int rc;

    while (i < len) {
        if (!d->in_payload) {
            while (d->hdr_len < d->hdr_need && i < len) {
                d->hdr[d->hdr_len++] = data[i++];
                if (d->hdr_len == 2) {
                    uint8_t l7 = d->hdr[1] & 0x7f;
                    d->hdr_need = (uint8_t)(2 +
                                            (l7 == 126   ? 2
                                             : l7 == 127 ? 8
                                                         : 0) +
                                            ((d->hdr[1] & 0x80) ? 4 : 0));
                }
            }
            if (d->hdr_len < d->hdr_need)
                return 0;
            rc = start_frame(d);
            if (rc)
                return rc;
            if (d->remaining == 0) {
                rc = finish_frame(d, h, ctx);
                if (rc)
                    return rc;
            }
            continue;
        }

        size_t avail = len - i;
        size_t take = d->remaining < avail ? (size_t)d->remaining : avail;
        uint8_t *p = data + i;
        uint64_t off = d->plen - d->remaining;

        if (d->masked)
            mh_ws_mask(p, take, d->mask, off);
        i += take;
        d->remaining -= take;

        /* Fast path: an unfragmented data frame wholly inside 'data'. */
        if (d->opcode != MH_WS_OP_CONT && !is_control(d->opcode) && d->fin && off == 0 &&
            d->remaining == 0) {
            int op = d->msg_opcode;

            d->msg_opcode = 0;
            next_header(d);
            rc = h->on_message(ctx, op, p, take);
            if (rc)
                return rc;
            continue;
        }

        if (is_control(d->opcode)) {
            memcpy(d->ctl + off, p, take);
        } else {
            rc = append_msg(d, p, take);
            if (rc)
                return rc;
        }
        if (d->remaining == 0) {
            rc = finish_frame(d, h, ctx);
            if (rc)
                return rc;
        }
    }
    return 0;
}
