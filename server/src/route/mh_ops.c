#include "mh_ops.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mh_auth.h"
#include "mh_inval.h"
#include "mh_json.h"
#include "mh_key.h"
#include "mh_log.h"
#include "mh_redis.h"

#define LAT_WINDOW 10   /* seconds the snapshot's latency quantiles cover */
#define SERIES 60       /* seconds of history in each snapshot */
#define EVENTS_MAX 32   /* link, heal and registry events kept per hub */
#define TOP_MAX 20      /* contexts and channels listed per hub */
#define SCOPES_MAX 64   /* traced scopes a hub follows */
#define HUB_TTL_MS 5000 /* a snapshot older than this: that hub is gone */
#define HUB_FORGET_MS 60000
#define REFUSED_PAUSE_MS 60000
#define TRACE_MAXLEN "1000"
#define TRACE_READ "300"

typedef struct ops_scope {
    char *member; /* as stored in Redis: {"context"|"channel": name[, "params": {...}]} */
    bool channel;
    bool any; /* no params named: every entry of the context / instance of the channel */
    mh_entry e;
} ops_scope;

typedef struct ops_record {
    char *scope, *json;
} ops_record;

/* One second of history, for the page's plots. */
typedef struct ops_sample {
    double t;
    uint64_t connections, subscriptions, events, deliveries;
    double p50, p99; /* over the LAT_WINDOW seconds before t; -1: none */
} ops_sample;

typedef struct ops_event {
    double t;
    char text[96];
} ops_event;

static struct {
    double started;
    /* the latency histogram as it was at each of the last seconds */
    uint64_t lat[LAT_WINDOW + 1][MH_LAT_BUCKETS + 1];
    unsigned lat_pos, lat_n;
    ops_scope scopes[SCOPES_MAX];
    size_t nscopes;
    char **hubs; /* every live hub's snapshot, from the last read */
    size_t nhubs;
    ops_record *records; /* the trace stream, newest first, from the last read */
    size_t nrecords;
    bool redis_read; /* the last read of the hubs answered */
    bool reading_hubs, reading_scopes, reading_records;
    double paused_until; /* Redis refused an ops command (an ACL?): leave it alone till then */
    uintptr_t changes;   /* traces started or stopped here: a read sent before is stale */
    ops_sample series[SERIES];
    unsigned nseries, series_pos;
    ops_event events[EVENTS_MAX];
    unsigned nevents, ev_pos;
    struct {
        bool init, subscribed, draining;
        uint64_t heals, retries, giveups, failovers, reg_refused, reconnects;
        char registry[72];
    } prev;
} ops;

static const double lat_bounds[MH_LAT_BUCKETS] = {0.5, 1,   2,   5,    10,   20,   50,
                                                  100, 200, 500, 1000, 2000, 5000, 10000};

/* What /readyz answers, and why not. */
static bool ready(mh_hub *h, const char **why)
{
    bool ok = !h->draining && mh_redis_ready(h->redis, why) && mh_auth_registry_ready(h, why);

    if (h->draining)
        *why = "draining";
    return ok;
}

void mh_ops_gauges(mh_hub *h, mh_gauges *g)
{
    const char *w;

    memset(g, 0, sizeof *g);
    g->connections = h->conns.count;
    g->subscriptions = h->subs.nsubs;
    g->keys = h->subs.nnodes;
    g->shapes = h->subs.nshapes;
    g->queued_bytes = h->queued_bytes;
    g->sockets = h->npeers;
    g->intake = h->nintake;
    g->http = h->nhttp;
    g->addresses = h->ips.count;
    g->ready = ready(h, &w);
    mh_redis_gauges(h->redis, g);
}

/* ---- what is counted locally: latency window, events ---- */

static void event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *fmt, ...)
{
    ops_event *ev = &ops.events[ops.ev_pos];
    va_list ap;

    ev->t = mh_now_ms();
    va_start(ap, fmt);
    vsnprintf(ev->text, sizeof ev->text, fmt, ap);
    va_end(ap);
    ops.ev_pos = (ops.ev_pos + 1) % EVENTS_MAX;
    if (ops.nevents < EVENTS_MAX)
        ops.nevents++;
}

/* Changes since the last second, as events an operator reads on a timeline
 * (counters say how many; this says when). */
static void note_events(mh_hub *h)
{
    const mh_metrics *m = &h->metrics;
    bool sub = mh_redis_subscribed(h->redis);

    if (!ops.prev.init) {
        ops.prev.init = true;
        event("hub started");
        if (h->registry_version[0])
            event("registry %s in force", h->registry_version);
    } else {
        if (sub != ops.prev.subscribed)
            event(sub ? "redis subscription up" : "redis subscription lost");
        else if (sub && m->redis_reconnects > ops.prev.reconnects)
            /* lost and back between two ticks */
            event("redis link lost and regained within a second");
        if (m->heals > ops.prev.heals)
            event("gap heal started (%llu so far)", (unsigned long long)m->heals);
        if (m->heal_retries > ops.prev.retries)
            event("heal rounds retried: %llu",
                  (unsigned long long)(m->heal_retries - ops.prev.retries));
        if (m->heal_giveups > ops.prev.giveups)
            event("heal gave up: what was unhealed was invalidated");
        if (m->redis_failovers > ops.prev.failovers)
            event("redis failover: links moved to the new master");
        if (m->registry_refused > ops.prev.reg_refused)
            event("a registry from Redis was refused");
        if (strcmp(h->registry_version, ops.prev.registry) && h->registry_version[0])
            event("registry %s in force", h->registry_version);
        if (h->draining && !ops.prev.draining)
            event("draining");
    }
    ops.prev.subscribed = sub;
    ops.prev.heals = m->heals;
    ops.prev.reconnects = m->redis_reconnects;
    ops.prev.retries = m->heal_retries;
    ops.prev.giveups = m->heal_giveups;
    ops.prev.failovers = m->redis_failovers;
    ops.prev.reg_refused = m->registry_refused;
    ops.prev.draining = h->draining;
    snprintf(ops.prev.registry, sizeof ops.prev.registry, "%s", h->registry_version);
}

static void note_latency(const mh_hub *h)
{
    memcpy(ops.lat[ops.lat_pos], h->metrics.lat_counts, sizeof ops.lat[0]);
    ops.lat_pos = (ops.lat_pos + 1) % (LAT_WINDOW + 1);
    if (ops.lat_n < LAT_WINDOW + 1)
        ops.lat_n++;
}

static uint64_t window_quantiles(const mh_hub *h, double *p50, double *p99);

static void note_sample(const mh_hub *h, double t)
{
    ops_sample *s = &ops.series[ops.series_pos];

    s->t = t;
    s->connections = h->conns.count;
    s->subscriptions = h->subs.nsubs;
    s->events = h->metrics.invalidations_in + h->metrics.messages_in;
    s->deliveries = h->metrics.deliveries;
    window_quantiles(h, &s->p50, &s->p99);
    ops.series_pos = (ops.series_pos + 1) % SERIES;
    if (ops.nseries < SERIES)
        ops.nseries++;
}

/* The last SERIES seconds, oldest first: times, gauges, counters (the page
 * takes differences for rates), latency quantiles. */
static void put_series(mh_buf *o)
{
    static const char *const names[] = {
        "t", "connections", "subscriptions", "events", "deliveries", "p50", "p99"};

    mh_buf_puts(o, ",\"series\":{");
    for (int f = 0; f < 7; f++) {
        mh_buf_printf(o, "%s\"%s\":[", f ? "," : "", names[f]);
        for (unsigned i = 0; i < ops.nseries; i++) {
            const ops_sample *s = &ops.series[(ops.series_pos + SERIES - ops.nseries + i) % SERIES];
            uint64_t v[] = {0, s->connections, s->subscriptions, s->events, s->deliveries};
            if (i)
                mh_buf_putc(o, ',');
            if (f == 0)
                mh_buf_printf(o, "%.0f", s->t);
            else if (f < 5)
                mh_buf_printf(o, "%llu", (unsigned long long)v[f]);
            else if ((f == 5 ? s->p50 : s->p99) < 0)
                mh_buf_puts(o, "null");
            else
                mh_buf_printf(o, "%.2f", f == 5 ? s->p50 : s->p99);
        }
        mh_buf_putc(o, ']');
    }
    mh_buf_putc(o, '}');
}

/* The q-quantile of a histogram, interpolated inside its bucket the way
 * Prometheus's histogram_quantile does; -1 when empty. */
static double quantile(const uint64_t *counts, uint64_t n, double q)
{
    double rank = q * (double)n, cum = 0;

    if (n == 0)
        return -1;
    for (int i = 0; i <= MH_LAT_BUCKETS; i++) {
        double lo = i ? lat_bounds[i - 1] : 0;
        if (counts[i] && cum + (double)counts[i] >= rank) {
            if (i == MH_LAT_BUCKETS)
                return lat_bounds[MH_LAT_BUCKETS - 1]; /* past the last bound: at least that */
            return lo + (lat_bounds[i] - lo) * (rank - cum) / (double)counts[i];
        }
        cum += (double)counts[i];
    }
    return lat_bounds[MH_LAT_BUCKETS - 1];
}

/* p50 and p99 of the last LAT_WINDOW seconds (-1: nothing measured); the count. */
static uint64_t window_quantiles(const mh_hub *h, double *p50, double *p99)
{
    uint64_t win[MH_LAT_BUCKETS + 1], n = 0;
    /* against the histogram of LAT_WINDOW seconds ago; younger: since the start */
    const uint64_t *old = ops.lat_n == LAT_WINDOW + 1 ? ops.lat[ops.lat_pos] : NULL;

    for (int i = 0; i <= MH_LAT_BUCKETS; i++) {
        win[i] = h->metrics.lat_counts[i] - (old ? old[i] : 0);
        n += win[i];
    }
    *p50 = quantile(win, n, 0.5);
    *p99 = quantile(win, n, 0.99);
    return n;
}

static void put_latency(mh_buf *o, const mh_hub *h)
{
    double p50, p99;
    uint64_t n = window_quantiles(h, &p50, &p99);

    mh_buf_printf(o, "\"latency\":{\"window_s\":%d,\"n\":%llu,", LAT_WINDOW, (unsigned long long)n);
    if (p50 < 0)
        mh_buf_puts(o, "\"p50\":null,\"p99\":null,");
    else
        mh_buf_printf(o, "\"p50\":%.2f,\"p99\":%.2f,", p50, p99);
    mh_buf_printf(o, "\"total_n\":%llu,\"mean\":%.2f}", (unsigned long long)h->metrics.lat_count,
                  h->metrics.lat_count ? h->metrics.lat_sum_ms / (double)h->metrics.lat_count : 0);
}

/* ---- subscriptions per context and per channel ---- */

typedef struct tally {
    const char *name;
    size_t len;
    uint64_t subs, keys;
} tally;

static void count_subs(mh_keynode *node, void *arg)
{
    *(uint64_t *)arg += node->nsubs;
}

static int by_subs(const void *a, const void *b)
{
    const tally *x = a, *y = b;
    return x->subs < y->subs ? 1 : x->subs > y->subs ? -1 : 0;
}

/* The TOP_MAX biggest, then how many there were in all. */
static void put_tallies(mh_buf *o, const char *field, const char *keys, tally *t, size_t n)
{
    qsort(t, n, sizeof *t, by_subs);
    mh_buf_printf(o, ",\"%s\":[", field);
    for (size_t i = 0; i < n && i < TOP_MAX; i++) {
        mh_buf_puts(o, i ? ",{\"name\":" : "{\"name\":");
        mh_json_put_string(o, t[i].name, t[i].len);
        mh_buf_printf(o, ",\"subs\":%llu,\"%s\":%llu}", (unsigned long long)t[i].subs, keys,
                      (unsigned long long)t[i].keys);
    }
    mh_buf_printf(o, "],\"n%s\":%zu", field, n);
}

static void put_subs(mh_buf *o, mh_hub *h)
{
    size_t it = 0, n = 0;
    void *v;
    tally *t = calloc(h->subs.contexts.count + 1, sizeof *t);
    mh_map names; /* channel name -> its tally index + 1 */

    if (!t) {
        o->oom = true;
        return;
    }
    while (mh_map_next(&h->subs.contexts, &it, NULL, NULL, &v)) {
        mh_ctx *c = v;
        t[n] = (tally){.name = c->name, .len = c->name_len, .keys = c->nnodes};
        mh_subs_each_node(c, count_subs, &t[n].subs);
        n++;
    }
    put_tallies(o, "contexts", "keys", t, n);
    free(t);
    /* channels: instances grouped by name */
    t = calloc(h->subs.channels.count + 1, sizeof *t);
    if (!t) {
        o->oom = true;
        return;
    }
    mh_map_init(&names);
    n = 0;
    it = 0;
    while (mh_map_next(&h->subs.channels, &it, NULL, NULL, &v)) {
        mh_keynode *node = v;
        size_t k =
            (size_t)(uintptr_t)mh_map_get(&names, node->entry.context, node->entry.context_len);
        if (!k) {
            if (mh_map_put(&names, node->entry.context, node->entry.context_len,
                           (void *)(uintptr_t)(n + 1))) {
                o->oom = true;
                break;
            }
            t[n] = (tally){.name = node->entry.context, .len = node->entry.context_len};
            k = ++n;
        }
        t[k - 1].subs += node->nsubs;
        t[k - 1].keys++;
    }
    mh_map_free(&names);
    put_tallies(o, "channels", "instances", t, n);
    free(t);
}

/* ---- the snapshot ---- */

void mh_ops_snapshot(mh_hub *h, mh_buf *o)
{
    const mh_metrics *m = &h->metrics;
    const char *why = "ready";
    mh_gauges g;

    if (!ops.started)
        ops.started = mh_now_ms();
    mh_ops_gauges(h, &g);
    (void)ready(h, &why);
    mh_buf_puts(o, "{\"hub\":");
    mh_json_put_string(o, h->cfg->hub_id, strlen(h->cfg->hub_id));
    mh_buf_printf(o, ",\"pid\":%d,\"t\":%.0f,\"started\":%.0f,\"ready\":%s,\"why\":", (int)getpid(),
                  mh_now_ms(), ops.started, g.ready ? "true" : "false");
    mh_json_put_string(o, why, strlen(why));
    mh_buf_printf(o,
                  ",\"redis\":{\"subscribed\":%s,\"command\":%s,\"reconnects\":%llu,"
                  "\"errors\":%llu,\"failovers\":%llu,\"heals\":%llu,\"heal_retries\":%llu,"
                  "\"heal_giveups\":%llu}",
                  g.redis_up ? "true" : "false", mh_redis_cmd_up(h->redis) ? "true" : "false",
                  (unsigned long long)m->redis_reconnects, (unsigned long long)m->redis_errors,
                  (unsigned long long)m->redis_failovers, (unsigned long long)m->heals,
                  (unsigned long long)m->heal_retries, (unsigned long long)m->heal_giveups);
    if (h->cfg->registry_from_redis) {
        mh_buf_puts(o, ",\"registry\":{\"source\":\"redis\",\"version\":");
        if (h->registry_version[0])
            mh_json_put_string(o, h->registry_version, strlen(h->registry_version));
        else
            mh_buf_puts(o, "null");
        mh_buf_putc(o, '}');
    } else if (h->registry) {
        mh_buf_puts(o, ",\"registry\":{\"source\":\"file\",\"version\":");
        mh_json_put_string(o, h->cfg->registry, strlen(h->cfg->registry));
        mh_buf_putc(o, '}');
    } else {
        mh_buf_puts(o, ",\"registry\":{\"source\":\"none\",\"version\":null}");
    }
    mh_buf_printf(o,
                  ",\"connections\":%llu,\"sockets\":%llu,\"subscriptions\":%llu,\"keys\":%llu,"
                  "\"queued_bytes\":%llu,\"connections_total\":%llu,\"invalidations\":%llu,"
                  "\"messages\":%llu,\"deliveries\":%llu,\"frames_out\":%llu,\"bytes_out\":%llu,",
                  (unsigned long long)g.connections, (unsigned long long)g.sockets,
                  (unsigned long long)g.subscriptions, (unsigned long long)g.keys,
                  (unsigned long long)g.queued_bytes, (unsigned long long)m->connections_total,
                  (unsigned long long)m->invalidations_in, (unsigned long long)m->messages_in,
                  (unsigned long long)m->deliveries, (unsigned long long)m->frames_out,
                  (unsigned long long)m->bytes_out);
    put_latency(o, h);
    mh_buf_printf(o,
                  ",\"closes\":{\"slow_consumer\":%llu,\"oversized\":%llu,\"drain\":%llu,"
                  "\"ping_timeout\":%llu},\"rejections\":[",
                  (unsigned long long)m->slow_consumer_closes,
                  (unsigned long long)m->oversized_closes, (unsigned long long)m->drain_closes,
                  (unsigned long long)m->ping_timeouts);
    for (int i = 0; i < MH_REJECT_KINDS && m->rejects[i].stage; i++)
        mh_buf_printf(o, "%s{\"stage\":\"%s\",\"reason\":\"%s\",\"n\":%llu}", i ? "," : "",
                      m->rejects[i].stage, m->rejects[i].reason,
                      (unsigned long long)m->rejects[i].n);
    mh_buf_putc(o, ']');
    put_subs(o, h);
    put_series(o);
    mh_buf_printf(o, ",\"tracing\":%zu,\"events\":[", ops.nscopes);
    for (unsigned i = 0; i < ops.nevents; i++) {
        /* oldest first */
        const ops_event *ev = &ops.events[(ops.ev_pos + EVENTS_MAX - ops.nevents + i) % EVENTS_MAX];
        mh_buf_printf(o, "%s{\"t\":%.0f,\"text\":", i ? "," : "", ev->t);
        mh_json_put_string(o, ev->text, strlen(ev->text));
        mh_buf_putc(o, '}');
    }
    mh_buf_puts(o, "]}");
}

/* ---- Redis: snapshots out, every hub's back ---- */

/*
 * The operator page is diagnostics: a Redis that refuses its commands (an
 * ACL without ZADD or XADD, say) must not cost a warning every second.
 * Returns true when 'r' is an error, and pauses every ops command for a while.
 */
static bool refused(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ERROR)
        return false;
    if (mh_now_ms() >= ops.paused_until)
        mh_warn("ops: Redis refused a command of the operator page (%s): no snapshots or traces "
                "through Redis for %d s",
                r->str, REFUSED_PAUSE_MS / 1000);
    ops.paused_until = mh_now_ms() + REFUSED_PAUSE_MS;
    return true;
}

static void on_written(mh_hub *h, redisReply *r, void *arg)
{
    (void)h;
    (void)arg;
    refused(r);
}

/* A command of at most 10 NUL-terminated arguments on the command link. */
static int cmd(mh_hub *h, mh_redis_reply_fn fn, void *arg, int argc, const char **argv)
{
    size_t lens[10];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return mh_redis_cmd(h->redis, fn, arg, argc, argv, lens);
}

static void name(mh_hub *h, mh_buf *b, const char *suffix, const char *rest)
{
    mh_buf_reset(b);
    mh_redis_name(h->redis, b, suffix, rest, rest ? strlen(rest) : 0);
}

/* What other hubs wrote is put into our answers as it is: only when it is a
 * JSON object (a stray key must not break the page's JSON). */
static bool json_object_text(const char *text, size_t len)
{
    mh_err err;
    json_t *v;
    bool ok;

    if (len < 2 || text[0] != '{')
        return false;
    v = mh_json_parse(text, len, &err);
    ok = json_is_object(v);
    json_decref(v);
    return ok;
}

static void free_hubs(void)
{
    for (size_t i = 0; i < ops.nhubs; i++)
        free(ops.hubs[i]);
    free(ops.hubs);
    ops.hubs = NULL;
    ops.nhubs = 0;
}

static void on_snapshots(mh_hub *h, redisReply *r, void *arg)
{
    (void)h;
    (void)arg;
    ops.reading_hubs = false;
    if (refused(r) || !r || r->type != REDIS_REPLY_ARRAY) {
        ops.redis_read = false;
        return;
    }
    free_hubs();
    ops.hubs = calloc(r->elements + 1, sizeof *ops.hubs);
    if (!ops.hubs)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        /* nil: expired since it was named; written by someone else: skipped */
        if (e->type == REDIS_REPLY_STRING && json_object_text(e->str, e->len) &&
            (ops.hubs[ops.nhubs] = strndup(e->str, e->len)))
            ops.nhubs++;
    }
    ops.redis_read = true;
}

static void on_hub_names(mh_hub *h, redisReply *r, void *arg)
{
    const char **argv;
    mh_buf *keys;
    size_t n;

    (void)arg;
    if (refused(r) || !r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        ops.reading_hubs = false;
        ops.redis_read = r && r->type == REDIS_REPLY_ARRAY;
        if (ops.redis_read)
            free_hubs();
        return;
    }
    n = r->elements < 1000 ? r->elements : 1000;
    argv = calloc(n + 1, sizeof *argv);
    keys = calloc(n, sizeof *keys);
    if (!argv || !keys)
        goto fail;
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        mh_buf_init(&keys[i]);
        mh_redis_name(h->redis, &keys[i], "ops:hub:", e->type == REDIS_REPLY_STRING ? e->str : "",
                      e->type == REDIS_REPLY_STRING ? e->len : 0);
        argv[i + 1] = mh_buf_cstr(&keys[i]);
        if (!argv[i + 1])
            goto fail;
    }
    {
        size_t *lens = calloc(n + 1, sizeof *lens);
        if (!lens)
            goto fail;
        for (size_t i = 0; i <= n; i++)
            lens[i] = strlen(argv[i]);
        if (mh_redis_cmd(h->redis, on_snapshots, NULL, (int)n + 1, argv, lens))
            ops.reading_hubs = false;
        free(lens);
    }
    for (size_t i = 0; i < n; i++)
        mh_buf_free(&keys[i]);
    free(keys);
    free(argv);
    return;
fail:
    ops.reading_hubs = false;
    if (keys)
        for (size_t i = 0; i < n; i++)
            mh_buf_free(&keys[i]);
    free(keys);
    free(argv);
}

/* ---- traces ---- */

static void scope_free(ops_scope *s)
{
    free(s->member);
    mh_entry_free(&s->e);
    memset(s, 0, sizeof *s);
}

/*
 * Parses a traced scope: {"context"|"channel": NAME[, "params": {...}]}.
 * Returns 0 and fills 's' (its member: the normalized JSON), or -1 with the
 * reason in 'why'.
 */
static int scope_parse(ops_scope *s, bool channel, const char *nm, size_t nlen,
                       const json_t *params, const char **why)
{
    mh_err err;
    mh_buf b;

    memset(s, 0, sizeof *s);
    s->channel = channel;
    s->any = params == NULL;
    if (mh_entry_set_context(&s->e, nm, nlen, &err)) {
        *why = "bad name";
        goto fail;
    }
    if (params &&
        (!json_is_object(params) || mh_entry_params_from_json(&s->e, params, "params", &err))) {
        *why = "params must be an object of string, number, boolean or null values";
        goto fail;
    }
    s->e.scoped = true;
    mh_buf_init(&b);
    mh_buf_puts(&b, channel ? "{\"channel\":" : "{\"context\":");
    mh_json_put_string(&b, s->e.context, s->e.context_len);
    if (!s->any) {
        mh_buf_puts(&b, ",\"params\":");
        mh_params_dump(&b, s->e.params, s->e.nparams);
    }
    mh_buf_putc(&b, '}');
    s->member = b.oom ? NULL : mh_buf_take(&b);
    if (!s->member) {
        mh_buf_free(&b);
        *why = "out of memory";
        goto fail;
    }
    return 0;
fail:
    mh_entry_free(&s->e);
    return -1;
}

static int scope_from_member(ops_scope *s, const char *text, size_t len)
{
    mh_err err;
    json_t *root = mh_json_parse(text, len, &err), *nm;
    const char *why;
    bool channel;
    int rc = -1;

    if (!json_is_object(root))
        goto done;
    channel = json_object_get(root, "channel") != NULL;
    nm = json_object_get(root, channel ? "channel" : "context");
    if (!json_is_string(nm))
        goto done;
    rc = scope_parse(s, channel, json_string_value(nm), json_string_length(nm),
                     json_object_get(root, "params"), &why);
done:
    json_decref(root);
    return rc;
}

static bool have_scope(const char *member)
{
    for (size_t i = 0; i < ops.nscopes; i++)
        if (!strcmp(ops.scopes[i].member, member))
            return true;
    return false;
}

static void on_scopes(mh_hub *h, redisReply *r, void *arg)
{
    ops.reading_scopes = false;
    if (refused(r) || !r || r->type != REDIS_REPLY_ARRAY)
        return; /* Redis away: keep tracing what we knew */
    if ((uintptr_t)arg != ops.changes)
        return; /* sent before a start or stop here: the next read has it */
    for (size_t i = 0; i < ops.nscopes; i++)
        scope_free(&ops.scopes[i]);
    ops.nscopes = 0;
    for (size_t i = 0; i < r->elements && ops.nscopes < SCOPES_MAX; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (scope_from_member(&ops.scopes[ops.nscopes], e->str, e->len)) {
            mh_debug("ops: ignoring traced scope %.*s", (int)e->len, e->str);
            continue;
        }
        if (have_scope(ops.scopes[ops.nscopes].member)) {
            scope_free(&ops.scopes[ops.nscopes]);
            continue;
        }
        ops.nscopes++;
    }
    h->ops_tracing = ops.nscopes > 0;
}

static void free_records(void)
{
    for (size_t i = 0; i < ops.nrecords; i++) {
        free(ops.records[i].scope);
        free(ops.records[i].json);
    }
    free(ops.records);
    ops.records = NULL;
    ops.nrecords = 0;
}

static void on_records(mh_hub *h, redisReply *r, void *arg)
{
    (void)h;
    (void)arg;
    ops.reading_records = false;
    if (refused(r) || !r || r->type != REDIS_REPLY_ARRAY)
        return;
    free_records();
    ops.records = calloc(r->elements + 1, sizeof *ops.records);
    if (!ops.records)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *ent = r->element[i], *f;
        ops_record rec = {0};
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 2 ||
            ent->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        f = ent->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            const redisReply *fn = f->element[k], *fv = f->element[k + 1];
            if (fn->type != REDIS_REPLY_STRING || fv->type != REDIS_REPLY_STRING || fn->len != 1)
                continue;
            if (fn->str[0] == 's' && !rec.scope)
                rec.scope = strndup(fv->str, fv->len);
            else if (fn->str[0] == 'r' && !rec.json && json_object_text(fv->str, fv->len))
                rec.json = strndup(fv->str, fv->len);
        }
        if (rec.scope && rec.json) {
            ops.records[ops.nrecords++] = rec;
        } else {
            free(rec.scope);
            free(rec.json);
        }
    }
}

static void append_record(mh_hub *h, const ops_scope *s, mh_buf *rec)
{
    mh_buf key;

    if (mh_now_ms() < ops.paused_until)
        return;
    mh_buf_init(&key);
    name(h, &key, "ops:trace", NULL);
    if (mh_buf_cstr(&key) && mh_buf_cstr(rec)) {
        const char *argv[] = {"XADD", key.data, "MAXLEN",  "~", TRACE_MAXLEN,
                              "*",    "s",      s->member, "r", rec->data};
        if (cmd(h, on_written, NULL, 10, argv))
            mh_debug("ops: trace record dropped (Redis down)");
    }
    mh_buf_free(&key);
}

static void record_head(mh_hub *h, mh_buf *b, const ops_scope *s, const char *kind)
{
    mh_buf_printf(b, "{\"t\":%.0f,\"hub\":", mh_now_ms());
    mh_json_put_string(b, h->cfg->hub_id, strlen(h->cfg->hub_id));
    mh_buf_puts(b, ",\"scope\":");
    mh_buf_puts(b, s->member); /* normalized JSON */
    mh_buf_printf(b, ",\"kind\":\"%s\"", kind);
}

void mh_ops_trace_entry(mh_hub *h, const mh_entry *e, const char *version, size_t sent, double ts)
{
    mh_buf b;

    mh_buf_init(&b);
    for (size_t i = 0; i < ops.nscopes; i++) {
        const ops_scope *s = &ops.scopes[i];
        if (s->channel || s->e.context_len != e->context_len ||
            memcmp(s->e.context, e->context, e->context_len) || (!s->any && !mh_match(e, &s->e)))
            continue;
        mh_buf_reset(&b);
        record_head(h, &b, s, "invalidate");
        mh_buf_puts(&b, ",\"entry\":");
        mh_entry_dump(&b, e);
        mh_buf_puts(&b, ",\"version\":");
        if (version)
            mh_json_put_string(&b, version, strlen(version));
        else
            mh_buf_puts(&b, "null");
        mh_buf_printf(&b, ",\"receivers\":%zu", sent);
        if (ts > 0)
            mh_buf_printf(&b, ",\"ts\":%.0f", ts);
        mh_buf_putc(&b, '}');
        append_record(h, s, &b);
    }
    mh_buf_free(&b);
}

static bool same_params(const mh_entry *a, const mh_entry *b)
{
    if (a->nparams != b->nparams)
        return false;
    for (size_t i = 0; i < a->nparams; i++)
        if (a->params[i].name_len != b->params[i].name_len ||
            a->params[i].value_len != b->params[i].value_len ||
            memcmp(a->params[i].name, b->params[i].name, a->params[i].name_len) ||
            memcmp(a->params[i].value, b->params[i].value, a->params[i].value_len))
            return false;
    return true;
}

void mh_ops_trace_message(mh_hub *h, const mh_envelope *env, size_t sent, bool held)
{
    const mh_entry *ch = &env->channel;
    mh_buf b;

    mh_buf_init(&b);
    for (size_t i = 0; i < ops.nscopes; i++) {
        const ops_scope *s = &ops.scopes[i];
        if (!s->channel || s->e.context_len != ch->context_len ||
            memcmp(s->e.context, ch->context, ch->context_len) ||
            (!s->any && !same_params(&s->e, ch)))
            continue;
        mh_buf_reset(&b);
        record_head(h, &b, s, "message");
        mh_buf_puts(&b, ",\"channel\":");
        mh_json_put_string(&b, ch->context, ch->context_len);
        mh_buf_puts(&b, ",\"params\":");
        mh_params_dump(&b, ch->params, ch->nparams);
        mh_buf_puts(&b, ",\"type\":");
        mh_json_put_string(&b, env->type ? env->type : "message",
                           strlen(env->type ? env->type : "message"));
        mh_buf_puts(&b, ",\"version\":");
        {
            char v[80];
            snprintf(v, sizeof v, "%s:%llu", env->epoch ? env->epoch : "",
                     (unsigned long long)env->seq);
            mh_json_put_string(&b, v, strlen(v));
        }
        mh_buf_printf(&b, ",\"receivers\":%zu,\"held\":%s", sent, held ? "true" : "false");
        if (env->has_ts)
            mh_buf_printf(&b, ",\"ts\":%.0f", env->ts);
        mh_buf_putc(&b, '}');
        append_record(h, s, &b);
    }
    mh_buf_free(&b);
}

int mh_ops_trace_start(mh_hub *h, bool channel, const char *nm, const char *params, mh_buf *out)
{
    ops_scope s;
    json_t *p = NULL;
    const char *why = NULL;
    mh_err err;
    mh_buf key;
    char score[32], ttl[16], now[32];
    int status = 200;

    if (!nm || !nm[0]) {
        why = channel ? "name the channel" : "name the context";
        goto bad;
    }
    if (params && params[0]) {
        p = mh_json_parse(params, strlen(params), &err);
        if (!p) {
            why = "params is not JSON";
            goto bad;
        }
    }
    if (scope_parse(&s, channel, nm, strlen(nm), p, &why))
        goto bad;
    json_decref(p);
    p = NULL;
    if (!have_scope(s.member) && ops.nscopes >= SCOPES_MAX) {
        /* every hub follows at most SCOPES_MAX: more would be traced nowhere */
        scope_free(&s);
        mh_buf_printf(out, "{\"error\":\"%d scopes are traced already\"}", SCOPES_MAX);
        return 429;
    }
    if (!mh_redis_cmd_up(h->redis)) {
        scope_free(&s);
        mh_buf_puts(out, "{\"error\":\"Redis is not reachable: traces are kept there\"}");
        return 503;
    }
    mh_buf_init(&key);
    name(h, &key, "ops:traces", NULL);
    snprintf(score, sizeof score, "%.0f", mh_now_ms() + MH_OPS_TRACE_TTL_MS);
    snprintf(now, sizeof now, "(%.0f", mh_now_ms());
    snprintf(ttl, sizeof ttl, "%d", MH_OPS_TRACE_TTL_MS);
    if (mh_buf_cstr(&key)) {
        const char *zadd[] = {"ZADD", key.data, score, s.member};
        const char *expire[] = {"PEXPIRE", key.data, ttl};
        const char *trim[] = {"ZREMRANGEBYSCORE", key.data, "-inf", now};
        if (cmd(h, on_written, NULL, 4, zadd) || cmd(h, on_written, NULL, 3, expire) ||
            cmd(h, on_written, NULL, 4, trim))
            status = 503;
    } else {
        status = 503;
    }
    mh_buf_free(&key);
    if (status != 200) {
        scope_free(&s);
        mh_buf_puts(out, "{\"error\":\"Redis is not reachable: traces are kept there\"}");
        return status;
    }
    mh_buf_puts(out, "{\"scope\":");
    mh_json_put_string(out, s.member, strlen(s.member));
    mh_buf_printf(out, ",\"ttl_ms\":%d}", MH_OPS_TRACE_TTL_MS);
    /* this hub traces at once; the others within a second (their tick) */
    ops.changes++;
    if (!have_scope(s.member) && ops.nscopes < SCOPES_MAX) {
        ops.scopes[ops.nscopes++] = s;
        h->ops_tracing = true;
    } else {
        scope_free(&s);
    }
    return 200;
bad:
    json_decref(p);
    mh_buf_puts(out, "{\"error\":");
    mh_json_put_string(out, why, strlen(why));
    mh_buf_putc(out, '}');
    return 400;
}

int mh_ops_trace_stop(mh_hub *h, const char *scope, mh_buf *out)
{
    bool found = false;
    mh_buf key;
    int status = 200;

    if (!scope || !scope[0]) {
        mh_buf_puts(out, "{\"error\":\"name the scope\"}");
        return 400;
    }
    mh_buf_init(&key);
    name(h, &key, "ops:traces", NULL);
    if (mh_buf_cstr(&key)) {
        const char *zrem[] = {"ZREM", key.data, scope};
        if (cmd(h, on_written, NULL, 3, zrem))
            status = 503;
    } else {
        status = 503;
    }
    mh_buf_free(&key);
    if (status != 200) {
        mh_buf_puts(out, "{\"error\":\"Redis is not reachable: traces are kept there\"}");
        return status;
    }
    /* this hub stops at once; the others at their next read */
    ops.changes++;
    for (size_t i = 0; i < ops.nscopes; i++) {
        if (strcmp(ops.scopes[i].member, scope))
            continue;
        scope_free(&ops.scopes[i]);
        ops.scopes[i] = ops.scopes[--ops.nscopes];
        memset(&ops.scopes[ops.nscopes], 0, sizeof ops.scopes[0]);
        found = true;
        break;
    }
    h->ops_tracing = ops.nscopes > 0;
    mh_buf_printf(out, "{\"stopped\":%s}", found ? "true" : "false");
    return 200;
}

void mh_ops_render_trace(mh_hub *h, const char *scope, mh_buf *o)
{
    size_t n = 0;

    (void)h;
    mh_buf_puts(o, "{\"scopes\":[");
    for (size_t i = 0; i < ops.nscopes; i++) {
        if (i)
            mh_buf_putc(o, ',');
        mh_buf_puts(o, ops.scopes[i].member);
    }
    mh_buf_puts(o, "],\"records\":[");
    for (size_t i = 0; i < ops.nrecords; i++) {
        if (scope && strcmp(scope, ops.records[i].scope))
            continue;
        if (n++)
            mh_buf_putc(o, ',');
        mh_buf_puts(o, ops.records[i].json);
    }
    mh_buf_puts(o, "]}");
}

void mh_ops_render_hubs(mh_hub *h, mh_buf *o)
{
    size_t idlen = strlen(h->cfg->hub_id);

    mh_buf_puts(o, "{\"self\":");
    mh_json_put_string(o, h->cfg->hub_id, idlen);
    mh_buf_printf(o, ",\"t\":%.0f,\"redis\":%s,\"hubs\":[", mh_now_ms(),
                  ops.redis_read ? "true" : "false");
    /* this hub's own entry fresh; the others as Redis had them (none when
     * the last read failed: stale numbers would pass for live ones) */
    mh_ops_snapshot(h, o);
    for (size_t i = 0; ops.redis_read && i < ops.nhubs; i++) {
        const char *s = ops.hubs[i];
        /* {"hub":"<id>",... is how every snapshot begins */
        if (!strncmp(s, "{\"hub\":\"", 8) && !strncmp(s + 8, h->cfg->hub_id, idlen) &&
            s[8 + idlen] == '"') {
            continue;
        }
        mh_buf_putc(o, ',');
        mh_buf_puts(o, s);
    }
    mh_buf_puts(o, "]}");
}

/* ---- the tick ---- */

void mh_ops_tick(mh_hub *h)
{
    mh_buf snap, key, idx;
    char now[32], px[16], forget[32], live[32];
    double t = mh_now_ms();

    if (!ops.started)
        ops.started = t;
    note_latency(h);
    note_sample(h, t);
    note_events(h);
    if (!mh_redis_cmd_up(h->redis) || t < ops.paused_until) {
        ops.redis_read = false;
        return;
    }
    mh_buf_init(&snap);
    mh_buf_init(&key);
    mh_buf_init(&idx);
    mh_ops_snapshot(h, &snap);
    name(h, &key, "ops:hub:", h->cfg->hub_id);
    name(h, &idx, "ops:hubs", NULL);
    snprintf(now, sizeof now, "%.0f", t);
    snprintf(px, sizeof px, "%d", HUB_TTL_MS);
    snprintf(forget, sizeof forget, "(%.0f", t - HUB_FORGET_MS);
    snprintf(live, sizeof live, "%.0f", t - HUB_TTL_MS);
    if (mh_buf_cstr(&snap) && mh_buf_cstr(&key) && mh_buf_cstr(&idx)) {
        const char *set[] = {"SET", key.data, snap.data, "PX", px};
        const char *zadd[] = {"ZADD", idx.data, now, h->cfg->hub_id};
        const char *trim[] = {"ZREMRANGEBYSCORE", idx.data, "-inf", forget};
        const char *names[] = {"ZRANGEBYSCORE", idx.data, live, "+inf"};
        cmd(h, on_written, NULL, 5, set);
        cmd(h, on_written, NULL, 4, zadd);
        cmd(h, on_written, NULL, 4, trim);
        if (!ops.reading_hubs && !cmd(h, on_hub_names, NULL, 4, names))
            ops.reading_hubs = true;
    }
    name(h, &key, "ops:traces", NULL);
    if (mh_buf_cstr(&key) && !ops.reading_scopes) {
        const char *scopes[] = {"ZRANGEBYSCORE", key.data, now, "+inf"};
        if (!cmd(h, on_scopes, (void *)ops.changes, 4, scopes))
            ops.reading_scopes = true;
    }
    name(h, &key, "ops:trace", NULL);
    if (ops.nscopes && mh_buf_cstr(&key) && !ops.reading_records) {
        const char *read[] = {"XREVRANGE", key.data, "+", "-", "COUNT", TRACE_READ};
        if (!cmd(h, on_records, NULL, 6, read))
            ops.reading_records = true;
    }
    mh_buf_free(&snap);
    mh_buf_free(&key);
    mh_buf_free(&idx);
}

void mh_ops_free(void)
{
    for (size_t i = 0; i < ops.nscopes; i++)
        scope_free(&ops.scopes[i]);
    ops.nscopes = 0;
    free_hubs();
    free_records();
}
