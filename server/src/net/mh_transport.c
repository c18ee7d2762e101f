#define _GNU_SOURCE /* accept4 */
#include "mh_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mh_auth.h"
#include "mh_conn.h"
#include "mh_eventsource.h"
#include "mh_gate.h"
#include "mh_intake.h"
#include "mh_log.h"
#include "mh_metrics.h"
#include "mh_ops.h"
#include "mh_opsweb.h"
#include "mh_redis.h"
#include "mh_browser.h"
#include "mh_tlspipe.h"
#include "mh_upgrade.h"
#include "mh_wsock.h"
#include "mh_writer.h"

static struct lws_protocols protocols[];

/* HTTP answer kept in the per-session data until the socket is writable. */
typedef struct http_pss {
    char *body;
    size_t len;
    int status;
    const char *ctype;
    bool done; /* the answer was written: close */
    mh_es *es; /* an answer under /sse (mh_eventsource: a 405), else NULL */
} http_pss;

static mh_hub *hub_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* The peer of 'wsi' (during a readbuf adoption, before the wsi carries it). */
static mh_peer *peer_of(mh_hub *h, struct lws *wsi)
{
    mh_peer *p = lws_get_opaque_user_data(wsi);
    return p ? p : h->adopting;
}

void mh_transport_share_metrics(mh_hub *h)
{
    mh_metrics_slot *mine;

    if (!h->slots)
        return;
    mine = &h->slots[h->slot];
    mine->m = h->metrics;
    mh_ops_gauges(h, &mine->g);
}

/* This worker's numbers, or every worker's summed (mh_metrics_slot). */
static void render_metrics(mh_hub *h, mh_buf *b)
{
    mh_metrics m;
    mh_gauges g, one;

    if (!h->slots) {
        mh_ops_gauges(h, &g);
        mh_metrics_render(b, &h->metrics, &g, h->cfg->hub_id);
        return;
    }
    mh_transport_share_metrics(h); /* our own slot, fresh */
    memset(&m, 0, sizeof m);
    memset(&g, 0, sizeof g);
    for (int i = 0; i < h->nslots; i++) {
        mh_metrics_add(&m, &h->slots[i].m);
        one = h->slots[i].g;
        mh_gauges_add(&g, &one);
    }
    mh_metrics_render(b, &m, &g, h->cfg->hub_id);
    mh_metrics_render_workers(b, h->slots, h->nslots);
}

static int http_prepare(struct lws *wsi, http_pss *p, mh_hub *h, const char *path)
{
    mh_buf b;
    const char *why = "ok";
    mh_peer *peer = peer_of(h, wsi);
    /* with an admin listener, /metrics is served there only */
    bool metrics_here = !h->cfg->admin_host[0] || (peer && peer->admin);
    /* the operator page: there, or on the public port when asked */
    bool ops_here = (peer && peer->admin) || h->cfg->ops_public;

    mh_buf_init(&b);
    p->ctype = "text/plain; charset=utf-8";
    if (!strcmp(path, "/healthz")) {
        p->status = 200;
        mh_buf_puts(&b, "ok\n");
    } else if (!strcmp(path, "/readyz")) {
        bool ready =
            !h->draining && mh_redis_ready(h->redis, &why) && mh_auth_registry_ready(h, &why);
        if (h->draining)
            why = "draining";
        p->status = ready ? 200 : 503;
        mh_buf_printf(&b, "%s\n", ready ? "ready" : why);
        if (h->registry_version[0]) /* which registry from Redis this hub serves */
            mh_buf_printf(&b, "registry %s\n", h->registry_version);
    } else if (!strcmp(path, "/metrics") && metrics_here) {
        p->status = 200;
        p->ctype = "text/plain; version=0.0.4; charset=utf-8";
        render_metrics(h, &b);
    } else if (!ops_here || !mh_opsweb_answer(h, wsi, path, &p->status, &p->ctype, &b)) {
        p->status = 404;
        mh_buf_puts(&b, "not found\n");
    }
    if (b.oom) {
        mh_buf_free(&b);
        return -1;
    }
    p->len = b.len;
    p->body = mh_buf_take(&b);
    return p->body ? 0 : -1;
}

static int callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    http_pss *p = user;
    mh_hub *h = hub_of(wsi);
    unsigned char buf[LWS_PRE + 512], *start = &buf[LWS_PRE], *q = start,
                                      *end = &buf[sizeof buf - 1];

    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        char path[128];
        size_t n = len < sizeof path - 1 ? len : sizeof path - 1;
        memcpy(path, in, n);
        path[n] = '\0';
        if (mh_es_path(path))
            return mh_es_start(h, wsi, &p->es);
        if (http_prepare(wsi, p, h, path))
            return -1;
        /* One request per connection: every request then goes through the
         * intake's strict parser, never through lws's keep-alive parsing. */
        if (lws_add_http_common_headers(wsi, (unsigned)p->status, p->ctype, (lws_filepos_t)p->len,
                                        &q, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                        (const unsigned char *)"no-store", 8, &q, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                        (const unsigned char *)"close", 5, &q, end) ||
            lws_finalize_write_http_header(wsi, start, &q, end))
            return 1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        int n;
        if (p->es)
            return mh_es_writeable(p->es);
        if (p->done)
            return -1;
        if (!p->body)
            return -1;
        /* Bodies are small (metrics is a few KB): one write, lws buffers the rest. */
        {
            unsigned char *tmp = malloc(LWS_PRE + p->len);
            if (!tmp)
                return -1;
            memcpy(tmp + LWS_PRE, p->body, p->len);
            n = lws_write(wsi, tmp + LWS_PRE, p->len, LWS_WRITE_HTTP_FINAL);
            free(tmp);
        }
        free(p->body);
        p->body = NULL;
        p->done = true;
        if (n < 0)
            return -1;
        if (lws_partial_buffered(wsi)) {
            lws_callback_on_writable(wsi); /* closed once lws flushed the rest */
            return 0;
        }
        return -1;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
        free(p->body);
        p->body = NULL;
        mh_es_free(&p->es);
        return 0;
    case LWS_CALLBACK_WSI_CREATE:
        h->nhttp++;
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        h->nhttp--;
        /* lws 4.1 sends this to the first protocol whatever the wsi became:
         * the one place a peer's count is released after the intake. */
        if (user && lws_get_protocol(wsi) == &protocols[0])
            mh_es_free(&((http_pss *)user)->es);
        mh_peer_free(lws_get_opaque_user_data(wsi));
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* A whole browser frame: rate-limited, kept while the session is looked up. */
static void input(mh_conn *c, const char *text, size_t len, bool binary)
{
    if (!mh_auth_rate_ok(c) || mh_auth_hold_frame(c, text, len, binary))
        return;
    mh_browser_input(c, text, len, binary);
}

/*
 * An upgrade judged by the intake (a plain socket, or a TLS one with 'tls'):
 * the hub answers the 101 and speaks WebSocket on it itself (mh_wsock,
 * mh_writer); or a `GET /sse` stream, which it answers and writes itself
 * too (mh_eventsource). 0: taken; 1: refused.
 */
static int upgrade(mh_hub *h, int fd, mh_tls *tls, mh_peer *peer, uint64_t id, const char *buf,
                   size_t len, const mh_http_request *req, mh_upgrade_refusal *why)
{
    static char store[MH_UPGRADE_VIEW_STORE];
    char ok[256];
    mh_upgrade_view v;
    mh_conn *c;
    int n;

    if (!req->upgrade) /* a Server-Sent Events stream: the same rules, its own answer */
        return mh_es_open(h, fd, tls, peer, id, len, req, why);
    c = calloc(1, sizeof *c);
    if (!c)
        return mh_auth_refuse(h, why, 503, "upgrade", "out_of_memory", "try again");
    c->hub = h;
    c->peer = peer;
    if (mh_upgrade_view_of(req, &v, store, sizeof store)) {
        mh_auth_refuse(h, why, 431, "upgrade", "headers_too_large", "request headers too large");
        goto refused;
    }
    if (mh_gate_judge(h, c, &v, why))
        goto refused;
    n = mh_upgrade_accept(req, ok, sizeof ok);
    if (n < 0 || mh_wsock_open(c, h, fd, id, tls)) {
        mh_auth_refuse(h, why, 503, "upgrade", "out_of_memory", "try again");
        goto refused;
    }
    /* The 101 leaves with the welcome, in one write at the end of the loop
     * iteration; a fresh socket's send buffer takes both. */
    if (mh_conn_push_control(c, MH_MSG_RAW, ok, (size_t)n)) {
        mh_conn_destroy(c);
        return 0;
    }
    mh_debug("conn %s: open", c->name);
    if (mh_auth_established(c)) {
        mh_conn_destroy(c);
        return 0;
    }
    if (len > req->head_len)
        mh_wsock_feed(c, (const unsigned char *)buf + req->head_len, len - req->head_len);
    return 0;
refused:
    mh_auth_release(c);
    free(c);
    return 1;
}

static struct lws_protocols protocols[] = {
    /* HTTP only: every WebSocket is the hub's own (mh_wsock), plain or TLS */
    {"http", callback_http, sizeof(http_pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static lws_retry_bo_t retry;

/*
 * The listening sockets are ours, not lws's: lws 4.1 sets only SO_REUSEADDR,
 * and workers need SO_REUSEPORT to share the port. Accepted sockets go
 * through the intake (mh_intake), which upgrades WebSockets itself and
 * hands the rest to lws (over TLS through mh_tlspipe). The admin listener
 * (--admin-listen) serves the HTTP endpoints only.
 */
typedef struct listener {
    mh_hub *h;
    int fd;
    uv_poll_t poll;
    uv_timer_t pause;
    bool open, admin;
} listener;

static listener pub = {.fd = -1}, adm = {.fd = -1, .admin = true};
static struct lws_vhost *vhost;
static mh_intake *intake;

static void on_listen(uv_poll_t *p, int status, int events);

/* Hands a socket (with the bytes the intake read, if any) to lws; the wsi
 * then owns the peer. */
static void adopt(mh_hub *h, int fd, mh_peer *peer, const char *head, size_t len)
{
    lws_sock_file_fd_type sfd;
    struct lws *wsi;

    /* lws serves a readbuf right inside the adoption call (the filter may
     * run and refuse there), before the wsi could carry the peer: meanwhile
     * h->adopting names it. */
    h->adopting = peer;
    if (head) {
        wsi = lws_adopt_socket_vhost_readbuf(vhost, fd, head, len);
    } else {
        sfd.sockfd = fd;
        wsi = lws_adopt_descriptor_vhost(
            vhost, LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | LWS_ADOPT_ALLOW_SSL, sfd, NULL, NULL);
    }
    h->adopting = NULL;
    if (wsi) {
        lws_set_opaque_user_data(wsi, peer); /* freed by its LWS_CALLBACK_WSI_DESTROY */
    } else {
        /* failed or already closed (lws closes the socket itself) */
        mh_peer_free(peer);
    }
}

static void resume_listen(uv_timer_t *t)
{
    listener *l = t->data;
    if (l->open)
        uv_poll_start(&l->poll, UV_READABLE, on_listen);
}

static void on_listen(uv_poll_t *p, int status, int events)
{
    listener *l = p->data;
    mh_hub *h = l->h;
    (void)events;

    if (status < 0)
        return;
    /* A bounded batch per wakeup keeps accepting fair to established peers. */
    for (int i = 0; i < 256; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        mh_peer *peer;
        int s = accept4(l->fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                h->metrics.connections_rejected++;
                mh_warn("accept: %s; pausing new connections for 250 ms", strerror(errno));
                uv_poll_stop(&l->poll);
                uv_timer_start(&l->pause, resume_listen, 250, 0);
            }
            return;
        }
        peer = mh_peer_new(h, (struct sockaddr *)&sa, salen);
        if (!peer) {
            close(s);
            h->metrics.connections_rejected++;
            continue;
        }
        peer->admin = l->admin;
        /* the admin listener is plain HTTP even when the public one is TLS */
        mh_intake_add(intake, s, peer, !l->admin && h->cfg->tls_cert[0] != '\0');
    }
}

static int open_listener(mh_hub *h, listener *l, const char *host, int port)
{
    struct sockaddr_in sa;
    int one = 1;

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        mh_error("listen: '%s' is not an IPv4 address", host);
        return -1;
    }
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* TCP_NODELAY is inherited by accepted sockets (Linux): small frames
     * must leave now, not wait for the ACK of the previous one (delayed ACK:
     * up to 40 ms). (Not TCP_DEFER_ACCEPT: a socket that sends nothing
     * must still be accepted, counted against its address's limit and
     * answered 408.) */
    if (l->fd < 0 || setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
        setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ||
        bind(l->fd, (struct sockaddr *)&sa, sizeof sa) || listen(l->fd, 4096)) {
        mh_error("cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
        return -1;
    }
    l->h = h;
    uv_poll_init(h->loop, &l->poll, l->fd);
    uv_timer_init(h->loop, &l->pause);
    l->poll.data = l->pause.data = l;
    l->open = true;
    uv_poll_start(&l->poll, UV_READABLE, on_listen);
    return 0;
}

static void close_listener(listener *l)
{
    if (!l->open)
        return;
    l->open = false;
    uv_poll_stop(&l->poll);
    uv_timer_stop(&l->pause);
    uv_close((uv_handle_t *)&l->poll, NULL);
    uv_close((uv_handle_t *)&l->pause, NULL);
    close(l->fd);
    l->fd = -1;
}

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    /* lws 4.1 logs the normal readbuf adoption path (mh_intake) at error level */
    if ((level & LLL_ERR) && !strstr(line, "adopt_socket_readbuf"))
        mh_error("lws: %.*s", (int)n, line);
    else if (level & LLL_WARN)
        mh_warn("lws: %.*s", (int)n, line);
    else
        mh_debug("lws: %.*s", (int)n, line);
}

int mh_transport_start(mh_hub *h)
{
    const mh_config *cfg = h->cfg;
    struct lws_context_creation_info info;
    static void *loops[1];

    lws_set_log_level(LLL_ERR | LLL_WARN | (mh_log_level == MH_LOG_DEBUG ? LLL_NOTICE : 0),
                      lws_log_emit);
    memset(&info, 0, sizeof info);
    loops[0] = h->loop;
    info.foreign_loops = loops;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE |
                   LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* we listen: see open_listener() */
    info.protocols = protocols;
    info.user = h;
    info.count_threads = 1;
    info.fd_limit_per_thread = 0;
    info.pt_serv_buf_size = 16384;
    /* Heads reach lws complete (mh_intake) and its answers are short (a
     * stream is the hub's own socket: lws 4.1 kept a request's table, about
     * 10 KiB, for a response's whole life), so a request holds its table for
     * an instant. The bound stays as large as the connections a worker may
     * hold, so a burst of scrapes or probes never waits for a table; tables
     * are allocated when used, so a large bound costs nothing idle. */
    info.max_http_header_pool = 0;
    info.max_http_header_pool2 =
        cfg->max_connections ? (unsigned)cfg->max_connections + 256 : 1u << 20;
    /* The head is at most MH_UPGRADE_HEAD_MAX; lws's table keeps values and
     * some bookkeeping, so leave it room. */
    info.max_http_header_data = MH_UPGRADE_HEAD_MAX + 2048;
    /* every head is read by the intake; lws's own bound stays the same */
    info.timeout_secs = (unsigned)cfg->header_timeout;
    /* No lws validity timers: the hub pings itself (mh_conn_keepalive). Each
     * lws timer insert walks a list of all of them: quadratic in a storm. */
    retry.secs_since_valid_ping = 0;
    retry.secs_since_valid_hangup = 0;
    info.retry_and_idle_policy = &retry;
    /* lws is plain only: the hub terminates TLS itself (mh_tls), so its
     * WebSockets are written by mh_writer like plain ones, and hands lws
     * the rest decrypted (mh_tlspipe) */
    if (cfg->tls_cert[0]) {
        char err[700];
        h->tls_ctx = mh_tls_ctx_new(cfg->tls_cert, cfg->tls_key, err, sizeof err);
        if (!h->tls_ctx) {
            mh_error("%s", err);
            return -1;
        }
    }
    h->lws = lws_create_context(&info);
    if (!h->lws) {
        mh_error("cannot start libwebsockets");
        return -1;
    }
    vhost = lws_get_vhost_by_name(h->lws, "default");
    h->hooks.input = input;
    if (mh_wsock_init(h))
        return -1;
    intake = vhost ? mh_intake_new(h, adopt, upgrade) : NULL;
    if (!intake || open_listener(h, &pub, cfg->listen_host, cfg->listen_port) ||
        (cfg->admin_host[0] && open_listener(h, &adm, cfg->admin_host, cfg->admin_port)))
        return -1;
    if (cfg->admin_host[0])
        mh_info("admin listener on http://%s:%d/ (/healthz /readyz /metrics /ops/)",
                cfg->admin_host, cfg->admin_port);
    mh_info("listening on %s://%s:%d/ (and HTTP /healthz /readyz%s)",
            cfg->tls_cert[0] ? "wss" : "ws", cfg->listen_host, cfg->listen_port,
            cfg->admin_host[0] ? "" : " /metrics");
    return 0;
}

void mh_transport_drain(mh_hub *h)
{
    if (h->draining)
        return;
    h->draining = true;
    h->drain_start_ms = mh_mono_ms();
    close_listener(&pub); /* the load balancer's next attempt goes to another hub */
    h->drain_total = h->conns.count;
    mh_info("draining: refusing new connections, closing %zu over %d s with 1012", h->drain_total,
            h->cfg->drain_window);
}

size_t mh_transport_drain_step(mh_hub *h)
{
    uint64_t window = (uint64_t)h->cfg->drain_window * 1000,
             elapsed = mh_mono_ms() - h->drain_start_ms;
    size_t target_closed, open = 0, closing = 0, to_close;
    size_t it = 0;
    void *v;

    /* Spread evenly over the window so clients do not all reconnect at once. */
    target_closed = window == 0 || elapsed >= window
                        ? h->drain_total
                        : (size_t)((double)h->drain_total * (double)elapsed / (double)window);
    while (mh_map_next(&h->conns, &it, NULL, NULL, &v)) {
        mh_conn *c = v;
        open++;
        if (c->closing)
            closing++;
    }
    {
        size_t pending = open - closing; /* not yet asked to close */
        size_t handled = h->drain_total > pending ? h->drain_total - pending : 0;
        to_close = target_closed > handled ? target_closed - handled : 0;
    }
    if (elapsed >= window)
        to_close = open;
    it = 0;
    while (to_close && mh_map_next(&h->conns, &it, NULL, NULL, &v)) {
        mh_conn *c = v;
        if (c->closing)
            continue;
        mh_conn_close(c, 1012, "server restarting");
        h->metrics.drain_closes++;
        to_close--;
    }
    return open;
}

void mh_transport_stop(mh_hub *h)
{
    close_listener(&pub);
    close_listener(&adm); /* not on drain: probes must see the drain */
    /* Not on drain: heads being read then still get their answer (503). */
    mh_intake_stop(intake);
    intake = NULL;
    mh_tlspipe_stop_all();
    mh_wsock_stop(h);
    if (h->lws)
        lws_context_destroy(h->lws);
    /* every TLS object went with its socket (each holds a reference anyway) */
    mh_tls_ctx_free(h->tls_ctx);
    h->tls_ctx = NULL;
}

void mh_transport_finish(mh_hub *h)
{
    /* With a foreign loop, lws 4.1 leaves its last stage (the fd tables and
     * the context) for after its handles closed on our loop. */
    if (h->lws) {
        lws_context_destroy2(h->lws);
        h->lws = NULL;
    }
}
