#include "mh_router.h"

#include <stdlib.h>
#include <string.h>

#include "mh_auth.h"
#include "mh_browser.h"
#include "mh_conn.h"
#include "mh_envelope.h"
#include "mh_fanout.h"
#include "mh_json.h"
#include "mh_log.h"
#include "mh_presence.h"
#include "mh_redis.h"
#include "mh_rpc.h"

static void close_matching(mh_hub *h, const char *sub, uint16_t code, const char *reason)
{
    size_t it = 0;
    void *v;

    while (mh_map_next(&h->conns, &it, NULL, NULL, &v)) {
        mh_conn *c = v;
        if (c->subject && !strcmp(c->subject, sub))
            mh_conn_close(c, code, reason);
    }
}

/* A `close` or `disconnect` reason reaches the browser whole: the envelope
 * decoder bounds it to what a close frame carries (SPEC 11, 14), and the
 * connection keeps that many bytes. */
_Static_assert(sizeof(((mh_conn *)0)->close_reason) > MH_CLOSE_REASON_MAX,
               "a close reason from an envelope must never be cut");

/* Envelopes on {prefix}hub:{id}: replies and frames for one connection. */
static void for_this_hub(mh_hub *h, const mh_envelope *env)
{
    mh_conn *c = mh_conn_by_name(h, env->conn);
    mh_buf b;

    if (!c || c->closing) {
        h->metrics.replies_unknown_conn++;
        mh_debug("%s for %s: no such connection (closed?)", mh_kind_name(env->kind), env->conn);
        return;
    }
    if (env->kind == MH_KIND_CLOSE) {
        mh_conn_close(c, (uint16_t)env->code, env->reason);
        return;
    }
    if (env->kind == MH_KIND_POST) { /* a stream's POST that reached another process */
        const char *message;
        mh_browser_post(c, env->secret, strlen(env->secret), env->post_n, env->body, env->body_len,
                        &message);
        return;
    }
    mh_buf_init(&b);
    if (env->kind == MH_KIND_REPLY) {
        mh_json_dump(&b, json_object_get(env->frame, "id"));
        if (b.oom || !mh_rpc_finish(c, mh_buf_cstr(&b))) {
            h->metrics.rpc_late_replies++;
            mh_info("conn %s: reply for rpc %s that is not pending (timed out?)", c->name,
                    b.data ? b.data : "?");
            mh_buf_free(&b);
            return;
        }
        mh_buf_reset(&b);
    }
    if (mh_json_dump(&b, env->frame) == 0 && !b.oom)
        mh_conn_send(c, b.data, b.len);
    mh_buf_free(&b);
}

void mh_router_envelope(mh_hub *h, unsigned shard, const char *channel, size_t chlen,
                        const char *payload, size_t len)
{
    mh_envelope env;
    mh_err err;
    int rc;

    (void)channel, (void)chlen;
    h->metrics.envelopes_in++;
    mh_err_clear(&err);
    rc = mh_envelope_decode(payload, len, &env, &err);
    if (rc) {
        if (rc == MH_E_UNKNOWN_KIND) {
            h->metrics.envelopes_unknown++;
            mh_debug("envelope ignored: %s", err.msg);
        } else {
            h->metrics.envelopes_bad++;
            mh_warn("envelope rejected (%s): %s", mh_code_name(rc), err.msg);
        }
        mh_envelope_free(&env);
        return;
    }
    switch (env.kind) {
    case MH_KIND_INVALIDATE:
        h->metrics.invalidations_in++;
        mh_fanout_invalidate(h, &env);
        break;
    case MH_KIND_MESSAGE:
        h->metrics.messages_in++;
        mh_fanout_message(h, &env);
        break;
    case MH_KIND_CANARY:
        if (!strcmp(env.hub, h->cfg->hub_id))
            mh_redis_canary_seen(h->redis, shard, env.nonce);
        break;
    case MH_KIND_LOGOUT:
        mh_auth_logout(h, env.session);
        break;
    case MH_KIND_DISCONNECT:
        close_matching(h, env.subject, 4005, env.reason[0] ? env.reason : "session ended");
        break;
    case MH_KIND_REGISTRY:
        mh_auth_registry_fetch(h, env.version);
        break;
    case MH_KIND_PRESENCE:
        mh_presence_event(h, &env);
        break;
    case MH_KIND_REPLY:
    case MH_KIND_SEND:
    case MH_KIND_CLOSE:
    case MH_KIND_POST:
        for_this_hub(h, &env);
        break;
    }
    mh_envelope_free(&env);
}
