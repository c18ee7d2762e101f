#include "mh_resume.h"

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

/* What an async read needs to finish a subscribe: never a pointer into the
 * index or a connection, which may be gone when the reply comes. */
typedef struct sub_req {
    uint64_t conn_id;
    bool channel;
    unsigned shard; /* the Redis shard that owns it (SPEC 11.1) */
    mh_entry entry; /* owned copy */
    json_t *ref;    /* owned reference, or NULL */
    bool has_since, since_ok;
    char since_epoch[MH_EPOCH_MAX + 1];
    uint64_t since_n;
    int nbuckets; /* -1: too many params */
    unsigned buckets[MH_VERSIONS_MAX_BUCKETS];
    /* channel replay */
    char cur_epoch[MH_EPOCH_MAX + 1];
    uint64_t cur_seq;
    uint64_t flush_after; /* held frames above this seq are released after the replay */
    uint64_t pos_sent;    /* read_clock when its position read was sent */
} sub_req;

/*
 * Orders the reads this module sends on the command link, which Redis answers
 * in order: a history read sent after a resume's position read was sent is
 * answered after that position was read, so it covers it.
 */
static uint64_t read_clock;

static void req_free(sub_req *q)
{
    mh_entry_free(&q->entry);
    json_decref(q->ref);
    free(q);
}

static sub_req *req_new(mh_conn *c, mh_sub *sub, bool channel, const char *since, size_t since_len,
                        const json_t *ref)
{
    sub_req *q = calloc(1, sizeof *q);

    if (!q)
        return NULL;
    if (mh_entry_copy(&q->entry, &sub->node->entry)) {
        free(q);
        return NULL;
    }
    q->conn_id = c->id;
    q->channel = channel;
    q->shard = mh_history_shard(c->hub, sub->node);
    q->ref = ref ? json_incref((json_t *)ref) : NULL;
    if (since) {
        q->has_since = true;
        q->since_ok = mh_version_parse(since, since_len, q->since_epoch, &q->since_n) == 0;
    }
    return q;
}

/* The connection and its subscription, if both still exist. */
static mh_conn *req_conn(mh_hub *h, sub_req *q, mh_keynode **node)
{
    mh_conn *c = mh_map_get(&h->conns, &q->conn_id, sizeof q->conn_id);
    mh_keynode *n;

    if (!c || c->closing)
        return NULL;
    n = mh_subs_find(&h->subs, q->channel, &q->entry);
    if (!n || !mh_conn_find_sub(c, n))
        return NULL; /* unsubscribed meanwhile: nothing to acknowledge */
    *node = n;
    return c;
}

static void ack_context(mh_conn *c, const mh_entry *e, const char *version, const json_t *ref)
{
    mh_buf b;
    mh_buf_init(&b);
    mh_out_ack(&b, true, false, e, version, NULL, 0, ref);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
}

static void send_invalidate(mh_conn *c, const mh_entry *e, const char *version, const char *reason)
{
    mh_buf b;
    mh_buf_init(&b);
    mh_out_invalidate(&b, e, version, reason, -1, 0);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
    if (!strcmp(reason, "resume"))
        c->hub->metrics.resume_invalidations++;
    else
        c->hub->metrics.gap_invalidations++;
}

static void send_bad_version(mh_conn *c, const mh_entry *e, bool channel, const json_t *ref)
{
    mh_buf b;
    mh_buf_init(&b);
    mh_out_error(&b, "bad_version", "\"since\" is not a version this protocol defines", ref,
                 channel ? 2 : 1, e);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
    c->hub->metrics.error_frames++;
}

/* Field names of a context's version hash for a resume check. */
static void read_version_hash(mh_redis *r, mh_buf *key, const mh_entry *e, const sub_req *q,
                              const char **argv, size_t *lens, char fields[][8], int *argc)
{
    mh_redis_name(r, key, "v:", e->context, e->context_len);
    argv[0] = "HMGET", lens[0] = 5;
    argv[1] = key->data, lens[1] = key->len;
    argv[2] = "e", lens[2] = 1;
    argv[3] = "n", lens[3] = 1;
    argv[4] = "u", lens[4] = 1;
    *argc = 5;
    for (int i = 0; i < q->nbuckets; i++) {
        int n = snprintf(fields[i], 8, "%u", q->buckets[i]);
        argv[*argc] = fields[i];
        lens[(*argc)++] = (size_t)n;
    }
}

static void on_context_hash(mh_hub *h, redisReply *reply, void *arg)
{
    sub_req *q = arg;
    mh_keynode *node;
    mh_conn *c = req_conn(h, q, &node);
    mh_vhash vh = {0};
    char version[MH_VERSION_MAX] = "0:0";
    uint64_t max_bucket = 0;

    if (!c)
        goto done;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) {
        /* Could not read: answer as if everything was missed. */
        if (q->has_since)
            send_invalidate(c, &q->entry, NULL, "resume");
        ack_context(c, &q->entry, "0:0", q->ref);
        goto done;
    }
    if (reply->element[0]->type == REDIS_REPLY_STRING && reply->element[0]->len <= MH_EPOCH_MAX) {
        vh.exists = true;
        memcpy(vh.epoch, reply->element[0]->str, (size_t)reply->element[0]->len);
        vh.epoch[reply->element[0]->len] = '\0';
        vh.n = mh_history_u64(reply->element[1]);
        vh.u = mh_history_u64(reply->element[2]);
        mh_version_format(version, vh.epoch, vh.n);
    }
    /* "0:0" too is a known version: nothing was ever published. */
    mh_fanout_note_version(node->ctx, version, strlen(version));
    for (size_t i = 3; i < reply->elements; i++) {
        uint64_t v = mh_history_u64(reply->element[i]);
        if (v > max_bucket)
            max_bucket = v;
    }
    if (q->has_since && (!q->since_ok || mh_versions_missed(q->since_epoch, q->since_n, &vh,
                                                            max_bucket, q->nbuckets >= 0)))
        send_invalidate(c, &q->entry, version, "resume");
    ack_context(c, &q->entry, version, q->ref);
done:
    req_free(q);
}

void mh_resume_context(mh_conn *c, mh_sub *sub, const char *since, size_t since_len,
                       const json_t *ref)
{
    mh_hub *h = c->hub;
    mh_ctx *ctx = sub->node->ctx;
    char fields[MH_VERSIONS_MAX_BUCKETS][8];
    const char *argv[5 + MH_VERSIONS_MAX_BUCKETS];
    size_t lens[5 + MH_VERSIONS_MAX_BUCKETS];
    char version[MH_VERSION_MAX];
    sub_req *q;
    mh_buf key;
    int argc;

    if (!mh_redis_shard_subscribed(h->redis, mh_history_shard(h, sub->node)) && !ctx->gap) {
        /* Subscribed while the hub misses events: the heal must cover it. */
        ctx->gap = true;
        ctx->gap_epoch[0] = '\0';
    }
    if (since && mh_version_parse(since, since_len, version, &(uint64_t){0}))
        send_bad_version(c, &sub->node->entry, false, ref);
    if (!since && ctx->version_known) {
        mh_version_format(version, ctx->epoch, ctx->n);
        ack_context(c, &sub->node->entry, version, ref);
        return;
    }
    q = req_new(c, sub, false, since, since_len, ref);
    if (!q)
        goto cannot_read;
    q->nbuckets = q->has_since ? mh_versions_buckets(&q->entry, q->buckets) : 0;
    mh_buf_init(&key);
    read_version_hash(h->redis, &key, &q->entry, q, argv, lens, fields, &argc);
    if (key.oom || mh_redis_cmd_on(h->redis, q->shard, on_context_hash, q, argc, argv, lens)) {
        mh_buf_free(&key);
        req_free(q);
        goto cannot_read;
    }
    mh_buf_free(&key);
    return;
cannot_read:
    /* Redis unreachable: invalidate on resume, and promise nothing ("0:0"
     * makes the next resume invalidate again unless nothing was ever published). */
    if (since)
        send_invalidate(c, &sub->node->entry, NULL, "resume");
    ack_context(c, &sub->node->entry, "0:0", ref);
}

/* ---- channels ---- */

static void ack_channel(mh_conn *c, const mh_entry *e, const char *epoch, uint64_t seq,
                        const json_t *ref)
{
    mh_buf b;
    mh_buf_init(&b);
    mh_out_ack(&b, true, true, e, NULL, epoch, seq, ref);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
}

static void send_gap(mh_conn *c, const mh_entry *e, uint64_t from, uint64_t to, const char *reason);

/* Ends a resume's hold: frames that arrived live during the replay, in order. */
static void release_sub_hold(mh_conn *c, mh_keynode *node, uint64_t after)
{
    mh_sub *sub = mh_conn_find_sub(c, node);
    mh_hold *hold = sub ? sub->hold : NULL;

    if (!hold)
        return;
    sub->hold = NULL;
    for (uint32_t i = 0; i < hold->n; i++)
        if (hold->seqs[i] > after)
            mh_conn_enqueue(c, hold->msgs[i]);
    if (hold->overflow)
        send_gap(c, &node->entry, hold->dropped_from, hold->dropped_to, "history_trimmed");
    mh_hold_free(hold);
}

static void on_channel_synced(mh_hub *h, void *arg)
{
    sub_req *q = arg;
    mh_keynode *node;
    mh_conn *c = req_conn(h, q, &node);

    if (c) {
        release_sub_hold(c, node, q->flush_after);
        ack_channel(c, &q->entry, q->cur_epoch, q->cur_seq, q->ref);
        /* Past the barrier, every message up to the read has come through the
         * stream: from here the read is this hub's exact position too. */
        if (!node->gap &&
            (!node->pos_known || strcmp(node->epoch, q->cur_epoch) || q->cur_seq > node->seq)) {
            strcpy(node->epoch, q->cur_epoch);
            node->seq = q->cur_seq;
            node->pos_known = true;
        }
    }
    req_free(q);
}

/*
 * The position came from Redis, and messages up to it may still be on their
 * way through pub/sub; ack once they have passed, so every message this
 * connection has not been sent has a seq above the ack's (SPEC 10).
 */
static void ack_channel_synced(mh_hub *h, sub_req *q)
{
    mh_redis_sync(h->redis, q->shard, on_channel_synced, q);
}

static void send_gap(mh_conn *c, const mh_entry *e, uint64_t from, uint64_t to, const char *reason)
{
    mh_buf b;
    mh_buf_init(&b);
    mh_out_gap(&b, e, from, to, false, reason);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
    c->hub->metrics.gap_frames++;
}

/*
 * Shared replays (issue 12 item 7): resumes of one channel from one point at
 * the same time wait on one history read; its frames are encoded once and
 * every waiter's queue takes references. Keyed by "<from> <canonical key>".
 */
typedef struct replay_share {
    char *key; /* owned; the map's key */
    size_t key_len;
    uint64_t want; /* the first seq asked for */
    uint64_t sent; /* read_clock when sent */
    sub_req **waiters;
    size_t n, cap;
} replay_share;

/* One hub per process, as mh_fanout's match list: reads in flight. */
static mh_map replays;

/* What a history read gave, shared by its waiters. */
typedef struct replay_data {
    bool ok;        /* the read was answered with a history (possibly empty) */
    uint64_t first; /* seq of the first entry; 0: none */
    uint64_t last;  /* seq of the last frame */
    mh_msg **msgs;  /* the frames, encoded once */
    size_t n, cap;
    bool oom;
} replay_data;

static void collect_frame(uint64_t seq, const char *frame, size_t len, void *arg)
{
    replay_data *d = arg;
    mh_msg *m;

    if (d->oom)
        return;
    (void)seq;
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 64;
        mh_msg **nm = realloc(d->msgs, ncap * sizeof *nm);
        if (!nm)
            goto oom;
        d->msgs = nm;
        d->cap = ncap;
    }
    m = mh_msg_new(frame, len);
    if (!m)
        goto oom;
    d->msgs[d->n++] = m;
    return;
oom:
    d->oom = true;
}

static void replay_data_free(replay_data *d)
{
    for (size_t i = 0; i < d->n; i++)
        mh_msg_unref(d->msgs[i]);
    free(d->msgs);
}

/* One resume's end: replay or gap, then the ack once the replay is ordered. */
static void finish_resume(mh_hub *h, sub_req *q, const replay_data *d)
{
    mh_keynode *node;
    mh_conn *c = req_conn(h, q, &node);
    uint64_t want = q->since_n + 1;

    if (!c) {
        req_free(q);
        return;
    }
    q->flush_after = q->since_n;
    /* Only a history that starts exactly where the client stopped is replayed. */
    if (!d->ok)
        send_gap(c, &q->entry, want, q->cur_seq, "hub_link_lost");
    else if (d->first == 0)
        send_gap(c, &q->entry, want, q->cur_seq, "no_history");
    else if (d->first != want)
        send_gap(c, &q->entry, want, q->cur_seq, "history_trimmed");
    else {
        for (size_t i = 0; i < d->n && !c->closing; i++)
            mh_conn_enqueue(c, d->msgs[i]);
        q->flush_after = d->last;
        if (d->last < q->cur_seq)
            send_gap(c, &q->entry, d->last + 1, q->cur_seq, "history_trimmed");
    }
    ack_channel_synced(h, q);
}

/* Takes 's' off the map (if a newer read has not replaced it there). */
static void replay_unmap(replay_share *s)
{
    if (mh_map_get(&replays, s->key, s->key_len) != s)
        return;
    mh_map_del(&replays, s->key, s->key_len);
    if (!replays.count) { /* nothing kept between bursts (and nothing at exit) */
        mh_map_free(&replays);
        mh_map_init(&replays);
    }
}

static void replay_share_free(replay_share *s)
{
    replay_unmap(s);
    free(s->waiters);
    free(s->key);
    free(s);
}

static void on_replay_history(mh_hub *h, redisReply *reply, void *arg)
{
    replay_share *s = arg;
    replay_data d = {0};

    /* An error reply (-LOADING, -BUSY ...) is "could not read", not "no history". */
    d.ok = reply && reply->type == REDIS_REPLY_ARRAY;
    d.last = s->want - 1;
    if (d.ok) {
        uint64_t ignored = 0;
        d.first = mh_history_each(reply, &ignored, NULL, NULL);
        if (d.first == s->want)
            mh_history_each(reply, &d.last, collect_frame, &d);
        if (d.oom) /* a partial replay would skip frames: say so instead */
            d.ok = false;
    }
    /* Off the map first: nobody may join a read that has answered. */
    replay_unmap(s);
    for (size_t i = 0; i < s->n; i++)
        finish_resume(h, s->waiters[i], &d);
    replay_data_free(&d);
    s->n = 0;
    replay_share_free(s);
}

static int share_add(replay_share *s, sub_req *q)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 4;
        sub_req **nw = realloc(s->waiters, ncap * sizeof *nw);
        if (!nw)
            return -1;
        s->waiters = nw;
        s->cap = ncap;
    }
    s->waiters[s->n++] = q;
    return 0;
}

/*
 * Replays the history from q->since_n + 1 to q's connection: joins a read of
 * the same channel from the same seq that is in flight and was sent after
 * q's position was read, or sends one. Returns 0 (q is owned by the read),
 * or -1 (nothing sent; q is still the caller's).
 */
static int replay_join(mh_hub *h, mh_keynode *node, sub_req *q)
{
    uint64_t want = q->since_n + 1;
    replay_share *s;
    mh_buf key;

    mh_buf_init(&key);
    mh_buf_printf(&key, "%llu ", (unsigned long long)want);
    mh_buf_put(&key, node->key, node->key_len);
    if (key.oom)
        goto fail;
    s = mh_map_get(&replays, key.data, key.len);
    if (s && s->sent > q->pos_sent && share_add(s, q) == 0) {
        h->metrics.replays_shared++;
        mh_buf_free(&key);
        return 0;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->key = malloc(key.len))) {
        free(s);
        goto fail;
    }
    memcpy(s->key, key.data, key.len);
    s->key_len = key.len;
    s->want = want;
    if (share_add(s, q) || mh_history_read(h, node, want, on_replay_history, s)) {
        s->n = 0;
        replay_share_free(s);
        goto fail;
    }
    s->sent = ++read_clock;
    h->metrics.replays++;
    /* A newer read replaces an older one in the map; the older still answers its waiters. */
    if (mh_map_put(&replays, s->key, s->key_len, s))
        mh_debug("replay %s: not shared (out of memory)", node->key);
    mh_buf_free(&key);
    return 0;
fail:
    mh_buf_free(&key);
    return -1;
}

static void on_channel_pos(mh_hub *h, redisReply *reply, void *arg)
{
    sub_req *q = arg;
    mh_keynode *node;
    mh_conn *c = req_conn(h, q, &node);

    if (!c)
        goto done;
    strcpy(q->cur_epoch, "0");
    q->cur_seq = 0;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        mh_epoch_valid(reply->element[0]->str, (size_t)reply->element[0]->len)) {
        strcpy(q->cur_epoch, reply->element[0]->str);
        q->cur_seq = mh_history_u64(reply->element[1]);
    } else if (!reply || reply->type == REDIS_REPLY_ERROR) {
        /* Could not read (-LOADING, -BUSY, no reply): not "never published". */
        release_sub_hold(c, node, 0);
        if (q->has_since)
            send_gap(c, &q->entry, q->since_n + 1, 0, "hub_link_lost");
        ack_channel(c, &q->entry, "0", 0, q->ref);
        goto done;
    }
    q->flush_after =
        q->has_since && q->since_ok && !strcmp(q->since_epoch, q->cur_epoch) ? q->since_n : 0;
    if (q->has_since && q->since_ok && !strcmp(q->since_epoch, q->cur_epoch) &&
        q->since_n < q->cur_seq) {
        /* Replay from history; the reply handler acks. */
        if (replay_join(h, node, q) == 0)
            return;
        send_gap(c, &q->entry, q->since_n + 1, q->cur_seq, "hub_link_lost");
    } else if (q->has_since &&
               (!q->since_ok || strcmp(q->since_epoch, q->cur_epoch) || q->since_n > q->cur_seq)) {
        /* In another epoch every seq up to the ack's is a message the client
         * never saw, whatever its since's seq was: the gap starts at 1. */
        bool same = q->since_ok && !strcmp(q->since_epoch, q->cur_epoch);
        send_gap(c, &q->entry, same ? q->since_n + 1 : 1, q->cur_seq, "epoch_changed");
    }
    ack_channel_synced(h, q);
    return;
done:
    req_free(q);
}

bool mh_resume_ok(mh_conn *c, char *msg, size_t msglen)
{
    mh_hub *h = c->hub;
    const mh_config *cfg = h->cfg;
    /* A reconnecting page resumes every channel at once: never refuse that. */
    int burst = cfg->resume_burst > cfg->max_subs ? cfg->resume_burst : cfg->max_subs;

    if (!cfg->resume_rate ||
        mh_rate_take(&c->resume_tokens, &c->resume_ms, cfg->resume_rate, burst, mh_mono_ms())) {
        h->metrics.resumes++;
        return true;
    }
    h->metrics.resumes_refused++;
    mh_metrics_reject(&h->metrics, "limit", "resume_rate");
    mh_debug("conn %s: over %d channel resumes/s (burst %d)", c->name, cfg->resume_rate, burst);
    snprintf(msg, msglen,
             "more than %d channel resumes (subscribe with since) a second: this subscribe "
             "was refused, retry later",
             cfg->resume_rate);
    return false;
}

void mh_resume_channel(mh_conn *c, mh_sub *sub, const char *since, size_t since_len,
                       const json_t *ref)
{
    mh_hub *h = c->hub;
    mh_keynode *node = sub->node;
    sub_req *q;
    char epoch[MH_EPOCH_MAX + 1];

    if (!mh_redis_shard_subscribed(h->redis, mh_history_shard(h, node)))
        node->gap = true;
    if (since && mh_version_parse(since, since_len, epoch, &(uint64_t){0}))
        send_bad_version(c, &node->entry, true, ref);
    if (!since && node->pos_known && !node->gap) {
        ack_channel(c, &node->entry, node->epoch, node->seq, ref);
        return;
    }
    q = req_new(c, sub, true, since, since_len, ref);
    if (since && !sub->hold)
        sub->hold = mh_hold_new(); /* a failed allocation only loses the ordering guard */
    if (q && mh_history_read_pos(h, node, on_channel_pos, q) == 0) {
        q->pos_sent = ++read_clock;
        return;
    }
    if (q)
        req_free(q);
    release_sub_hold(c, node, 0);
    if (since)
        send_gap(c, &node->entry, 0, 0, "hub_link_lost");
    ack_channel(c, &node->entry, "0", 0, ref);
}
