#include "ws_client.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Upgrade answers are a few hundred bytes; anything past this is not one. */
#define HS_MAX 8192

/* Passes the caller's ops and context through mh_ws_feed's single ctx. */
typedef struct feed_ctx {
    mh_wsc *c;
    const mh_wsc_ops *ops;
    void *ctx;
} feed_ctx;

int mh_wsc_start(mh_wsc *c, size_t max_message, const char *host, const char *path,
                 const char *extra, char *out, size_t cap)
{
    char key[MH_WS_KEY_LEN + 1];
    int n;

    memset(c, 0, sizeof(*c));
    c->state = MH_WSC_HANDSHAKE;
    mh_ws_dec_init(&c->dec, 0, max_message);
    if (mh_ws_new_key(key) || mh_ws_accept(key, MH_WS_KEY_LEN, c->accept))
        return -1;
    n = snprintf(out, cap,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "%s"
                 "\r\n",
                 path, host, key, extra ? extra : "");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

size_t mh_wsc_frame(uint8_t *out, int opcode, const void *payload, size_t len)
{
    uint8_t mask[4];

    /* RFC 6455 5.3: the mask must be unpredictable, so take it from the CSPRNG. */
    if (RAND_bytes(mask, sizeof(mask)) != 1)
        return 0;
    return mh_ws_encode(out, opcode, payload, len, mask);
}

void mh_wsc_free(mh_wsc *c)
{
    free(c->hs);
    c->hs = NULL;
    c->hs_len = 0;
    mh_ws_dec_free(&c->dec);
}

const char *mh_wsc_strerror(int err)
{
    switch (err) {
    case MH_WS_E_PROTO:
        return "websocket protocol error";
    case MH_WS_E_TOO_BIG:
        return "message too big";
    case MH_WS_E_NOMEM:
        return "out of memory";
    case MH_WSC_E_HTTP:
        return "not an HTTP answer";
    case MH_WSC_E_STATUS:
        return "HTTP status is not 101";
    case MH_WSC_E_HANDSHAKE:
        return "bad upgrade headers";
    case MH_WSC_E_ACCEPT:
        return "Sec-WebSocket-Accept mismatch";
    case MH_WSC_E_SEND:
        return "send failed";
    default:
        return "unknown error";
    }
}

/* Offset just past the blank line ending the header, or 0 if not there yet. */
static size_t header_end(const char *p, size_t n, size_t from)
{
    for (size_t i = from; i + 4 <= n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return i + 4;
    return 0;
}

static int ci_contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);

    for (size_t i = 0; i + m <= n; i++)
        if (strncasecmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

/* Checks an upgrade answer of 'n' bytes (ending with the blank line). */
static int check_answer(mh_wsc *c, const char *p, size_t n)
{
    const char *v;
    size_t vlen;
    int status = 0;

    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return MH_WSC_E_HTTP;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return MH_WSC_E_HTTP;
        status = status * 10 + (p[i] - '0');
    }
    c->status = status;
    if (status != 101)
        return MH_WSC_E_STATUS;

    v = mh_ws_http_header(p, n, "Sec-WebSocket-Accept", &vlen);
    if (!v || vlen != MH_WS_ACCEPT_LEN || memcmp(v, c->accept, vlen) != 0)
        return MH_WSC_E_ACCEPT;
    v = mh_ws_http_header(p, n, "Upgrade", &vlen);
    if (!v || vlen != 9 || strncasecmp(v, "websocket", 9) != 0)
        return MH_WSC_E_HANDSHAKE;
    v = mh_ws_http_header(p, n, "Connection", &vlen);
    if (!v || !ci_contains(v, vlen, "upgrade"))
        return MH_WSC_E_HANDSHAKE;
    /* RFC 6455 4.1: we asked for no extension and no subprotocol, so the
     * server may not pick one. */
    if (((v = mh_ws_http_header(p, n, "Sec-WebSocket-Extensions", &vlen)) && vlen) ||
        ((v = mh_ws_http_header(p, n, "Sec-WebSocket-Protocol", &vlen)) && vlen))
        return MH_WSC_E_HANDSHAKE;
    return 0;
}

static int on_message(void *ctx, int opcode, uint8_t *data, size_t len)
{
    feed_ctx *f = ctx;

    return f->ops->on_message(f->ctx, opcode, data, len);
}

static int on_control(void *ctx, int opcode, uint8_t *data, size_t len)
{
    feed_ctx *f = ctx;
    uint8_t out[MH_WS_HDR_MAX + MH_WS_CTL_MAX];
    size_t n;
    int code, rc;

    switch (opcode) {
    case MH_WS_OP_PING:
        n = mh_wsc_frame(out, MH_WS_OP_PONG, data, len);
        if (!n || f->ops->send(f->ctx, out, n))
            return MH_WSC_E_SEND;
        return 0;
    case MH_WS_OP_CLOSE:
        if (len == 1)
            return MH_WS_E_PROTO;
        code = len ? (data[0] << 8) | data[1] : 1005;
        /* Echo the code (RFC 6455 5.5.1); 1005 must not appear on the wire. */
        n = mh_wsc_frame(out, MH_WS_OP_CLOSE, data, len ? 2 : 0);
        f->c->state = MH_WSC_CLOSED;
        if (n)
            (void)f->ops->send(f->ctx, out, n);
        rc = f->ops->on_close(f->ctx, code, len > 2 ? (const char *)data + 2 : "",
                              len > 2 ? len - 2 : 0);
        return rc ? rc : 1;
    default: /* an unsolicited pong: nothing to do */
        return 0;
    }
}

static int feed_frames(mh_wsc *c, uint8_t *data, size_t len, const mh_wsc_ops *ops, void *ctx)
{
    static const mh_ws_handler handler = {on_message, on_control};
    feed_ctx f = {c, ops, ctx};

    return mh_ws_feed(&c->dec, data, len, &handler, &f);
}

int mh_wsc_feed(mh_wsc *c, uint8_t *data, size_t len, const mh_wsc_ops *ops, void *ctx)
{
    uint8_t *rest;
    size_t end, rest_len;
    int rc;

    if (c->state == MH_WSC_OPEN)
        return feed_frames(c, data, len, ops, ctx);
    if (c->state == MH_WSC_CLOSED)
        return 0;

    if (c->hs_len == 0 && (end = header_end((const char *)data, len, 0)) != 0) {
        /* Usual case: the whole answer came in one read, parse it in place. */
        rc = check_answer(c, (const char *)data, end);
        rest = data + end;
        rest_len = len - end;
    } else {
        size_t from = c->hs_len > 3 ? c->hs_len - 3 : 0;

        if (c->hs_len + len > HS_MAX)
            return MH_WSC_E_HTTP;
        if (!c->hs && !(c->hs = malloc(HS_MAX)))
            return MH_WS_E_NOMEM;
        memcpy(c->hs + c->hs_len, data, len);
        c->hs_len += len;
        end = header_end(c->hs, c->hs_len, from);
        if (!end)
            return 0;
        rc = check_answer(c, c->hs, end);
        rest = (uint8_t *)c->hs + end;
        rest_len = c->hs_len - end;
    }
    if (rc)
        return rc;

    c->state = MH_WSC_OPEN;
    rc = ops->on_open(ctx);
    /* Frames the server sent right after its answer (a welcome) came along. */
    if (!rc && rest_len)
        rc = feed_frames(c, rest, rest_len, ops, ctx);
    free(c->hs);
    c->hs = NULL;
    c->hs_len = 0;
    return rc;
}
