#include "mh_conn.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mh_hold.h"
#include "mh_log.h"
#include "mh_out.h"
#include "mh_peer.h"
#include "mh_sse.h"
#include "mh_tls.h"
#include "mh_wsframe.h"

int mh_conn_open(mh_conn *c, mh_hub *h)
{
    c->hub = h;
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
    return c->q_count && (c->wr_off || c->q[c->q_head]->opcode == MH_MSG_RAW);
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
    mh_tls_free(c->tls, false); /* the writer offered close_notify when its close was out */
    c->tls = NULL;
    free(c->tx);
    c->tx = NULL;
    c->tx_len = c->tx_off = 0;
    if (h->hooks.release)
        h->hooks.release(c);
    free(c->subject);
    free(c->info);
    mh_sse_free(c->sse);
    c->sse = NULL;
    mh_map_del(&h->conns, &c->id, sizeof c->id);
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
    if (c->hub->hooks.write_due(c))
        mh_conn_close(c, 1011, "out of memory");
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
    {
        unsigned char p[MH_WS_CONTROL_MAX];
        /* 1005 means "no code": an echo of it is an empty close frame (a
         * stream's writer frames its close event from close_code instead) */
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
        if (c->hub->hooks.write_due(c))
            c->close_deadline_ms = 0;
    }
}

void mh_conn_close(mh_conn *c, uint16_t code, const char *reason)
{
    start_close(c, code, reason, false);
}

void mh_conn_close_flushed(mh_conn *c, uint16_t code, const char *reason)
{
    start_close(c, code, reason, true);
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
    c->hub->hooks.write_due(c);
    return 0;
}

void mh_conn_destroy(mh_conn *c)
{
    int fd = c->fd;
    mh_peer *peer = c->peer;

    mh_debug("conn %s: closed", c->name);
    mh_conn_release(c);
    mh_tls_free(c->tls, false); /* never established: release did not */
    free(c->tx);
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

    if (c->closing)
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
    /* a final ping with a payload, as lws's peers got (its 4.1 reported only
     * non-empty pongs); a stream's writer makes it a heartbeat comment */
    return mh_conn_push_control(c, MH_WS_PING, "mh", 2) != 0;
}

void mh_conn_keepalive_all(mh_hub *h, uint64_t now_ms)
{
    uint64_t dead[64];
    size_t ndead = 0, it = 0;
    void *v;

    while (mh_map_next(&h->conns, &it, NULL, NULL, &v)) {
        mh_conn *c = v;
        if (keepalive(c, now_ms) && ndead < sizeof dead / sizeof dead[0])
            dead[ndead++] = c->id; /* the rest next second */
    }
    /* Outside the walk: closing removes the connection from the map. It does
     * not read, so no close frame: its socket is closed now. */
    for (size_t i = 0; i < ndead; i++) {
        mh_conn *c = mh_map_get(&h->conns, &dead[i], sizeof dead[i]);
        if (c)
            mh_conn_destroy(c);
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
