#include "mh_tlspipe.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mh_log.h"

/* A request head upward; a TLS record's worth of lws's answer downward. */
#define UP_MAX 4096
#define DOWN_MAX 16384

typedef struct relay {
    struct relay *prev, *next;
    int fd;   /* the client's socket (TLS) */
    int side; /* our end of the pair; lws has the other */
    mh_tls *tls;
    uv_poll_t pfd, pside;
    int handles; /* open uv handles: freed when both closed */
    size_t up_len, down_off, down_len;
    bool client_eof; /* the client sent close_notify, EOF, or failed */
    bool lws_eof;    /* lws closed its end */
    bool dead;
    bool rd_wants_wr, wr_wants_rd; /* TLS waits for the other direction */
    unsigned char up[UP_MAX];      /* decrypted from the client, for lws */
    unsigned char down[DOWN_MAX];  /* from lws, for the client */
} relay;

static relay *relays;
static size_t nrelays;

static void on_closed(uv_handle_t *hd)
{
    relay *r = hd->data;

    if (--r->handles == 0)
        free(r);
}

static void end(relay *r, bool notify)
{
    if (r->dead)
        return;
    r->dead = true;
    if (r->prev)
        r->prev->next = r->next;
    else
        relays = r->next;
    if (r->next)
        r->next->prev = r->prev;
    nrelays--;
    uv_poll_stop(&r->pfd);
    uv_poll_stop(&r->pside);
    mh_tls_free(r->tls, notify);
    r->tls = NULL;
    /* the handles let go of the descriptors before they are closed (their
     * numbers may come back with the next accept) */
    uv_close((uv_handle_t *)&r->pfd, on_closed);
    uv_close((uv_handle_t *)&r->pside, on_closed);
    close(r->fd);
    close(r->side); /* lws reads EOF and closes its end */
}

static void on_poll(uv_poll_t *hd, int status, int events);

/* Waits for what the relay can go on with: nothing when both ways are stuck
 * on the other side (a full buffer stops reading its source). */
static void arm(relay *r)
{
    int efd = 0, eside = 0;

    if ((!r->client_eof && r->up_len < UP_MAX && !r->rd_wants_wr) || r->wr_wants_rd)
        efd |= UV_READABLE;
    if ((r->down_off < r->down_len && !r->wr_wants_rd) || r->rd_wants_wr)
        efd |= UV_WRITABLE;
    if (r->up_len)
        eside |= UV_WRITABLE;
    if (!r->lws_eof && r->down_off == r->down_len)
        eside |= UV_READABLE;
    if (efd)
        uv_poll_start(&r->pfd, efd, on_poll);
    else
        uv_poll_stop(&r->pfd);
    if (eside)
        uv_poll_start(&r->pside, eside, on_poll);
    else
        uv_poll_stop(&r->pside);
}

/* Moves what can move, both ways, until nothing does. */
static void pump(relay *r)
{
    bool moved = true;

    while (moved) {
        bool other = false;
        ssize_t n;
        moved = false;
        /* client -> lws */
        if (!r->client_eof && r->up_len < UP_MAX) {
            r->rd_wants_wr = false;
            n = mh_tls_read(r->tls, r->up + r->up_len, UP_MAX - r->up_len, &other);
            if (n > 0)
                r->up_len += (size_t)n;
            else if (n == 0)
                r->rd_wants_wr = other;
            else
                r->client_eof = true;
            moved |= n != 0;
        }
        if (r->up_len) {
            n = send(r->side, r->up, r->up_len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                end(r, true); /* lws closed its end without reading */
                return;
            }
            if (n > 0) {
                memmove(r->up, r->up + n, r->up_len - (size_t)n);
                r->up_len -= (size_t)n;
                moved = true;
            }
        }
        if (r->client_eof && !r->up_len) {
            /* The client is gone (or closed its half: nothing a browser
             * does mid-request). Only closing lws's end makes lws let go of
             * the request at once: after a half-close (EOF on read) lws 4.1
             * keeps a response until its next write fails. */
            end(r, false);
            return;
        }
        /* lws -> client */
        if (r->down_off == r->down_len && !r->lws_eof) {
            n = read(r->side, r->down, DOWN_MAX);
            if (n > 0) {
                r->down_off = 0;
                r->down_len = (size_t)n;
                moved = true;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                r->lws_eof = true;
                moved = true;
            }
        }
        if (r->down_off < r->down_len) {
            r->wr_wants_rd = false;
            n = mh_tls_write(r->tls, r->down + r->down_off, r->down_len - r->down_off, &other);
            if (n < 0) {
                end(r, false); /* the client is gone */
                return;
            }
            if (n == 0) {
                r->wr_wants_rd = other; /* the same bytes are offered again */
            } else {
                r->down_off += (size_t)n;
                moved = true;
            }
        }
        if (r->lws_eof && r->down_off == r->down_len) {
            end(r, true); /* all of lws's answer is out */
            return;
        }
    }
    arm(r);
}

static void on_poll(uv_poll_t *hd, int status, int events)
{
    relay *r = hd->data;
    (void)events;

    if (r->dead)
        return;
    if (status < 0) {
        end(r, false);
        return;
    }
    pump(r);
}

void mh_tlspipe_start(mh_hub *h, int fd, mh_tls *tls, mh_peer *peer, const char *head, size_t len,
                      mh_tlspipe_adopt_fn adopt)
{
    relay *r = calloc(1, sizeof *r);
    int sv[2];

    if (!r || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
        mh_warn("TLS request from %s dropped: %s", peer->addr, strerror(r ? errno : ENOMEM));
        free(r);
        mh_tls_free(tls, false);
        close(fd);
        mh_peer_free(peer);
        return;
    }
    r->fd = fd;
    r->side = sv[0];
    r->tls = tls;
    uv_poll_init(h->loop, &r->pfd, fd);
    uv_poll_init(h->loop, &r->pside, sv[0]);
    r->pfd.data = r->pside.data = r;
    r->handles = 2;
    r->next = relays;
    if (relays)
        relays->prev = r;
    relays = r;
    nrelays++;
    /* lws may answer (and close its end) inside the call: read below */
    adopt(h, sv[1], peer, head, len);
    pump(r);
}

size_t mh_tlspipe_count(void)
{
    return nrelays;
}

void mh_tlspipe_stop_all(void)
{
    while (relays)
        end(relays, true);
}
