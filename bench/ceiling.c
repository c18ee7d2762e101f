/*
 * mh-ceiling — this machine's physical limit for WebSocket fan-out.
 *
 * The least a broadcaster can do: one epoll loop, the upgrade handshake, and
 * at --rate events per second one text frame {"invalidate":["bench"],"ts":..}
 * framed once and written to every connection with one send() each. No
 * queues: a socket that would block loses that frame (counted). A partial
 * write keeps only the rest of that one frame, so the stream stays valid,
 * and the connection loses frames until it has flushed it. No JSON library,
 * no Redis. Whatever a real hub measures can only be slower than this.
 *
 * Several processes may listen on one port (SO_REUSEPORT); the kernel spreads
 * connections by a hash, so give each a --connections share with some room.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench_util.h"
#include "ws.h"

#define READ_CHUNK (64 * 1024)
#define HS_MAX 8192
#define MAX_MESSAGE (64 * 1024)
#define PAD_MAX (1 << 20)

static const char ACK[] = "{\"subscribed\":true}";

typedef struct conn {
    int fd;
    uint32_t slot; /* index in the conns array */
    uint8_t upgraded;
    uint8_t closing; /* close after the current feed */
    uint8_t dead;    /* closed; freed once the current epoll batch is done */
    uint32_t ev;
    struct conn *next_dead;
    char *hs; /* owned: the request head while it arrives */
    uint32_t hs_len;
    uint8_t *tail; /* owned: the unsent rest of one partly written frame */
    uint32_t tail_len, tail_off;
    mh_ws_dec dec;
} conn;

typedef struct stats {
    uint64_t accepted, peak, upgraded, bad_requests, closed_by_client, gone_on_write;
    uint64_t events, skipped_ticks, frames_sent, frames_dropped, partial_writes, acks, acks_dropped;
    uint64_t fanout_us_sum, fanout_us_max; /* time to write one event to everyone */
} stats;

typedef struct config {
    struct sockaddr_in listen;
    const char *listen_text;
    double rate, duration;
    long max_conns, pad;
    int json;
} config;

static struct {
    config cfg;
    int ep, lfd, tfd;
    conn **conns;
    uint32_t nconns;
    conn *graveyard; /* closed in this epoll batch, later events may still name them */
    uint8_t *rbuf;
    uint8_t *frame; /* the current event, framed */
    char *pad;      /* --pad filler, NUL-terminated */
    stats st;
} S;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void conn_events(conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};

    if (ev != c->ev && epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->ev = ev;
}

/* Swap-removes 'c' from the array (safe while walking it from the end) and
 * closes it; the struct itself is freed by bury() after the epoll batch. */
static void conn_close(conn *c)
{
    conn *last = S.conns[--S.nconns];

    last->slot = c->slot;
    S.conns[c->slot] = last;
    close(c->fd);
    c->fd = -1;
    c->dead = 1;
    free(c->hs);
    free(c->tail);
    c->hs = NULL;
    c->tail = NULL;
    c->tail_len = 0;
    mh_ws_dec_free(&c->dec);
    c->next_dead = S.graveyard;
    S.graveyard = c;
}

static void bury(void)
{
    while (S.graveyard) {
        conn *c = S.graveyard;

        S.graveyard = c->next_dead;
        free(c);
    }
}

enum { W_SENT, W_DROPPED, W_PARTIAL, W_ERROR };

/* One send(), never a queue: the frame goes, goes in part, or is lost. */
static int conn_write(conn *c, const void *p, size_t n)
{
    ssize_t w;

    if (c->tail_len)
        return W_DROPPED;
    w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w == (ssize_t)n)
        return W_SENT;
    if (w < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? W_DROPPED : W_ERROR;
    c->tail = malloc(n - (size_t)w);
    if (!c->tail)
        return W_ERROR;
    memcpy(c->tail, (const uint8_t *)p + w, n - (size_t)w);
    c->tail_len = (uint32_t)(n - (size_t)w);
    c->tail_off = 0;
    conn_events(c, EPOLLIN | EPOLLOUT);
    return W_PARTIAL;
}

static int flush_tail(conn *c)
{
    ssize_t w =
        send(c->fd, c->tail + c->tail_off, c->tail_len - c->tail_off, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (w < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    c->tail_off += (uint32_t)w;
    if (c->tail_off == c->tail_len) {
        free(c->tail);
        c->tail = NULL;
        c->tail_len = c->tail_off = 0;
        conn_events(c, EPOLLIN);
    }
    return 0;
}

static int on_message(void *ctx, int opcode, uint8_t *data, size_t len)
{
    conn *c = ctx;
    uint8_t f[sizeof(ACK) + MH_WS_HDR_MAX];
    size_t n;
    int w;

    if (opcode != MH_WS_OP_TEXT || !memmem(data, len, "subscribe", 9))
        return 0;
    n = mh_ws_encode(f, MH_WS_OP_TEXT, ACK, sizeof(ACK) - 1, NULL);
    w = conn_write(c, f, n);
    if (w == W_ERROR) {
        c->closing = 1;
        return 1;
    }
    if (w == W_DROPPED)
        S.st.acks_dropped++;
    else
        S.st.acks++;
    return 0;
}

static int on_control(void *ctx, int opcode, uint8_t *data, size_t len)
{
    conn *c = ctx;
    uint8_t f[MH_WS_HDR_MAX + MH_WS_CTL_MAX];

    if (opcode == MH_WS_OP_PING) {
        (void)conn_write(c, f, mh_ws_encode(f, MH_WS_OP_PONG, data, len, NULL));
    } else if (opcode == MH_WS_OP_CLOSE) {
        (void)conn_write(c, f, mh_ws_encode(f, MH_WS_OP_CLOSE, data, len >= 2 ? 2 : 0, NULL));
        S.st.closed_by_client++;
        c->closing = 1;
        return 1;
    }
    return 0;
}

static const mh_ws_handler handler = {on_message, on_control};

/* The request head is complete ('n' bytes): answer 101 or 400. */
static int upgrade(conn *c, const char *head, size_t n)
{
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n";
    char accept[MH_WS_ACCEPT_LEN + 1], resp[256];
    const char *key, *up, *ver;
    size_t klen, ulen, vlen;
    int rn;

    key = mh_ws_http_header(head, n, "Sec-WebSocket-Key", &klen);
    up = mh_ws_http_header(head, n, "Upgrade", &ulen);
    ver = mh_ws_http_header(head, n, "Sec-WebSocket-Version", &vlen);
    if (n < 4 || memcmp(head, "GET ", 4) != 0 || !key || klen != MH_WS_KEY_LEN || !up ||
        ulen != 9 || strncasecmp(up, "websocket", 9) != 0 || !ver || vlen != 2 ||
        memcmp(ver, "13", 2) != 0 || mh_ws_accept(key, klen, accept)) {
        S.st.bad_requests++;
        (void)send(c->fd, bad, sizeof(bad) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        return -1;
    }
    rn = snprintf(resp, sizeof(resp),
                  "HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: %s\r\n\r\n",
                  accept);
    if (conn_write(c, resp, (size_t)rn) != W_SENT && !c->tail_len)
        return -1;
    c->upgraded = 1;
    S.st.upgraded++;
    mh_ws_dec_init(&c->dec, 1, MAX_MESSAGE);
    return 0;
}

static size_t head_end(const char *p, size_t n, size_t from)
{
    for (size_t i = from; i + 4 <= n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return 0;
}

static void conn_readable(conn *c)
{
    ssize_t n = read(c->fd, S.rbuf, READ_CHUNK);
    int rc = 0;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0)
        goto close;
    if (!c->upgraded) {
        size_t from = c->hs_len > 3 ? c->hs_len - 3 : 0, end;

        if (c->hs_len + (size_t)n > HS_MAX)
            goto close;
        if (!c->hs && !(c->hs = malloc(HS_MAX)))
            goto close;
        memcpy(c->hs + c->hs_len, S.rbuf, (size_t)n);
        c->hs_len += (uint32_t)n;
        end = head_end(c->hs, c->hs_len, from);
        if (!end)
            return;
        if (upgrade(c, c->hs, end))
            goto close;
        /* A client that did not wait for the 101 may have sent frames already. */
        if (end < c->hs_len)
            rc = mh_ws_feed(&c->dec, (uint8_t *)c->hs + end, c->hs_len - end, &handler, c);
        free(c->hs);
        c->hs = NULL;
        c->hs_len = 0;
    } else {
        rc = mh_ws_feed(&c->dec, S.rbuf, (size_t)n, &handler, c);
    }
    if (rc < 0) {
        uint8_t f[MH_WS_HDR_MAX + 2];
        int code = mh_ws_error_close_code(rc);
        uint8_t cc[2] = {(uint8_t)(code >> 8), (uint8_t)code};

        (void)conn_write(c, f, mh_ws_encode(f, MH_WS_OP_CLOSE, cc, 2, NULL));
        goto close;
    }
    if (c->closing)
        goto close;
    return;
close:
    conn_close(c);
}

static void accept_all(void)
{
    for (;;) {
        int one = 1, fd;
        conn *c;
        struct epoll_event e = {.events = EPOLLIN};

        if ((long)S.nconns >= S.cfg.max_conns) {
            /* Leave the SO_REUSEPORT group so the kernel sends new
             * connections to the other listeners on this port. */
            fprintf(stderr,
                    "mh-ceiling: %u connections, the --connections cap: not accepting more\n",
                    S.nconns);
            close(S.lfd);
            S.lfd = -1;
            return;
        }
        fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                fprintf(stderr, "mh-ceiling: accept: %s\n", strerror(errno));
            return;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->ev = EPOLLIN;
        e.data.ptr = c;
        if (epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &e)) {
            close(fd);
            free(c);
            continue;
        }
        c->slot = S.nconns;
        S.conns[S.nconns++] = c;
        S.st.accepted++;
        if (S.nconns > S.st.peak)
            S.st.peak = S.nconns;
    }
}

/* Frames the event once, writes it to every upgraded connection. */
static void broadcast(void)
{
    uint8_t *payload = S.frame + MH_WS_HDR_MAX;
    int64_t real = mh_bench_real_us(), t0 = mh_bench_mono_us(), dt;
    int plen = sprintf((char *)payload, "{\"invalidate\":[\"bench\"],\"ts\":%lld.%03d%s%s%s}",
                       (long long)(real / 1000), (int)(real % 1000), S.pad ? ",\"pad\":\"" : "",
                       S.pad ? S.pad : "", S.pad ? "\"" : "");
    uint8_t hdr[MH_WS_HDR_MAX];
    size_t hl = mh_ws_header(hdr, MH_WS_OP_TEXT, (uint64_t)plen, NULL);
    uint8_t *f = payload - hl;

    memcpy(f, hdr, hl);
    S.st.events++;
    for (uint32_t i = S.nconns; i-- > 0;) {
        conn *c = S.conns[i];

        if (!c->upgraded)
            continue;
        switch (conn_write(c, f, hl + (size_t)plen)) {
        case W_SENT:
            S.st.frames_sent++;
            break;
        case W_PARTIAL:
            S.st.frames_sent++;
            S.st.partial_writes++;
            break;
        case W_DROPPED:
            S.st.frames_dropped++;
            break;
        default:
            S.st.gone_on_write++;
            conn_close(c);
            break;
        }
    }
    dt = mh_bench_mono_us() - t0;
    S.st.fanout_us_sum += (uint64_t)dt;
    if ((uint64_t)dt > S.st.fanout_us_max)
        S.st.fanout_us_max = (uint64_t)dt;
}

static void on_tick(void)
{
    uint64_t ticks;

    if (read(S.tfd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks))
        return;
    /* Behind schedule (a fan-out took longer than the interval): skip the
     * missed events rather than send them in a burst, which would starve
     * accept() and reads, and say so: the rate is then over this limit. */
    if (ticks > 1)
        S.st.skipped_ticks += ticks - 1;
    broadcast();
}

static int setup(void)
{
    int one = 1;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &S.lfd};

    S.ep = epoll_create1(EPOLL_CLOEXEC);
    S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (S.ep < 0 || S.lfd < 0)
        goto fail;
    if (setsockopt(S.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        setsockopt(S.lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
        goto fail;
    if (bind(S.lfd, (struct sockaddr *)&S.cfg.listen, sizeof(S.cfg.listen)))
        goto fail;
    /* The kernel caps it at net.core.somaxconn. */
    if (listen(S.lfd, 65535) || epoll_ctl(S.ep, EPOLL_CTL_ADD, S.lfd, &e))
        goto fail;
    S.conns = calloc((size_t)S.cfg.max_conns + 1, sizeof(conn *));
    S.rbuf = malloc(READ_CHUNK);
    S.frame = malloc(MH_WS_HDR_MAX + 128 + (size_t)S.cfg.pad);
    if (!S.conns || !S.rbuf || !S.frame)
        goto fail;
    if (S.cfg.pad) {
        if (!(S.pad = malloc((size_t)S.cfg.pad + 1)))
            goto fail;
        memset(S.pad, 'x', (size_t)S.cfg.pad);
        S.pad[S.cfg.pad] = 0;
    }
    if (S.cfg.rate > 0) {
        long long ns = (long long)(1e9 / S.cfg.rate);
        struct itimerspec its = {
            .it_interval = {ns / 1000000000, ns % 1000000000},
            .it_value = {ns / 1000000000, ns % 1000000000},
        };
        struct epoll_event te = {.events = EPOLLIN, .data.ptr = &S.tfd};

        S.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (S.tfd < 0 || timerfd_settime(S.tfd, 0, &its, NULL) ||
            epoll_ctl(S.ep, EPOLL_CTL_ADD, S.tfd, &te))
            goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "mh-ceiling: %s: %s\n", S.cfg.listen_text, strerror(errno));
    return -1;
}

static void report(double secs)
{
    const stats *s = &S.st;
    typedef unsigned long long ull;
    double mean = s->events ? (double)s->fanout_us_sum / (double)s->events / 1000.0 : 0;

    fprintf(stderr,
            "mh-ceiling %s: %.1f s, accepted %llu (peak %llu, %u open), upgraded %llu, bad "
            "requests %llu, closed by clients %llu, found gone by a write %llu\n"
            "  events %llu (skipped ticks %llu): frames sent %llu, dropped (would block) %llu, "
            "partial writes %llu; acks %llu (dropped %llu); fan-out per event mean %.3f ms, "
            "max %.3f ms\n",
            S.cfg.listen_text, secs, (ull)s->accepted, (ull)s->peak, S.nconns, (ull)s->upgraded,
            (ull)s->bad_requests, (ull)s->closed_by_client, (ull)s->gone_on_write, (ull)s->events,
            (ull)s->skipped_ticks, (ull)s->frames_sent, (ull)s->frames_dropped,
            (ull)s->partial_writes, (ull)s->acks, (ull)s->acks_dropped, mean,
            (double)s->fanout_us_max / 1000.0);
    if (S.cfg.json)
        printf("{\"listen\":\"%s\",\"seconds\":%.3f,\"accepted\":%llu,\"peak\":%llu,"
               "\"open_at_end\":%u,\"upgraded\":%llu,\"bad_requests\":%llu,"
               "\"closed_by_clients\":%llu,\"gone_on_write\":%llu,\"events\":%llu,"
               "\"skipped_ticks\":%llu,\"frames_sent\":%llu,\"frames_dropped\":%llu,"
               "\"partial_writes\":%llu,\"acks\":%llu,\"acks_dropped\":%llu,"
               "\"fanout_ms_mean\":%.3f,\"fanout_ms_max\":%.3f}\n",
               S.cfg.listen_text, secs, (ull)s->accepted, (ull)s->peak, S.nconns, (ull)s->upgraded,
               (ull)s->bad_requests, (ull)s->closed_by_client, (ull)s->gone_on_write,
               (ull)s->events, (ull)s->skipped_ticks, (ull)s->frames_sent, (ull)s->frames_dropped,
               (ull)s->partial_writes, (ull)s->acks, (ull)s->acks_dropped, mean,
               (double)s->fanout_us_max / 1000.0);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mh-ceiling [options]\n"
            "  --listen HOST:PORT  where to listen, SO_REUSEPORT (default 127.0.0.1:9100)\n"
            "  --rate R            events per second to every connection (default 10; 0 = none)\n"
            "  --duration S        stop after S seconds (default 0 = at SIGINT/SIGTERM)\n"
            "  --connections N     accept at most N, then leave the port to the other\n"
            "                      listeners (default: open-file limit - 64)\n"
            "  --pad BYTES         add a \"pad\" string of that many bytes to each event\n"
            "  --json              also print the final counters as JSON on stdout\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},   {"rate", required_argument, 0, 'r'},
        {"duration", required_argument, 0, 'd'}, {"connections", required_argument, 0, 'c'},
        {"pad", required_argument, 0, 'p'},      {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    struct sigaction sa = {.sa_handler = on_signal};
    struct epoll_event evs[512];
    long nofile = mh_bench_raise_nofile();
    int64_t start, end;
    int o;

    S.cfg.listen_text = "127.0.0.1:9100";
    S.cfg.rate = 10;
    S.cfg.max_conns = nofile > 128 ? nofile - 64 : 64;
    S.tfd = -1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;

        switch (o) {
        case 'l':
            S.cfg.listen_text = optarg;
            break;
        case 'r':
            bad = mh_bench_parse_double("--rate", optarg, 0, 1e6, &S.cfg.rate);
            break;
        case 'd':
            bad = mh_bench_parse_double("--duration", optarg, 0, 1e7, &S.cfg.duration);
            break;
        case 'c':
            bad = mh_bench_parse_long("--connections", optarg, 1, nofile > 32 ? nofile - 16 : 16,
                                      &S.cfg.max_conns);
            break;
        case 'p':
            bad = mh_bench_parse_long("--pad", optarg, 0, PAD_MAX, &S.cfg.pad);
            break;
        case 'j':
            S.cfg.json = 1;
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
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (mh_bench_parse_hostport("--listen", S.cfg.listen_text, &S.cfg.listen))
        return 2;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (setup())
        return 1;

    start = mh_bench_mono_us();
    end = S.cfg.duration > 0 ? start + (int64_t)(S.cfg.duration * 1e6) : INT64_MAX;
    while (!stop_flag) {
        int64_t now = mh_bench_mono_us();
        int timeout = -1, n;

        if (now >= end)
            break;
        if (end != INT64_MAX)
            timeout = (int)((end - now + 999) / 1000);
        n = epoll_wait(S.ep, evs, 512, timeout);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;

            if (p == &S.lfd) {
                if (S.lfd >= 0)
                    accept_all();
            } else if (p == &S.tfd) {
                on_tick();
            } else {
                conn *c = p;

                /* Closed earlier in this batch, by a broadcast. */
                if (c->dead)
                    continue;
                if ((evs[i].events & EPOLLOUT) && c->tail_len && flush_tail(c)) {
                    conn_close(c);
                    continue;
                }
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    conn_readable(c);
            }
        }
        bury();
    }
    report((double)(mh_bench_mono_us() - start) / 1e6);
    return 0;
}
