#define _GNU_SOURCE /* memrchr, strndup */
#include "mh_presence.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mh_auth.h"
#include "mh_hold.h"
#include "mh_json.h"
#include "mh_log.h"
#include "mh_map.h"
#include "mh_out.h"
#include "mh_redis.h"
#include "mh_registry.h"

/*
 * The scripts (SPEC 11.2). Names: p:K members of instance K; pk:P the
 * instances where process P has members (K -> scope, which the sweep needs
 * to write a leave envelope); phb:P the heartbeat; procs the processes with
 * members. A process P is the prefix of its connection ids, so a member's
 * process is its field name up to the last '-'.
 */

/* KEYS p:K pk:P procs events phb:P; ARGV conn member K scope envelope max P ttl.
 * 1: already a member; -1: the instance is full; 0: joined (published
 * unless the envelope is empty: a channel without join/leave events). */
_Static_assert(MH_IDENTITY_INFO_MAX == MH_INFO_MAX, "a token's info is what an envelope carries");

static const char join_lua[] =
    "redis.call('SET', KEYS[5], '1', 'PX', ARGV[8])\n"
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then\n"
    "  local max = tonumber(ARGV[6])\n"
    "  if max > 0 and redis.call('HLEN', KEYS[1]) >= max then return -1 end\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "  if ARGV[5] ~= '' then redis.call('PUBLISH', KEYS[4], ARGV[5]) end\n"
    "  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])\n"
    "  redis.call('SADD', KEYS[3], ARGV[7])\n"
    "  return 0\n"
    "end\n"
    "redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])\n"
    "redis.call('SADD', KEYS[3], ARGV[7])\n"
    "return 1\n";

/* KEYS p:K pk:P events; ARGV conn envelope K last. The leave is published
 * only when the member was there (a swept member is not left twice) and the
 * envelope is not empty. */
static const char leave_lua[] = "local n = redis.call('HDEL', KEYS[1], ARGV[1])\n"
                                "if n == 1 and ARGV[2] ~= '' then\n"
                                "  redis.call('PUBLISH', KEYS[3], ARGV[2])\n"
                                "end\n"
                                "if ARGV[4] == '1' then redis.call('HDEL', KEYS[2], ARGV[3]) end\n"
                                "return n\n";

/* KEYS phb:P procs; ARGV P ttl. 0: P's members were swept (or never joined). */
static const char beat_lua[] = "redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])\n"
                               "return redis.call('SISMEMBER', KEYS[2], ARGV[1])\n";

/* KEYS procs events; ARGV prefix. Every member of a process whose heartbeat
 * is gone is deleted and its leave published (written as mh_out_presence_envelope
 * writes it). Returns the number of leaves. */
static const char sweep_lua[] =
    "local n = 0\n"
    "for _, proc in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('EXISTS', ARGV[1] .. 'phb:' .. proc) == 0 then\n"
    "    local pk = ARGV[1] .. 'pk:' .. proc\n"
    "    local rooms = redis.call('HGETALL', pk)\n"
    "    for i = 1, #rooms, 2 do\n"
    "      local p = ARGV[1] .. 'p:' .. rooms[i]\n"
    "      local all = redis.call('HGETALL', p)\n"
    "      for j = 1, #all, 2 do\n"
    "        if string.sub(all[j], 1, #proc) == proc and\n"
    "           string.find(all[j], '^%d+$', #proc + 1) then\n"
    "          redis.call('HDEL', p, all[j])\n"
    "          redis.call('PUBLISH', KEYS[2], '{\"v\":1,\"kind\":\"presence\",\"op\":\"leave\",' "
    ".. rooms[i + 1] .. ',\"member\":' .. all[j + 1] .. '}')\n"
    "          n = n + 1\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL', pk)\n"
    "    redis.call('SREM', KEYS[1], proc)\n"
    "  end\n"
    "end\n"
    "return n\n";

/* KEYS procs; ARGV prefix..'phb:'. The processes whose heartbeat is there
 * (a few: one per hub worker). The query sends it and HGETALL p:K back to
 * back on one link, and keeps the members of these processes: one round
 * trip, and the members never pass through Lua. */
static const char live_lua[] =
    "local out = {}\n"
    "for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('EXISTS', ARGV[1] .. p) == 1 then out[#out + 1] = p end\n"
    "end\n"
    "return out\n";

/* One membership of a connection in a presence channel instance. */
typedef struct member {
    struct member *next;                /* the connection's list, or the leaves to retry */
    struct member *all_prev, *all_next; /* every membership of this process */
    uint64_t conn_id;
    uint64_t gen; /* this membership among the connection's memberships of K over time */
    char conn[sizeof(((mh_conn *)0)->name)]; /* the connection id: the member's field */
    mh_keynode *node; /* valid while it is the connection's (its subscription holds it) */
    char *key;        /* canonical key K */
    size_t key_len;
    char *scope; /* "channel":..,"params":.. */
    size_t scope_len;
    char *json; /* the member */
    size_t json_len;
    bool quiet; /* its channel had "join_leave": false when it joined: nothing published */
} member;

typedef struct conn_list {
    uint64_t id; /* the map's key bytes */
    member *head;
} conn_list;

typedef struct key_count {
    char *key; /* the map's key bytes (owned) */
    size_t len;
    size_t n;
} key_count;

static struct {
    mh_map by_conn;  /* conn id -> conn_list */
    mh_map counts;   /* K -> key_count: this process's members of K */
    member *all;     /* joined (or joining) memberships */
    member *leaving; /* leaves whose script did not run: retried at the next beat */
    bool rejoin;     /* a join did not run: every membership joins again at the next beat */
    bool refresh;    /* the subscription link was lost: subscribers get the list again */
    uint64_t gen;    /* the last membership's generation */
    bool timer_on;
    uv_timer_t timer;
} P;

static void member_free(member *m)
{
    if (!m)
        return;
    free(m->key);
    free(m->scope);
    free(m->json);
    free(m);
}

static int64_t ttl_ms(const mh_hub *h)
{
    return 3 * (int64_t)h->cfg->presence_heartbeat_ms;
}

static bool keeps_presence(const mh_hub *h, const mh_keynode *node)
{
    return node->is_channel && h->registry &&
           mh_registry_presence(h->registry, node->entry.context, node->entry.context_len);
}

/* The count of this process's members of K, +1 or -1; returns the new count. */
static size_t count_add(const char *key, size_t len, int delta)
{
    key_count *kc = mh_map_get(&P.counts, key, len);

    if (!kc) {
        if (delta < 0)
            return 0;
        kc = calloc(1, sizeof *kc);
        if (!kc || !(kc->key = malloc(len))) {
            free(kc);
            return 1; /* unknown: never "last", so pk:P keeps K (the sweep drops it) */
        }
        memcpy(kc->key, key, len);
        kc->len = len;
        if (mh_map_put(&P.counts, kc->key, len, kc)) {
            free(kc->key);
            free(kc);
            return 1;
        }
    }
    if (delta > 0)
        kc->n++;
    else if (kc->n)
        kc->n--;
    if (kc->n == 0) {
        mh_map_del(&P.counts, kc->key, kc->len);
        free(kc->key);
        free(kc);
        return 0;
    }
    return kc->n;
}

static void all_link(member *m)
{
    m->all_prev = NULL;
    m->all_next = P.all;
    if (P.all)
        P.all->all_prev = m;
    P.all = m;
}

static void all_unlink(member *m)
{
    if (m->all_prev)
        m->all_prev->all_next = m->all_next;
    else if (P.all == m)
        P.all = m->all_next;
    if (m->all_next)
        m->all_next->all_prev = m->all_prev;
    m->all_prev = m->all_next = NULL;
}

/* Takes 'm' out of its connection's list (it stays allocated). */
static void conn_unlink(member *m)
{
    conn_list *cl = mh_map_get(&P.by_conn, &m->conn_id, sizeof m->conn_id);
    member **pp;

    if (!cl)
        return;
    for (pp = &cl->head; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    m->next = NULL;
    if (!cl->head) {
        mh_map_del(&P.by_conn, &cl->id, sizeof cl->id);
        free(cl);
    }
}

static member *conn_find(uint64_t conn_id, const char *key, size_t len)
{
    conn_list *cl = mh_map_get(&P.by_conn, &conn_id, sizeof conn_id);

    for (member *m = cl ? cl->head : NULL; m; m = m->next)
        if (m->key_len == len && !memcmp(m->key, key, len))
            return m;
    return NULL;
}

/* ---- the scripts ---- */

static int eval(mh_hub *h, const char *script, int nkeys, mh_buf *keys, int nargs,
                const char *const *args, const size_t *arg_lens, mh_redis_reply_fn fn, void *arg)
{
    const char *argv[20];
    size_t lens[20];
    char nk[8];
    int argc = 0;

    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[argc] = "EVAL", lens[argc++] = 4;
    argv[argc] = script, lens[argc++] = strlen(script);
    argv[argc] = nk, lens[argc++] = strlen(nk);
    for (int i = 0; i < nkeys; i++) {
        if (keys[i].oom || !mh_buf_cstr(&keys[i]))
            return -1;
        argv[argc] = keys[i].data, lens[argc++] = keys[i].len;
    }
    for (int i = 0; i < nargs; i++)
        argv[argc] = args[i], lens[argc++] = arg_lens[i];
    return mh_redis_cmd(h->redis, fn, arg, argc, argv, lens);
}

static void name(mh_hub *h, mh_buf *b, const char *suffix, const char *rest, size_t len)
{
    mh_buf_init(b);
    mh_redis_name(h->redis, b, suffix, rest, len);
}

typedef struct join_req {
    uint64_t conn_id;
    uint64_t gen; /* a reply for an earlier membership of K (since left) is not this one's */
    size_t key_len;
    char key[]; /* K */
} join_req;

/* Over presence_max: the subscription ends with too_large (SPEC 11.2, 14). */
static void refuse(mh_hub *h, member *m)
{
    mh_conn *c = mh_map_get(&h->conns, &m->conn_id, sizeof m->conn_id);
    mh_keynode *node = m->node;
    mh_sub *sub = c ? mh_conn_find_sub(c, node) : NULL;
    char msg[256];
    mh_buf b;

    conn_unlink(m);
    all_unlink(m);
    count_add(m->key, m->key_len, -1);
    member_free(m);
    if (!c || !sub)
        return;
    snprintf(msg, sizeof msg,
             "channel '%.128s' has %d members on all hubs, the most its presence keeps",
             node->entry.context, h->cfg->presence_max);
    mh_info("conn %s: %s", c->name, msg);
    mh_metrics_reject(&h->metrics, "subscribe", "presence_max");
    mh_buf_init(&b);
    mh_out_ended(&b, true, &node->entry, "too_large", msg);
    mh_conn_send_buf(c, &b);
    mh_buf_free(&b);
    mh_conn_drop_sub(c, sub);
    mh_hold_free(sub->hold);
    mh_subs_remove(&h->subs, sub);
}

static void on_joined(mh_hub *h, redisReply *reply, void *arg)
{
    join_req *q = arg;
    member *m;

    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        mh_warn("presence: a join did not run (%s); retried at the next heartbeat",
                reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no reply");
        P.rejoin = true;
    } else if (reply->integer == 0) {
        h->metrics.presence_joins++;
    } else if (reply->integer == -1 && (m = conn_find(q->conn_id, q->key, q->key_len)) &&
               m->gen == q->gen) {
        refuse(h, m);
    }
    free(q);
}

static void send_join(mh_hub *h, member *m)
{
    const char *proc = h->conn_prefix;
    mh_buf keys[5], env;
    char max[24], ttl[24];
    join_req *q = malloc(sizeof *q + m->key_len);
    int rc = -1;

    if (!q) {
        P.rejoin = true;
        return;
    }
    q->conn_id = m->conn_id;
    q->gen = m->gen;
    q->key_len = m->key_len;
    memcpy(q->key, m->key, m->key_len);
    name(h, &keys[0], "p:", m->key, m->key_len);
    name(h, &keys[1], "pk:", proc, strlen(proc));
    name(h, &keys[2], "procs", NULL, 0);
    name(h, &keys[3], "events", NULL, 0);
    name(h, &keys[4], "phb:", proc, strlen(proc));
    mh_buf_init(&env);
    if (!m->quiet)
        mh_out_presence_envelope(&env, true, m->scope, m->scope_len, m->json, m->json_len);
    snprintf(max, sizeof max, "%d", h->cfg->presence_max);
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms(h));
    if (!env.oom && mh_buf_cstr(&env)) {
        const char *args[] = {m->conn, m->json, m->key, m->scope, env.data, max, proc, ttl};
        size_t lens[] = {strlen(m->conn), m->json_len, m->key_len,   m->scope_len,
                         env.len,         strlen(max), strlen(proc), strlen(ttl)};
        rc = eval(h, join_lua, 5, keys, 8, args, lens, on_joined, q);
    }
    if (rc) {
        free(q);
        P.rejoin = true;
    }
    for (int i = 0; i < 5; i++)
        mh_buf_free(&keys[i]);
    mh_buf_free(&env);
}

static void on_left(mh_hub *h, redisReply *reply, void *arg)
{
    member *m = arg;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
        h->metrics.presence_leaves++;
    if ((!reply || reply->type != REDIS_REPLY_INTEGER) &&
        !conn_find(m->conn_id, m->key, m->key_len)) { /* not joined again meanwhile */
        mh_warn("presence: a leave did not run (%s); retried at the next heartbeat",
                reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no reply");
        m->next = P.leaving;
        P.leaving = m;
        return;
    }
    member_free(m);
}

/* Runs the leave script for 'm', which no connection holds any more; 'm'
 * is freed when it ran, or kept for a retry. */
static void send_leave(mh_hub *h, member *m, bool last)
{
    const char *proc = h->conn_prefix;
    mh_buf keys[3], env;
    int rc = -1;

    name(h, &keys[0], "p:", m->key, m->key_len);
    name(h, &keys[1], "pk:", proc, strlen(proc));
    name(h, &keys[2], "events", NULL, 0);
    mh_buf_init(&env);
    if (!m->quiet)
        mh_out_presence_envelope(&env, false, m->scope, m->scope_len, m->json, m->json_len);
    if (!env.oom && mh_buf_cstr(&env)) {
        const char *args[] = {m->conn, env.data, m->key, last ? "1" : "0"};
        size_t lens[] = {strlen(m->conn), env.len, m->key_len, 1};
        rc = eval(h, leave_lua, 3, keys, 4, args, lens, on_left, m);
    }
    if (rc) {
        m->next = P.leaving;
        P.leaving = m;
    }
    for (int i = 0; i < 3; i++)
        mh_buf_free(&keys[i]);
    mh_buf_free(&env);
}

/* A membership no connection holds any more: its leave goes out. */
static void leave(mh_hub *h, member *m)
{
    all_unlink(m);
    send_leave(h, m, count_add(m->key, m->key_len, -1) == 0);
}

/* ---- the connection's side ---- */

void mh_presence_joined(mh_conn *c, mh_keynode *node)
{
    mh_hub *h = c->hub;
    conn_list *cl;
    member *m;
    mh_buf scope, json;

    if (!keeps_presence(h, node) || conn_find(c->id, node->key, node->key_len))
        return;
    /* A leave of this very member still waiting for Redis is dropped: run
     * after this join it would remove the member the join kept. */
    for (member **pp = &P.leaving; *pp; pp = &(*pp)->next)
        if ((*pp)->conn_id == c->id && (*pp)->key_len == node->key_len &&
            !memcmp((*pp)->key, node->key, node->key_len)) {
            member *gone = *pp;
            *pp = gone->next;
            member_free(gone);
            break;
        }
    m = calloc(1, sizeof *m);
    mh_buf_init(&scope);
    mh_buf_init(&json);
    mh_out_presence_scope(&scope, &node->entry);
    mh_out_member(&json, c->name, c->subject, c->info);
    if (!m || scope.oom || json.oom || !mh_buf_cstr(&scope) || !mh_buf_cstr(&json) ||
        !(m->key = malloc(node->key_len + 1)))
        goto oom;
    memcpy(m->key, node->key, node->key_len);
    m->key[node->key_len] = '\0';
    m->key_len = node->key_len;
    m->conn_id = c->id;
    m->gen = ++P.gen;
    snprintf(m->conn, sizeof m->conn, "%s", c->name);
    m->node = node;
    m->quiet = !mh_registry_join_leave(h->registry, node->entry.context, node->entry.context_len);
    m->scope_len = scope.len;
    m->scope = mh_buf_take(&scope);
    m->json_len = json.len;
    m->json = mh_buf_take(&json);
    cl = mh_map_get(&P.by_conn, &c->id, sizeof c->id);
    if (!cl) {
        cl = calloc(1, sizeof *cl);
        if (!cl)
            goto oom;
        cl->id = c->id;
        if (mh_map_put(&P.by_conn, &cl->id, sizeof cl->id, cl)) {
            free(cl);
            goto oom;
        }
    }
    m->next = cl->head;
    cl->head = m;
    all_link(m);
    count_add(m->key, m->key_len, +1);
    send_join(h, m);
    return;
oom:
    /* Never silent: this member is missing from presence until it subscribes again. */
    mh_error("conn %s: out of memory joining presence of %s", c->name, node->key);
    mh_buf_free(&scope);
    mh_buf_free(&json);
    member_free(m);
}

void mh_presence_left(mh_conn *c, const mh_keynode *node)
{
    member *m = conn_find(c->id, node->key, node->key_len);

    if (!m)
        return;
    conn_unlink(m);
    leave(c->hub, m);
}

void mh_presence_forget_conn(mh_conn *c)
{
    conn_list *cl = mh_map_del(&P.by_conn, &c->id, sizeof c->id);
    member *m, *next;

    if (!cl)
        return;
    for (m = cl->head; m; m = next) {
        next = m->next;
        m->next = NULL;
        leave(c->hub, m);
    }
    free(cl);
}

/* ---- heartbeat and sweep ---- */

static void rejoin_all(mh_hub *h)
{
    P.rejoin = false;
    for (member *m = P.all; m; m = m->all_next)
        send_join(h, m);
}

static void on_beat(mh_hub *h, redisReply *reply, void *arg)
{
    (void)arg;
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return; /* the link dropped: the next beat tells */
    if (reply->integer == 0 && P.all) {
        mh_warn("presence: this hub's members were swept (no heartbeat for %lld ms); joining "
                "them again",
                (long long)ttl_ms(h));
        rejoin_all(h);
    }
}

static void on_swept(mh_hub *h, redisReply *reply, void *arg)
{
    (void)arg;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        h->metrics.presence_swept += (uint64_t)reply->integer;
        mh_info("presence: %lld member(s) of hubs without a heartbeat left", reply->integer);
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        mh_warn("presence: sweep failed: %s", reply->str);
    }
}

static void on_timer(uv_timer_t *t)
{
    mh_hub *h = t->data;
    const char *proc = h->conn_prefix;
    char ttl[24];
    mh_buf keys[2];
    member *retry;

    if (!mh_redis_cmd_up(h->redis))
        return;
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms(h));
    name(h, &keys[0], "phb:", proc, strlen(proc));
    name(h, &keys[1], "procs", NULL, 0);
    {
        const char *args[] = {proc, ttl};
        size_t lens[] = {strlen(proc), strlen(ttl)};
        eval(h, beat_lua, 2, keys, 2, args, lens, on_beat, NULL);
    }
    mh_buf_free(&keys[0]);
    mh_buf_free(&keys[1]);
    /* Leaves that did not run: each is idempotent (HDEL decides). The
     * "last" flag is decided now, from what this process holds now. */
    retry = P.leaving;
    P.leaving = NULL;
    while (retry) {
        member *m = retry;
        retry = m->next;
        m->next = NULL;
        send_leave(h, m, !mh_map_get(&P.counts, m->key, m->key_len));
    }
    if (P.rejoin)
        rejoin_all(h);
    name(h, &keys[0], "procs", NULL, 0);
    name(h, &keys[1], "events", NULL, 0);
    {
        const char *args[] = {h->cfg->redis_prefix};
        size_t lens[] = {strlen(h->cfg->redis_prefix)};
        eval(h, sweep_lua, 2, keys, 1, args, lens, on_swept, NULL);
    }
    mh_buf_free(&keys[0]);
    mh_buf_free(&keys[1]);
}

void mh_presence_start(mh_hub *h)
{
    uint64_t every = (uint64_t)h->cfg->presence_heartbeat_ms;

    mh_map_init(&P.by_conn);
    mh_map_init(&P.counts);
    uv_timer_init(h->loop, &P.timer);
    P.timer.data = h;
    /* the first beat soon after start: a sweep of hubs that died meanwhile */
    uv_timer_start(&P.timer, on_timer, every < 500 ? every : 500, every);
    P.timer_on = true;
}

void mh_presence_stop(mh_hub *h)
{
    (void)h;
    if (!P.timer_on)
        return;
    P.timer_on = false;
    uv_timer_stop(&P.timer);
    uv_close((uv_handle_t *)&P.timer, NULL);
}

void mh_presence_free(void)
{
    size_t it = 0;
    void *v;

    while (mh_map_next(&P.by_conn, &it, NULL, NULL, &v)) {
        conn_list *cl = v;
        for (member *m = cl->head, *next; m; m = next) {
            next = m->next;
            member_free(m);
        }
        free(cl);
    }
    mh_map_free(&P.by_conn);
    it = 0;
    while (mh_map_next(&P.counts, &it, NULL, NULL, &v)) {
        key_count *kc = v;
        free(kc->key);
        free(kc);
    }
    mh_map_free(&P.counts);
    for (member *m = P.leaving, *next; m; m = next) {
        next = m->next;
        member_free(m);
    }
    memset(&P, 0, sizeof P);
}

/* ---- the query ---- */

typedef struct query {
    uint64_t conn_id;  /* 0: a refresh for every subscriber of the instance (no ref) */
    uint64_t start_ns; /* when the frame was handled: the debug line says how long it took */
    mh_entry scope;
    json_t *ref;
    bool live_failed; /* the live processes could not be read */
    bool orphan;      /* the HGETALL was not sent: on_live answers and frees */
    size_t nlive;
    char **live; /* processes with a heartbeat (owned) */
} query;

static void query_free(query *q)
{
    for (size_t i = 0; i < q->nlive; i++)
        free(q->live[i]);
    free(q->live);
    mh_entry_free(&q->scope);
    json_decref(q->ref);
    free(q);
}

static void query_unavailable(mh_hub *h, query *q)
{
    mh_conn *c = q->conn_id ? mh_map_get(&h->conns, &q->conn_id, sizeof q->conn_id) : NULL;

    if (!q->conn_id)
        mh_warn("presence of %s: not refreshed after the link loss: Redis could not be read",
                q->scope.context);
    if (c && !c->closing)
        mh_conn_send_error(c, "unavailable", "the hub cannot read presence from Redis now", q->ref,
                           2, &q->scope);
}

static void on_live(mh_hub *h, redisReply *reply, void *arg)
{
    query *q = arg;

    if (q->orphan) {
        query_unavailable(h, q);
        query_free(q);
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY ||
        !(q->live = calloc(reply->elements + 1, sizeof *q->live))) {
        q->live_failed = true;
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type == REDIS_REPLY_STRING && (q->live[q->nlive] = strndup(e->str, e->len)))
            q->nlive++;
    }
}

/* Is the member named 'field' ("<process><n>") of a live process? */
static bool alive(const query *q, const char *field, size_t len)
{
    const char *dash = len ? memrchr(field, '-', len) : NULL;
    size_t plen;

    if (!dash || (size_t)(dash - field) + 1 == len)
        return false;
    plen = (size_t)(dash - field) + 1;
    for (size_t i = plen; i < len; i++)
        if (field[i] < '0' || field[i] > '9')
            return false;
    for (size_t i = 0; i < q->nlive; i++)
        if (strlen(q->live[i]) == plen && !memcmp(q->live[i], field, plen))
            return true;
    return false;
}

/* The answer to one connection's query, or (conn_id 0) the same frame without
 * a ref to every subscriber of the instance: a refresh after a link loss. */
static void on_read(mh_hub *h, redisReply *reply, void *arg)
{
    query *q = arg;
    mh_conn *c = q->conn_id ? mh_map_get(&h->conns, &q->conn_id, sizeof q->conn_id) : NULL;
    mh_keynode *node = q->conn_id ? NULL : mh_subs_find(&h->subs, true, &q->scope);
    const char **texts = NULL;
    size_t *lens = NULL, n = 0;
    mh_buf b;

    if (q->conn_id ? !c || c->closing : !node)
        goto done;
    if (q->live_failed || !reply || reply->type != REDIS_REPLY_ARRAY) {
        query_unavailable(h, q);
        goto done;
    }
    texts = calloc(reply->elements / 2 + 1, sizeof *texts);
    lens = calloc(reply->elements / 2 + 1, sizeof *lens);
    if (!texts || !lens) {
        if (c)
            mh_conn_send_error(c, "internal", "out of memory", q->ref, 2, &q->scope);
        goto done;
    }
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || v->len == 0 ||
            !alive(q, k->str, k->len))
            continue;
        texts[n] = v->str;
        lens[n++] = v->len;
    }
    mh_buf_init(&b);
    mh_out_presence(&b, &q->scope, texts, lens, n, q->ref);
    if (c) {
        mh_conn_send_buf(c, &b);
        h->metrics.presence_queries++;
        mh_debug("conn %s: presence of %s: %zu member(s), %zu bytes, %.2f ms", c->name,
                 q->scope.context, n, b.len, (double)(uv_hrtime() - q->start_ns) / 1e6);
    } else {
        mh_msg *m = mh_msg_from_buf(&b);
        for (uint32_t i = 0; m && i < node->nsubs; i++)
            mh_conn_enqueue(node->subs[i]->owner, m);
        mh_msg_unref(m);
    }
    mh_buf_free(&b);
done:
    free(texts);
    free(lens);
    query_free(q);
}

/* Sends the two reads of instance 'node' for 'q' (which they own from then
 * on: the last reply frees it). Returns 0, or -1 when nothing was sent. */
static int read_members(mh_hub *h, const mh_keynode *node, query *q)
{
    mh_buf keys[1], phb, hash;
    int rc = -1;

    q->start_ns = uv_hrtime();
    name(h, &keys[0], "procs", NULL, 0);
    name(h, &phb, "phb:", NULL, 0);
    name(h, &hash, "p:", node->key, node->key_len);
    if (!phb.oom && mh_buf_cstr(&phb) && !hash.oom && mh_buf_cstr(&hash))
        rc = eval(h, live_lua, 1, keys, 1, (const char *const[]){phb.data}, (size_t[]){phb.len},
                  on_live, q);
    if (rc == 0) {
        const char *argv[] = {"HGETALL", hash.data};
        size_t lens[] = {7, hash.len};
        if (mh_redis_cmd(h->redis, on_read, q, 2, argv, lens))
            q->orphan = true; /* on_live answers */
    }
    mh_buf_free(&keys[0]);
    mh_buf_free(&phb);
    mh_buf_free(&hash);
    return rc;
}

void mh_presence_link_lost(mh_hub *h)
{
    (void)h;
    P.refresh = true;
}

void mh_presence_heal(mh_hub *h)
{
    size_t it = 0;
    void *v;

    if (!P.refresh)
        return;
    P.refresh = false;
    while (mh_map_next(&h->subs.channels, &it, NULL, NULL, &v)) {
        mh_keynode *node = v;
        query *q;
        if (!node->nsubs || !keeps_presence(h, node) ||
            !mh_registry_join_leave(h->registry, node->entry.context, node->entry.context_len))
            continue; /* without join/leave nobody keeps a list to refresh */
        q = calloc(1, sizeof *q);
        if (!q || mh_entry_copy(&q->scope, &node->entry)) {
            free(q);
            mh_error("presence of %s: out of memory: not refreshed after the link loss", node->key);
            continue;
        }
        if (read_members(h, node, q)) {
            query_free(q);
            P.refresh = true; /* the link is down again: the next heal tries */
            return;
        }
    }
}

void mh_presence_query(mh_conn *c, const mh_frame *f)
{
    mh_hub *h = c->hub;
    mh_keynode *node;
    const char *code;
    char msg[256];
    query *q;

    if (mh_auth_check(c, f, &code, msg, sizeof msg)) {
        mh_conn_send_error(c, code, msg, f->ref, 2, &f->scope);
        return;
    }
    if (!h->registry ||
        !mh_registry_presence(h->registry, f->scope.context, f->scope.context_len)) {
        snprintf(msg, sizeof msg, "channel '%.128s' keeps no presence", f->scope.context);
        mh_metrics_reject(&h->metrics, "presence", "not_found");
        mh_conn_send_error(c, "not_found", msg, f->ref, 2, &f->scope);
        return;
    }
    node = mh_subs_find(&h->subs, true, &f->scope);
    if (!node || !mh_conn_find_sub(c, node)) {
        mh_metrics_reject(&h->metrics, "presence", "not_subscribed");
        mh_conn_send_error(c, "forbidden",
                           "only subscribers of a channel may see its presence: subscribe first",
                           f->ref, 2, &f->scope);
        return;
    }
    q = calloc(1, sizeof *q);
    if (!q || mh_entry_copy(&q->scope, &f->scope)) {
        free(q);
        mh_conn_send_error(c, "internal", "out of memory", f->ref, 2, &f->scope);
        return;
    }
    q->conn_id = c->id;
    q->ref = f->ref ? json_incref(f->ref) : NULL;
    if (read_members(h, node, q)) {
        mh_conn_send_error(c, "unavailable", "the hub cannot reach Redis now", f->ref, 2,
                           &f->scope);
        query_free(q);
    }
}

/* ---- join/leave delivery ---- */

void mh_presence_event(mh_hub *h, const mh_envelope *env)
{
    mh_keynode *node = mh_subs_find(&h->subs, true, &env->channel);
    mh_buf json, info, b;
    mh_msg *m;
    size_t n = 0;

    /* A sweep's leaves (and a hub with an older registry) publish for
     * every channel: a channel without join/leave events drops them here. */
    if (!node || !h->registry ||
        !mh_registry_join_leave(h->registry, env->channel.context, env->channel.context_len))
        return;
    mh_buf_init(&json);
    mh_buf_init(&info);
    mh_buf_init(&b);
    if (env->info)
        mh_json_dump(&info, env->info);
    mh_out_member(&json, env->conn, env->subject, env->info ? mh_buf_cstr(&info) : NULL);
    mh_buf_free(&info);
    if (!json.oom && mh_buf_cstr(&json))
        mh_out_presence_event(&b, env->join, &env->channel, json.data, json.len);
    m = json.oom ? NULL : mh_msg_from_buf(&b);
    mh_buf_free(&json);
    mh_buf_free(&b);
    if (!m) {
        mh_error("presence %s: out of memory encoding a %s", node->key,
                 env->join ? "join" : "leave");
        return;
    }
    for (uint32_t i = 0; i < node->nsubs; i++) {
        mh_conn *c = node->subs[i]->owner;
        if (!strcmp(c->name, env->conn))
            continue; /* a connection is not told of its own join or leave */
        if (mh_conn_enqueue(c, m) == 0)
            n++;
    }
    h->metrics.deliveries += n;
    mh_msg_unref(m);
}
