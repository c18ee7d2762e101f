#include "mh_heal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mh_fanout.h"
#include "mh_history.h"
#include "mh_hold.h"
#include "mh_json.h"
#include "mh_key.h"
#include "mh_log.h"
#include "mh_out.h"
#include "mh_rate.h"
#include "mh_redis.h"
#include "mh_versions.h"

/* ---- the hub's own link gap ---- */

/* Does shard 'shard' own the context's versions (SPEC 11.1)? */
static bool owns_ctx(mh_hub *h, unsigned shard, const mh_ctx *ctx)
{
    return mh_redis_shard_of(h->redis, ctx->name, ctx->name_len) == shard;
}

/* Does shard 'shard' own the channel instance's position and history? */
static bool owns_node(mh_hub *h, unsigned shard, const mh_keynode *node)
{
    return mh_redis_shard_of(h->redis, node->key, node->key_len) == shard;
}

void mh_heal_mark_gap(mh_hub *h, unsigned shard)
{
    size_t it = 0;
    void *v;

    while (mh_map_next(&h->subs.contexts, &it, NULL, NULL, &v)) {
        mh_ctx *ctx = v;
        if (ctx->gap || !owns_ctx(h, shard, ctx))
            continue;
        ctx->gap = true;
        if (ctx->version_known) {
            strcpy(ctx->gap_epoch, ctx->epoch);
            ctx->gap_n = ctx->n;
        } else {
            ctx->gap_epoch[0] = '\0';
        }
    }
    it = 0;
    while (mh_map_next(&h->subs.channels, &it, NULL, NULL, &v))
        if (owns_node(h, shard, v))
            ((mh_keynode *)v)->gap = true;
}

/*
 * Every heal read carries the heal generation it was sent in (mh_redis); a
 * reply of an older one (the link dropped again, or the heal was given up
 * meanwhile) changes nothing: what it read may predate events missed since.
 */
typedef struct heal_ctx_req {
    char *name;
    size_t len;
    unsigned shard;
    uint64_t gen;
} heal_ctx_req;

static bool heal_stale(mh_hub *h, unsigned shard, uint64_t gen)
{
    return gen != mh_redis_heal_gen(h->redis, shard);
}

typedef struct heal_scan {
    mh_hub *h;
    mh_ctx *ctx;
    const mh_vhash *vh;
    const uint64_t *buckets; /* 1024 values */
    const char *version;
} heal_scan;

/* Sends 'reason' "gap" invalidations of the node's entry to its subscribers. */
static void invalidate_node(mh_hub *h, mh_keynode *node, const char *version)
{
    mh_buf out;
    mh_msg *m;

    mh_buf_init(&out);
    mh_out_invalidate(&out, &node->entry, version, "gap", -1, 0);
    m = mh_msg_from_buf(&out);
    mh_buf_free(&out);
    if (!m)
        return;
    mh_fanout_round(h);
    h->metrics.gap_invalidations += mh_fanout_node(h, node, m);
    mh_msg_unref(m);
}

static void heal_node(mh_keynode *node, void *arg)
{
    heal_scan *s = arg;
    unsigned b[MH_VERSIONS_MAX_BUCKETS];
    int nb = mh_versions_buckets(&node->entry, b);
    uint64_t max_bucket = 0;

    for (int i = 0; i < nb; i++)
        if (s->buckets[b[i]] > max_bucket)
            max_bucket = s->buckets[b[i]];
    if (!s->ctx->gap_epoch[0] ||
        mh_versions_missed(s->ctx->gap_epoch, s->ctx->gap_n, s->vh, max_bucket, nb >= 0))
        invalidate_node(s->h, node, s->version);
}

static void on_heal_hash(mh_hub *h, redisReply *reply, void *arg)
{
    heal_ctx_req *q = arg;
    mh_ctx *ctx = mh_subs_context(&h->subs, q->name, q->len);
    uint64_t *buckets = NULL;
    mh_vhash vh = {0};
    char version[MH_VERSION_MAX] = "0:0";
    heal_scan scan;

    if (heal_stale(h, q->shard, q->gen))
        goto stale;
    if (!ctx || !ctx->gap)
        goto done;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        /* Still in gap: mh_redis retries with backoff, then gives up (SPEC 10). */
        mh_debug("heal %s: cannot read versions: %s", q->name,
                 reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no reply");
        goto done;
    }
    buckets = calloc(1024, sizeof *buckets);
    if (!buckets)
        goto done;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const char *f = reply->element[i]->str, *val = reply->element[i + 1]->str;
        if (!f || !val)
            continue;
        if (!strcmp(f, "e") && reply->element[i + 1]->len <= MH_EPOCH_MAX) {
            strcpy(vh.epoch, val);
            vh.exists = true;
        } else if (!strcmp(f, "n")) {
            vh.n = strtoull(val, NULL, 10);
        } else if (!strcmp(f, "u")) {
            vh.u = strtoull(val, NULL, 10);
        } else {
            unsigned long k = strtoul(f, NULL, 10);
            if (k < 1024)
                buckets[k] = strtoull(val, NULL, 10);
        }
    }
    if (vh.exists)
        mh_version_format(version, vh.epoch, vh.n);
    scan = (heal_scan){.h = h, .ctx = ctx, .vh = &vh, .buckets = buckets, .version = version};
    mh_subs_each_node(ctx, heal_node, &scan);
    ctx->gap = false;
    if (vh.exists)
        mh_fanout_note_version(ctx, version, strlen(version));
done:
    free(buckets);
    mh_redis_heal_read_done(h->redis, q->shard, q->gen);
stale:
    free(q->name);
    free(q);
}

typedef struct heal_ch_req {
    mh_entry entry;
    unsigned shard;
    uint64_t gen;
    uint64_t seen_seq;
    char seen_epoch[MH_EPOCH_MAX + 1];
    bool seen_known;
    char cur_epoch[MH_EPOCH_MAX + 1];
    uint64_t cur_seq;
} heal_ch_req;

static void gap_to_node(mh_hub *h, mh_keynode *node, uint64_t from, uint64_t to, const char *reason)
{
    mh_buf b;
    mh_msg *m;

    mh_buf_init(&b);
    mh_out_gap(&b, &node->entry, from, to, false, reason);
    m = mh_msg_from_buf(&b);
    mh_buf_free(&b);
    if (!m)
        return;
    /* Through the holds, as the seq 'to' it reports up to: a subscription
     * that is resuming gets it after its own replay, or not at all when that
     * replay already covered the range. An unknown end (0) reaches everyone. */
    h->metrics.gap_frames += mh_fanout_channel(h, node, m, to ? to : UINT64_MAX);
    mh_msg_unref(m);
}

typedef struct replay_node {
    mh_hub *h;
    mh_keynode *node;
} replay_node;

static void replay_to_node(uint64_t seq, const char *frame, size_t len, void *arg)
{
    replay_node *r = arg;
    mh_msg *m = mh_msg_new(frame, len);
    if (m) {
        mh_fanout_channel(r->h, r->node, m, seq);
        mh_msg_unref(m);
    }
}

/*
 * Ends the heal of a channel: its position becomes (epoch, seq), and frames
 * held while it healed go out in order, those above 'after' only.
 */
static void release_node(mh_hub *h, mh_keynode *node, const char *epoch, uint64_t seq,
                         uint64_t after)
{
    mh_hold *hold = node->hold;

    node->gap = false;
    node->hold = NULL;
    snprintf(node->epoch, sizeof node->epoch, "%s", epoch);
    node->seq = seq;
    node->pos_known = true;
    if (!hold)
        return;
    for (uint32_t i = 0; i < hold->n; i++) {
        if (hold->seqs[i] > after) {
            mh_fanout_channel(h, node, hold->msgs[i], hold->seqs[i]);
            if (hold->seqs[i] > node->seq)
                node->seq = hold->seqs[i];
        }
    }
    if (hold->overflow)
        gap_to_node(h, node, hold->dropped_from, hold->dropped_to, "history_trimmed");
    mh_hold_free(hold);
}

static void heal_ch_free(heal_ch_req *q)
{
    mh_entry_free(&q->entry);
    free(q);
}

static void on_heal_history(mh_hub *h, redisReply *reply, void *arg)
{
    heal_ch_req *q = arg;
    mh_keynode *node = mh_subs_find(&h->subs, true, &q->entry);
    uint64_t want = q->seen_seq + 1, last = q->seen_seq, first, ignored = 0;

    if (heal_stale(h, q->shard, q->gen)) {
        heal_ch_free(q);
        return;
    }
    if (!node || !node->gap)
        goto done;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        /* Could not read: still in gap and still holding; retried (SPEC 10). */
        mh_debug("heal %s: cannot read history: %s", node->key, reply ? reply->str : "no reply");
        goto done;
    }
    first = mh_history_each(reply, &ignored, NULL, NULL);
    if (first == want) {
        replay_node r = {h, node};
        mh_history_each(reply, &last, replay_to_node, &r);
        if (last < q->cur_seq)
            gap_to_node(h, node, last + 1, q->cur_seq, "history_trimmed");
    } else {
        gap_to_node(h, node, want, q->cur_seq, first ? "history_trimmed" : "no_history");
    }
    release_node(h, node, q->cur_epoch, q->cur_seq > last ? q->cur_seq : last, last);
done:
    mh_redis_heal_read_done(h->redis, q->shard, q->gen);
    heal_ch_free(q);
}

static void on_heal_channel(mh_hub *h, redisReply *reply, void *arg)
{
    heal_ch_req *q = arg;
    mh_keynode *node = mh_subs_find(&h->subs, true, &q->entry);

    if (heal_stale(h, q->shard, q->gen)) {
        heal_ch_free(q);
        return;
    }
    if (!node || !node->gap)
        goto done;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        /* -LOADING, -BUSY, no reply: unknown, not "never published"; retried. */
        mh_debug("heal %s: cannot read the position: %s", node->key,
                 reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no reply");
        goto done;
    }
    if (reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        !mh_epoch_valid(reply->element[0]->str, (size_t)reply->element[0]->len)) {
        /* No channel state in Redis: nothing was ever published on it. */
        release_node(h, node, "0", 0, 0);
        goto done;
    }
    snprintf(q->cur_epoch, sizeof q->cur_epoch, "%s", reply->element[0]->str);
    q->cur_seq = mh_history_u64(reply->element[1]);
    if (!q->seen_known) {
        /* Subscribed here while the link was down: what was missed is unknown. */
        gap_to_node(h, node, 0, q->cur_seq, "hub_link_lost");
        release_node(h, node, q->cur_epoch, q->cur_seq, 0);
    } else if (strcmp(q->seen_epoch, q->cur_epoch)) {
        gap_to_node(h, node, 1, q->cur_seq, "epoch_changed");
        release_node(h, node, q->cur_epoch, q->cur_seq, 0);
    } else if (q->cur_seq > q->seen_seq) {
        if (mh_history_read(h, node, q->seen_seq + 1, on_heal_history, q) == 0) {
            /* on_heal_history releases, and ends this read after its own */
            mh_redis_heal_read_sent(h->redis, q->shard);
            mh_redis_heal_read_done(h->redis, q->shard, q->gen);
            return;
        }
        /* The link is down: retried, still holding. */
    } else {
        release_node(h, node, q->cur_epoch, q->seen_seq, q->seen_seq);
    }
done:
    mh_redis_heal_read_done(h->redis, q->shard, q->gen);
    heal_ch_free(q);
}

void mh_heal_run(mh_hub *h, unsigned shard)
{
    uint64_t gen = mh_redis_heal_gen(h->redis, shard);
    size_t it = 0, nctx = 0, nch = 0;
    void *v;
    mh_buf key;

    mh_buf_init(&key);
    while (mh_map_next(&h->subs.contexts, &it, NULL, NULL, &v)) {
        mh_ctx *ctx = v;
        heal_ctx_req *q;
        const char *argv[2];
        size_t lens[2];
        if (!ctx->gap || !owns_ctx(h, shard, ctx))
            continue;
        q = calloc(1, sizeof *q);
        if (!q || !(q->name = malloc(ctx->name_len + 1))) {
            free(q);
            continue; /* still in gap: the next round reads it */
        }
        memcpy(q->name, ctx->name, ctx->name_len + 1);
        q->len = ctx->name_len;
        q->shard = shard;
        q->gen = gen;
        mh_buf_reset(&key);
        mh_redis_name(h->redis, &key, "v:", ctx->name, ctx->name_len);
        argv[0] = "HGETALL", lens[0] = 7;
        argv[1] = key.data, lens[1] = key.len;
        if (key.oom || mh_redis_cmd_on(h->redis, shard, on_heal_hash, q, 2, argv, lens)) {
            free(q->name);
            free(q);
            continue;
        }
        mh_redis_heal_read_sent(h->redis, shard);
        nctx++;
    }
    it = 0;
    while (mh_map_next(&h->subs.channels, &it, NULL, NULL, &v)) {
        mh_keynode *node = v;
        heal_ch_req *q;
        if (!node->gap || !owns_node(h, shard, node))
            continue;
        q = calloc(1, sizeof *q);
        if (!q || mh_entry_copy(&q->entry, &node->entry)) {
            free(q);
            continue;
        }
        q->shard = shard;
        q->gen = gen;
        q->seen_known = node->pos_known;
        strcpy(q->seen_epoch, node->epoch);
        q->seen_seq = node->seq;
        if (mh_history_read_pos(h, node, on_heal_channel, q)) {
            heal_ch_free(q);
            continue;
        }
        mh_redis_heal_read_sent(h->redis, shard);
        nch++;
    }
    mh_buf_free(&key);
    if (mh_redis_nshards(h->redis) > 1)
        mh_info("redis link of shard %u regained: healing %zu context(s) and %zu channel(s)", shard,
                nctx, nch);
    else
        mh_info("redis link regained: healing %zu context(s) and %zu channel(s)", nctx, nch);
}

size_t mh_heal_unhealed(mh_hub *h, unsigned shard)
{
    size_t it = 0, n = 0;
    void *v;

    while (mh_map_next(&h->subs.contexts, &it, NULL, NULL, &v))
        n += ((mh_ctx *)v)->gap && owns_ctx(h, shard, v);
    it = 0;
    while (mh_map_next(&h->subs.channels, &it, NULL, NULL, &v))
        n += ((mh_keynode *)v)->gap && owns_node(h, shard, v);
    return n;
}

static void give_up_node(mh_keynode *node, void *arg)
{
    invalidate_node(arg, node, NULL);
}

void mh_heal_give_up(mh_hub *h, unsigned shard)
{
    size_t it = 0;
    void *v;

    while (mh_map_next(&h->subs.contexts, &it, NULL, NULL, &v)) {
        mh_ctx *ctx = v;
        if (!ctx->gap || !owns_ctx(h, shard, ctx))
            continue;
        /* Which subscriptions missed something is unknown: all of them (no
         * version: none was read), and the next subscribe reads it again. */
        mh_subs_each_node(ctx, give_up_node, h);
        ctx->gap = false;
        ctx->version_known = false;
    }
    it = 0;
    while (mh_map_next(&h->subs.channels, &it, NULL, NULL, &v)) {
        mh_keynode *node = v;
        uint64_t from, to;
        if (!node->gap || !owns_node(h, shard, node))
            continue;
        /* Missed: after the last seq seen, up to just before the first one held. */
        from = node->pos_known ? node->seq + 1 : 0;
        to = node->hold && node->hold->n ? node->hold->seqs[0] - 1 : 0;
        if (to < from)
            to = 0; /* unknown (another epoch?) */
        gap_to_node(h, node, from, to, "hub_link_lost");
        release_node(h, node, "0", 0, 0);
        node->pos_known = false; /* the next live message or read sets it */
    }
}
