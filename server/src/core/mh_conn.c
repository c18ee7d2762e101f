#include "mh_conn.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mh_hold.h"
#include "mh_log.h"
#include "mh_out.h"
#include "mh_peer.h"
#include "mh_sse.h"
#include "mh_wsframe.h"

int mh_conn_open(mh_conn *c, mh_hub *h, struct lws *wsi)
{
    c->hub = h;
    c->wsi = wsi;
    if (!c->id) /* an own socket's id was taken when it was accepted */
        c->id = ++h->next_conn_id;
    snprintf(c->name, sizeof c->name, "%s%llu", h->conn_prefix, (unsigned long long)c->id);
    if (mh_map_put(&h->conns, &c->id, sizeof c->id, c))
        return -1;
    c->established = true;
    c->last_rx_ms = mh_mono_ms();
    h->metrics.connections_total++;
    return 0;
}

mh_conn *mh_conn_by_name(mh_hub *h, const char *name)
{
    size_t plen = strlen(h->conn_prefix);
    char *end;
    uint64_t id;

    if (strncmp(name, h->conn_prefix, plen) || name[plen] < '1' || name[plen] > '9')
        return NULL;
    errno = 0;
    id = strtoull(name + plen, &end, 10);
    if (errno || *end)
        return NULL;
    return mh_map_get(&h->conns, &id, sizeof id);
}

/* Only data frames count against the queue's bounds; control frames are the hub's own. */
static uint32_t counted(const mh_msg *m)
{
    return m->opcode ? 0 : m->len;
}

/* 1 when the head of an own socket's queue must stay first: begun (the
 * stream would be corrupt without the rest of it) or the 101. */
static uint32_t pinned(const mh_conn *c)
{
    return c->own && c->q_count && (c->wr_off || c->q[c->q_head]->opcode == MH_MSG_RAW);
}

/* Drops what is queued, but for a pinned head. */
static void queue_clear(mh_conn *c)
{
    uint32_t keep = pinned(c);

    while (c->q_count > keep) {
        uint32_t last = (c->q_head + c->q_count - 1) % c->q_cap;
        mh_msg *m = c->q[last];
        c->q_count--;
        c->q_bytes -= counted(m);
        c->hub->queued_bytes -= counted(m);
        mh_msg_unref(m);
    }
}

/* Room for one more entry in the ring; -1 when out of memory. */
static int queue_grow(mh_conn *c)
{
    uint32_t ncap;
    mh_msg **nq;

    if (c->q_count < c->q_cap)
        return 0;
    ncap = c->q_cap ? c->q_cap * 2 : 4;
    nq = malloc(ncap * sizeof *nq);
    if (!nq)
        return -1;
    for (uint32_t i = 0; i < c->q_count; i++)
        nq[i] = c->q[(c->q_head + i) % c->q_cap];
    free(c->q);
    c->q = nq;
    c->q_cap = ncap;
    c->q_head = 0;
    return 0;
}

void mh_conn_release(mh_conn *c)
{
    mh_hub *h = c->hub;

    if (!c->established)
        return;
    c->established = false;
    while (c->nsubs) {
        mh_sub *s = c->subs[c->nsubs - 1];
        c->nsubs--;
        mh_hold_free(s->hold);
        mh_subs_remove(&h->subs, s);
    }
    free(c->subs);
    c->wr_off = 0;
    queue_clear(c);
    free(c->q);
    c->q = NULL;
    c->q_cap = 0;
    free(c->rx);
    c->rx = NULL;
    free(c->pend);
    c->pend = NULL;
    if (h->hooks.release)
        h->hooks.release(c);
    free(c->subject);
    free(c->info);
    mh_sse_free(c->sse);
    c->sse = NULL;
    mh_map_del(&h->conns, &c->id, sizeof c->id);
}

/* A frame handed to the socket: counters and the publish -> write latency. */
static void count_written(mh_hub *h, const mh_msg *m)
{
    h->metrics.frames_out++;
    h->metrics.bytes_out += m->len;
    if (m->ts_ms > 0)
        mh_metrics_latency(&h->metrics, mh_now_ms() - m->ts_ms);
}

static void on_flush(uv_check_t *t);

/* Under the soft limit again: the next burst gets its own allowance. Both
 * ways a queue drains (the end-of-loop flush and WRITEABLE) come here. */
static void note_drained(mh_conn *c)
{
    if (c->q_bytes <= (uint32_t)c->hub->cfg->queue_soft_bytes)
        c->soft_since_ms = 0;
}

static int mark_dirty(mh_conn *c)
{
    mh_hub *h = c->hub;

    if (h->ndirty == h->dirty_cap) {
        size_t ncap = h->dirty_cap ? h->dirty_cap * 2 : 1024;
        uint64_t *n = realloc(h->dirty, ncap * sizeof *n);
        if (!n)
            return -1;
        h->dirty = n;
        h->dirty_cap = ncap;
    }
    if (h->ndirty == 0)
        uv_check_start(&h->flush, on_flush);
    h->dirty[h->ndirty++] = c->id;
    c->dirty = true;
    return 0;
}

int mh_conn_rx_append(mh_conn *c, const void *p, size_t n)
{
    if ((uint64_t)c->rx_len + n > (uint64_t)c->hub->cfg->max_frame) {
        c->hub->metrics.oversized_closes++;
        return 1;
    }
    if (c->rx_len + n > c->rx_cap) {
        uint32_t ncap = c->rx_cap ? c->rx_cap : 1024;
        char *b;
        while (ncap < c->rx_len + n)
            ncap *= 2;
        b = realloc(c->rx, ncap);
        if (!b)
            return -1;
        c->rx = b;
        c->rx_cap = ncap;
    }
    memcpy(c->rx + c->rx_len, p, n);
    c->rx_len += (uint32_t)n;
    return 0;
}

void mh_conn_rx_done(mh_conn *c)
{
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
}

/* The most bytes 'm' takes on the wire: a WebSocket header, or an event. */
static size_t sse_frame_max(const mh_conn *c, const mh_msg *m)
{
    if (!c->sse)
        return m->len + 10;
    return mh_out_sse_event(NULL, NULL, (const char *)m->data, m->len) + c->sse->id_max + 8;
}

/* 'm' as one event of a stream (SPEC 6.1), with the id when it moves a
 * resume point; returns its length. */
static size_t sse_frame(mh_conn *c, unsigned char *out, const mh_msg *m)
{
    if (!mh_sse_note(c->sse, (const char *)m->data, m->len))
        return mh_out_sse_event((char *)out, NULL, (const char *)m->data, m->len);
    return mh_out_sse_event((char *)out, mh_sse_id(c->sse), (const char *)m->data, m->len);
}

/* A stream's close (SPEC 6.1): the close event, then the response ends. */
static int sse_close(mh_conn *c)
{
    unsigned char buf[LWS_PRE + 512];
    size_t n;
    mh_buf b;

    mh_buf_init(&b);
    mh_out_close(&b, c->close_code, c->close_reason);
    if (!b.oom && mh_out_sse_event(NULL, NULL, b.data, b.len) <= sizeof buf - LWS_PRE) {
        n = mh_out_sse_event((char *)buf + LWS_PRE, NULL, b.data, b.len);
        lws_write(c->wsi, buf + LWS_PRE, n, LWS_WRITE_RAW);
    }
    mh_buf_free(&b);
    return -1;
}

/* The frame at the head of the queue went to the socket: drop it, count it. */
static void pop_written(mh_conn *c)
{
    mh_msg *m = c->q[c->q_head];

    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_count--;
    if (m->opcode == MH_WS_CLOSE)
        c->close_sent = true;
    if (!m->opcode) {
        c->q_bytes -= m->len;
        c->hub->queued_bytes -= m->len;
        count_written(c->hub, m);
    }
    mh_msg_unref(m);
}

static size_t header_len(const mh_msg *m)
{
    if (m->opcode == MH_MSG_RAW)
        return 0;
    return m->len < 126 ? 2 : m->len < 65536 ? 4 : 10;
}

#define OWN_IOV 128

/*
 * The socket took less than offered: wait for its EPOLLOUT. A socket joins
 * the write set only the first time this happens — most never fill their
 * send buffer, and joining at the upgrade was one system call more per
 * connection in a connect storm. Joining when not writable is safe: the
 * edge comes when it is. -1 when it cannot join (it would never resume).
 */
static int wait_writable(mh_conn *c)
{
    struct epoll_event wr = {.events = EPOLLOUT | EPOLLET, .data.u64 = c->id};

    c->blocked = true;
    if (c->wr_watched)
        return 0;
    if (epoll_ctl(c->hub->ws_wr, EPOLL_CTL_ADD, c->fd, &wr)) {
        mh_warn("conn %s: epoll: %s", c->name, strerror(errno));
        return -1;
    }
    c->wr_watched = true;
    return 0;
}

/*
 * An own socket's writer: everything queued, framed on the fly, handed to
 * the kernel with writev straight from the shared messages, until it is
 * all out or the kernel takes less than offered (then EPOLLOUT, an edge,
 * says when to go on). Returns 0, or -1 when the socket failed.
 */
static int own_write(mh_conn *c)
{
    unsigned char hdr[OWN_IOV / 2][MH_WS_HEADER_MAX];
    struct iovec iov[OWN_IOV];

    while (c->q_count && !c->blocked && !c->close_sent) {
        size_t niov = 0, offered = 0, skip = c->wr_off, left;
        ssize_t n;

        for (uint32_t i = 0; i < c->q_count && niov + 2 <= OWN_IOV; i++) {
            mh_msg *m = c->q[(c->q_head + i) % c->q_cap];
            size_t hl = m->opcode == MH_MSG_RAW
                            ? 0
                            : mh_ws_header(hdr[i], m->opcode ? m->opcode : MH_WS_TEXT, m->len);
            const unsigned char *part[2] = {hdr[i], m->data};
            size_t plen[2] = {hl, m->len};
            for (int k = 0; k < 2; k++) {
                if (skip >= plen[k]) { /* the part of the head frame already out */
                    skip -= plen[k];
                    continue;
                }
                iov[niov].iov_base = (void *)(part[k] + skip);
                iov[niov].iov_len = plen[k] - skip;
                offered += plen[k] - skip;
                skip = 0;
                if (iov[niov].iov_len)
                    niov++;
            }
            if (m->opcode == MH_WS_CLOSE)
                break; /* nothing after a close frame */
        }
        n = writev(c->fd, iov, (int)niov);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return wait_writable(c);
            mh_debug("conn %s: write failed: %s", c->name, strerror(errno));
            return -1;
        }
        for (left = (size_t)n; left && c->q_count;) {
            mh_msg *m = c->q[c->q_head];
            size_t rest = header_len(m) + m->len - c->wr_off;
            if (left < rest) {
                c->wr_off += (uint32_t)left;
                break;
            }
            left -= rest;
            c->wr_off = 0;
            pop_written(c);
        }
        if ((size_t)n < offered)
            return wait_writable(c); /* the send buffer is full */
    }
    return 0;
}

static void linger_end(mh_hub *h, mh_linger *l)
{
    close(l->fd);
    mh_peer_free(l->peer);
    mh_map_del(&h->lingering, &l->id, sizeof l->id);
    free(l);
}

/* Our close frame is out and the peer's is not in: release 'c' and free it,
 * keep its socket lingering (mh_linger). */
static void own_linger(mh_conn *c)
{
    mh_hub *h = c->hub;
    mh_linger *l = malloc(sizeof *l);
    uint64_t id = c->id;
    int fd = c->fd;
    mh_peer *peer = c->peer;

    mh_debug("conn %s: closed (waiting for the peer's close)", c->name);
    mh_conn_release(c);
    free(c);
    /* our side is finished: the peer reads EOF after the close frame */
    shutdown(fd, SHUT_WR);
    if (l)
        l->id = id;
    if (!l || mh_map_put(&h->lingering, &l->id, sizeof l->id, l)) {
        free(l);
        close(fd);
        mh_peer_free(peer);
        return;
    }
    l->fd = fd;
    l->peer = peer;
    l->deadline_ms = mh_mono_ms() + 3000;
    mh_peer_release(peer);
}

bool mh_conn_linger_read(mh_hub *h, uint64_t id)
{
    mh_linger *l = mh_map_get(&h->lingering, &id, sizeof id);
    ssize_t n;

    if (!l)
        return false;
    n = read(l->fd, h->rbuf, h->rbuf_cap);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return true; /* the peer's close frame or more: dropped */
    linger_end(h, l);
    return true;
}

void mh_conn_linger_sweep(mh_hub *h, uint64_t now_ms, bool all)
{
    uint64_t ids[256];
    size_t n;

    do {
        size_t it = 0;
        const char *k;
        void *v;
        n = 0;
        while (n < sizeof ids / sizeof ids[0] && mh_map_next(&h->lingering, &it, &k, NULL, &v))
            if (all || now_ms > ((mh_linger *)v)->deadline_ms)
                memcpy(&ids[n++], k, sizeof ids[0]);
        for (size_t i = 0; i < n; i++)
            linger_end(h, mh_map_get(&h->lingering, &ids[i], sizeof ids[i]));
    } while (n == sizeof ids / sizeof ids[0]);
}

/* After a write: an own socket whose close frame is out is done with (the
 * socket lingers unless the peer's close came already). Returns true when
 * 'c' is gone. */
static bool own_after_write(mh_conn *c)
{
    if (!c->close_sent)
        return false;
    if (c->close_heard)
        mh_conn_destroy(c);
    else
        own_linger(c);
    return true;
}

/*
 * Writes the queued frames, framed here and handed to lws as raw bytes in
 * one write of at most ~256 KiB: lws sends it in one syscall and keeps
 * whatever the kernel does not take, flushing that before anything else
 * (pings, the close frame) goes out. Returns 0, or -1 when the write failed.
 */
static int write_coalesced(mh_conn *c)
{
    mh_hub *h = c->hub;
    size_t total = 0, n = 0, off;

    while (n < c->q_count && total < 262144) {
        total += sse_frame_max(c, c->q[(c->q_head + n) % c->q_cap]);
        n++;
    }
    if (!n && !c->ping_due)
        return 0;
    total += 4; /* room for a ping */
    if (h->scratch_cap < LWS_PRE + total) {
        unsigned char *b = realloc(h->scratch, LWS_PRE + total);
        if (!b)
            return -1;
        h->scratch = b;
        h->scratch_cap = LWS_PRE + total;
    }
    off = LWS_PRE;
    if (c->ping_due && c->sse) {
        memcpy(h->scratch + off, MH_SSE_HEARTBEAT, 3);
        off += 3;
        c->ping_due = false;
    } else if (c->ping_due) {
        /* a final ping with a payload: lws 4.1 reports only non-empty pongs */
        memcpy(h->scratch + off, "\x89\x02mh", 4);
        off += 4;
        c->ping_due = false;
    }
    for (size_t i = 0; i < n; i++) {
        mh_msg *m = c->q[(c->q_head + i) % c->q_cap];
        if (c->sse) {
            off += sse_frame(c, h->scratch + off, m);
            continue;
        }
        off += mh_ws_header(h->scratch + off, MH_WS_TEXT, m->len);
        memcpy(h->scratch + off, m->data, m->len);
        off += m->len;
    }
    if (lws_write(c->wsi, h->scratch + LWS_PRE, off - LWS_PRE, LWS_WRITE_RAW) <
        (int)(off - LWS_PRE)) {
        mh_warn("conn %s: write failed", c->name);
        return -1;
    }
    while (n--)
        pop_written(c);
    return 0;
}

void mh_conn_flush_one(mh_conn *c)
{
    if (own_write(c)) {
        mh_conn_destroy(c);
        return;
    }
    if (!own_after_write(c))
        note_drained(c);
}

static void on_flush(uv_check_t *t)
{
    mh_hub *h = t->data;
    size_t n = h->ndirty;

    uv_check_stop(&h->flush);
    h->ndirty = 0;
    for (size_t i = 0; i < n; i++) {
        mh_conn *c = mh_map_get(&h->conns, &h->dirty[i], sizeof h->dirty[i]);
        if (!c) /* closed in the meantime */
            continue;
        c->dirty = false;
        if (c->own) {
            mh_conn_flush_one(c);
            continue;
        }
        if (c->closing || (!c->q_count && !c->ping_due))
            continue;
        if (write_coalesced(c)) {
            mh_conn_close(c, 1011, "write failed");
            continue;
        }
        note_drained(c);
        if (c->q_count || lws_partial_buffered(c->wsi))
            lws_callback_on_writable(c->wsi);
    }
}

void mh_conn_flush_init(mh_hub *h)
{
    uv_check_init(h->loop, &h->flush);
    h->flush.data = h;
}

void mh_conn_flush_free(mh_hub *h)
{
    free(h->dirty);
    free(h->scratch);
    h->dirty = NULL;
    h->scratch = NULL;
    h->ndirty = h->dirty_cap = h->scratch_cap = 0;
}

int mh_conn_enqueue(mh_conn *c, mh_msg *m)
{
    const mh_config *cfg = c->hub->cfg;

    if (c->closing)
        return -1;
    if (c->q_count + 1 > (uint32_t)cfg->queue_max_msgs ||
        (uint64_t)c->q_bytes + m->len > (uint64_t)cfg->queue_max_bytes) {
        c->hub->metrics.slow_consumer_closes++;
        mh_info("conn %s: slow consumer (%u frames, %u bytes queued): closing with 4008", c->name,
                c->q_count, c->q_bytes);
        mh_conn_close(c, 4008, "slow consumer");
        return -1;
    }
    /* Like Redis' pub/sub output limit: a burst may pass the soft limit, a
     * peer that stays over it for queue_soft_seconds is not keeping up. */
    if ((uint64_t)c->q_bytes + m->len > (uint64_t)cfg->queue_soft_bytes) {
        uint64_t now = mh_mono_ms();
        if (!c->soft_since_ms) {
            c->soft_since_ms = now;
        } else if (now - c->soft_since_ms > (uint64_t)cfg->queue_soft_seconds * 1000) {
            c->hub->metrics.slow_consumer_closes++;
            mh_info("conn %s: slow consumer (over %d bytes for %d s): closing with 4008", c->name,
                    cfg->queue_soft_bytes, cfg->queue_soft_seconds);
            mh_conn_close(c, 4008, "slow consumer");
            return -1;
        }
    }
    if (queue_grow(c)) {
        mh_conn_close(c, 1011, "out of memory");
        return -1;
    }
    c->q[(c->q_head + c->q_count) % c->q_cap] = mh_msg_ref(m);
    c->q_count++;
    c->q_bytes += m->len;
    c->hub->queued_bytes += m->len;
    if (c->q_count > 1 || c->dirty)
        return 0; /* a write is already due */
    if (c->own) { /* a blocked socket goes on at its EPOLLOUT */
        if (!c->blocked && mark_dirty(c))
            mh_conn_close(c, 1011, "out of memory");
        return 0;
    }
    /* An idle plain-TCP socket is written at the end of this loop iteration,
     * with whatever else reaches it by then: no POLLOUT arm/wake/disarm, and
     * one send for many frames (bench/RESULTS.md: the cost is syscalls per
     * delivery). TLS sockets wait for WRITEABLE as usual. */
    if (!c->hub->cfg->tls_cert[0] && !lws_partial_buffered(c->wsi) && mark_dirty(c) == 0)
        return 0;
    lws_callback_on_writable(c->wsi);
    return 0;
}

int mh_conn_send(mh_conn *c, const char *text, size_t len)
{
    mh_msg *m = mh_msg_new(text, len);
    int rc;

    if (!m) {
        mh_conn_close(c, 1011, "out of memory");
        return -1;
    }
    rc = mh_conn_enqueue(c, m);
    mh_msg_unref(m);
    return rc;
}

void mh_conn_send_buf(mh_conn *c, const mh_buf *b)
{
    if (!b->oom)
        mh_conn_send(c, b->data, b->len);
}

void mh_conn_send_error(mh_conn *c, const char *code, const char *message, const json_t *ref,
                        int target, const mh_entry *e)
{
    mh_buf b;

    mh_buf_init(&b);
    mh_out_error(&b, code, message, ref, target, e);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
    c->hub->metrics.error_frames++;
}

static void start_close(mh_conn *c, uint16_t code, const char *reason, bool flush)
{
    if (c->closing || !c->established)
        return;
    c->closing = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    if (!flush)
        queue_clear(c);
    mh_debug("conn %s: closing with %u (%s)", c->name, code, reason);
    if (c->own) {
        unsigned char p[MH_WS_CONTROL_MAX];
        /* 1005 means "no code": an echo of it is an empty close frame */
        size_t n = code == 1005 ? 0 : mh_ws_close_payload(p, code, reason);
        mh_msg *m = mh_msg_new(p, n);
        /* A peer that never reads never takes the close frame: dropped then. */
        c->close_deadline_ms = mh_mono_ms() + 3000;
        if (!m || queue_grow(c)) {
            mh_msg_unref(m);
            c->dead = true; /* the sweep drops it without a close frame */
            c->close_deadline_ms = 0;
            return;
        }
        m->opcode = MH_WS_CLOSE;
        c->q[(c->q_head + c->q_count) % c->q_cap] = m;
        c->q_count++;
        if (!c->dirty && !c->blocked && mark_dirty(c))
            c->close_deadline_ms = 0;
        return;
    }
    lws_callback_on_writable(c->wsi);
    /* A peer that never reads never makes us writable: drop it after a while.
     * lws only looks at its timers when it has I/O to serve (libuv), so the
     * tick wakes it (mh_conn_kick_lws). */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 3);
    c->hub->lws_kick = true;
}

void mh_conn_close(mh_conn *c, uint16_t code, const char *reason)
{
    start_close(c, code, reason, false);
}

void mh_conn_close_flushed(mh_conn *c, uint16_t code, const char *reason)
{
    start_close(c, code, reason, true);
}

int mh_conn_writable(mh_conn *c)
{
    mh_hub *h = c->hub;
    int budget = 32; /* several frames per callback, but stay fair to others */

    if (c->dead)
        return -1; /* no close handshake with a peer that stopped answering */
    if (c->closing && !c->q_count && c->sse)
        return sse_close(c);
    if (c->closing && !c->q_count) {
        /* In lws 4.1, returning -1 here counts as a failed write, and every
         * timeout kill marks the socket unusable: both drop the close frame.
         * A synchronous close with a reason set takes the ws role's polite
         * path instead: it queues the frame and defers the free until the
         * peer answers (or a few seconds pass), so this wsi outlives the call. */
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
        return 0;
    }
    if (!h->cfg->tls_cert[0] || c->sse) {
        if ((c->q_count || c->ping_due) && write_coalesced(c))
            return -1;
        budget = 0;
    } else if (c->ping_due) {
        unsigned char ping[LWS_PRE + 2];
        c->ping_due = false;
        memcpy(ping + LWS_PRE, "mh", 2); /* lws 4.1 reports only non-empty pongs */
        if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0)
            return -1;
    }
    while (c->q_count && budget--) {
        mh_msg *m = c->q[c->q_head];
        int n = lws_write(c->wsi, m->data, m->len, LWS_WRITE_TEXT);
        if (n < (int)m->len) {
            mh_warn("conn %s: write failed", c->name);
            return -1;
        }
        pop_written(c);
        /* lws keeps what the kernel did not take; stop then. (Not
         * lws_send_pipe_choked(): that costs a poll() per frame.) */
        if (lws_partial_buffered(c->wsi))
            break;
    }
    note_drained(c);
    if (c->q_count || c->closing)
        lws_callback_on_writable(c->wsi);
    return 0;
}

int mh_conn_push_control(mh_conn *c, int opcode, const void *payload, size_t len)
{
    mh_msg *m;
    uint32_t at, keep;

    if (c->close_sent || queue_grow(c))
        return -1;
    if (opcode == MH_WS_PING && c->hub->ping_msg) {
        m = mh_msg_ref(c->hub->ping_msg);
    } else {
        m = mh_msg_new(payload, len);
        if (!m)
            return -1;
        m->opcode = (uint8_t)opcode;
    }
    /* ahead of the data, behind a pinned head */
    keep = pinned(c);
    c->q_head = (c->q_head + c->q_cap - 1) % c->q_cap;
    c->q_count++;
    at = c->q_head;
    if (keep) {
        c->q[at] = c->q[(at + 1) % c->q_cap];
        at = (at + 1) % c->q_cap;
    }
    c->q[at] = m;
    if (!c->dirty && !c->blocked)
        mark_dirty(c);
    return 0;
}

void mh_conn_destroy(mh_conn *c)
{
    int fd = c->fd;
    mh_peer *peer = c->peer;

    mh_debug("conn %s: closed", c->name);
    mh_conn_release(c);
    /* an abortive close when the peer still has unread bytes on its way is
     * fine here: nothing more is owed to it */
    close(fd);
    mh_peer_free(peer);
    free(c);
}

int mh_conn_set_identity(mh_conn *c, const mh_identity *id)
{
    char *sub = strdup(id->subject);
    char *info = id->info[0] ? strdup(id->info) : NULL;
    if (!sub || (id->info[0] && !info)) {
        free(sub);
        return -1;
    }
    free(c->subject);
    c->subject = sub;
    free(c->info);
    c->info = info;
    c->staff = id->staff;
    c->super = id->super;
    c->expires = id->exp;
    c->warned = false;
    return 0;
}

void mh_conn_heard(mh_conn *c, uint64_t now_ms)
{
    c->last_rx_ms = now_ms;
    c->pinged = false;
}

/* Returns true when 'c' is to be dropped (silent past the pong timeout). */
static bool keepalive(mh_conn *c, uint64_t now_ms)
{
    const mh_config *cfg = c->hub->cfg;
    uint64_t idle = now_ms - c->last_rx_ms, ping = (uint64_t)cfg->ping_interval * 1000;

    if (c->own && c->closing)
        return c->dead || (c->close_deadline_ms && now_ms > c->close_deadline_ms);
    if (c->closing || !c->established)
        return false;
    if (c->sse && mh_sse_stalled(c->sse, now_ms)) {
        /* a POST handed on through Redis never came: the frames after it wait for ever */
        mh_conn_close(c, 1011, "a POST never arrived");
        return false;
    }
    if (c->sse && idle >= ping) {
        /* A stream cannot answer: a heartbeat every ping_interval and no
         * pong timeout (SPEC 6.1); TCP and the queue bound find dead peers. */
        c->last_rx_ms = now_ms;
        c->pinged = false;
    }
    if (idle >= ping + (uint64_t)cfg->pong_timeout * 1000 && !c->sse) {
        c->hub->metrics.ping_timeouts++;
        mh_info("conn %s: nothing heard for %llu ms after a ping: dropping", c->name,
                (unsigned long long)idle);
        return true;
    }
    if (idle < ping || c->pinged)
        return false;
    c->pinged = true;
    if (c->own) {
        /* a final ping with a payload, as lws's peers got (its 4.1 reported only non-empty pongs)
         */
        if (mh_conn_push_control(c, MH_WS_PING, "mh", 2))
            return true;
        return false;
    }
    c->ping_due = true;
    if (!c->hub->cfg->tls_cert[0] && !c->dirty && !lws_partial_buffered(c->wsi) &&
        mark_dirty(c) == 0)
        return false;
    lws_callback_on_writable(c->wsi);
    return false;
}

void mh_conn_keepalive_all(mh_hub *h, uint64_t now_ms)
{
    mh_conn_linger_sweep(h, now_ms, false);
    uint64_t dead[64];
    size_t ndead = 0, it = 0;
    void *v;

    while (mh_map_next(&h->conns, &it, NULL, NULL, &v)) {
        mh_conn *c = v;
        if (keepalive(c, now_ms) && ndead < sizeof dead / sizeof dead[0])
            dead[ndead++] = c->id; /* the rest next second */
    }
    /* Outside the walk: closing removes the connection from the map. It does
     * not read, so no close frame: lws closes the socket now. */
    for (size_t i = 0; i < ndead; i++) {
        mh_conn *c = mh_map_get(&h->conns, &dead[i], sizeof dead[i]);
        if (c && c->own) {
            mh_conn_destroy(c);
        } else if (c) {
            c->closing = c->dead = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
        }
    }
}

void mh_conn_check_expiry(mh_conn *c, int64_t now_s)
{
    int64_t left;

    if (!c->expires || c->closing)
        return;
    left = c->expires - now_s;
    if (left <= 0) {
        mh_info("conn %s: token expired", c->name);
        mh_conn_close(c, 4004, "token expired");
    } else if (!c->warned && left <= c->hub->cfg->expiry_warning) {
        c->warned = true;
        mh_buf b;
        mh_buf_init(&b);
        mh_out_expiring(&b, c->expires, left);
        mh_conn_send_buf(c, &b);
        mh_buf_free(&b);
    }
}

int mh_conn_add_sub(mh_conn *c, mh_sub *sub)
{
    if (c->nsubs == c->subs_cap) {
        uint32_t ncap = c->subs_cap ? c->subs_cap * 2 : 2;
        mh_sub **ns = realloc(c->subs, ncap * sizeof *ns);
        if (!ns)
            return -1;
        c->subs = ns;
        c->subs_cap = ncap;
    }
    sub->pos_in_owner = c->nsubs;
    c->subs[c->nsubs++] = sub;
    return 0;
}

void mh_conn_drop_sub(mh_conn *c, mh_sub *sub)
{
    uint32_t pos = sub->pos_in_owner;
    c->subs[pos] = c->subs[--c->nsubs];
    c->subs[pos]->pos_in_owner = pos;
}

mh_sub *mh_conn_find_sub(const mh_conn *c, const mh_keynode *node)
{
    for (uint32_t i = 0; i < c->nsubs; i++)
        if (c->subs[i]->node == node)
            return c->subs[i];
    return NULL;
}
