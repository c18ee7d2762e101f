#include "mh_intake.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mh_eventsource.h"
#include "mh_log.h"
#include "mh_netaddr.h"
#include "mh_tlspipe.h"
#include "mh_upgrade.h"
#include "mh_wsock.h"

/* After a refusal, what the client still sends is read and dropped for a
 * while (like nginx's lingering close): closing with unread bytes would
 * send a RST that can destroy the answer before the client reads it. */
#define LINGER_MS 2000
#define LINGER_BYTES (1 << 20)

typedef struct intake_sock {
    struct intake_sock *prev, *next;
    mh_intake *in;
    uint64_t id; /* its key in the own read set (mh_wsock), and its connection's id */
    int fd;
    mh_peer *peer; /* owned until handed on */
    char *buf;
    size_t len, cap;
    size_t dropped; /* while lingering */
    uint64_t deadline_ms;
    bool lingering;
    bool await_proxy; /* a PROXY header comes first (trusted proxy, --proxy-protocol) */
    mh_tls *tls;      /* owned until handed on: the socket's TLS, NULL on a plain socket */
    bool hs_done;     /* its handshake is over: the head is read through it */
    bool hs_write;    /* the handshake waits for the socket to be writable */
    bool trusted;     /* the socket's peer is a trusted proxy */
    size_t need;      /* a stream POST: head + body bytes to read (SPEC 6.1); 0 otherwise */
    size_t head_len;
} intake_sock;

struct mh_intake {
    mh_hub *h;
    mh_intake_adopt_fn adopt;
    mh_intake_upgrade_fn upgrade;
    mh_map socks; /* id -> intake_sock: events name sockets by id */
    intake_sock *head;
    uv_timer_t timer;
    bool stopping;
};

static void on_timer(uv_timer_t *t);
static void on_readable(void *ctx, uint64_t id);

mh_intake *mh_intake_new(mh_hub *h, mh_intake_adopt_fn adopt, mh_intake_upgrade_fn upgrade)
{
    mh_intake *in = calloc(1, sizeof *in);

    if (!in)
        return NULL;
    in->h = h;
    in->adopt = adopt;
    in->upgrade = upgrade;
    mh_map_init(&in->socks);
    uv_timer_init(h->loop, &in->timer);
    in->timer.data = in;
    h->hooks.intake = on_readable;
    h->intake_ctx = in;
    return in;
}

static void unlink_sock(intake_sock *s)
{
    mh_intake *in = s->in;

    if (s->prev)
        s->prev->next = s->next;
    else
        in->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    in->h->nintake--;
    if (!in->head)
        uv_timer_stop(&in->timer);
}

/* 's' is no longer the intake's (its socket is closed, or someone else's). */
static void forget(intake_sock *s)
{
    unlink_sock(s);
    mh_map_del(&s->in->socks, &s->id, sizeof s->id);
}

static void finish(intake_sock *s)
{
    forget(s);
    free(s->buf);
    free(s);
}

static void drop(intake_sock *s)
{
    mh_tls_free(s->tls, false);
    s->tls = NULL;
    close(s->fd);
    mh_peer_free(s->peer);
    s->peer = NULL;
    finish(s);
}

/* Best effort: a fresh socket's send buffer always takes a short answer.
 * Over TLS it goes in one record, then close_notify; the lingering that
 * follows reads the socket's raw bytes (nothing more is decrypted). */
static void answer(intake_sock *s, int status, const char *extra, const char *body)
{
    char out[1024];
    int n = mh_upgrade_response(out, sizeof out, status, extra, body);
    bool other;

    if (s->tls) {
        if (n > 0 && s->hs_done && mh_tls_write(s->tls, out, (size_t)n, &other) < (ssize_t)n)
            mh_debug("intake: answer %d not sent over TLS", status);
        mh_tls_free(s->tls, s->hs_done);
        s->tls = NULL;
    } else if (n > 0 && send(s->fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        mh_debug("intake: answer %d not sent: %s", status, strerror(errno));
    }
    shutdown(s->fd, SHUT_WR);
}

static void count_refusal(mh_hub *h, const char *stage, const char *reason)
{
    h->metrics.connections_rejected++;
    mh_metrics_reject(&h->metrics, stage, reason);
}

/* The answer is sent; what the client still sends is read and dropped for a while. */
static void answered(intake_sock *s, const mh_upgrade_refusal *why)
{
    answer(s, why->status, why->extra, why->message);
    /* Answered and half-closed: no longer the client's connection, so its
     * address may connect again at once (the linger only waits for its close). */
    mh_peer_release(s->peer);
    s->lingering = true;
    s->deadline_ms = mh_mono_ms() + LINGER_MS;
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}

/* Answers a refusal (counted already) and reads what still comes for a while. */
static void answer_refused(intake_sock *s, const mh_upgrade_refusal *why)
{
    mh_info("request from %s refused: %d %s (%s)", s->peer ? s->peer->addr : "?", why->status,
            why->reason, why->message);
    answered(s, why);
}

static void refuse(intake_sock *s, const char *stage, const mh_upgrade_refusal *why)
{
    count_refusal(s->in->h, stage, why->reason);
    answer_refused(s, why);
}

static void hand_on(intake_sock *s)
{
    mh_intake *in = s->in;
    int fd = s->fd;
    mh_peer *peer = s->peer;
    mh_tls *tls = s->tls;

    s->peer = NULL;
    s->tls = NULL;
    mh_wsock_unwatch(in->h, fd); /* lws (or the relay to it) watches it from now on */
    /* forgotten first: lws may answer inside the call (a scrape of the
     * gauges must not count itself in the intake) */
    forget(s);
    if (tls)
        mh_tlspipe_start(in->h, fd, tls, peer, s->buf, s->len, in->adopt);
    else
        in->adopt(in->h, fd, peer, s->buf, s->len);
    free(s->buf);
    free(s);
}

/* The address's limit, once the client's address is known: 0, or -1 refused. */
static int check_limit(intake_sock *s)
{
    const mh_config *cfg = s->in->h->cfg;
    static const mh_upgrade_refusal why = {429, "ip_limit",
                                           "too many connections from this address", NULL};

    if (!cfg->max_connections_per_ip ||
        mh_peer_count(s->peer) <= (uint32_t)cfg->max_connections_per_ip)
        return 0;
    mh_info("connection from %s refused: %u open from it (--max-connections-per-ip)", s->peer->addr,
            mh_peer_count(s->peer) - 1);
    refuse(s, "limit", &why);
    return -1;
}

/* A trusted proxy that terminates HTTP names the client in X-Forwarded-For. */
static void apply_xff(intake_sock *s, const mh_http_request *req)
{
    const char *vals[8];
    size_t lens[8], n = 0;
    mh_ip client;

    for (size_t i = 0; i < req->nheaders && n < 8; i++) {
        const mh_http_header *h = &req->headers[i];
        if (h->name_len == 15 && !strncasecmp(h->name, "x-forwarded-for", 15)) {
            vals[n] = h->value;
            lens[n++] = h->value_len;
        }
    }
    if (n && mh_xff_client(&s->in->h->trusted, vals, lens, n, &client))
        mh_peer_rekey(s->peer, &client);
}

/*
 * A stream's POST (SPEC 6.1) is answered here, not by lws: its body is read
 * to its Content-Length (at most max_frame), handed to the stream, and the
 * answer sent as a refusal is (then the socket lingers and closes).
 */
static void post(intake_sock *s)
{
    mh_http_request req;
    mh_upgrade_refusal why;

    if (mh_upgrade_check(s->buf, s->head_len, &req, &why)) { /* judged before: cannot fail */
        refuse(s, "upgrade", &why);
        return;
    }
    why.extra = "Access-Control-Allow-Origin: *"; /* the answer names nothing secret */
    why.status = mh_es_post(s->in->h, req.target, req.target_len, s->buf + s->head_len,
                            s->need - s->head_len, &why.message);
    answered(s, &why);
}

/* A stream's POST: 0 to read its body (s->need set), -1 when answered. */
static int start_post(intake_sock *s, const mh_http_request *req, size_t head_len)
{
    const mh_http_header *cl = mh_upgrade_header(req, "content-length");
    unsigned long long n = cl ? strtoull(cl->value, NULL, 10) : 0; /* digits: mh_upgrade */
    mh_upgrade_refusal why = {400, "bad_request", "the body is one browser frame",
                              "Access-Control-Allow-Origin: *"};

    if (s->peer && s->peer->admin) { /* no stream there (SPEC 13) */
        why.status = 404;
        why.reason = "admin_listener";
        why.message = "no stream on the admin listener";
        mh_metrics_reject(&s->in->h->metrics, "sse", why.reason);
        answered(s, &why);
        return -1;
    }
    if (n > (unsigned long long)s->in->h->cfg->max_frame) {
        why.status = 413;
        why.reason = "too_large";
        why.message = "the frame is over max_frame bytes";
    }
    if (!n || why.status == 413) {
        mh_metrics_reject(&s->in->h->metrics, "sse", why.reason);
        answered(s, &why);
        return -1;
    }
    s->head_len = head_len;
    s->need = head_len + (size_t)n;
    return 0;
}

static void judge(intake_sock *s, size_t head_len)
{
    mh_http_request req;
    mh_upgrade_refusal why;

    if (mh_upgrade_check(s->buf, head_len, &req, &why)) {
        refuse(s, "upgrade", &why);
        return;
    }
    if (s->trusted && !s->in->h->cfg->proxy_protocol) {
        apply_xff(s, &req);
        if (check_limit(s))
            return;
    }
    /* a WebSocket, or a Server-Sent Events stream: both become own connections */
    if ((req.upgrade || mh_es_stream_request(&req)) && s->in->upgrade) {
        if (s->in->upgrade(s->in->h, s->fd, s->tls, s->peer, s->id, s->buf, s->len, &req, &why)) {
            answer_refused(s, &why);
            return;
        }
        /* the connection has the socket, its registration, its TLS and the peer */
        s->peer = NULL;
        s->tls = NULL;
        finish(s);
        return;
    }
    if (req.method_len == 4 && !memcmp(req.method, "POST", 4)) {
        if (start_post(s, &req, head_len) == 0 && s->len >= s->need)
            post(s);
        return;
    }
    hand_on(s);
}

/*
 * The PROXY header, peeked and then consumed to its exact length (what
 * follows may be TLS, which is not ours to read). Returns 1 when done (the
 * peer names the client now), 0 to wait for more, -1 when 's' was refused.
 */
static int read_proxy(intake_sock *s)
{
    unsigned char tmp[MH_PROXY_MAX];
    mh_proxy_info info;
    ssize_t n = recv(s->fd, tmp, sizeof tmp, MSG_PEEK);
    int len;

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(s);
        return -1;
    }
    if (n < 0)
        return 0;
    len = mh_proxy_parse(tmp, (size_t)n, &info);
    if (len == 0 && (size_t)n < sizeof tmp)
        return 0;
    if (len <= 0) {
        static const mh_upgrade_refusal why = {400, "bad_proxy_header",
                                               "a PROXY protocol header was expected", NULL};
        refuse(s, "upgrade", &why);
        return -1;
    }
    if (recv(s->fd, tmp, (size_t)len, 0) != len) {
        drop(s);
        return -1;
    }
    s->await_proxy = false;
    if (!info.local)
        mh_peer_rekey(s->peer, &info.src);
    return 1;
}

/* One read a readiness event (the read set is level-triggered: what is left
 * is reported again). */
static void linger_read(intake_sock *s)
{
    char sink[4096];
    ssize_t n = read(s->fd, sink, sizeof sink);

    if (n > 0) {
        s->dropped += (size_t)n;
        if (s->dropped < LINGER_BYTES)
            return;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    drop(s); /* EOF, an error, or enough */
}

/*
 * A step of a TLS socket's handshake: 1 when it is over (and the address's
 * limit, known now, allows it: the 429 goes over TLS), 0 to wait, -1 when
 * 's' is gone (a failed handshake is closed without an answer: there is no
 * HTTP to answer in).
 */
static int handshake(intake_sock *s)
{
    char why[256];
    int rc = mh_tls_handshake(s->tls, &s->hs_write, why, sizeof why);

    if (rc == 0)
        return 0;
    if (rc < 0) {
        mh_info("connection from %s closed: %s", s->peer ? s->peer->addr : "?", why);
        count_refusal(s->in->h, "tls", "handshake");
        drop(s);
        return -1;
    }
    s->hs_done = true;
    s->hs_write = false;
    /* behind a proxy that names the client in X-Forwarded-For: after the head */
    if (s->trusted && !s->in->h->cfg->proxy_protocol)
        return 1;
    return check_limit(s) ? -1 : 1;
}

/*
 * One read of the head (or a stream POST's body) and what follows from it.
 * Returns true when 's' is still reading (another read may follow), false
 * when it was judged, refused, handed on or dropped.
 */
static bool read_head(intake_sock *s)
{
    long end;
    ssize_t n;
    bool other;

    if (s->len == s->cap) {
        /* a head is read to MH_UPGRADE_HEAD_MAX, a stream POST to its end */
        size_t max = s->need ? s->need : MH_UPGRADE_HEAD_MAX;
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        char *nb;
        if (ncap > max)
            ncap = max;
        if (ncap <= s->cap) { /* only a head: a whole POST is handed on when read */
            mh_upgrade_refusal why = {431, "headers_too_large", "request headers too large", NULL};
            refuse(s, "upgrade", &why);
            return false;
        }
        nb = realloc(s->buf, ncap);
        if (!nb) {
            drop(s);
            return false;
        }
        s->buf = nb;
        s->cap = ncap;
    }
    if (s->tls) {
        n = mh_tls_read(s->tls, s->buf + s->len, s->cap - s->len, &other);
        if (n == 0) /* (a read that waits for writable: TLS 1.2 renegotiation, refused) */
            return false;
    } else {
        n = read(s->fd, s->buf + s->len, s->cap - s->len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return false;
    }
    if (n <= 0) {
        drop(s); /* the client went away before its request was complete */
        return false;
    }
    s->len += (size_t)n;
    if (s->need) { /* a stream POST's body: until it is whole, wait for the next event */
        if (s->len < s->need)
            return true;
        post(s);
        return false;
    }
    end = mh_upgrade_head_end(s->buf, s->len);
    if (end < 0) {
        mh_upgrade_refusal why = {431, "headers_too_large", "request headers too large", NULL};
        refuse(s, "upgrade", &why);
        return false;
    } else if (end > 0) {
        judge(s, (size_t)end);
        return false;
    }
    return true;
}

static void on_readable(void *ctx, uint64_t id)
{
    mh_intake *in = ctx;
    intake_sock *s = mh_map_get(&in->socks, &id, sizeof id);

    if (!s)
        return;
    if (s->lingering) {
        linger_read(s);
        return;
    }
    if (s->await_proxy) {
        if (read_proxy(s) <= 0)
            return;
        if (!s->tls && check_limit(s))
            return;
    }
    if (s->tls && !s->hs_done && handshake(s) <= 0)
        return;
    /* One read per event for a plain socket (level-triggered): a head of a
     * few hundred bytes is one read, with no second one to learn that
     * nothing more came. TLS may hold decrypted bytes the socket no longer
     * reports: read them too. */
    while (read_head(s) && s->tls && mh_tls_pending(s->tls))
        ;
}

static void on_timer(uv_timer_t *t)
{
    mh_intake *in = t->data;
    uint64_t now = mh_mono_ms();
    intake_sock *s = in->head, *next;

    for (; s; s = next) {
        next = s->next;
        /* A handshake that waits for the socket to take its flight (not in
         * the read set's events): tried again here. A fresh socket's send
         * buffer takes a server's first flight, so this is rare. */
        if (now < s->deadline_ms && s->tls && s->hs_write) {
            uint64_t id = s->id;
            if (handshake(s) > 0) /* (else waiting, refused or gone: 's' is not touched) */
                on_readable(in, id);
            continue;
        }
        if (now < s->deadline_ms)
            continue;
        if (s->lingering) {
            drop(s);
        } else if (s->tls && !s->hs_done) {
            /* no HTTP to answer in before the handshake is over */
            mh_info("connection from %s closed: no TLS handshake within --header-timeout",
                    s->peer ? s->peer->addr : "?");
            count_refusal(in->h, "tls", "handshake_timeout");
            drop(s);
        } else {
            mh_upgrade_refusal why = {408, "header_timeout",
                                      "the request head did not arrive in time", NULL};
            /* Counted as a limit: the peer was too slow, not malformed. */
            refuse(s, "limit", &why);
        }
    }
}

static intake_sock *track(mh_intake *in, int fd, mh_peer *peer, uint64_t deadline)
{
    intake_sock *s = calloc(1, sizeof *s);

    if (s) {
        s->id = ++in->h->next_conn_id;
        if (mh_map_put(&in->socks, &s->id, sizeof s->id, s) == 0) {
            if (mh_wsock_watch(in->h, fd, s->id) == 0)
                goto tracked;
            mh_map_del(&in->socks, &s->id, sizeof s->id);
        }
    }
    free(s);
    close(fd);
    mh_peer_free(peer);
    return NULL;
tracked:
    s->in = in;
    s->fd = fd;
    s->peer = peer;
    s->deadline_ms = deadline;
    s->next = in->head;
    if (in->head)
        in->head->prev = s;
    in->head = s;
    in->h->nintake++;
    if (!uv_is_active((uv_handle_t *)&in->timer))
        uv_timer_start(&in->timer, on_timer, 250, 250);
    return s;
}

void mh_intake_add(mh_intake *in, int fd, mh_peer *peer, bool tls)
{
    const mh_config *cfg = in->h->cfg;
    bool trusted = in->h->trusted.n && mh_cidr_match(&in->h->trusted, &peer->sock);
    intake_sock *s;

    s = track(in, fd, peer, mh_mono_ms() + (uint64_t)cfg->header_timeout * 1000);
    if (!s)
        return;
    if (tls) {
        s->tls = mh_tls_new(in->h->tls_ctx, fd);
        if (!s->tls) {
            drop(s);
            return;
        }
    }
    s->trusted = trusted;
    s->await_proxy = trusted && cfg->proxy_protocol;
    /* An untrusted peer is the client: its limit before a byte is read (over
     * TLS after the handshake, so the 429 can be read). Behind a proxy the
     * client is known after the PROXY header or the head. */
    if (!trusted && !tls)
        check_limit(s);
}

static void on_timer_closed(uv_handle_t *hd)
{
    free(hd->data);
}

void mh_intake_stop(mh_intake *in)
{
    if (!in || in->stopping)
        return;
    in->stopping = true;
    while (in->head)
        drop(in->head);
    mh_map_free(&in->socks);
    in->h->hooks.intake = NULL;
    uv_timer_stop(&in->timer);
    uv_close((uv_handle_t *)&in->timer, on_timer_closed);
}
