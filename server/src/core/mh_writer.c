#include "mh_writer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mh_log.h"
#include "mh_out.h"
#include "mh_peer.h"
#include "mh_sse.h"
#include "mh_tls.h"
#include "mh_wsframe.h"

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

int mh_writer_due(mh_conn *c)
{
    /* every connection is an own socket (lws serves the short HTTP answers
     * only); a blocked one goes on at its EPOLLOUT */
    return c->dirty || c->blocked ? 0 : mark_dirty(c);
}

/* The most bytes data frame 'm' takes as an event of the stream. */
static size_t sse_frame_max(const mh_conn *c, const mh_msg *m)
{
    return mh_out_sse_event(NULL, NULL, (const char *)m->data, m->len) + c->sse->id_max + 8;
}

/* Data frame 'm' as one event of a stream (SPEC 6.1), with the id when it
 * moves a resume point; returns its length. */
static size_t sse_frame(mh_conn *c, unsigned char *out, const mh_msg *m)
{
    if (!mh_sse_note(c->sse, (const char *)m->data, m->len))
        return mh_out_sse_event((char *)out, NULL, (const char *)m->data, m->len);
    return mh_out_sse_event((char *)out, mh_sse_id(c->sse), (const char *)m->data, m->len);
}

/* The hub's scratch buffer holds at least 'cap' bytes: 0, or -1 when out of memory. */
static int scratch_reserve(mh_hub *h, size_t cap)
{
    unsigned char *b;

    if (h->scratch_cap >= cap)
        return 0;
    b = realloc(h->scratch, cap);
    if (!b)
        return -1;
    h->scratch = b;
    h->scratch_cap = cap;
    return 0;
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

/*
 * The socket took less than offered (mh_writer.h): wait for its EPOLLOUT. A socket joins
 * the write set only the first time this happens — most never fill their
 * send buffer, and joining at the upgrade was one system call more per
 * connection in a connect storm. Joining when not writable is safe: the
 * edge comes when it is. -1 when it cannot join (it would never resume).
 */
int mh_writer_wait_writable(mh_conn *c)
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

/* Bytes framed per write: four full TLS records. The copy of each frame
 * into this buffer is one the plain WebSocket path does not make (it
 * writev()s the shared messages), but TLS copies every byte into its
 * records anyway (encrypting is a copy), so framing into one buffer costs a
 * memcpy of data that is in cache, and buys one SSL_write for many frames.
 * A stream's events are framed here too, plain or TLS: an event's bytes
 * depend on the resume points when it is framed (its `id:`), so each is
 * framed once, whole, and what the socket did not take waits in c->tx. */
#define BATCH 65536

/*
 * Frames the queue's head frames into out[0..cap), from c->wr_off bytes
 * into the head frame (a frame that did not fit goes on in the next batch):
 * frames copied whole leave the queue. Returns the bytes framed.
 */
static size_t tls_frame(mh_conn *c, unsigned char *out, size_t cap)
{
    size_t off = 0;

    while (c->q_count && off < cap && !c->close_sent) {
        mh_msg *m = c->q[c->q_head];
        unsigned char hdr[MH_WS_HEADER_MAX];
        size_t hl = m->opcode == MH_MSG_RAW
                        ? 0
                        : mh_ws_header(hdr, m->opcode ? m->opcode : MH_WS_TEXT, m->len);
        const unsigned char *part[2] = {hdr, m->data};
        size_t plen[2] = {hl, m->len}, skip = c->wr_off, copied = 0;

        for (int k = 0; k < 2 && off < cap; k++) {
            size_t n;
            if (skip >= plen[k]) { /* framed in an earlier batch */
                skip -= plen[k];
                continue;
            }
            n = plen[k] - skip < cap - off ? plen[k] - skip : cap - off;
            memcpy(out + off, part[k] + skip, n);
            off += n;
            copied += n;
            skip = 0;
        }
        if (c->wr_off + copied < hl + m->len) {
            c->wr_off += (uint32_t)copied;
            break; /* the buffer is full: the rest of this frame next time */
        }
        c->wr_off = 0;
        pop_written(c);
    }
    return off;
}

/*
 * One message of a stream (SPEC 6.1) appended to the hub's scratch buffer
 * at *off: the response head (MH_MSG_RAW) as it is, a data frame as an event,
 * a ping as a heartbeat comment, the close as the close event. Returns 1
 * when appended, 0 when it does not fit in this batch (it begins the next),
 * -1 when out of memory.
 */
static int sse_put(mh_conn *c, const mh_msg *m, size_t *off)
{
    mh_hub *h = c->hub;
    size_t need = 0;
    unsigned char *out;
    mh_buf b;
    int rc = -1;

    mh_buf_init(&b);
    if (m->opcode == MH_WS_CLOSE) {
        mh_out_close(&b, c->close_code, c->close_reason);
        if (b.oom)
            goto done;
        need = mh_out_sse_event(NULL, NULL, b.data, b.len);
    } else if (m->opcode == MH_MSG_RAW) {
        need = m->len;
    } else if (m->opcode == MH_WS_PING) {
        need = sizeof MH_SSE_HEARTBEAT - 1;
    } else if (!m->opcode) {
        need = sse_frame_max(c, m);
    } /* a stream is never read, so it has no pong to send */
    rc = 0;
    if (*off && *off + need > BATCH)
        goto done; /* a batch holds at least one message, however large */
    rc = -1;
    if (scratch_reserve(h, *off + need))
        goto done;
    out = h->scratch + *off;
    if (m->opcode == MH_WS_CLOSE) {
        *off += mh_out_sse_event((char *)out, NULL, b.data, b.len);
    } else if (!m->opcode) {
        *off += sse_frame(c, out, m);
    } else { /* the head as it is, or a heartbeat */
        memcpy(out, m->opcode == MH_MSG_RAW ? m->data : (const unsigned char *)MH_SSE_HEARTBEAT,
               need);
        *off += need;
    }
    rc = 1;
done:
    mh_buf_free(&b);
    return rc;
}

/* A stream's queued messages framed whole into the scratch buffer (and off
 * the queue): the bytes framed, or -1 when out of memory. */
static ssize_t sse_batch(mh_conn *c)
{
    size_t off = 0;

    while (c->q_count && !c->close_sent) {
        int rc = sse_put(c, c->q[c->q_head], &off);
        if (rc < 0)
            return -1;
        if (!rc)
            break;
        pop_written(c);
    }
    return (ssize_t)off;
}

/* buf[0..len) to the socket: the bytes taken, 0 when it takes none now
 * ('*other': TLS waits for the socket to be readable), -1 when it failed. */
static ssize_t batch_send(mh_conn *c, const unsigned char *buf, size_t len, bool *other)
{
    ssize_t n;

    if (c->tls) {
        c->hub->metrics.writer_tls_writes++;
        return mh_tls_write(c->tls, buf, len, other);
    }
    do
        n = write(c->fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    mh_debug("conn %s: write failed: %s", c->name, strerror(errno));
    return -1;
}

/*
 * The writer of an own TLS socket and of a stream: what an earlier write
 * left (c->tx) first, then batches of queued frames framed into the hub's
 * scratch buffer, each handed to one write (SSL_write over TLS), until the
 * queue is empty or the socket takes no more (then the rest moves to c->tx
 * and EPOLLOUT, or a readable event when TLS waits for one, says when to go
 * on). Returns 0, or -1 when the peer is gone.
 */
static int batch_write(mh_conn *c)
{
    mh_hub *h = c->hub;

    if (scratch_reserve(h, BATCH))
        return -1;
    while (!c->blocked) {
        const unsigned char *buf;
        size_t len;
        bool other = false;
        ssize_t n;

        if (c->tx) {
            buf = c->tx + c->tx_off;
            len = c->tx_len - c->tx_off;
        } else {
            n = c->sse ? sse_batch(c) : (ssize_t)tls_frame(c, h->scratch, BATCH);
            if (n <= 0)
                return (int)n;
            buf = h->scratch; /* (after the framing: it may have grown) */
            len = (size_t)n;
        }
        /* a partial write returns after each record: go on with the rest */
        for (size_t done = 0; done < len;) {
            n = batch_send(c, buf + done, len - done, &other);
            if (n < 0) {
                mh_debug("conn %s: write failed", c->name);
                return -1;
            }
            if (n > 0) {
                done += (size_t)n;
                continue;
            }
            /* the socket is full (or TLS must read first): the same bytes
             * are offered again at its EPOLLOUT (or next readable event) */
            c->tls_wr_wants_rd = other;
            if (other)
                c->blocked = true;
            else if (mh_writer_wait_writable(c))
                return -1;
            if (c->tx) {
                c->tx_off += (uint32_t)done;
                return 0;
            }
            c->tx = malloc(len - done);
            if (!c->tx)
                return -1;
            memcpy(c->tx, buf + done, len - done);
            c->tx_len = (uint32_t)(len - done);
            c->tx_off = 0;
            return 0;
        }
        if (c->tx) { /* what was left is out */
            free(c->tx);
            c->tx = NULL;
            c->tx_len = c->tx_off = 0;
        }
    }
    return 0;
}

#define OWN_IOV 128

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

    if (c->tls || c->sse)
        return batch_write(c);
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
                return mh_writer_wait_writable(c);
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
            return mh_writer_wait_writable(c); /* the send buffer is full */
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
    if (c->tls) { /* close_notify after the close frame, before our FIN */
        mh_tls_free(c->tls, true);
        c->tls = NULL;
    }
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

bool mh_writer_linger_read(mh_hub *h, uint64_t id)
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

void mh_writer_linger_sweep(mh_hub *h, uint64_t now_ms, bool all)
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
 * socket lingers unless the peer's close came already). A stream's close
 * event ends its response: the socket is closed (after TLS's close_notify),
 * as after any HTTP answer, since its client never sends anything that a
 * close could turn into a reset. Returns true when 'c' is gone. */
static bool own_after_write(mh_conn *c)
{
    if (!c->close_sent || c->tx) /* the close (frame or event) is not out yet */
        return false;
    if (c->sse && c->tls) {
        mh_tls_free(c->tls, true);
        c->tls = NULL;
    }
    if (c->close_heard || c->sse)
        mh_conn_destroy(c);
    else
        own_linger(c);
    return true;
}

void mh_writer_flush_one(mh_conn *c)
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
        mh_writer_flush_one(c);
    }
}

void mh_writer_init(mh_hub *h)
{
    uv_check_init(h->loop, &h->flush);
    h->flush.data = h;
    h->hooks.write_due = mh_writer_due;
}

void mh_writer_free(mh_hub *h)
{
    free(h->dirty);
    free(h->scratch);
    h->dirty = NULL;
    h->scratch = NULL;
    h->ndirty = h->dirty_cap = h->scratch_cap = 0;
}
