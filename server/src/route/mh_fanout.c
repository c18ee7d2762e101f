#include "mh_fanout.h"

#include <stdlib.h>
#include <string.h>

#include "mh_conn.h"
#include "mh_envelope.h"
#include "mh_hold.h"
#include "mh_json.h"
#include "mh_log.h"
#include "mh_ops.h"
#include "mh_out.h"
#include "mh_redis.h"

/* Key nodes matched by the current entry; reused, so steady state allocates nothing. */
static mh_keynode **hits;
static size_t nhits, hits_cap;
static size_t hits_lost; /* matches dropped because the list could not grow */

static void collect(mh_keynode *node, void *arg)
{
    (void)arg;
    if (nhits == hits_cap) {
        size_t ncap = hits_cap ? hits_cap * 2 : 256;
        mh_keynode **nh = realloc(hits, ncap * sizeof *nh);
        if (!nh) {
            hits_lost++;
            return;
        }
        hits = nh;
        hits_cap = ncap;
    }
    hits[nhits++] = node;
}

void mh_fanout_round(mh_hub *h)
{
    h->stamp++;
}

size_t mh_fanout_node(mh_hub *h, mh_keynode *node, mh_msg *m)
{
    size_t n = 0;

    for (uint32_t i = 0; i < node->nsubs; i++) {
        mh_conn *c = node->subs[i]->owner;
        if (c->stamp == h->stamp)
            continue;
        c->stamp = h->stamp;
        if (mh_conn_enqueue(c, m) == 0)
            n++;
    }
    h->metrics.deliveries += n;
    return n;
}

size_t mh_fanout_channel(mh_hub *h, mh_keynode *node, mh_msg *m, uint64_t seq)
{
    size_t n = 0;

    for (uint32_t i = 0; i < node->nsubs; i++) {
        mh_sub *sub = node->subs[i];
        if (sub->hold)
            mh_hold_push(sub->hold, m, seq);
        else if (mh_conn_enqueue(sub->owner, m) == 0)
            n++;
    }
    h->metrics.deliveries += n;
    return n;
}

int mh_fanout_spread(const mh_hub *h, size_t recipients)
{
    uint64_t ms;

    if (recipients <= 1)
        return 0;
    ms = (uint64_t)recipients * 1000 / (uint64_t)h->cfg->refetch_rate;
    return (int)(ms > (uint64_t)h->cfg->spread_max_ms ? (uint64_t)h->cfg->spread_max_ms : ms);
}

void mh_fanout_note_version(mh_ctx *ctx, const char *version, size_t len)
{
    char epoch[MH_EPOCH_MAX + 1];
    uint64_t n;

    if (mh_version_parse(version, len, epoch, &n))
        return;
    if (!ctx->version_known || strcmp(ctx->epoch, epoch) || n > ctx->n) {
        strcpy(ctx->epoch, epoch);
        ctx->n = n;
        ctx->version_known = true;
    }
}

/* Distinct connections subscribed to the collected nodes (stamps them). */
static size_t count_recipients(mh_hub *h)
{
    size_t n = 0;
    mh_fanout_round(h);
    for (size_t i = 0; i < nhits; i++) {
        for (uint32_t k = 0; k < hits[i]->nsubs; k++) {
            mh_conn *c = hits[i]->subs[k]->owner;
            if (c->stamp != h->stamp) {
                c->stamp = h->stamp;
                n++;
            }
        }
    }
    return n;
}

void mh_fanout_invalidate(mh_hub *h, const mh_envelope *env)
{
    mh_buf b;

    mh_buf_init(&b);
    for (size_t i = 0; i < env->inval.n; i++) {
        const mh_entry *e = &env->inval.entries[i];
        json_t *v = json_object_get(env->versions, e->context);
        mh_ctx *ctx = mh_subs_context(&h->subs, e->context, e->context_len);
        size_t recipients, sent = 0;
        mh_msg *m;
        long matched;

        if (!ctx) {
            if (h->ops_tracing) /* a trace also says which hubs had nobody */
                mh_ops_trace_entry(h, e, json_string_value(v), 0, env->has_ts ? env->ts : 0);
            continue; /* nobody here subscribes to this context */
        }
        mh_fanout_note_version(ctx, json_string_value(v), json_string_length(v));
        nhits = 0;
        hits_lost = 0;
        matched = mh_subs_match(&h->subs, e, collect, NULL);
        if (matched < 0 || hits_lost) {
            /* Never silent: those subscribers miss this event; the hub says so. */
            mh_error("invalidate %s: out of memory while matching (%zu key(s) not reached)",
                     e->context, hits_lost);
            if (matched < 0)
                continue;
        }
        if (nhits == 0) {
            if (h->ops_tracing)
                mh_ops_trace_entry(h, e, json_string_value(v), 0, env->has_ts ? env->ts : 0);
            continue;
        }
        recipients = count_recipients(h);
        mh_buf_reset(&b);
        mh_out_invalidate(&b, e, json_string_value(v), NULL, mh_fanout_spread(h, recipients),
                          env->has_ts ? env->ts : 0);
        m = mh_msg_from_buf(&b);
        if (!m) {
            mh_error("invalidate %s: out of memory encoding the frame", e->context);
            continue;
        }
        m->ts_ms = env->has_ts ? env->ts : 0;
        mh_fanout_round(h);
        for (size_t k = 0; k < nhits; k++)
            sent += mh_fanout_node(h, hits[k], m);
        mh_msg_unref(m);
        if (h->ops_tracing)
            mh_ops_trace_entry(h, e, json_string_value(v), sent, env->has_ts ? env->ts : 0);
    }
    mh_buf_free(&b);
}

void mh_fanout_message(mh_hub *h, const mh_envelope *env)
{
    mh_keynode *node = mh_subs_find(&h->subs, true, &env->channel);
    mh_msg *m;
    mh_buf b;

    if (!node) {
        if (h->ops_tracing)
            mh_ops_trace_message(h, env, 0, false);
        return;
    }
    if (!node->gap && node->pos_known && !strcmp(node->epoch, env->epoch) && env->seq <= node->seq)
        return; /* already delivered (a replay raced the live message) */
    if (!node->gap && node->pos_known && !strcmp(node->epoch, env->epoch) &&
        env->seq > node->seq + 1)
        mh_warn("channel %s: seq jumped from %llu to %llu without a link loss", node->key,
                (unsigned long long)node->seq, (unsigned long long)env->seq);
    mh_buf_init(&b);
    if (mh_out_channel_message(&b, env)) {
        mh_buf_free(&b);
        mh_warn("channel %s: message data is not encodable", node->key);
        return;
    }
    m = mh_msg_from_buf(&b);
    mh_buf_free(&b);
    if (!m)
        return;
    m->ts_ms = env->has_ts ? env->ts : 0;
    if (node->gap) {
        /* Healing: hold live frames until the missed ones are replayed. */
        if (!node->hold)
            node->hold = mh_hold_new();
        if (node->hold)
            mh_hold_push(node->hold, m, env->seq);
        if (h->ops_tracing)
            mh_ops_trace_message(h, env, 0, true);
    } else {
        size_t sent;
        snprintf(node->epoch, sizeof node->epoch, "%s", env->epoch);
        node->seq = env->seq;
        node->pos_known = true;
        sent = mh_fanout_channel(h, node, m, env->seq);
        if (h->ops_tracing)
            mh_ops_trace_message(h, env, sent, false);
    }
    mh_msg_unref(m);
}
