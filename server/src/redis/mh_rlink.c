#include "mh_rlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/read.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mh_log.h"
#include "mh_tls.h"

struct mh_rlink_tls {
    SSL_CTX *ctx;
};

typedef enum { S_RESOLVING, S_CONNECTING, S_HANDSHAKE, S_UP, S_DEAD } rl_state;

typedef struct pending {
    mh_rlink_reply_fn fn;
    void *arg;
} pending;

struct mh_rlink {
    uv_loop_t *loop;
    const mh_rlink_events *ev;
    void *data;
    char host[256];
    int port;
    rl_state state;
    bool closing;      /* mh_rlink_disconnect: no new commands, close when drained */
    bool pubsub;       /* message/subscribe replies go to ev->push */
    int in_cb;         /* inside the dispatch or a callback: freeing waits */
    bool gai_busy;     /* the resolver request is out: freeing waits for it */
    int handles;       /* uv handles not closed yet: freeing waits for them */
    uv_timer_t *timer; /* the connect deadline, until the link is up */
    unsigned timeout_ms;
    uv_getaddrinfo_t gai;
    struct addrinfo *ai, *ai_next;
    int fd;
    uv_poll_t *poll;
    int events;
    SSL *ssl;
    SSL_CTX *ctx; /* a reference of its own (mh_rlink_tls may go first) */
    bool read_wants_write, write_wants_read;
    redisReader *reader;
    char *out;
    size_t out_len, out_off, out_cap;
    pending *q; /* ring of commands awaiting replies */
    size_t q_head, q_len, q_cap;
};

/* ---- TLS context ---- */

mh_rlink_tls *mh_rlink_tls_new(const char *ca_file, const char *cert_file, const char *key_file,
                               char *err, size_t errlen)
{
    mh_rlink_tls *t = calloc(1, sizeof *t);

    ERR_clear_error();
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        mh_tls_errstr(err, errlen, "cannot create a TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file && ca_file[0]) {
        if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
            char what[300];
            snprintf(what, sizeof what, "cannot load the CA file '%s'", ca_file);
            mh_tls_errstr(err, errlen, what);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        mh_tls_errstr(err, errlen, "cannot load the system's CA certificates");
        goto fail;
    }
    if (cert_file && cert_file[0] &&
        mh_tls_use_cert(t->ctx, cert_file, key_file, "client", err, errlen))
        goto fail;
    return t;
fail:
    mh_rlink_tls_free(t);
    return NULL;
}

void mh_rlink_tls_free(mh_rlink_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- lifetime ---- */

static void maybe_free(mh_rlink *l)
{
    if (l->state != S_DEAD || l->in_cb || l->gai_busy || l->handles)
        return;
    if (l->reader)
        redisReaderFree(l->reader);
    SSL_CTX_free(l->ctx);
    free(l->out);
    free(l->q);
    free(l);
}

static void on_handle_closed(uv_handle_t *h)
{
    mh_rlink *l = h->data;

    free(h);
    l->handles--;
    maybe_free(l);
}

static void timer_close(mh_rlink *l)
{
    if (l->timer) {
        uv_close((uv_handle_t *)l->timer, on_handle_closed);
        l->timer = NULL;
    }
}

/* Closes the current socket (its poll handle closes on the loop). */
static void sock_close(mh_rlink *l)
{
    if (l->ssl) {
        SSL_free(l->ssl);
        l->ssl = NULL;
    }
    if (l->poll) {
        uv_close((uv_handle_t *)l->poll, on_handle_closed);
        l->poll = NULL;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    l->events = 0;
}

/* The end of the link: every waiting command gets NULL, then 'lost'. */
static void teardown(mh_rlink *l, const char *why)
{
    char reason[256];

    if (l->state == S_DEAD)
        return;
    snprintf(reason, sizeof reason, "%s", why); /* 'why' may point into the link */
    l->state = S_DEAD;
    sock_close(l);
    timer_close(l);
    if (l->gai_busy)
        uv_cancel((uv_req_t *)&l->gai); /* its callback still comes */
    if (l->ai) {
        uv_freeaddrinfo(l->ai);
        l->ai = l->ai_next = NULL;
    }
    l->in_cb++;
    while (l->q_len) {
        pending p = l->q[l->q_head];
        l->q_head = (l->q_head + 1) % l->q_cap;
        l->q_len--;
        if (p.fn)
            p.fn(l, NULL, p.arg);
    }
    l->ev->lost(l, reason);
    l->in_cb--;
    maybe_free(l);
}

static void fail_errno(mh_rlink *l, const char *what, int err)
{
    char why[256];

    snprintf(why, sizeof why, "%s: %s", what, strerror(err));
    teardown(l, why);
}

/* A TLS call failed: the reason, with the certificate check's own words. */
static void fail_tls(mh_rlink *l, int ret, const char *what)
{
    char why[320];
    int e = SSL_get_error(l->ssl, ret);
    long v = SSL_get_verify_result(l->ssl);

    if (e == SSL_ERROR_SSL && v != X509_V_OK) {
        snprintf(why, sizeof why, "%s: certificate verification failed: %s", what,
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else if (e == SSL_ERROR_SSL) {
        mh_tls_errstr(why, sizeof why, what);
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(why, sizeof why, "%s: closed by the server (TLS close_notify)", what);
    } else if (e == SSL_ERROR_SYSCALL && errno) {
        snprintf(why, sizeof why, "%s: %s", what, strerror(errno));
        ERR_clear_error();
    } else {
        snprintf(why, sizeof why, "%s: connection closed by the server", what);
        ERR_clear_error();
    }
    teardown(l, why);
}

/* ---- the command queue ---- */

static int q_push(mh_rlink *l, mh_rlink_reply_fn fn, void *arg)
{
    if (l->q_len == l->q_cap) {
        size_t cap = l->q_cap ? l->q_cap * 2 : 16;
        pending *n = malloc(cap * sizeof *n);
        if (!n)
            return -1;
        for (size_t i = 0; i < l->q_len; i++)
            n[i] = l->q[(l->q_head + i) % l->q_cap];
        free(l->q);
        l->q = n;
        l->q_head = 0;
        l->q_cap = cap;
    }
    l->q[(l->q_head + l->q_len) % l->q_cap] = (pending){fn, arg};
    l->q_len++;
    return 0;
}

static int out_append(mh_rlink *l, const char *buf, size_t len)
{
    if (l->out_off && l->out_off == l->out_len)
        l->out_off = l->out_len = 0;
    if (l->out_len + len > l->out_cap) {
        size_t cap = l->out_cap ? l->out_cap : 4096;
        char *n;
        if (l->out_off) { /* what was written makes room first */
            memmove(l->out, l->out + l->out_off, l->out_len - l->out_off);
            l->out_len -= l->out_off;
            l->out_off = 0;
        }
        while (cap < l->out_len + len)
            cap *= 2;
        if (cap != l->out_cap) {
            n = realloc(l->out, cap);
            if (!n)
                return -1;
            l->out = n;
            l->out_cap = cap;
        }
    }
    memcpy(l->out + l->out_len, buf, len);
    l->out_len += len;
    return 0;
}

/* ---- I/O ---- */

static void on_poll(uv_poll_t *p, int status, int events);

static void poll_update(mh_rlink *l)
{
    int want = 0;

    if (l->state == S_DEAD || !l->poll)
        return;
    if (l->state == S_CONNECTING) {
        want = UV_WRITABLE;
    } else if (l->state == S_HANDSHAKE) {
        want = UV_READABLE | (l->read_wants_write ? UV_WRITABLE : 0);
    } else if (l->state == S_UP) {
        want = UV_READABLE;
        if (l->out_len > l->out_off || l->read_wants_write)
            want |= UV_WRITABLE;
    }
    if (want != l->events) {
        l->events = want;
        uv_poll_start(l->poll, want, on_poll);
    }
}

static bool is_push(const mh_rlink *l, const redisReply *r)
{
    static const char *const kinds[] = {"message",     "smessage",     "pmessage",
                                        "subscribe",   "ssubscribe",   "psubscribe",
                                        "unsubscribe", "sunsubscribe", "punsubscribe"};
    const redisReply *k;

    if (!l->pubsub || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return false;
    k = r->element[0];
    if (k->type != REDIS_REPLY_STRING)
        return false;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(k->str, kinds[i]))
            return true;
    return false;
}

/* A closing link ends when nothing is awaited any more. */
static bool drained_close(mh_rlink *l)
{
    if (l->closing && !l->q_len && l->state != S_DEAD) {
        teardown(l, "closed");
        return true;
    }
    return l->state == S_DEAD;
}

/* Hands every complete reply to its callback. False when the link ended. */
static bool dispatch(mh_rlink *l)
{
    for (;;) {
        void *reply = NULL;
        redisReply *r;
        if (redisReaderGetReply(l->reader, &reply) != REDIS_OK) {
            char why[160];
            snprintf(why, sizeof why, "protocol error: %s", l->reader->errstr);
            teardown(l, why);
            return false;
        }
        if (!reply)
            return true;
        r = reply;
        if (is_push(l, r) || !l->q_len) {
            if (l->ev->push) {
                l->ev->push(l, r);
            } else if (r->type == REDIS_REPLY_ERROR) {
                /* nothing asked: the server refuses the connection (maxclients) */
                char why[200];
                snprintf(why, sizeof why, "server error: %.*s", (int)r->len, r->str);
                freeReplyObject(r);
                teardown(l, why);
                return false;
            }
        } else {
            pending p = l->q[l->q_head];
            l->q_head = (l->q_head + 1) % l->q_cap;
            l->q_len--;
            if (p.fn)
                p.fn(l, r, p.arg);
        }
        freeReplyObject(r);
        if (drained_close(l))
            return false;
    }
}

/* One read or write, plain or TLS: the bytes moved, 0 when the socket takes
 * or has nothing now (TLS may wait for the other direction: noted in the
 * link), -1 when the link ended. */
static ssize_t xfer(mh_rlink *l, bool wr, char *buf, size_t len)
{
    ssize_t n;

    if (l->ssl) {
        int ilen = len > INT32_MAX ? INT32_MAX : (int)len, ret, e;
        ERR_clear_error();
        ret = wr ? SSL_write(l->ssl, buf, ilen) : SSL_read(l->ssl, buf, ilen);
        if (ret > 0)
            return ret;
        e = SSL_get_error(l->ssl, ret);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            bool other = (e == SSL_ERROR_WANT_READ) == wr;
            if (wr)
                l->write_wants_read = other;
            else
                l->read_wants_write = other;
            return 0;
        }
        fail_tls(l, ret, wr ? "TLS write" : "TLS read");
        return -1;
    }
    n = wr ? send(l->fd, buf, len, MSG_NOSIGNAL) : read(l->fd, buf, len);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n < 0)
        fail_errno(l, wr ? "write" : "read", errno);
    else
        teardown(l, "connection closed by the server");
    return -1;
}

/* Reads what the socket has; false when the link ended. */
static bool do_read(mh_rlink *l)
{
    char buf[16384];

    l->read_wants_write = false;
    for (;;) {
        ssize_t n = xfer(l, false, buf, sizeof buf);
        if (n <= 0)
            return n == 0;
        if (redisReaderFeed(l->reader, buf, (size_t)n) != REDIS_OK) {
            teardown(l, "out of memory");
            return false;
        }
        if (!dispatch(l))
            return false;
    }
}

/* Writes what is buffered; false when the link ended. */
static bool do_write(mh_rlink *l)
{
    l->write_wants_read = false;
    while (l->out_off < l->out_len) {
        ssize_t n = xfer(l, true, l->out + l->out_off, l->out_len - l->out_off);
        if (n <= 0)
            return n == 0;
        l->out_off += (size_t)n;
    }
    l->out_off = l->out_len = 0;
    return true;
}

static void link_up(mh_rlink *l)
{
    l->state = S_UP;
    timer_close(l);
    l->in_cb++;
    l->ev->connected(l);
    l->in_cb--;
    if (drained_close(l)) {
        maybe_free(l);
        return;
    }
    poll_update(l);
}

static void handshake(mh_rlink *l)
{
    int ret;

    ERR_clear_error();
    ret = SSL_connect(l->ssl);
    if (ret == 1) {
        l->read_wants_write = false;
        link_up(l);
        return;
    }
    switch (SSL_get_error(l->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        l->read_wants_write = false;
        poll_update(l);
        return;
    case SSL_ERROR_WANT_WRITE:
        l->read_wants_write = true;
        poll_update(l);
        return;
    default:
        fail_tls(l, ret, "TLS handshake");
    }
}

static int tls_start(mh_rlink *l)
{
    unsigned char ip[16];
    bool literal = inet_pton(AF_INET, l->host, ip) == 1 || inet_pton(AF_INET6, l->host, ip) == 1;

    l->ssl = SSL_new(l->ctx);
    if (!l->ssl || SSL_set_fd(l->ssl, l->fd) != 1)
        return -1;
    SSL_set_connect_state(l->ssl);
    if (literal) {
        /* an address is checked against the certificate's IP SANs */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), l->host) != 1)
            return -1;
    } else {
        /* SNI carries names only (RFC 6066) */
        SSL_set_hostflags(l->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set_tlsext_host_name(l->ssl, l->host) != 1 || SSL_set1_host(l->ssl, l->host) != 1)
            return -1;
    }
    return 0;
}

static void try_connect(mh_rlink *l, int last);

static void connect_done(mh_rlink *l)
{
    int one = 1;

    uv_freeaddrinfo(l->ai);
    l->ai = l->ai_next = NULL;
    setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!l->ctx) {
        link_up(l);
        return;
    }
    l->state = S_HANDSHAKE;
    ERR_clear_error();
    if (tls_start(l)) {
        char why[256];
        mh_tls_errstr(why, sizeof why, "TLS setup");
        teardown(l, why);
        return;
    }
    handshake(l);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    mh_rlink *l = p->data;

    if (l->state == S_DEAD)
        return;
    if (l->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (!err && status < 0)
            err = -status;
        if (err) {
            /* this address refused: the next one, if any */
            sock_close(l);
            try_connect(l, err);
            return;
        }
        connect_done(l);
        return;
    }
    if (status < 0) {
        /* What came before the error is read first: a server's TLS alert
         * (certificate required) says more than the reset that follows. */
        int err = 0;
        socklen_t len = sizeof err;
        l->in_cb++;
        if (l->state == S_HANDSHAKE)
            handshake(l);
        else if (l->state == S_UP)
            do_read(l);
        l->in_cb--;
        if (l->state != S_DEAD) {
            getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err)
                fail_errno(l, "socket", err);
            else
                teardown(l, uv_strerror(status));
        }
        maybe_free(l);
        return;
    }
    if (l->state == S_HANDSHAKE) {
        handshake(l);
        return;
    }
    l->in_cb++;
    if ((events & UV_READABLE) || l->write_wants_read)
        if (!do_read(l))
            goto out;
    if ((events & UV_WRITABLE) || l->out_len > l->out_off)
        if (!do_write(l))
            goto out;
    if ((events & UV_WRITABLE) && l->read_wants_write)
        if (!do_read(l))
            goto out;
    poll_update(l);
out:
    l->in_cb--;
    maybe_free(l);
}

/* Tries the remaining addresses; 'last' is the previous one's failure. */
static void try_connect(mh_rlink *l, int last)
{
    while (l->ai_next) {
        struct addrinfo *ai = l->ai_next;
        int fd;
        l->ai_next = ai->ai_next;
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            last = errno;
            close(fd);
            continue;
        }
        l->poll = malloc(sizeof *l->poll);
        if (!l->poll || uv_poll_init_socket(l->loop, l->poll, fd)) {
            free(l->poll);
            l->poll = NULL;
            close(fd);
            last = ENOMEM;
            continue;
        }
        l->poll->data = l;
        l->handles++;
        l->fd = fd;
        l->state = S_CONNECTING;
        poll_update(l);
        return;
    }
    fail_errno(l, "connect", last);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    mh_rlink *l = req->data;

    l->gai_busy = false;
    if (l->state == S_DEAD) {
        if (res)
            uv_freeaddrinfo(res);
        maybe_free(l);
        return;
    }
    if (status < 0) {
        char why[320];
        snprintf(why, sizeof why, "cannot resolve '%s': %s", l->host, uv_strerror(status));
        teardown(l, why);
        return;
    }
    l->ai = l->ai_next = res;
    try_connect(l, EADDRNOTAVAIL);
}

/* Resolving, connecting and the handshake together took too long: a host
 * that drops packets would otherwise hold the link for minutes of SYN
 * retries, a server that accepts and never answers for ever. */
static void on_timeout(uv_timer_t *t)
{
    mh_rlink *l = t->data;
    static const char *const what[] = {"resolving", "connecting", "the TLS handshake"};
    char why[128];

    snprintf(why, sizeof why, "no connection after %u ms (%s)", l->timeout_ms,
             what[l->state <= S_HANDSHAKE ? l->state : 0]);
    teardown(l, why);
}

mh_rlink *mh_rlink_connect(uv_loop_t *loop, const char *host, int port, mh_rlink_tls *tls,
                           unsigned timeout_ms, const mh_rlink_events *ev, void *data, char *err,
                           size_t errlen)
{
    struct addrinfo hints;
    char service[16];
    mh_rlink *l = calloc(1, sizeof *l);
    int rc;

    if (!l || !(l->reader = redisReaderCreate())) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->loop = loop;
    l->ev = ev;
    l->data = data;
    l->fd = -1;
    l->port = port;
    snprintf(l->host, sizeof l->host, "%s", host);
    if (tls) {
        SSL_CTX_up_ref(tls->ctx);
        l->ctx = tls->ctx;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", port);
    l->gai.data = l;
    l->state = S_RESOLVING;
    rc = uv_getaddrinfo(loop, &l->gai, on_resolved, l->host, service, &hints);
    if (rc) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, uv_strerror(rc));
        l->state = S_DEAD;
        maybe_free(l);
        return NULL;
    }
    l->gai_busy = true;
    l->timeout_ms = timeout_ms;
    if (timeout_ms) {
        l->timer = malloc(sizeof *l->timer);
        if (l->timer && !uv_timer_init(loop, l->timer)) {
            l->timer->data = l;
            l->handles++;
            uv_timer_start(l->timer, on_timeout, timeout_ms, 0);
        } else {
            free(l->timer);
            l->timer = NULL;
        }
    }
    return l;
}

void *mh_rlink_data(const mh_rlink *l)
{
    return l->data;
}

static int send_formatted(mh_rlink *l, mh_rlink_reply_fn fn, void *arg, bool queue, char *cmd,
                          long long len)
{
    int rc = -1;

    if (len < 0 || !cmd)
        goto done;
    if (queue && q_push(l, fn, arg))
        goto done;
    if (out_append(l, cmd, (size_t)len)) {
        if (queue) /* take it back: it is the last one */
            l->q_len--;
        goto done;
    }
    rc = 0;
    poll_update(l); /* written when the socket is writable, never from here */
done:
    redisFreeCommand(cmd);
    return rc;
}

int mh_rlink_cmd(mh_rlink *l, mh_rlink_reply_fn fn, void *arg, int argc, const char **argv,
                 const size_t *lens)
{
    char *cmd = NULL;
    long long len;

    if (l->closing || l->state == S_DEAD)
        return -1;
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    return send_formatted(l, fn, arg, true, cmd, len);
}

int mh_rlink_cmdf(mh_rlink *l, mh_rlink_reply_fn fn, void *arg, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len;

    if (l->closing || l->state == S_DEAD)
        return -1;
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    return send_formatted(l, fn, arg, true, cmd, len);
}

int mh_rlink_subscribe(mh_rlink *l, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    long long len;

    if (l->closing || l->state == S_DEAD)
        return -1;
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    l->pubsub = true;
    return send_formatted(l, NULL, NULL, false, cmd, len);
}

void mh_rlink_disconnect(mh_rlink *l)
{
    if (l->state == S_DEAD)
        return;
    l->closing = true;
    if (l->in_cb)
        return; /* the dispatch closes it once it has returned */
    if (l->state != S_UP || !l->q_len)
        teardown(l, "closed");
}
