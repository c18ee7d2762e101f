#include "mh_wsock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "mh_log.h"
#include "mh_tls.h"
#include "mh_value.h"
#include "mh_wsframe.h"
#include "mh_writer.h"

#define EVENTS 256
/* Room for the biggest frame the hub takes, its header, and a read's worth more. */
#define READ_CHUNK 65536

static void on_readable(uv_poll_t *p, int status, int events);
static void on_writable(uv_poll_t *p, int status, int events);

int mh_wsock_init(mh_hub *h)
{
    h->ws_rd = epoll_create1(EPOLL_CLOEXEC);
    h->ws_wr = epoll_create1(EPOLL_CLOEXEC);
    h->rbuf_cap = (size_t)h->cfg->max_frame + 16 + READ_CHUNK;
    h->rbuf = malloc(h->rbuf_cap);
    h->ping_msg = mh_msg_new("mh", 2);
    if (h->ws_rd < 0 || h->ws_wr < 0 || !h->rbuf || !h->ping_msg) {
        mh_error("own sockets: %s", strerror(errno ? errno : ENOMEM));
        return -1;
    }
    h->ping_msg->opcode = MH_WS_PING;
    mh_map_init(&h->lingering);
    uv_poll_init(h->loop, &h->ws_rd_poll, h->ws_rd);
    uv_poll_init(h->loop, &h->ws_wr_poll, h->ws_wr);
    h->ws_rd_poll.data = h->ws_wr_poll.data = h;
    uv_poll_start(&h->ws_rd_poll, UV_READABLE, on_readable);
    uv_poll_start(&h->ws_wr_poll, UV_READABLE, on_writable);
    h->ws_started = true;
    return 0;
}

void mh_wsock_stop(mh_hub *h)
{
    uint64_t ids[256];
    size_t n;

    if (!h->ws_started)
        return;
    h->ws_started = false;
    /* destroying removes from the map: collect first, destroy, again */
    do {
        size_t it = 0;
        void *v;
        n = 0;
        while (n < sizeof ids / sizeof ids[0] && mh_map_next(&h->conns, &it, NULL, NULL, &v))
            ids[n++] = ((mh_conn *)v)->id;
        for (size_t i = 0; i < n; i++) {
            mh_conn *c = mh_map_get(&h->conns, &ids[i], sizeof ids[i]);
            if (c)
                mh_conn_destroy(c);
        }
    } while (n);
    mh_writer_linger_sweep(h, 0, true);
    mh_map_free(&h->lingering);
    uv_poll_stop(&h->ws_rd_poll);
    uv_poll_stop(&h->ws_wr_poll);
    uv_close((uv_handle_t *)&h->ws_rd_poll, NULL);
    uv_close((uv_handle_t *)&h->ws_wr_poll, NULL);
    close(h->ws_rd);
    close(h->ws_wr);
    free(h->rbuf);
    h->rbuf = NULL;
    mh_msg_unref(h->ping_msg);
    h->ping_msg = NULL;
}

int mh_wsock_watch(mh_hub *h, int fd, uint64_t id)
{
    struct epoll_event rd = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = id};

    if (epoll_ctl(h->ws_rd, EPOLL_CTL_ADD, fd, &rd)) {
        mh_warn("epoll: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void mh_wsock_unwatch(mh_hub *h, int fd)
{
    epoll_ctl(h->ws_rd, EPOLL_CTL_DEL, fd, NULL);
}

int mh_wsock_open(mh_conn *c, mh_hub *h, int fd, uint64_t id, struct ssl_st *tls)
{
    c->fd = fd;
    c->id = id;
    if (mh_conn_open(c, h)) /* the write set is joined when first needed */
        return -1;
    c->tls = tls;
    return 0;
}

/* Ends the connection for a broken rule: the close frame says which. */
static void fault(mh_conn *c, uint16_t code, const char *why)
{
    mh_info("conn %s: %s: closing with %u", c->name, why, code);
    mh_conn_close(c, code, why);
}

/* A whole message: text is checked as UTF-8 (RFC 6455 8.1), then handed up. */
static void message(mh_conn *c, int opcode, const unsigned char *p, size_t n)
{
    if (opcode == MH_WS_TEXT && !mh_utf8_valid((const char *)p, n)) {
        fault(c, 1007, "invalid UTF-8 in a text frame");
        return;
    }
    c->hub->hooks.input(c, (const char *)p, n, opcode == MH_WS_BINARY);
}

/* A piece of a fragmented message; the whole one goes up on its last piece. */
static void fragment(mh_conn *c, const mh_ws_frame *f, const unsigned char *p)
{
    int rc = mh_conn_rx_append(c, p, (size_t)f->len);

    if (rc) {
        fault(c, rc > 0 ? 1009 : 1011, rc > 0 ? "frame too large" : "out of memory");
        return;
    }
    if (f->fin) {
        int op = c->frag_op;
        c->frag_op = 0;
        message(c, op, (const unsigned char *)c->rx, c->rx_len);
        mh_conn_rx_done(c);
    }
}

static void control(mh_conn *c, const mh_ws_frame *f, const unsigned char *p)
{
    uint16_t code;
    mh_ws_fault flt;

    switch (f->opcode) {
    case MH_WS_PING:
        if (!c->closing)
            mh_conn_push_control(c, MH_WS_PONG, p, (size_t)f->len);
        break;
    case MH_WS_PONG:
        break;
    case MH_WS_CLOSE:
        c->close_heard = true;
        if (mh_ws_close_parse(p, (size_t)f->len, &code, &flt)) {
            fault(c, flt.code, flt.why);
            break;
        }
        mh_debug("conn %s: the peer closes with %u", c->name, code);
        /* the echo goes out next (mh_conn_close drops what is queued) */
        mh_conn_close(c, code, "");
        break;
    }
}

/*
 * Parses and acts on buf[0..len) (unmasking in place). Returns how many
 * bytes were used; the rest is an incomplete frame.
 */
static size_t consume(mh_conn *c, unsigned char *buf, size_t len)
{
    const mh_config *cfg = c->hub->cfg;
    size_t off = 0;

    while (off < len && !c->close_heard) {
        mh_ws_frame f;
        mh_ws_fault flt;
        unsigned char *p;
        int rc = mh_ws_parse(buf + off, len - off, (uint64_t)cfg->max_frame, &f, &flt);

        if (rc < 0) {
            if (flt.code == 1009)
                c->hub->metrics.oversized_closes++;
            fault(c, flt.code, flt.why);
            return len; /* nothing after a broken frame is read */
        }
        if (rc == 0 || len - off - f.head_len < f.len)
            break;
        p = buf + off + f.head_len;
        mh_ws_unmask(p, (size_t)f.len, f.mask, 0);
        off += f.head_len + (size_t)f.len;
        mh_conn_heard(c, mh_mono_ms());
        if (f.opcode >= MH_WS_CLOSE) {
            control(c, &f, p);
            continue;
        }
        if (c->closing)
            continue; /* data after our close is read and dropped */
        if (f.opcode == MH_WS_CONT ? !c->frag_op : c->frag_op) {
            fault(c, 1002,
                  c->frag_op ? "a new message inside a fragmented one"
                             : "a continuation with nothing to continue");
            return len;
        }
        if (f.opcode != MH_WS_CONT && f.fin) {
            message(c, f.opcode, p, (size_t)f.len); /* the common case, in place */
            continue;
        }
        if (f.opcode != MH_WS_CONT)
            c->frag_op = (uint8_t)f.opcode;
        fragment(c, &f, p);
    }
    return c->close_heard ? len : off; /* after the peer's close, nothing is read */
}

/* Keeps buf[0..n) for the next read; false when out of memory. */
static bool keep_pending(mh_conn *c, const unsigned char *buf, size_t n)
{
    free(c->pend);
    c->pend = NULL;
    c->pend_len = 0;
    if (!n)
        return true;
    c->pend = malloc(n);
    if (!c->pend)
        return false;
    memcpy(c->pend, buf, n);
    c->pend_len = (uint32_t)n;
    return true;
}

/* Acts on the hub's read buffer's first 'have' bytes; keeps the unfinished rest. */
static void take(mh_conn *c, size_t have)
{
    size_t used = consume(c, c->hub->rbuf, have);

    if (!keep_pending(c, c->hub->rbuf + used, have - used))
        mh_conn_close(c, 1011, "out of memory");
}

/*
 * An own TLS socket's reads: SSL_read until TLS has nothing decrypted left
 * (the read set is level-triggered for the socket, but bytes TLS already
 * took from it are not reported again). False when the peer is gone.
 */
static bool read_tls(mh_conn *c)
{
    mh_hub *h = c->hub;

    c->tls_rd_wants_wr = false;
    do {
        size_t have = c->pend_len;
        bool other = false;
        ssize_t n;
        if (have)
            memcpy(h->rbuf, c->pend, have);
        n = mh_tls_read(c->tls, h->rbuf + have, h->rbuf_cap - have, &other);
        if (n < 0)
            return false;
        if (n == 0) {
            c->tls_rd_wants_wr = other; /* then EPOLLOUT brings it back here */
            return !other || mh_writer_wait_writable(c) == 0;
        }
        take(c, have + (size_t)n);
    } while (c->tls && !c->close_heard && mh_tls_pending(c->tls));
    return true;
}

/*
 * A stream's socket became readable: its client sends nothing after the
 * request (SPEC 6.1), so this is its EOF, a reset, or bytes no stream
 * expects — each ends the stream. False then (destroyed without a close
 * event: nobody reads it); true when nothing came after all.
 */
static bool read_stream(mh_conn *c)
{
    bool other = false;
    ssize_t n;

    c->tls_rd_wants_wr = false;
    if (c->tls) {
        n = mh_tls_read(c->tls, c->hub->rbuf, c->hub->rbuf_cap, &other);
        if (n == 0) { /* a TLS record with no data in it (or one wanting a write) */
            c->tls_rd_wants_wr = other;
            return !other || mh_writer_wait_writable(c) == 0;
        }
    } else {
        n = read(c->fd, c->hub->rbuf, c->hub->rbuf_cap);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
    }
    if (n > 0)
        mh_debug("conn %s: %zd bytes on a stream: closing it", c->name, n);
    return false;
}

/*
 * One read (level-triggered: the next wait reports what is left). Returns
 * false when the connection is over (EOF, an error) and is to be destroyed.
 */
static bool read_some(mh_conn *c)
{
    mh_hub *h = c->hub;
    size_t have = c->pend_len;
    ssize_t n;

    if (c->sse)
        return read_stream(c);
    if (c->tls)
        return read_tls(c);
    if (have)
        memcpy(h->rbuf, c->pend, have);
    n = read(c->fd, h->rbuf + have, h->rbuf_cap - have);
    if (n == 0)
        return false; /* the peer is gone (after its close, or without one) */
    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    take(c, have + (size_t)n);
    return true;
}

void mh_wsock_feed(mh_conn *c, const unsigned char *p, size_t n)
{
    if (!n || n > c->hub->rbuf_cap)
        return;
    memcpy(c->hub->rbuf, p, n);
    take(c, n);
}

static mh_conn *conn_of(mh_hub *h, uint64_t id)
{
    return mh_map_get(&h->conns, &id, sizeof id);
}

static void on_readable(uv_poll_t *p, int status, int events)
{
    mh_hub *h = p->data;
    struct epoll_event ev[EVENTS];
    int n = epoll_wait(h->ws_rd, ev, EVENTS, 0);
    (void)status;
    (void)events;

    for (int i = 0; i < n; i++) {
        mh_conn *c = conn_of(h, ev[i].data.u64);
        if (!c) {
            if (mh_writer_linger_read(h, ev[i].data.u64))
                continue;
            if (h->hooks.intake)
                h->hooks.intake(h->intake_ctx, ev[i].data.u64);
            continue;
        }
        if (c->close_sent && !c->tx && c->close_heard) {
            mh_conn_destroy(c);
            continue;
        }
        if (!read_some(c) || (ev[i].events & EPOLLERR)) {
            mh_conn_destroy(c);
            continue;
        }
        /* the peer's close came after ours: done */
        if (c->close_sent && !c->tx && c->close_heard) {
            mh_conn_destroy(c);
            continue;
        }
        if (c->tls_wr_wants_rd) { /* a TLS write waited for this read */
            c->tls_wr_wants_rd = false;
            c->blocked = false;
            mh_writer_flush_one(c);
        }
    }
}

static void on_writable(uv_poll_t *p, int status, int events)
{
    mh_hub *h = p->data;
    struct epoll_event ev[EVENTS];
    int n = epoll_wait(h->ws_wr, ev, EVENTS, 0);
    (void)status;
    (void)events;

    for (int i = 0; i < n; i++) {
        mh_conn *c = conn_of(h, ev[i].data.u64);
        if (c && c->tls_rd_wants_wr && !read_some(c)) { /* a TLS read waited for this */
            mh_conn_destroy(c);
            continue;
        }
        if (!c || !c->blocked || c->tls_wr_wants_rd)
            continue; /* an edge with nothing waiting */
        c->blocked = false;
        mh_writer_flush_one(c);
    }
}
