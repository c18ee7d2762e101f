#include "mh_browser.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "mh_auth.h"
#include "mh_frame.h"
#include "mh_resume.h"
#include "mh_hold.h"
#include "mh_json.h"
#include "mh_jwt.h"
#include "mh_log.h"
#include "mh_out.h"
#include "mh_peer.h"
#include "mh_presence.h"
#include "mh_redis.h"
#include "mh_registry.h"
#include "mh_rpc.h"
#include "mh_sse.h"

static void error_for(mh_conn *c, const char *code, const char *message, const mh_frame *f)
{
    int target = 0;

    if (f && f->scope.context)
        target = f->target == MH_TARGET_CHANNEL ? 2 : 1;
    mh_conn_send_error(c, code, message, f ? f->ref : NULL, target, f ? &f->scope : NULL);
}

void mh_browser_error(mh_conn *c, const char *code, const char *message)
{
    error_for(c, code, message, NULL);
}

void mh_browser_welcome(mh_conn *c)
{
    mh_buf b;

    mh_buf_init(&b);
    mh_out_welcome(&b, c->hub->cfg->hub_id, c->name, c->subject, c->staff, c->super, c->expires,
                   c->hub->cfg->spread_max_ms, c->hub->cfg->max_frame);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
}

/* The registry's guard (mh_auth); on refusal the error frame says why. */
static bool permitted(mh_conn *c, const mh_frame *f)
{
    const char *code;
    char msg[256];

    if (mh_auth_check(c, f, &code, msg, sizeof msg) == 0)
        return true;
    mh_debug("conn %s: %s refused: %s: %s", c->name, mh_action_name(f->action), code, msg);
    error_for(c, code, msg, f);
    return false;
}

/* Ends one of the connection's subscriptions: out of the index and its list. */
static void end_sub(mh_conn *c, mh_sub *sub)
{
    mh_presence_left(c, sub->node);
    mh_conn_drop_sub(c, sub);
    mh_hold_free(sub->hold);
    mh_subs_remove(&c->hub->subs, sub);
}

/*
 * After the identity changed: every subscription is checked against the
 * registry again, and those the new identity may not hold end with an
 * `unsubscribed` frame carrying the error (SPEC 8). Subscriptions granted by
 * a subscription token stay: the token named this same sub (a connection's
 * sub never changes, see do_auth) or an anonymous connection, which the
 * identity only adds to. Without a registry an identity may hold everything.
 */
static void recheck_subs(mh_conn *c)
{
    mh_hub *h = c->hub;
    mh_who who = {.subject = c->subject, .staff = c->staff, .super = c->super};

    if (!h->registry)
        return;
    /* Backwards: ending subs[i] moves the last one, already checked, into i. */
    for (uint32_t i = c->nsubs; i-- > 0;) {
        mh_sub *sub = c->subs[i];
        mh_keynode *node = sub->node;
        const char *code;
        char msg[256];
        mh_buf b;

        if (mh_registry_check(h->registry, node->is_channel, &node->entry, &who, &code, msg,
                              sizeof msg) != MH_REG_DENY)
            continue;
        mh_info("conn %s: %s '%s' ended after an identity change: %s", c->name,
                node->is_channel ? "channel" : "context", node->entry.context, code);
        mh_buf_init(&b);
        mh_out_ended(&b, node->is_channel, &node->entry, code, msg);
        mh_conn_send_buf(c, &b);
        mh_buf_free(&b);
        end_sub(c, sub);
        h->metrics.subs_ended++;
    }
}

static void do_auth(mh_conn *c, mh_frame *f)
{
    mh_hub *h = c->hub;
    mh_identity id;
    const char *reason;
    char msg[96];
    mh_buf b;

    if (!h->keys->n) {
        mh_metrics_reject(&h->metrics, "auth", "token_not_configured");
        error_for(c, "unauthorized", "this hub accepts no tokens", f);
        return;
    }
    if (mh_jwt_verify(h->keys, h->policy, f->token, f->token_len, (int64_t)(mh_now_ms() / 1000),
                      &id, &reason)) {
        snprintf(msg, sizeof msg, "token refused: %s", reason);
        mh_info("conn %s: %s refused: %s", c->name, mh_action_name(f->action), reason);
        mh_metrics_reject(&h->metrics, "auth", reason);
        error_for(c, !strcmp(reason, "expired") ? "token_expired" : "bad_token", msg, f);
        if (f->action == MH_ACT_AUTH && !c->subject)
            mh_conn_close_flushed(c, 4001, "unauthorized");
        return;
    }
    /* A connection's user never changes (SPEC 7): a second `auth` is a refresh,
     * and either must name the sub the connection already has. */
    if (c->subject && strcmp(c->subject, id.subject)) {
        mh_info("conn %s: %s for another sub refused", c->name, mh_action_name(f->action));
        mh_metrics_reject(&h->metrics, "auth",
                          f->action == MH_ACT_AUTH ? "auth_other_sub" : "refresh_other_sub");
        error_for(c, "forbidden",
                  "this connection is signed in as another user; a token must be for the same sub",
                  f);
        return;
    }
    if (mh_conn_set_identity(c, &id)) {
        error_for(c, "internal", "out of memory", f);
        return;
    }
    mh_buf_init(&b);
    mh_out_authed(&b, id.subject, id.staff, id.super, id.exp, f->ref);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
    recheck_subs(c);
}

static void do_subscribe(mh_conn *c, mh_frame *f)
{
    mh_hub *h = c->hub;
    bool channel = f->target == MH_TARGET_CHANNEL;
    mh_keynode *node = mh_subs_find(&h->subs, channel, &f->scope);
    mh_sub *sub = node ? mh_conn_find_sub(c, node) : NULL;

    if (!permitted(c, f))
        return;
    if (channel && f->since) { /* a replay reads up to 10,000 entries: SPEC 14's resume_rate */
        char msg[160];
        if (!mh_resume_ok(c, msg, sizeof msg)) {
            error_for(c, "rate_limited", msg, f);
            return;
        }
    }
    bool fresh = !sub;

    if (!sub) {
        if (c->nsubs >= (uint32_t)h->cfg->max_subs) {
            char msg[96];
            snprintf(msg, sizeof msg, "at most %d subscriptions per connection", h->cfg->max_subs);
            error_for(c, "too_many_subscriptions", msg, f);
            return;
        }
        int rc = mh_subs_add(&h->subs, channel, &f->scope, c, &sub);
        if (rc == MH_SUBS_E_SHAPES) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "context '%.128s' already has %zu different param-name sets on this hub; "
                     "subscribe with param names it already uses",
                     f->scope.context, h->subs.max_shapes);
            mh_info("conn %s: %s", c->name, msg);
            h->metrics.shape_limit_refusals++;
            mh_metrics_reject(&h->metrics, "subscribe", "too_many_shapes");
            error_for(c, "too_large", msg, f);
            return;
        }
        if (rc || mh_conn_add_sub(c, sub)) {
            if (sub)
                mh_subs_remove(&h->subs, sub);
            error_for(c, "internal", "out of memory", f);
            return;
        }
    }
    if (fresh && channel)
        mh_presence_joined(c, sub->node);
    /* Subscribing again to the same key re-runs the ack (and resume), once. */
    if (channel)
        mh_resume_channel(c, sub, f->since, f->since_len, f->ref);
    else
        mh_resume_context(c, sub, f->since, f->since_len, f->ref);
}

static void do_unsubscribe(mh_conn *c, mh_frame *f)
{
    mh_hub *h = c->hub;
    bool channel = f->target == MH_TARGET_CHANNEL;
    mh_keynode *node = mh_subs_find(&h->subs, channel, &f->scope);
    mh_sub *sub = node ? mh_conn_find_sub(c, node) : NULL;
    mh_buf b;

    if (sub)
        end_sub(c, sub);
    mh_buf_init(&b);
    mh_out_ack(&b, false, channel, &f->scope, NULL, NULL, 0, f->ref);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
}

typedef struct inbound_req {
    uint64_t conn_id;
    bool is_rpc;
    char id[]; /* rpc: the id as compact JSON, allocated to its length */
} inbound_req;

static void on_inbound_added(mh_hub *h, redisReply *reply, void *arg)
{
    inbound_req *q = arg;
    mh_conn *c = mh_map_get(&h->conns, &q->conn_id, sizeof q->conn_id);

    if (reply && reply->type != REDIS_REPLY_ERROR) {
        h->metrics.inbound_ok++;
    } else {
        h->metrics.inbound_failed++;
        if (c && !c->closing) {
            if (q->is_rpc && mh_rpc_finish(c, q->id))
                mh_rpc_send_error(c, q->id, "UNAVAILABLE", "the server could not queue the call");
            else if (!q->is_rpc)
                mh_browser_error(c, "unavailable", "the message could not be queued");
        }
    }
    free(q);
}

/*
 * rpc and ctx are not guarded by the registry: functions carry their own
 * auth=, which Django checks (SPEC 8). Without a registry the fallback
 * applies: an anonymous connection needs --allow-anonymous.
 */
static bool rpc_permitted(mh_conn *c, const mh_frame *f)
{
    mh_buf id;

    if (c->subject || c->hub->registry || c->hub->cfg->allow_anonymous)
        return true;
    mh_metrics_reject(&c->hub->metrics, "rpc", "unauthorized");
    mh_buf_init(&id);
    mh_json_dump(&id, f->id);
    mh_rpc_send_error(c, mh_buf_cstr(&id), "UNAUTHORIZED", "authenticate first");
    mh_buf_free(&id);
    return false;
}

/* Over the inbound budget: the frame is answered, the connection stays. */
static void inbound_refused(mh_conn *c, const mh_frame *f, bool is_rpc)
{
    static const char msg[] = "too many messages and calls to the server; retry later";
    mh_buf id;

    if (!is_rpc) {
        error_for(c, "rate_limited", msg, f);
        return;
    }
    mh_buf_init(&id);
    mh_json_dump(&id, f->id);
    if (mh_buf_cstr(&id))
        mh_rpc_send_error(c, id.data, "RATE_LIMITED", msg);
    mh_buf_free(&id);
}

/* message, rpc and ctx go to Django through the inbound stream (SPEC 11). */
static void do_inbound(mh_conn *c, mh_frame *f)
{
    mh_hub *h = c->hub;
    bool is_rpc = f->action == MH_ACT_RPC || f->action == MH_ACT_CTX;
    const mh_config *cfg = h->cfg;
    char maxlen[24], ts[32];
    mh_buf stream, body, ident, id;
    inbound_req *q = NULL;
    const char *argv[22];
    size_t lens[22];
    int argc = 0;

    if (is_rpc ? !rpc_permitted(c, f) : !permitted(c, f))
        return;
    if (!mh_auth_inbound_ok(c)) {
        inbound_refused(c, f, is_rpc);
        return;
    }
    mh_buf_init(&stream);
    mh_buf_init(&body);
    mh_buf_init(&ident);
    mh_buf_init(&id);
    mh_redis_name(h->redis, &stream, "in", NULL, 0);
    mh_frame_dump(&body, f);
    mh_out_identity(&ident, c->subject, c->staff, c->super);
    if (is_rpc)
        mh_json_dump(&id, f->id);
    snprintf(maxlen, sizeof maxlen, "%d", cfg->inbound_maxlen);
    snprintf(ts, sizeof ts, "%.0f", mh_now_ms());
    if (stream.oom || body.oom || ident.oom || id.oom || !mh_buf_cstr(&id))
        goto fail;
    if (is_rpc && mh_rpc_start(c, id.data))
        goto fail;
#define ARG(s, n) (argv[argc] = (s), lens[argc++] = (n))
    ARG("XADD", 4);
    ARG(stream.data, stream.len);
    ARG("MAXLEN", 6);
    ARG("~", 1);
    ARG(maxlen, strlen(maxlen));
    ARG("*", 1);
    ARG("v", 1);
    ARG("1", 1);
    ARG("kind", 4);
    ARG(mh_action_name(f->action), strlen(mh_action_name(f->action)));
    ARG("hub", 3);
    ARG(cfg->hub_id, strlen(cfg->hub_id));
    ARG("conn", 4);
    ARG(c->name, strlen(c->name));
    ARG("identity", 8);
    ARG(ident.data, ident.len);
    ARG("body", 4);
    ARG(body.data, body.len);
    ARG("ts", 2);
    ARG(ts, strlen(ts));
    if (c->peer) { /* the client's address (behind a trusted proxy: the one it named) */
        ARG("addr", 4);
        ARG(c->peer->addr, strlen(c->peer->addr));
    }
#undef ARG
    q = calloc(1, sizeof *q + id.len + 1);
    if (!q)
        goto fail_pending;
    q->conn_id = c->id;
    q->is_rpc = is_rpc;
    if (is_rpc)
        memcpy(q->id, id.data, id.len + 1);
    /* the connection's shard (SPEC 11.1): its frames stay in order in one stream */
    if (mh_redis_cmd_on(h->redis, mh_redis_shard_of(h->redis, c->name, strlen(c->name)),
                        on_inbound_added, q, argc, argv, lens)) {
        free(q);
        goto fail_pending;
    }
    goto done;
fail_pending:
    if (is_rpc)
        mh_rpc_finish(c, id.data);
fail:
    h->metrics.inbound_failed++;
    if (is_rpc)
        mh_rpc_send_error(c, id.data ? id.data : "null", "UNAVAILABLE",
                          "the hub cannot reach the server right now");
    else
        error_for(c, "unavailable", "the hub cannot reach the server right now", f);
done:
    mh_buf_free(&stream);
    mh_buf_free(&body);
    mh_buf_free(&ident);
    mh_buf_free(&id);
}

void mh_browser_input(mh_conn *c, const char *text, size_t len, bool binary)
{
    if (binary)
        mh_browser_error(c, "bad_frame", "binary frames are not supported; send JSON text");
    else
        mh_browser_frame(c, text, len);
}

/* A POST's frames, one per line, in order, as mh_transport's deliver does
 * with a socket's: rate-limited, kept while the session is looked up. */
static void post_frames(mh_conn *c, const char *body, size_t len)
{
    for (const char *p = body, *end = body + len; p < end && !c->closing;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *stop = nl ? nl : end;
        if (stop > p && mh_auth_rate_ok(c) && !mh_auth_hold_frame(c, p, (size_t)(stop - p), false))
            mh_browser_input(c, p, (size_t)(stop - p), false);
        p = stop + 1;
    }
}

int mh_browser_post(mh_conn *c, const char *secret, size_t slen, uint64_t n, const char *body,
                    size_t len, const char **message)
{
    uint64_t now = mh_mono_ms();
    mh_sse_post held;
    int rc;

    if (!c->sse || c->closing) {
        mh_metrics_reject(&c->hub->metrics, "sse", "unknown_stream");
        *message = "no such stream in this hub process";
        return 404;
    }
    if (slen != MH_SSE_SECRET_LEN || CRYPTO_memcmp(secret, c->sse->secret, MH_SSE_SECRET_LEN)) {
        mh_info("conn %s: POST with a wrong secret refused", c->name);
        mh_metrics_reject(&c->hub->metrics, "sse", "bad_secret");
        *message = "not this stream's secret";
        return 403;
    }
    *message = "accepted";
    rc = mh_sse_order(c->sse, n, body, len, now);
    if (rc < 0) {
        /* the frames cannot be put in order: the client starts afresh */
        mh_info("conn %s: POST %llu far ahead of %llu: closing", c->name, (unsigned long long)n,
                (unsigned long long)c->sse->next_n);
        mh_conn_close(c, 1011, "POSTs out of order");
        return 202;
    }
    if (rc == 0)
        return 202; /* kept until the ones before it came, or a repeat */
    post_frames(c, body, len);
    while (!c->closing && mh_sse_next_held(c->sse, &held, now)) {
        post_frames(c, held.body, held.len);
        free(held.body);
    }
    return 202;
}

void mh_browser_frame(mh_conn *c, const char *text, size_t len)
{
    mh_frame f;
    mh_err err;
    int rc;

    c->hub->metrics.frames_in++;
    c->hub->metrics.bytes_in += len;
    mh_err_clear(&err);
    rc = mh_frame_decode(text, len, &f, &err);
    if (rc) {
        mh_debug("conn %s: %s: %s", c->name, mh_code_name(rc), err.msg);
        error_for(c, mh_code_name(rc), err.msg, f.root ? &f : NULL);
        mh_frame_free(&f);
        return;
    }
    switch (f.action) {
    case MH_ACT_SUBSCRIBE:
        do_subscribe(c, &f);
        break;
    case MH_ACT_UNSUBSCRIBE:
        do_unsubscribe(c, &f);
        break;
    case MH_ACT_MESSAGE:
    case MH_ACT_RPC:
    case MH_ACT_CTX:
        do_inbound(c, &f);
        break;
    case MH_ACT_PING: {
        mh_buf b;
        mh_buf_init(&b);
        mh_out_pong(&b, f.ref);
        mh_conn_send_buf(c, &b);
        mh_buf_free(&b);
        break;
    }
    case MH_ACT_AUTH:
    case MH_ACT_REFRESH:
        do_auth(c, &f);
        break;
    case MH_ACT_PRESENCE:
        mh_presence_query(c, &f);
        break;
    }
    mh_frame_free(&f);
}
