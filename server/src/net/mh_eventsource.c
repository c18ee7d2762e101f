#include "mh_eventsource.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mh_auth.h"
#include "mh_clock.h"
#include "mh_conn.h"
#include "mh_log.h"
#include "mh_out.h"
#include "mh_peer.h"
#include "mh_redis.h"
#include "mh_browser.h"
#include "mh_sse.h"
#include "mh_gate.h"
#include "mh_upgrade.h"
#include "mh_wsock.h"

/* A query argument is at most the whole head. */
#define ARG_MAX MH_UPGRADE_HEAD_MAX

struct mh_es {
    mh_hub *h;
    struct lws *wsi;
    bool answered; /* an answer is written: close once lws flushed it */
};

bool mh_es_path(const char *path)
{
    return !strcmp(path, "/sse") || !strncmp(path, "/sse/", 5);
}

/* Our own answer, as the intake's (mh_upgrade_response), with CORS for POSTs. */
static int answer(mh_es *e, int status, const char *reason, const char *text)
{
    unsigned char buf[LWS_PRE + 1024];
    int n;

    if (status >= 400)
        mh_metrics_reject(&e->h->metrics, "sse", reason);
    n = mh_upgrade_response((char *)buf + LWS_PRE, sizeof buf - LWS_PRE, status,
                            "Access-Control-Allow-Origin: *", text);
    if (n > 0 && lws_write(e->wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP) < 0)
        return -1;
    e->answered = true;
    if (lws_partial_buffered(e->wsi)) {
        lws_callback_on_writable(e->wsi);
        return 0;
    }
    return -1;
}

/* A frame for the connection, as one read from a WebSocket (mh_transport's deliver). */
static void deliver(mh_conn *c, const char *text, size_t len)
{
    if (!mh_auth_rate_ok(c) || mh_auth_hold_frame(c, text, len, false))
        return;
    c->hub->hooks.frame(c, text, len, false);
}

/* ---- the stream ---- */

/* The stream's response head: SPEC 6.1's headers, CORS for the page's origin. */
static int head_of(char *out, size_t cap, const char *origin)
{
    int n =
        snprintf(out, cap,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: "
                 "no-store\r\nConnection: close\r\nX-Accel-Buffering: no\r\n%s%s%s\r\n",
                 origin ? "Access-Control-Allow-Origin: " : "", origin ? origin : "",
                 origin ? "\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n" : "");
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* A query argument's value p[0..n) decoded into out (n + 1 bytes): %XX is a
 * byte and '+' a space (a form's encoding, as URLSearchParams writes); a '%'
 * not followed by two hex digits stays itself. Returns the decoded length. */
static size_t url_decode(const char *p, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < n && (hi = hex_digit(p[i + 1])) >= 0 &&
            (lo = hex_digit(p[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = p[i] == '+' ? ' ' : p[i];
        }
    }
    out[o] = '\0';
    return o;
}

/*
 * The query's subscriptions, in order, as subscribe frames ('frames', a
 * JSON array of their texts, or null for one that was not an object), with
 * each one's starting point noted in the stream (from Last-Event-ID when it
 * has the stream's shape, else the query's own since).
 */
static int read_query(mh_conn *c, const mh_http_request *req, json_t *frames)
{
    const char *q = memchr(req->target, '?', req->target_len),
               *tend = req->target + req->target_len;
    const mh_http_header *lh = mh_upgrade_header(req, "last-event-id");
    char *arg = malloc(ARG_MAX + 1), *last = malloc(ARG_MAX + 1);
    char(*points)[MH_SSE_POINT_MAX + 1] = NULL;
    json_t *objs = json_array();
    bool resume = false;
    int rc = -1;
    size_t count, n;

    if (!arg || !last || !objs)
        goto done;
    while (q && q < tend) {
        const char *p = q + 1, *amp = memchr(p, '&', (size_t)(tend - p)), *aend = amp ? amp : tend;
        json_t *v;
        q = amp;
        if (aend - p < 10 || memcmp(p, "subscribe=", 10))
            continue;
        n = url_decode(p + 10, (size_t)(aend - p - 10), arg);
        v = json_loadb(arg, n, 0, NULL);
        if (!v)
            v = json_string(arg); /* answered as a frame that is not JSON */
        if (!v || json_array_append_new(objs, v))
            goto done;
    }
    count = json_array_size(objs);
    if (count && lh && lh->value_len) {
        memcpy(last, lh->value, lh->value_len);
        last[lh->value_len] = '\0';
        points = calloc(count, sizeof *points);
        if (!points)
            goto done;
        resume = mh_sse_parse_id(last, count, points) == 0;
        if (!resume)
            mh_info("conn %s: Last-Event-ID is not this stream's: the query's since applies",
                    c->name);
    }
    for (size_t i = 0; i < count; i++) {
        json_t *v = json_array_get(objs, i), *frame;
        const char *since;
        char *text;
        if (!json_is_object(v)) {
            /* as a frame: a string is not JSON text (bad_json), anything else bad_frame */
            text =
                json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
            if (mh_sse_add(c->sse, NULL, NULL) || !text ||
                json_array_append_new(frames, json_string(text))) {
                free(text);
                goto done;
            }
            free(text);
            continue;
        }
        frame = json_deep_copy(v);
        if (!frame)
            goto done;
        if (resume && points[i][0])
            json_object_set_new(frame, "since", json_string(points[i]));
        since = json_string_value(json_object_get(frame, "since"));
        json_object_set_new(frame, "action", json_string("subscribe"));
        text = json_dumps(frame, JSON_COMPACT);
        if (mh_sse_add(c->sse, v, since) || !text ||
            json_array_append_new(frames, json_string(text))) {
            free(text);
            json_decref(frame);
            goto done;
        }
        free(text);
        json_decref(frame);
    }
    rc = 0;
done:
    free(arg);
    free(last);
    free(points);
    json_decref(objs);
    return rc;
}

bool mh_es_stream_request(const mh_http_request *req)
{
    const char *q = memchr(req->target, '?', req->target_len);
    size_t plen = q ? (size_t)(q - req->target) : req->target_len;

    return req->method_len == 3 && !memcmp(req->method, "GET", 3) && plen == 4 &&
           !memcmp(req->target, "/sse", 4);
}

int mh_es_open(mh_hub *h, int fd, mh_tls *tls, mh_peer *peer, uint64_t id, size_t len,
               const mh_http_request *req, mh_upgrade_refusal *why)
{
    static char store[MH_UPGRADE_VIEW_STORE];
    char head[512 + MH_UPGRADE_ORIGIN_MAX];
    mh_upgrade_view v;
    mh_conn *c = calloc(1, sizeof *c);
    json_t *frames = json_array();
    mh_buf b;
    int n;

    if (!c || !frames || !(c->sse = mh_sse_new())) {
        mh_auth_refuse(h, why, 503, "limit", "out_of_memory", "try again");
        goto refused;
    }
    c->hub = h;
    c->peer = peer;
    if (peer && peer->admin) {
        mh_auth_refuse(h, why, 404, "upgrade", "admin_listener", "no stream on the admin listener");
        goto refused;
    }
    if (len > req->head_len) { /* a GET has no body, and a stream's client sends nothing */
        mh_auth_refuse(h, why, 400, "upgrade", "body_framing",
                       "nothing is sent after a stream's request");
        goto refused;
    }
    if (mh_upgrade_view_of(req, &v, store, sizeof store)) {
        mh_auth_refuse(h, why, 431, "upgrade", "headers_too_large", "request headers too large");
        goto refused;
    }
    /* the upgrade's rules: drain, limits, token (query too), cookie + Origin */
    if (mh_gate_judge(h, c, &v, why))
        goto refused;
    /* POSTs other processes hand on would not reach it (a dead link may even
     * still count as a subscriber in Redis): no stream until the link is back */
    if (!mh_redis_subscribed(h->redis)) {
        mh_auth_refuse(h, why, 503, "sse", "unavailable", "the hub cannot reach Redis now");
        goto refused;
    }
    n = head_of(head, sizeof head, v.origin);
    if (n < 0 || mh_wsock_open(c, h, fd, id, tls)) {
        mh_auth_refuse(h, why, 503, "limit", "out_of_memory", "try again");
        goto refused;
    }
    /* The head leaves with the first events, in one write at the end of the
     * loop iteration. */
    if (mh_conn_push_control(c, MH_MSG_RAW, head, (size_t)n) || read_query(c, req, frames)) {
        mh_conn_destroy(c);
        json_decref(frames);
        return 0;
    }
    h->metrics.sse_streams++;
    mh_debug("conn %s: stream open", c->name);
    mh_buf_init(&b);
    mh_out_stream(&b, c->name, c->sse->secret);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
    if (mh_auth_established(c)) { /* welcome, or the session lookup */
        mh_conn_destroy(c);
        json_decref(frames);
        return 0;
    }
    for (size_t i = 0; i < json_array_size(frames) && !c->closing; i++) {
        const json_t *t = json_array_get(frames, i);
        deliver(c, json_string_value(t), json_string_length(t));
    }
    json_decref(frames);
    return 0;
refused:
    if (c) {
        mh_auth_release(c);
        mh_sse_free(c->sse);
    }
    free(c);
    json_decref(frames);
    return 1;
}

/* ---- a POST ---- */

static int refuse_post(mh_hub *h, int status, const char *reason, const char *text,
                       const char **message)
{
    mh_metrics_reject(&h->metrics, "sse", reason);
    *message = text;
    return status;
}

/*
 * A numbered POST handed on, until Redis answers its PUBLISH: when the link
 * drops first, what was written into it may never have reached Redis (a
 * dead path loses it), so it is published again once the link is back (on
 * the tick, once a second), for up to RELAY_MS. The holder drops a repeat by
 * its number (SPEC 6.1), so one that did arrive costs nothing. One list per
 * process, as other modules keep their module state (mh_presence, mh_ops).
 */
#define RELAY_MS 10000
#define RELAY_MAX 4096

typedef struct relay {
    struct relay *next;
    uint64_t since_ms;
    unsigned shard;
    size_t clen, elen;
    char data[]; /* the channel, then the envelope */
} relay;

static struct {
    relay *head; /* to be published again on the tick */
    size_t n;    /* on the list or waiting for a reply */
} relays;

static void relay_drop(relay *r)
{
    relays.n--;
    free(r);
}

static void relay_reply(mh_hub *h, redisReply *reply, void *arg)
{
    relay *r = arg;

    if (reply || h->stopping || mh_mono_ms() - r->since_ms >= RELAY_MS) {
        relay_drop(r); /* Redis has it (a receiver or none), or too late */
        return;
    }
    r->next = relays.head;
    relays.head = r;
}

static int relay_send(mh_hub *h, relay *r)
{
    const char *argv[3] = {"PUBLISH", r->data, r->data + r->clen};
    size_t lens[3] = {7, r->clen, r->elen};

    return mh_redis_cmd_on(h->redis, r->shard, relay_reply, r, 3, argv, lens);
}

void mh_es_tick(mh_hub *h)
{
    relay *r = relays.head, *next;

    relays.head = NULL;
    for (; r; r = next) {
        next = r->next;
        if (mh_mono_ms() - r->since_ms >= RELAY_MS) {
            relay_drop(r);
        } else if (relay_send(h, r)) { /* the link is still down */
            r->next = relays.head;
            relays.head = r;
        }
    }
}

void mh_es_free_all(void)
{
    relay *r, *next;

    for (r = relays.head; r; r = next) {
        next = r->next;
        relay_drop(r);
    }
    relays.head = NULL;
}

/*
 * A stream this process does not hold: unless its name says it was this
 * process's (then it is closed), the POST goes to the hub it names, on
 * {prefix}hub:{hub id}, where the process holding it checks the secret and
 * the others ignore it (SPEC 6.1). Nothing comes back: 202 means handed on
 * (a numbered one is sent again if the link drops before Redis answers).
 */
static int forward(mh_hub *h, const char *name, const char *secret, size_t slen, uint64_t n,
                   const char *body, size_t len, const char **message)
{
    const char *dot = strchr(name, '.'), *argv[3];
    size_t lens[3];
    char sec[MH_SSE_SECRET_LEN + 1];
    mh_buf channel, env;
    unsigned shard;
    relay *r;
    int rc;

    if (!strncmp(name, h->conn_prefix, strlen(h->conn_prefix)) || !dot || dot == name ||
        slen != MH_SSE_SECRET_LEN || strspn(secret, "0123456789abcdef") < MH_SSE_SECRET_LEN) {
        mh_metrics_reject(&h->metrics, "sse", "unknown_stream");
        *message = "no such stream in this hub process";
        return 404;
    }
    memcpy(sec, secret, slen);
    sec[slen] = '\0';
    mh_buf_init(&channel);
    mh_buf_init(&env);
    mh_redis_name(h->redis, &channel, "hub:", name, (size_t)(dot - name));
    mh_out_post(&env, name, sec, n, body, len);
    argv[0] = "PUBLISH", lens[0] = 7;
    argv[1] = channel.data, lens[1] = channel.len;
    argv[2] = env.data, lens[2] = env.len;
    /* on the connection's shard, as Django's envelopes for it (SPEC 11.1) */
    shard = mh_redis_shard_of(h->redis, name, strlen(name));
    r = n && !channel.oom && !env.oom && relays.n < RELAY_MAX
            ? malloc(sizeof *r + channel.len + env.len)
            : NULL;
    if (r) {
        r->since_ms = mh_mono_ms();
        r->shard = shard;
        r->clen = channel.len;
        r->elen = env.len;
        memcpy(r->data, channel.data, channel.len);
        memcpy(r->data + r->clen, env.data, env.len);
        relays.n++;
        rc = relay_send(h, r);
        if (rc)
            relay_drop(r);
    } else {
        rc = channel.oom || env.oom ? -1
                                    : mh_redis_cmd_on(h->redis, shard, NULL, NULL, 3, argv, lens);
    }
    mh_buf_free(&channel);
    mh_buf_free(&env);
    if (rc) {
        mh_metrics_reject(&h->metrics, "sse", "unavailable");
        *message = "the hub cannot reach Redis now";
        return 503;
    }
    h->metrics.sse_posts_forwarded++;
    *message = "handed on";
    return 202;
}

void mh_es_link_lost(mh_hub *h, unsigned shard)
{
    size_t it = 0, n = 0;
    void *v;

    /* A scan: a lost link is rare next to connections, as a logout is. */
    while (mh_map_next(&h->conns, &it, NULL, NULL, &v)) {
        mh_conn *c = v;
        if (c->sse && !c->closing &&
            mh_redis_shard_of(h->redis, c->name, strlen(c->name)) == shard) {
            mh_conn_close(c, 1013, "hub lost its Redis link");
            n++;
        }
    }
    if (n)
        mh_info("redis link lost: %zu streams end (POSTs handed on to them may be lost)", n);
}

/* The value of query argument 'name' ("secret=") in q[..end), as sent (the
 * secret is hex: never percent-encoded); NULL when absent. */
static const char *query_arg(const char *q, const char *end, const char *name, size_t *len)
{
    size_t nl = strlen(name);

    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp ? amp : end;
        if ((size_t)(stop - q) >= nl && !memcmp(q, name, nl)) {
            *len = (size_t)(stop - q) - nl;
            return q + nl;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

int mh_es_post(mh_hub *h, const char *target, size_t target_len, const char *body, size_t len,
               const char **message)
{
    const char *q = memchr(target, '?', target_len), *secret = NULL, *num = NULL;
    char name[96];
    size_t nlen = (q ? (size_t)(q - target) : target_len) - 5, slen = 0, numlen = 0;
    uint64_t n = 0;
    mh_conn *c;

    if (q) {
        secret = query_arg(q + 1, target + target_len, "secret=", &slen);
        num = query_arg(q + 1, target + target_len, "n=", &numlen);
    }
    if (!secret || !slen)
        return refuse_post(h, 400, "bad_request", "a POST carries the stream's secret", message);
    /* n: the POST's number, 1, 2, ... (SPEC 6.1), at most 2^53 - 1 */
    for (size_t i = 0; num && i < numlen; i++) {
        if (num[i] < '0' || num[i] > '9' || (i == 0 && num[i] == '0') || i >= 16)
            return refuse_post(h, 400, "bad_request", "n is a POST's number: 1, 2, ...", message);
        n = n * 10 + (uint64_t)(num[i] - '0');
    }
    if (num && (!numlen || n > 9007199254740991ULL))
        return refuse_post(h, 400, "bad_request", "n is a POST's number: 1, 2, ...", message);
    if (nlen >= sizeof name)
        return refuse_post(h, 404, "unknown_stream", "no such stream in this hub process", message);
    memcpy(name, target + 5, nlen);
    name[nlen] = '\0';
    c = mh_conn_by_name(h, name);
    if (c)
        return mh_browser_post(c, secret, slen, n, body, len, message);
    return forward(h, name, secret, slen, n, body, len, message);
}

/* ---- the request ---- */

int mh_es_start(mh_hub *h, struct lws *wsi, mh_es **out)
{
    mh_es *e = calloc(1, sizeof *e);
    bool post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;

    *out = e;
    if (!e)
        return -1;
    e->h = h;
    e->wsi = wsi;
    if (post) /* the intake answers every POST, plain or TLS: a guard, lws never gets one */
        return answer(e, 405, "method", "POST /sse/<conn> is read by the intake");
    /* GET /sse is the intake's too (mh_es_open): anything else here is refused */
    return answer(e, 405, "method", "GET /sse opens a stream; POST /sse/<conn> sends a frame");
}

int mh_es_writeable(mh_es *e)
{
    return e->answered && !lws_partial_buffered(e->wsi) ? -1 : 0;
}

void mh_es_free(mh_es **pe)
{
    free(*pe);
    *pe = NULL;
}
