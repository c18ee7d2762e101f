/*
 * mh-loadgen — WebSocket load generator.
 *
 * One epoll loop per process drives thousands of client connections; with
 * --processes P the parent forks P workers that split the connections, get a
 * common start signal once every worker's connect phase is over, and send
 * their counters and latency histogram back over a pipe to be merged.
 *
 * A run: connect phase (open connections at --ramp per second, upgrade,
 * send the --subscribe frames, wait for their answers, bounded by
 * --timeout), then the measured phase of --duration seconds (latencies
 * recorded after --warmup), then a short drain in which the slow consumers
 * read again so the close code the server sent them can be seen.
 *
 * Latency of a received text frame = now (CLOCK_REALTIME) - the number after
 * its first "ts": (publisher's Unix time in milliseconds, maybe fractional).
 *
 * wss:// and https:// URLs speak TLS (OpenSSL, non-blocking, the server's
 * certificate not checked: a bench on loopback), the handshake counted in
 * the connect phase.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench_util.h"
#include "hdr.h"
#include "ws_client.h"

#define MAX_SOURCES 256
#define MAX_SUBS 64
#define MAX_PROCESSES 64
#define MAX_CODES 16
#define READ_CHUNK (64 * 1024)
#define SUB_FRAME_MAX (64 * 1024)
#define REQ_MAX 8192

/* Why a connection never reached an open WebSocket. */
enum fail_reason {
    F_SOCKET,    /* socket() failed: out of file descriptors */
    F_NO_ADDR,   /* bind()/connect(): EADDRNOTAVAIL/EADDRINUSE, ports exhausted */
    F_REFUSED,   /* ECONNREFUSED: nothing listens, or the backlog overflowed */
    F_CONNECT,   /* another connect() error (ETIMEDOUT, ...) */
    F_RESET,     /* EOF or reset before the upgrade answer */
    F_HTTP,      /* the answer is not HTTP */
    F_STATUS,    /* HTTP status other than 101 */
    F_HANDSHAKE, /* 101 with wrong Upgrade/Connection/extension headers */
    F_ACCEPT,    /* 101 with a wrong Sec-WebSocket-Accept */
    F_TIMEOUT,   /* still connecting or upgrading when --timeout ran out */
    F_TLS,       /* the TLS handshake failed */
    F_COUNT
};
static const char *const fail_names[F_COUNT] = {"socket",     "no_address", "refused", "connect",
                                                "reset",      "http",       "status",  "handshake",
                                                "bad_accept", "timeout",    "tls"};

/* How an open connection ended before the run did. */
enum drop_reason {
    D_CLOSE,    /* the server sent a close frame (its code is in 'codes') */
    D_EOF,      /* the server closed TCP without a close frame */
    D_RESET,    /* read/write error, usually ECONNRESET */
    D_PROTOCOL, /* the server broke RFC 6455 (or a message over --max-message) */
    D_COUNT
};
static const char *const drop_names[D_COUNT] = {"close_frame", "eof", "reset", "protocol"};

typedef struct code_count {
    uint32_t code;
    uint32_t pad;
    uint64_t n;
} code_count;

/* Everything a worker reports. Plain data: it crosses the pipe as is. */
typedef struct lg_stats {
    uint64_t attempted, established, failed, not_attempted, subscribed;
    uint64_t fail[F_COUNT];
    int64_t all_established_us; /* since the run started, -1 if none */
    int64_t all_subscribed_us;
    uint64_t frames, bytes;                   /* every data frame / byte read */
    uint64_t frames_measured, bytes_measured; /* after the warmup, before the end */
    uint64_t text, binary, acks, errors, pings, no_ts;
    uint64_t drop[D_COUNT];
    uint64_t slow, slow_closed, slow_frames, slow_open_at_end;
    uint64_t open_at_end;
    uint64_t codes_other;
    uint32_t ncodes;
    uint32_t pad;
    code_count codes[MAX_CODES];
    mh_hdr lat;
} lg_stats;

enum { MSG_READY = 1, MSG_FINAL = 2 };
typedef struct lg_msg {
    uint32_t type;
    uint32_t worker;
    lg_stats st;
} lg_msg;

typedef struct config {
    const char *url;
    char host[256]; /* Host header: as in the URL */
    char path[2048];
    struct sockaddr_in dst;
    long connections, processes, inflight, max_message;
    double ramp, duration, timeout, warmup, slow_fraction, drain;
    const char *subs[MAX_SUBS];
    int nsubs;
    const char *ack_text[MAX_SUBS]; /* --ack-substring; none: "subscribed":true */
    size_t ack_len[MAX_SUBS];
    int nack_text;
    long acks;   /* answers that make a connection subscribed; -1: one per --subscribe */
    long rcvbuf; /* SO_RCVBUF of every socket; 0: the kernel's autotuning */
    struct in_addr src[MAX_SOURCES];
    int nsrc;
    char *headers;       /* owned: extra request header lines, CRLF-terminated */
    char **conn_headers; /* owned: --conn-headers lines; connection i takes i mod n */
    size_t nconn_headers;
    int json;
    int sse; /* http:// URL: an EventSource stream (mizan-hub's GET /sse, SPEC 6.1) */
    int tls; /* wss:// or https:// */
} config;

enum conn_state { CS_IDLE, CS_CONNECTING, CS_TLS, CS_UPGRADING, CS_OPEN, CS_DONE };

static SSL_CTX *tls_ctx; /* wss:// and https:// */

typedef struct conn {
    int fd;
    uint32_t idx; /* global connection index, {conn} */
    uint32_t ev;  /* events registered with epoll */
    uint8_t state;
    uint8_t slow;     /* will stop reading once subscribed */
    uint8_t paused;   /* a slow consumer not reading now */
    uint8_t draining; /* a slow consumer reading again at the end */
    uint8_t resolved; /* done with the connect phase (subscribed, failed or dropped) */
    uint8_t subscribed;
    uint16_t answers; /* acks + errors received while subscribing */
    uint32_t out_len;
    uint8_t *out; /* owned: bytes the socket has not taken yet */
    mh_wsc ws;
    /* --url http://: the response head, then event lines not complete yet */
    uint8_t *sse_buf; /* owned */
    size_t sse_len, sse_cap;
    uint8_t sse_head;       /* the 200 head was read */
    uint8_t tls_want_write; /* the handshake waits for EPOLLOUT */
    SSL *ssl;               /* owned: wss:// */
} conn;

enum phase { P_CONNECT, P_WAIT_GO, P_RUN, P_DRAIN, P_END };

/* One worker per process: the process-wide state of its loop. */
typedef struct worker {
    const config *cfg;
    uint32_t id;
    int ep;
    int ctl_fd; /* parent -> worker: the start time */
    int res_fd; /* worker -> parent: lg_msg */
    uint32_t first, count;
    conn *conns;
    uint32_t next; /* next local connection to open */
    uint32_t inflight;
    uint32_t pending; /* not yet resolved */
    int phase;
    int measuring;
    int64_t t0, go, deadline;
    int64_t now_real;
    double rate; /* this worker's share of --ramp */
    uint8_t *rbuf;
    lg_stats st;
} worker;

static worker W;
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* ---- counters ---- */

static void count_code(lg_stats *st, uint32_t code)
{
    for (uint32_t i = 0; i < st->ncodes; i++) {
        if (st->codes[i].code == code) {
            st->codes[i].n++;
            return;
        }
    }
    if (st->ncodes < MAX_CODES) {
        st->codes[st->ncodes].code = code;
        st->codes[st->ncodes++].n = 1;
    } else {
        st->codes_other++;
    }
}

static void merge_codes(lg_stats *dst, const lg_stats *src)
{
    for (uint32_t i = 0; i < src->ncodes; i++) {
        uint32_t j;

        for (j = 0; j < dst->ncodes; j++)
            if (dst->codes[j].code == src->codes[i].code)
                break;
        if (j < dst->ncodes) {
            dst->codes[j].n += src->codes[i].n;
        } else if (dst->ncodes < MAX_CODES) {
            dst->codes[dst->ncodes++] = src->codes[i];
        } else {
            dst->codes_other += src->codes[i].n;
        }
    }
    dst->codes_other += src->codes_other;
}

static void merge_stats(lg_stats *d, const lg_stats *s)
{
    d->attempted += s->attempted;
    d->established += s->established;
    d->failed += s->failed;
    d->not_attempted += s->not_attempted;
    d->subscribed += s->subscribed;
    for (int i = 0; i < F_COUNT; i++)
        d->fail[i] += s->fail[i];
    if (s->all_established_us > d->all_established_us)
        d->all_established_us = s->all_established_us;
    if (s->all_subscribed_us > d->all_subscribed_us)
        d->all_subscribed_us = s->all_subscribed_us;
    d->frames += s->frames;
    d->bytes += s->bytes;
    d->frames_measured += s->frames_measured;
    d->bytes_measured += s->bytes_measured;
    d->text += s->text;
    d->binary += s->binary;
    d->acks += s->acks;
    d->errors += s->errors;
    d->pings += s->pings;
    d->no_ts += s->no_ts;
    for (int i = 0; i < D_COUNT; i++)
        d->drop[i] += s->drop[i];
    d->slow += s->slow;
    d->slow_closed += s->slow_closed;
    d->slow_frames += s->slow_frames;
    d->slow_open_at_end += s->slow_open_at_end;
    d->open_at_end += s->open_at_end;
    merge_codes(d, s);
    mh_hdr_merge(&d->lat, &s->lat);
}

/* ---- connections ---- */

static void conn_events(conn *c)
{
    uint32_t ev;
    struct epoll_event e;

    if (c->fd < 0)
        return;
    if (c->state == CS_CONNECTING)
        ev = EPOLLOUT;
    else if (c->state == CS_TLS)
        ev = c->tls_want_write ? EPOLLOUT : EPOLLIN;
    else
        ev = (c->paused ? EPOLLRDHUP : EPOLLIN) | (c->out_len ? EPOLLOUT : 0);
    if (ev == c->ev)
        return;
    e.events = ev;
    e.data.ptr = c;
    if (epoll_ctl(W.ep, c->ev ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e) == 0)
        c->ev = ev;
}

/* The connection is done with the connect phase, one way or another. */
static void conn_resolve(conn *c)
{
    if (!c->resolved) {
        c->resolved = 1;
        W.pending--;
    }
}

static void conn_close_fd(conn *c)
{
    if (c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_UPGRADING)
        W.inflight--;
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->ev = 0;
    c->state = CS_DONE;
    free(c->out);
    c->out = NULL;
    c->out_len = 0;
    mh_wsc_free(&c->ws);
    free(c->sse_buf);
    c->sse_buf = NULL;
    c->sse_len = c->sse_cap = 0;
    c->sse_head = 0;
}

static void conn_fail(conn *c, int reason)
{
    W.st.failed++;
    W.st.fail[reason]++;
    conn_close_fd(c);
    conn_resolve(c);
}

static void conn_drop(conn *c, int reason)
{
    if (c->draining || c->paused)
        W.st.slow_closed++;
    W.st.drop[reason]++;
    conn_close_fd(c);
    conn_resolve(c);
}

static int fail_of_errno(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return F_REFUSED;
    case EADDRNOTAVAIL:
    case EADDRINUSE:
        return F_NO_ADDR;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        return F_SOCKET;
    default:
        return F_CONNECT;
    }
}

/* One send: what the socket took, or -1 with errno (EAGAIN: nothing now). */
static ssize_t conn_write(conn *c, const uint8_t *p, size_t n)
{
    int r, e;

    if (!c->ssl)
        return send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    ERR_clear_error();
    r = SSL_write(c->ssl, p, (int)n);
    if (r > 0)
        return r;
    e = SSL_get_error(c->ssl, r);
    errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : ECONNRESET;
    return -1;
}

/* One read, as read(2) answers (TLS: EAGAIN when TLS waits, 0 at its close). */
static ssize_t conn_read(conn *c, uint8_t *p, size_t n)
{
    int r, e;

    if (!c->ssl)
        return read(c->fd, p, n);
    ERR_clear_error();
    r = SSL_read(c->ssl, p, (int)n);
    if (r > 0)
        return r;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = ECONNRESET;
    return -1;
}

/* Writes now what the socket takes, keeps the rest for EPOLLOUT. */
static int conn_send(conn *c, const uint8_t *p, size_t n)
{
    ssize_t w = 0;
    uint8_t *o;

    if (c->fd < 0)
        return -1;
    /* TLS: a write that waited must be offered the same bytes again, so
     * nothing new goes out before what 'out' holds */
    if (!c->out_len) {
        w = conn_write(c, p, n);
        if (w == (ssize_t)n)
            return 0;
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            w = 0;
        }
    }
    o = realloc(c->out, c->out_len + (n - (size_t)w));
    if (!o)
        return -1;
    memcpy(o + c->out_len, p + w, n - (size_t)w);
    c->out = o;
    c->out_len += (uint32_t)(n - (size_t)w);
    conn_events(c);
    return 0;
}

static int conn_flush(conn *c)
{
    ssize_t w = conn_write(c, c->out, c->out_len);

    if (w < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    memmove(c->out, c->out + w, c->out_len - (size_t)w);
    c->out_len -= (uint32_t)w;
    if (!c->out_len) {
        free(c->out);
        c->out = NULL;
    }
    conn_events(c);
    return 0;
}

/* Substitutes {conn} and {sub} in a --subscribe template. Returns the length or -1. */
static int render(const char *tpl, uint32_t connidx, uint64_t sub, char *out, size_t cap)
{
    size_t n = 0;

    while (*tpl) {
        char num[24];
        const char *rep = NULL;
        size_t skip = 1, len;

        if (strncmp(tpl, "{conn}", 6) == 0) {
            snprintf(num, sizeof(num), "%u", connidx);
            rep = num;
            skip = 6;
        } else if (strncmp(tpl, "{sub}", 5) == 0) {
            snprintf(num, sizeof(num), "%llu", (unsigned long long)sub);
            rep = num;
            skip = 5;
        }
        len = rep ? strlen(rep) : 1;
        if (n + len >= cap)
            return -1;
        memcpy(out + n, rep ? rep : tpl, len);
        n += len;
        tpl += skip;
    }
    return (int)n;
}

static void conn_subscribed(conn *c)
{
    int64_t t = mh_bench_mono_us() - W.t0;

    c->subscribed = 1;
    W.st.subscribed++;
    if (t > W.st.all_subscribed_us)
        W.st.all_subscribed_us = t;
    conn_resolve(c);
    if (c->slow) {
        /* Stops after this read; the remaining bytes of it are still decoded. */
        c->paused = 1;
        W.st.slow++;
    }
}

static int ws_send(void *ctx, const uint8_t *data, size_t len)
{
    return conn_send(ctx, data, len);
}

static int ws_open(void *ctx)
{
    conn *c = ctx;
    const config *cfg = W.cfg;
    int64_t t = mh_bench_mono_us() - W.t0;
    static char text[SUB_FRAME_MAX];
    static uint8_t frame[SUB_FRAME_MAX + MH_WS_HDR_MAX];

    c->state = CS_OPEN;
    W.inflight--;
    W.st.established++;
    if (t > W.st.all_established_us)
        W.st.all_established_us = t;
    if (cfg->acks == 0 || (cfg->nsubs == 0 && !cfg->sse)) {
        conn_subscribed(c);
        if (cfg->nsubs == 0)
            return 0;
    }
    if (cfg->sse)
        return 0; /* the stream's subscriptions are in its URL */
    for (int s = 0; s < cfg->nsubs; s++) {
        int n = render(cfg->subs[s], c->idx, (uint64_t)c->idx * (uint64_t)cfg->nsubs + (uint64_t)s,
                       text, sizeof(text));
        size_t f;

        if (n < 0)
            return MH_WSC_E_SEND;
        f = mh_wsc_frame(frame, MH_WS_OP_TEXT, text, (size_t)n);
        if (!f || conn_send(c, frame, f))
            return MH_WSC_E_SEND;
    }
    return 0;
}

/*
 * The publisher's "ts" in µs: milliseconds with an optional fraction. Parsed
 * by hand for the usual "1764000000123.456"; anything fancier (exponent)
 * goes through strtod. Returns 0 or -1 when there is no number.
 */
static int parse_ts(const uint8_t *data, size_t len, int64_t *us)
{
    const uint8_t *p = memmem(data, len, "\"ts\":", 5), *end = data + len;
    int64_t ms = 0, frac = 0;
    int digits = 0, fdigits = 0;

    if (!p)
        return -1;
    p += 5;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    const uint8_t *start = p;
    while (p < end && *p >= '0' && *p <= '9' && digits < 17) {
        ms = ms * 10 + (*p++ - '0');
        digits++;
    }
    if (p < end && *p == '.') {
        p++;
        while (p < end && *p >= '0' && *p <= '9') {
            if (fdigits < 4) {
                frac = frac * 10 + (*p - '0');
                fdigits++;
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9') || *p == '-')) {
        char num[64];
        size_t n = 0;

        for (p = start; p < end && n < sizeof(num) - 1 && strchr("0123456789.eE+-", *p); p++)
            num[n++] = (char)*p;
        num[n] = 0;
        char *e;
        double v = strtod(num, &e);
        if (e == num)
            return -1;
        *us = llround(v * 1000.0);
        return 0;
    }
    if (!digits)
        return -1;
    while (fdigits < 4) {
        frac *= 10;
        fdigits++;
    }
    /* frac is in 0.1 µs: round to the µs */
    *us = ms * 1000 + (frac + 5) / 10;
    return 0;
}

/*
 * Acks in a frame: each occurrence of an --ack-substring text (some servers
 * put several replies in one frame, one per line), or 1 for a frame containing
 * "subscribed":true when there is no --ack-substring.
 */
static int acks_in(const uint8_t *data, size_t len)
{
    const config *cfg = W.cfg;
    int n = 0;

    if (!cfg->nack_text)
        return memmem(data, len, "\"subscribed\":true", 17) != NULL;
    for (int i = 0; i < cfg->nack_text; i++) {
        const uint8_t *p = data, *end = data + len, *hit;

        while ((hit = memmem(p, (size_t)(end - p), cfg->ack_text[i], cfg->ack_len[i]))) {
            n++;
            p = hit + cfg->ack_len[i];
        }
    }
    return n;
}

static void answered(conn *c)
{
    long need = W.cfg->acks < 0 ? W.cfg->nsubs : W.cfg->acks;

    if (!c->subscribed && ++c->answers >= need)
        conn_subscribed(c);
}

static int ws_message(void *ctx, int opcode, uint8_t *data, size_t len)
{
    conn *c = ctx;
    int64_t ts;
    int acks;

    if (c->draining) {
        W.st.slow_frames++;
        return 0;
    }
    W.st.frames++;
    if (W.measuring)
        W.st.frames_measured++;
    if (opcode != MH_WS_OP_TEXT) {
        W.st.binary++;
        return 0;
    }
    W.st.text++;
    if ((acks = acks_in(data, len)) > 0) {
        W.st.acks += (uint64_t)acks;
        while (acks--)
            answered(c);
    } else if (memmem(data, len, "\"error\"", 7)) {
        W.st.errors++;
        answered(c);
    }
    if (!W.measuring)
        return 0;
    if (parse_ts(data, len, &ts) == 0)
        mh_hdr_record(&W.st.lat, W.now_real - ts);
    else
        W.st.no_ts++;
    return 0;
}

static int ws_close(void *ctx, int code, const char *reason, size_t reason_len)
{
    (void)ctx;
    count_code(&W.st, (uint32_t)code);
    return 1;
}

static const mh_wsc_ops ws_ops = {ws_send, ws_open, ws_message, ws_close};

static void conn_upgrade(conn *c)
{
    const config *cfg = W.cfg;
    char req[REQ_MAX], path[sizeof(cfg->path)], extra[REQ_MAX / 2];
    const char *p = cfg->path, *hdrs = cfg->headers;
    int n = 0;

    /* {conn} in the URL's path or query: one path per connection (e.g. nchan's channel list) */
    if (strchr(p, '{')) {
        n = render(p, c->idx, c->idx, path, sizeof(path));
        p = path;
    }
    if (cfg->nconn_headers) { /* this connection's own line after the common ones */
        int k = snprintf(extra, sizeof(extra), "%s%s\r\n", cfg->headers ? cfg->headers : "",
                         cfg->conn_headers[c->idx % cfg->nconn_headers]);
        if (k < 0 || k >= (int)sizeof(extra))
            n = -1;
        hdrs = extra;
    }
    if (n >= 0 && cfg->sse)
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s\r\n", p,
                     cfg->host, hdrs ? hdrs : "");
    else if (n >= 0)
        n = mh_wsc_start(&c->ws, (size_t)cfg->max_message, cfg->host, p, hdrs, req, sizeof(req));
    if (n >= (int)sizeof(req))
        n = -1;

    c->state = CS_UPGRADING;
    if (n < 0 || conn_send(c, (const uint8_t *)req, (size_t)n)) {
        conn_fail(c, F_RESET);
        return;
    }
    conn_events(c);
}

/* A step of the TLS handshake; the upgrade once it is done. */
static void conn_tls(conn *c)
{
    int r, e;

    if (!c->ssl) {
        c->ssl = SSL_new(tls_ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
            conn_fail(c, F_TLS);
            return;
        }
        SSL_set_connect_state(c->ssl);
        c->state = CS_TLS;
    }
    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        conn_upgrade(c);
        return;
    }
    e = SSL_get_error(c->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        conn_fail(c, F_TLS);
        return;
    }
    c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
    conn_events(c);
}

/* TCP is up: TLS first for wss://, else the upgrade. */
static void conn_connected(conn *c)
{
    if (W.cfg->tls)
        conn_tls(c);
    else
        conn_upgrade(c);
}

static void conn_open(conn *c)
{
    const config *cfg = W.cfg;
    int one = 1, rc;

    W.st.attempted++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(c, F_SOCKET);
        return;
    }
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->rcvbuf) {
        int rb = (int)cfg->rcvbuf;

        /* a fixed receive buffer (no autotuning), as behind a slow link */
        (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
    }
    if (cfg->nsrc) {
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr = cfg->src[c->idx % cfg->nsrc]};

        /* Let connect() pick the port per destination, not bind() per source
         * address alone, so each source gets its full ephemeral range. */
        (void)setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(c->fd, (struct sockaddr *)&src, sizeof(src))) {
            conn_fail(c, fail_of_errno(errno));
            return;
        }
    }
    rc = connect(c->fd, (const struct sockaddr *)&cfg->dst, sizeof(cfg->dst));
    if (rc && errno != EINPROGRESS) {
        conn_fail(c, fail_of_errno(errno));
        return;
    }
    W.inflight++;
    c->state = CS_CONNECTING;
    if (rc == 0) {
        conn_connected(c);
        return;
    }
    conn_events(c);
}

/*
 * --url http://: the stream's response head (200 opens it as ws_open does an
 * upgrade: its subscriptions are in the URL, so nothing is sent), then each
 * event's data lines, joined with LF, handed to ws_message as a text frame;
 * comment lines (heartbeats) are skipped. The stream's `close` event counts
 * its code like a close frame. Returns what mh_wsc_feed would.
 */
static int sse_feed(conn *c, const uint8_t *in, size_t n)
{
    size_t at = 0;

    if (c->sse_len + n > c->sse_cap) {
        size_t cap = c->sse_cap ? c->sse_cap : 4096;
        uint8_t *b;
        while (cap < c->sse_len + n)
            cap *= 2;
        if (cap > (size_t)W.cfg->max_message + 65536 || !(b = realloc(c->sse_buf, cap)))
            return MH_WS_E_TOO_BIG;
        c->sse_buf = b;
        c->sse_cap = cap;
    }
    memcpy(c->sse_buf + c->sse_len, in, n);
    c->sse_len += n;
    if (!c->sse_head) {
        uint8_t *end = memmem(c->sse_buf, c->sse_len, "\r\n\r\n", 4);
        if (!end)
            return c->sse_len > 16384 ? MH_WSC_E_HTTP : 0;
        if (c->sse_len < 12 || memcmp(c->sse_buf, "HTTP/1.1 200", 12))
            return MH_WSC_E_STATUS;
        c->sse_head = 1;
        at = (size_t)(end - c->sse_buf) + 4;
        ws_open(c);
    }
    /* whole events only: everything up to the last blank line */
    for (;;) {
        uint8_t *ev = memmem(c->sse_buf + at, c->sse_len - at, "\n\n", 2), *p, *evend;
        uint8_t *data;
        size_t dlen = 0;
        if (!ev)
            break;
        evend = ev + 1;
        data = c->sse_buf + at; /* data lines are joined in place, over their prefixes */
        for (p = c->sse_buf + at; p < evend;) {
            uint8_t *nl = memchr(p, '\n', (size_t)(evend - p));
            size_t ll = (size_t)(nl - p);
            if (ll >= 5 && !memcmp(p, "data:", 5)) {
                size_t skip = ll > 5 && p[5] == ' ' ? 6 : 5;
                if (dlen)
                    data[dlen++] = '\n';
                memmove(data + dlen, p + skip, ll - skip);
                dlen += ll - skip;
            }
            p = nl + 1;
        }
        at = (size_t)(ev - c->sse_buf) + 2;
        if (dlen && dlen >= 9 && !memcmp(data, "{\"close\":", 9)) {
            const uint8_t *code = memmem(data, dlen, "\"code\":", 7);
            count_code(&W.st, code ? (uint32_t)strtoul((const char *)code + 7, NULL, 10) : 0);
            return 1; /* as ws_close */
        }
        if (dlen)
            ws_message(c, MH_WS_OP_TEXT, data, dlen);
    }
    memmove(c->sse_buf, c->sse_buf + at, c->sse_len - at);
    c->sse_len -= at;
    return 0;
}

static void conn_readable(conn *c)
{
    ssize_t n = conn_read(c, W.rbuf, READ_CHUNK);
    int rc;

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        if (c->state == CS_UPGRADING)
            conn_fail(c, F_RESET);
        else
            conn_drop(c, n == 0 ? D_EOF : D_RESET);
        return;
    }
    if (n < 0)
        return;
    W.now_real = mh_bench_real_us();
    if (!c->draining) {
        W.st.bytes += (uint64_t)n;
        if (W.measuring)
            W.st.bytes_measured += (uint64_t)n;
    }
    rc = W.cfg->sse ? sse_feed(c, W.rbuf, (size_t)n)
                    : mh_wsc_feed(&c->ws, W.rbuf, (size_t)n, &ws_ops, c);
    if (rc == 0) {
        conn_events(c);
        return;
    }
    switch (rc) {
    case MH_WSC_E_HTTP:
        conn_fail(c, F_HTTP);
        break;
    case MH_WSC_E_STATUS:
        conn_fail(c, F_STATUS);
        break;
    case MH_WSC_E_HANDSHAKE:
        conn_fail(c, F_HANDSHAKE);
        break;
    case MH_WSC_E_ACCEPT:
        conn_fail(c, F_ACCEPT);
        break;
    case MH_WSC_E_SEND:
        conn_drop(c, D_RESET);
        break;
    case MH_WS_E_PROTO:
    case MH_WS_E_TOO_BIG:
    case MH_WS_E_NOMEM: {
        uint8_t f[MH_WS_HDR_MAX + 2], code[2];
        int cc = mh_ws_error_close_code(rc);
        size_t fl;

        code[0] = (uint8_t)(cc >> 8);
        code[1] = (uint8_t)cc;
        fl = mh_wsc_frame(f, MH_WS_OP_CLOSE, code, 2);
        if (fl)
            (void)conn_write(c, f, fl);
        conn_drop(c, D_PROTOCOL);
        break;
    }
    default: /* the server closed (ws_close) */
        conn_drop(c, D_CLOSE);
        break;
    }
}

static void conn_event(conn *c, uint32_t ev)
{
    if (c->state == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
            conn_fail(c, fail_of_errno(err ? err : errno));
            return;
        }
        conn_connected(c);
        return;
    }
    if (c->state == CS_TLS) {
        conn_tls(c);
        return;
    }
    if (c->paused && (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        /* The server gave up on this slow consumer: read what it left to see
         * its close code. */
        c->paused = 0;
        c->draining = 1;
        ev |= EPOLLIN;
    }
    if ((ev & EPOLLOUT) && c->out_len && conn_flush(c)) {
        conn_drop(c, D_RESET);
        return;
    }
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->paused && c->fd >= 0) {
        conn_readable(c);
        /* TLS may hold decrypted bytes the socket no longer reports */
        while (c->fd >= 0 && c->ssl && !c->paused && SSL_pending(c->ssl) > 0)
            conn_readable(c);
    }
}

/* ---- the worker's loop ---- */

static void send_msg(uint32_t type)
{
    static lg_msg m;
    const uint8_t *p = (const uint8_t *)&m;
    size_t left = sizeof(m);

    m.type = type;
    m.worker = W.id;
    m.st = W.st;
    while (left) {
        ssize_t w = write(W.res_fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        left -= (size_t)w;
    }
}

static void open_due(int64_t now)
{
    uint32_t target = W.count;

    if (W.rate > 0) {
        double due = (double)(now - W.t0) * W.rate / 1e6 + 1.0;
        if (due < (double)W.count)
            target = (uint32_t)due;
    }
    while (W.next < target && W.inflight < (uint32_t)W.cfg->inflight)
        conn_open(&W.conns[W.next++]);
}

static void end_connect_phase(void)
{
    for (uint32_t i = 0; i < W.count; i++) {
        conn *c = &W.conns[i];

        if (c->state == CS_CONNECTING || c->state == CS_UPGRADING)
            conn_fail(c, F_TIMEOUT);
    }
    W.st.not_attempted += W.count - W.next;
    W.next = W.count;
    W.pending = 0;
    W.phase = P_WAIT_GO;
    send_msg(MSG_READY);
}

static void start_drain(int64_t now)
{
    int any = 0;

    W.measuring = 0;
    for (uint32_t i = 0; i < W.count; i++) {
        conn *c = &W.conns[i];

        if (c->fd >= 0 && c->paused) {
            c->paused = 0;
            c->draining = 1;
            conn_events(c);
            any = 1;
        }
    }
    W.phase = any ? P_DRAIN : P_END;
    W.deadline = now + (int64_t)(W.cfg->drain * 1e6);
}

static int any_draining(void)
{
    for (uint32_t i = 0; i < W.count; i++)
        if (W.conns[i].fd >= 0 && W.conns[i].draining)
            return 1;
    return 0;
}

static void read_ctl(void)
{
    int64_t go;
    ssize_t n = read(W.ctl_fd, &go, sizeof(go));

    if (n == (ssize_t)sizeof(go)) {
        W.go = go;
        W.phase = P_RUN;
        W.deadline = go + (int64_t)(W.cfg->duration * 1e6);
    } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        W.phase = P_END; /* the parent is gone */
    }
}

static int next_timeout_ms(int64_t now)
{
    int64_t wake = now + 100000; /* look at the clock at least every 100 ms */

    if (W.phase == P_CONNECT && W.rate > 0 && W.next < W.count) {
        int64_t t = W.t0 + (int64_t)((double)W.next * 1e6 / W.rate);
        if (t < wake)
            wake = t;
    }
    if (W.phase == P_RUN && !W.measuring) {
        int64_t t = W.go + (int64_t)(W.cfg->warmup * 1e6);
        if (t > now && t < wake)
            wake = t;
    }
    if ((W.phase == P_CONNECT || W.phase == P_RUN || W.phase == P_DRAIN) && W.deadline < wake)
        wake = W.deadline;
    if (wake <= now)
        return 0;
    return (int)((wake - now + 999) / 1000);
}

static void worker_loop(void)
{
    struct epoll_event evs[512];
    int ended_early = 0;

    while (W.phase != P_END) {
        int64_t now = mh_bench_mono_us();

        if (stop_flag && !ended_early) {
            ended_early = 1;
            if (W.phase == P_CONNECT)
                end_connect_phase();
            W.phase = P_END;
            break;
        }
        switch (W.phase) {
        case P_CONNECT:
            open_due(now);
            if ((W.pending == 0 && W.next == W.count) || now >= W.deadline)
                end_connect_phase();
            break;
        case P_RUN:
            if (!W.measuring && now >= W.go + (int64_t)(W.cfg->warmup * 1e6) && now < W.deadline)
                W.measuring = 1;
            if (now >= W.deadline)
                start_drain(now);
            break;
        case P_DRAIN:
            if (now >= W.deadline || !any_draining())
                W.phase = P_END;
            break;
        default:
            break;
        }
        if (W.phase == P_END)
            break;

        int n = epoll_wait(W.ep, evs, 512, next_timeout_ms(mh_bench_mono_us()));
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;

            if (!c)
                read_ctl();
            else if (c->fd >= 0)
                conn_event(c, evs[i].events);
        }
    }

    for (uint32_t i = 0; i < W.count; i++) {
        conn *c = &W.conns[i];

        if (c->fd >= 0 && c->state == CS_OPEN) {
            W.st.open_at_end++;
            if (c->paused || c->draining)
                W.st.slow_open_at_end++;
        }
    }
    send_msg(MSG_FINAL);
}

/* Runs in the forked child: never returns. */
static void worker_main(const config *cfg, uint32_t id, int ctl_fd, int res_fd, int64_t t0)
{
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    struct sigaction sa = {.sa_handler = on_signal};
    uint32_t n = (uint32_t)cfg->connections, p = (uint32_t)cfg->processes;

    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    W.cfg = cfg;
    W.id = id;
    W.ctl_fd = ctl_fd;
    W.res_fd = res_fd;
    W.first = (uint32_t)((uint64_t)n * id / p);
    W.count = (uint32_t)((uint64_t)n * (id + 1) / p) - W.first;
    W.t0 = t0;
    W.deadline = t0 + (int64_t)(cfg->timeout * 1e6);
    W.rate = cfg->ramp / (double)p;
    W.pending = W.count;
    W.phase = P_CONNECT;
    W.st.all_established_us = W.st.all_subscribed_us = -1;
    mh_hdr_init(&W.st.lat);
    W.rbuf = malloc(READ_CHUNK);
    W.conns = calloc(W.count ? W.count : 1, sizeof(conn));
    W.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!W.rbuf || !W.conns || W.ep < 0 || epoll_ctl(W.ep, EPOLL_CTL_ADD, ctl_fd, &e)) {
        fprintf(stderr, "mh-loadgen worker %u: setup failed: %s\n", id, strerror(errno));
        _exit(1);
    }
    for (uint32_t i = 0; i < W.count; i++) {
        conn *c = &W.conns[i];
        uint64_t g = W.first + i;

        c->fd = -1;
        c->idx = (uint32_t)g;
        /* Spread the slow ones evenly: exactly floor(N * F) of them. */
        c->slow =
            floor((double)(g + 1) * cfg->slow_fraction) > floor((double)g * cfg->slow_fraction);
    }
    worker_loop();
    _exit(0);
}

/* ---- the parent ---- */

typedef struct child {
    pid_t pid;
    int ctl_fd, res_fd;
    int ready, done, gone;
    size_t got;
    lg_msg msg; /* being received */
    lg_stats final;
} child;

static double ms(int64_t us)
{
    return (double)us / 1000.0;
}

/* A time in ms, or null (JSON) / "-" when it never happened (us < 0). */
static void print_ms_or_none(int64_t us, int json)
{
    if (us >= 0)
        printf("%.3f", ms(us));
    else
        printf(json ? "null" : "-");
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void print_codes(const lg_stats *st, int json)
{
    for (uint32_t i = 0; i < st->ncodes; i++) {
        if (json)
            printf("%s\"%u\":%llu", i ? "," : "", st->codes[i].code,
                   (unsigned long long)st->codes[i].n);
        else
            printf(" %u x%llu", st->codes[i].code, (unsigned long long)st->codes[i].n);
    }
    if (st->codes_other) {
        if (json)
            printf("%s\"other\":%llu", st->ncodes ? "," : "", (unsigned long long)st->codes_other);
        else
            printf(" other x%llu", (unsigned long long)st->codes_other);
    }
    if (!json && !st->ncodes && !st->codes_other)
        printf(" none");
}

static void report(const config *cfg, const lg_stats *st, int lost, double measured_s)
{
    const mh_hdr *h = &st->lat;
    double rate = measured_s > 0 ? (double)st->frames_measured / measured_s : 0;
    typedef unsigned long long ull;

    if (cfg->json) {
        printf("{\"url\":");
        print_json_string(cfg->url);
        printf(",\"connections\":%ld,\"processes\":%ld,\"sources\":%d,"
               "\"duration_s\":%g,\"warmup_s\":%g,\"measured_s\":%g,\"workers_lost\":%d,",
               cfg->connections, cfg->processes, cfg->nsrc, cfg->duration, cfg->warmup, measured_s,
               lost);
        printf("\"connect\":{\"attempted\":%llu,\"established\":%llu,\"failed\":%llu,"
               "\"not_attempted\":%llu,\"subscribed\":%llu,\"all_established_ms\":",
               (ull)st->attempted, (ull)st->established, (ull)st->failed, (ull)st->not_attempted,
               (ull)st->subscribed);
        print_ms_or_none(st->all_established_us, 1);
        printf(",\"all_subscribed_ms\":");
        print_ms_or_none(st->all_subscribed_us, 1);
        printf(",\"failures\":{");
        for (int i = 0, k = 0; i < F_COUNT; i++)
            if (st->fail[i])
                printf("%s\"%s\":%llu", k++ ? "," : "", fail_names[i], (ull)st->fail[i]);
        printf("}},");
        printf("\"frames\":{\"received\":%llu,\"bytes\":%llu,\"measured\":%llu,"
               "\"measured_bytes\":%llu,\"per_s\":%.1f,\"text\":%llu,\"binary\":%llu,"
               "\"acks\":%llu,\"errors\":%llu,\"without_ts\":%llu},",
               (ull)st->frames, (ull)st->bytes, (ull)st->frames_measured, (ull)st->bytes_measured,
               rate, (ull)st->text, (ull)st->binary, (ull)st->acks, (ull)st->errors,
               (ull)st->no_ts);
        printf("\"latency_ms\":{\"samples\":%llu,\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,"
               "\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"over_range\":%llu,"
               "\"negative\":%llu},",
               (ull)h->count, ms(h->count ? h->min : 0), mh_hdr_mean(h) / 1000.0,
               ms(mh_hdr_percentile(h, 50)), ms(mh_hdr_percentile(h, 90)),
               ms(mh_hdr_percentile(h, 99)), ms(mh_hdr_percentile(h, 99.9)),
               ms(mh_hdr_percentile(h, 100)), (ull)h->overflow, (ull)h->underflow);
        printf("\"close_codes\":{");
        print_codes(st, 1);
        printf("},\"drops\":{");
        for (int i = 0; i < D_COUNT; i++)
            printf("%s\"%s\":%llu", i ? "," : "", drop_names[i], (ull)st->drop[i]);
        printf("},\"slow\":{\"connections\":%llu,\"closed\":%llu,\"open_at_end\":%llu,"
               "\"frames_drained\":%llu},\"open_at_end\":%llu}\n",
               (ull)st->slow, (ull)st->slow_closed, (ull)st->slow_open_at_end, (ull)st->slow_frames,
               (ull)st->open_at_end);
        return;
    }

    printf("mh-loadgen %s: %ld connections, %ld process(es), %d source address(es)%s\n", cfg->url,
           cfg->connections, cfg->processes, cfg->nsrc ? cfg->nsrc : 1,
           lost ? "  [WORKERS LOST: partial result]" : "");
    printf("connect   attempted %llu  established %llu  subscribed %llu  failed %llu"
           "  not attempted %llu\n",
           (ull)st->attempted, (ull)st->established, (ull)st->subscribed, (ull)st->failed,
           (ull)st->not_attempted);
    printf("          last established after ");
    print_ms_or_none(st->all_established_us, 0);
    printf(" ms, last subscribed after ");
    print_ms_or_none(st->all_subscribed_us, 0);
    printf(" ms (from the start)\n");
    if (st->failed) {
        printf("          failures:");
        for (int i = 0; i < F_COUNT; i++)
            if (st->fail[i])
                printf(" %s %llu", fail_names[i], (ull)st->fail[i]);
        printf("\n");
    }
    printf("measured  %.1f s after %.1f s warmup: %llu frames, %.1f frames/s, %.2f MB\n",
           measured_s, cfg->warmup, (ull)st->frames_measured, rate,
           (double)st->bytes_measured / 1e6);
    printf("latency   %llu samples  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms"
           "  (min %.3f, mean %.3f)\n",
           (ull)h->count, ms(mh_hdr_percentile(h, 50)), ms(mh_hdr_percentile(h, 90)),
           ms(mh_hdr_percentile(h, 99)), ms(mh_hdr_percentile(h, 99.9)),
           ms(mh_hdr_percentile(h, 100)), ms(h->count ? h->min : 0), mh_hdr_mean(h) / 1000.0);
    if (h->overflow || h->underflow)
        printf("          %llu over 67 s, %llu negative (clock step?)\n", (ull)h->overflow,
               (ull)h->underflow);
    printf("frames    total %llu (%.2f MB): text %llu, binary %llu, acks %llu, errors %llu,"
           " without ts %llu\n",
           (ull)st->frames, (double)st->bytes / 1e6, (ull)st->text, (ull)st->binary, (ull)st->acks,
           (ull)st->errors, (ull)st->no_ts);
    printf("closes   ");
    print_codes(st, 0);
    printf("\ndrops    ");
    for (int i = 0; i < D_COUNT; i++)
        printf(" %s %llu", drop_names[i], (ull)st->drop[i]);
    printf("\nslow      %llu connections, %llu closed, %llu still open, %llu frames drained\n",
           (ull)st->slow, (ull)st->slow_closed, (ull)st->slow_open_at_end, (ull)st->slow_frames);
    printf("open      %llu at the end\n", (ull)st->open_at_end);
}

static void child_read(child *ch)
{
    uint8_t *p = (uint8_t *)&ch->msg;
    ssize_t n = read(ch->res_fd, p + ch->got, sizeof(ch->msg) - ch->got);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        ch->gone = 1;
        return;
    }
    ch->got += (size_t)n;
    if (ch->got < sizeof(ch->msg))
        return;
    ch->got = 0;
    if (ch->msg.type == MSG_READY) {
        ch->ready = 1;
    } else if (ch->msg.type == MSG_FINAL) {
        ch->ready = 1;
        ch->done = 1;
        ch->final = ch->msg.st;
    }
}

static int run_parent(const config *cfg)
{
    static child kids[MAX_PROCESSES];
    int np = (int)cfg->processes, lost = 0, go_sent = 0, term_sent = 0;
    int64_t t0 = mh_bench_mono_us(), go = 0;
    int64_t deadline = t0 + (int64_t)((cfg->timeout + 10) * 1e6);
    struct sigaction sa = {.sa_handler = on_signal};
    static lg_stats total;

    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < np; i++) {
        int ctl[2], res[2];
        pid_t pid;

        if (pipe2(ctl, O_CLOEXEC) || pipe2(res, O_CLOEXEC)) {
            perror("pipe");
            return 1;
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            for (int j = 0; j < i; j++) {
                close(kids[j].ctl_fd);
                close(kids[j].res_fd);
            }
            close(ctl[1]);
            close(res[0]);
            worker_main(cfg, (uint32_t)i, ctl[0], res[1], t0);
        }
        close(ctl[0]);
        close(res[1]);
        kids[i].pid = pid;
        kids[i].ctl_fd = ctl[1];
        kids[i].res_fd = res[0];
    }

    for (;;) {
        struct pollfd pfd[MAX_PROCESSES];
        int live = 0, ready = 0, idx[MAX_PROCESSES];
        int64_t now = mh_bench_mono_us();

        for (int i = 0; i < np; i++) {
            if (kids[i].done || kids[i].gone)
                continue;
            if (kids[i].ready)
                ready++;
            pfd[live].fd = kids[i].res_fd;
            pfd[live].events = POLLIN;
            idx[live++] = i;
        }
        if (!live)
            break;
        if (stop_flag && !term_sent) {
            /* Ctrl-C reaches the workers itself; a SIGTERM to us alone does not. */
            for (int i = 0; i < np; i++)
                if (!kids[i].done && !kids[i].gone)
                    kill(kids[i].pid, SIGTERM);
            term_sent = 1;
        }
        if (!go_sent && ready == live) {
            lg_stats snap = {0};

            go = mh_bench_mono_us();
            for (int i = 0; i < np; i++) {
                if (kids[i].done || kids[i].gone)
                    continue;
                merge_stats(&snap, &kids[i].msg.st);
                if (write(kids[i].ctl_fd, &go, sizeof(go)) != (ssize_t)sizeof(go))
                    kids[i].gone = 1;
            }
            go_sent = 1;
            deadline = go + (int64_t)((cfg->duration + cfg->drain + 10) * 1e6);
            fprintf(stderr,
                    "mh-loadgen: connect phase over after %.1f s: %llu established, %llu "
                    "subscribed, %llu failed; measuring for %g s\n",
                    (double)(go - t0) / 1e6, (unsigned long long)snap.established,
                    (unsigned long long)snap.subscribed, (unsigned long long)snap.failed,
                    cfg->duration);
            continue;
        }
        if (now >= deadline) {
            for (int i = 0; i < live; i++) {
                fprintf(stderr, "mh-loadgen: worker %d does not answer, killing it\n", idx[i]);
                kill(kids[idx[i]].pid, SIGKILL);
                kids[idx[i]].gone = 1;
            }
            continue;
        }
        int n = poll(pfd, (nfds_t)live, (int)((deadline - now) / 1000 + 1));
        for (int i = 0; n > 0 && i < live; i++)
            if (pfd[i].revents)
                child_read(&kids[idx[i]]);
    }

    total.all_established_us = total.all_subscribed_us = -1;
    mh_hdr_init(&total.lat);
    for (int i = 0; i < np; i++) {
        waitpid(kids[i].pid, NULL, 0);
        close(kids[i].ctl_fd);
        close(kids[i].res_fd);
        if (kids[i].done)
            merge_stats(&total, &kids[i].final);
        else
            lost++;
    }
    double measured = cfg->duration - cfg->warmup;
    if (go_sent && stop_flag) {
        double ran = (double)(mh_bench_mono_us() - go) / 1e6 - cfg->warmup;
        if (ran < measured)
            measured = ran;
    }
    if (!go_sent || measured < 0)
        measured = 0;
    report(cfg, &total, lost, measured);
    return lost ? 2 : 0;
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mh-loadgen --url ws://HOST:PORT/PATH [options]\n"
            "  --url URL              WebSocket URL (ws:// or wss://), or\n"
            "                         http[s]://HOST:PORT/sse?subscribe=..\n"
            "                         for Server-Sent Events streams (no frames are sent: the\n"
            "                         subscriptions are in the URL; give --acks); {conn} in the\n"
            "                         path: the index\n"
            "  --connections N        connections in all (default 100)\n"
            "  --processes P          worker processes splitting them (default 1)\n"
            "  --sources A-B[,C]      source addresses, round-robin (default: the kernel's)\n"
            "  --ramp R               new connections per second in all, 0 = at once (default 0)\n"
            "  --inflight K           per process, most connections in connect/upgrade at a time\n"
            "                         (default 256)\n"
            "  --subscribe TEXT       a text frame sent after the upgrade; repeatable, in order;\n"
            "                         {conn} = connection index, {sub} = conn*S+s\n"
            "  --header 'Name: value' an extra upgrade request header; repeatable\n"
            "  --conn-headers FILE    one more header per connection: line i (mod lines) for\n"
            "                         connection i (distinct tokens in a storm)\n"
            "  --ack-substring TEXT   a frame containing TEXT is an ack; repeatable\n"
            "                         (default: \"subscribed\":true)\n"
            "  --acks N               answers (acks or errors) that make a connection subscribed\n"
            "                         (default: one per --subscribe; 0 = once upgraded)\n"
            "  --timeout S            longest connect phase (default 60)\n"
            "  --duration S           measured phase after the connect phase (default 10)\n"
            "  --warmup S             ignore latencies for the first S of it (default 0)\n"
            "  --slow-fraction F      that fraction stops reading once subscribed (default 0)\n"
            "  --drain S              at the end, slow consumers read again for up to S to see\n"
            "                         the server's close code (default 1)\n"
            "  --max-message BYTES    largest message accepted (default 1048576)\n"
            "  --rcvbuf BYTES         fixed SO_RCVBUF per socket (default: kernel autotuning)\n"
            "  --json                 one JSON object on stdout\n");
}

static int parse_url(config *cfg, const char *url)
{
    const char *h, *end, *colon;
    char hp[300];
    size_t hl;

    if (strncmp(url, "http://", 7) == 0) {
        cfg->sse = 1;
        h = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        cfg->sse = cfg->tls = 1;
        h = url + 8;
    } else if (strncmp(url, "ws://", 5) == 0) {
        h = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0) {
        cfg->tls = 1;
        h = url + 6;
    } else {
        fprintf(stderr, "--url: '%s' does not start with ws://, wss://, http:// or https://\n",
                url);
        return -1;
    }
    end = h + strcspn(h, "/?");
    hl = (size_t)(end - h);
    if (hl == 0 || hl >= sizeof(cfg->host)) {
        fprintf(stderr, "--url: bad host in '%s'\n", url);
        return -1;
    }
    memcpy(cfg->host, h, hl);
    cfg->host[hl] = 0;
    colon = memchr(h, ':', hl);
    snprintf(hp, sizeof(hp), colon ? "%s" : cfg->tls ? "%s:443" : "%s:80", cfg->host);
    if (mh_bench_parse_hostport("--url", hp, &cfg->dst))
        return -1;
    if (strlen(end) + 2 > sizeof(cfg->path)) {
        fprintf(stderr, "--url: path too long\n");
        return -1;
    }
    snprintf(cfg->path, sizeof(cfg->path), "%s%s", *end == '/' ? "" : "/", end);
    return 0;
}

static int add_header(config *cfg, const char *h)
{
    size_t old = cfg->headers ? strlen(cfg->headers) : 0, n = strlen(h);
    char *p;

    if (!strchr(h, ':') || strpbrk(h, "\r\n")) {
        fprintf(stderr, "--header: '%s' is not 'Name: value'\n", h);
        return -1;
    }
    if (old + n + 3 > REQ_MAX - MH_WSC_REQUEST_BASE - sizeof(cfg->path)) {
        fprintf(stderr, "--header: too many header bytes\n");
        return -1;
    }
    p = realloc(cfg->headers, old + n + 3);
    if (!p)
        return -1;
    memcpy(p + old, h, n);
    memcpy(p + old + n, "\r\n", 3);
    cfg->headers = p;
    return 0;
}

/* --conn-headers FILE: one 'Name: value' line per connection (e.g. distinct tokens). */
static int load_conn_headers(config *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[REQ_MAX / 2];

    if (!f) {
        fprintf(stderr, "--conn-headers: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        char **v;
        line[n] = '\0';
        if (!n)
            continue;
        if (!strchr(line, ':') || n + 3 > sizeof line / 2) {
            fprintf(stderr, "--conn-headers: '%.60s' is not a short 'Name: value'\n", line);
            fclose(f);
            return -1;
        }
        v = realloc(cfg->conn_headers, (cfg->nconn_headers + 1) * sizeof *v);
        if (!v || !(v[cfg->nconn_headers] = strdup(line))) {
            fclose(f);
            return -1;
        }
        cfg->conn_headers = v;
        cfg->nconn_headers++;
    }
    fclose(f);
    if (!cfg->nconn_headers) {
        fprintf(stderr, "--conn-headers: %s has no lines\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static config cfg = {
        .connections = 100,
        .processes = 1,
        .inflight = 256,
        .max_message = 1 << 20,
        .timeout = 60,
        .duration = 10,
        .drain = 1,
        .acks = -1,
    };
    static const struct option opts[] = {
        {"url", required_argument, 0, 'u'},
        {"connections", required_argument, 0, 'c'},
        {"processes", required_argument, 0, 'p'},
        {"sources", required_argument, 0, 's'},
        {"ramp", required_argument, 0, 'r'},
        {"inflight", required_argument, 0, 'i'},
        {"subscribe", required_argument, 0, 'S'},
        {"header", required_argument, 0, 'H'},
        {"conn-headers", required_argument, 0, 'K'},
        {"ack-substring", required_argument, 0, 'a'},
        {"acks", required_argument, 0, 'A'},
        {"timeout", required_argument, 0, 't'},
        {"duration", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, 'w'},
        {"slow-fraction", required_argument, 0, 'f'},
        {"drain", required_argument, 0, 'D'},
        {"max-message", required_argument, 0, 'm'},
        {"rcvbuf", required_argument, 0, 'R'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    long nofile;
    int o, rc = 1;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;

        switch (o) {
        case 'u':
            cfg.url = optarg;
            bad = parse_url(&cfg, optarg);
            break;
        case 'c':
            bad = mh_bench_parse_long("--connections", optarg, 1, 10000000, &cfg.connections);
            break;
        case 'p':
            bad = mh_bench_parse_long("--processes", optarg, 1, MAX_PROCESSES, &cfg.processes);
            break;
        case 's':
            cfg.nsrc = mh_bench_parse_addrs("--sources", optarg, cfg.src, MAX_SOURCES);
            bad = cfg.nsrc < 0;
            break;
        case 'r':
            bad = mh_bench_parse_double("--ramp", optarg, 0, 1e7, &cfg.ramp);
            break;
        case 'i':
            bad = mh_bench_parse_long("--inflight", optarg, 1, 1000000, &cfg.inflight);
            break;
        case 'S':
            if (cfg.nsubs == MAX_SUBS) {
                fprintf(stderr, "--subscribe: at most %d\n", MAX_SUBS);
                bad = 1;
            } else {
                cfg.subs[cfg.nsubs++] = optarg;
            }
            break;
        case 'H':
            bad = add_header(&cfg, optarg);
            break;
        case 'K':
            bad = load_conn_headers(&cfg, optarg);
            break;
        case 'a':
            if (cfg.nack_text == MAX_SUBS || !*optarg) {
                fprintf(stderr, "--ack-substring: at most %d, not empty\n", MAX_SUBS);
                bad = 1;
            } else {
                cfg.ack_len[cfg.nack_text] = strlen(optarg);
                cfg.ack_text[cfg.nack_text++] = optarg;
            }
            break;
        case 'A':
            bad = mh_bench_parse_long("--acks", optarg, 0, MAX_SUBS, &cfg.acks);
            break;
        case 't':
            bad = mh_bench_parse_double("--timeout", optarg, 0.1, 86400, &cfg.timeout);
            break;
        case 'd':
            bad = mh_bench_parse_double("--duration", optarg, 0, 86400, &cfg.duration);
            break;
        case 'w':
            bad = mh_bench_parse_double("--warmup", optarg, 0, 86400, &cfg.warmup);
            break;
        case 'f':
            bad = mh_bench_parse_double("--slow-fraction", optarg, 0, 1, &cfg.slow_fraction);
            break;
        case 'D':
            bad = mh_bench_parse_double("--drain", optarg, 0, 600, &cfg.drain);
            break;
        case 'm':
            bad = mh_bench_parse_long("--max-message", optarg, 1024, 1L << 30, &cfg.max_message);
            break;
        case 'R':
            bad = mh_bench_parse_long("--rcvbuf", optarg, 4096, 1L << 30, &cfg.rcvbuf);
            break;
        case 'j':
            cfg.json = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
    }
    if (!cfg.url || optind < argc) {
        usage(stderr);
        return 2;
    }
    if (cfg.warmup >= cfg.duration && cfg.duration > 0) {
        fprintf(stderr, "--warmup must be shorter than --duration\n");
        return 2;
    }
    if (cfg.processes > cfg.connections)
        cfg.processes = cfg.connections;
    if (cfg.sse && cfg.nsubs) {
        fprintf(stderr, "--subscribe: a stream's subscriptions go in its URL (subscribe=...)\n");
        return 2;
    }
    if (cfg.sse && cfg.acks < 0) { /* one answer per subscription in the URL */
        cfg.acks = 0;
        for (const char *q = cfg.path; (q = strstr(q, "subscribe=")); q += 10)
            cfg.acks++;
    }

    nofile = mh_bench_raise_nofile();
    if (nofile > 0 && cfg.connections / cfg.processes + 32 > nofile) {
        fprintf(stderr,
                "mh-loadgen: %ld connections per process need more than the %ld open files a "
                "process may hold here; use --processes %ld or more\n",
                (cfg.connections + cfg.processes - 1) / cfg.processes, nofile,
                (cfg.connections + nofile - 33) / (nofile - 32));
        goto out;
    }
    if (cfg.tls) {
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_ctx) {
            fprintf(stderr, "mh-loadgen: cannot create a TLS context\n");
            goto out;
        }
        SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                      SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL); /* loopback, a test certificate */
    }
    rc = run_parent(&cfg);
out:
    SSL_CTX_free(tls_ctx);
    free(cfg.headers);
    for (size_t i = 0; i < cfg.nconn_headers; i++)
        free(cfg.conn_headers[i]);
    free(cfg.conn_headers);
    return rc;
}
