/*
 * mh-publish — PUBLISHes templated events to a Redis channel at a steady rate.
 *
 * Event i (from 0) is due at start + i/rate. The loop sleeps until the next
 * due time; when it is behind (Redis or the machine was slow) it sends the
 * owed events back to back, --pipeline of them per round trip, so the rate
 * holds on average. The report says what rate was achieved and how far
 * behind schedule it ever was.
 *
 * Placeholders in --template: {ts} the Unix time in milliseconds with a
 * microsecond fraction (what mh-loadgen measures latency against), {n} the
 * event number from 1, {k} n modulo --keys.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define DEFAULT_TEMPLATE                                                                           \
    "{\"v\":1,\"kind\":\"invalidate\",\"ts\":{ts},\"invalidate\":[\"bench\"],"                     \
    "\"versions\":{\"bench\":\"b:{n}\"}}"
#define MAX_SEGS 256

enum seg_kind { SEG_TEXT, SEG_TS, SEG_N, SEG_K };

typedef struct seg {
    int kind;
    const char *text; /* SEG_TEXT: borrowed from the template */
    size_t len;
} seg;

typedef struct config {
    const char *redis_url, *channel, *tpl;
    double rate, duration;
    long count, keys, pipeline;
    int json;
    /* from the URL */
    char host[256], password[256], user[256];
    int port, db;
} config;

typedef struct result {
    uint64_t sent, errors, receivers_sum;
    long long receivers_min, receivers_max;
    int64_t max_lag_us, elapsed_us;
    int link_lost;
} result;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* Splits the template once, so rendering an event is a few memcpy. */
static int split_template(const char *t, seg *segs, int max)
{
    int n = 0;

    while (*t) {
        static const struct {
            const char *name;
            int kind;
        } ph[] = {{"{ts}", SEG_TS}, {"{n}", SEG_N}, {"{k}", SEG_K}};
        size_t lit = 0;
        int kind = -1;
        size_t plen = 0;

        for (; t[lit]; lit++) {
            for (size_t j = 0; j < sizeof(ph) / sizeof(ph[0]); j++) {
                size_t l = strlen(ph[j].name);
                if (strncmp(t + lit, ph[j].name, l) == 0) {
                    kind = ph[j].kind;
                    plen = l;
                    break;
                }
            }
            if (kind >= 0)
                break;
        }
        if (n + 2 > max)
            return -1;
        if (lit)
            segs[n++] = (seg){SEG_TEXT, t, lit};
        t += lit;
        if (kind >= 0) {
            segs[n++] = (seg){kind, NULL, 0};
            t += plen;
        }
    }
    return n;
}

static size_t render(const seg *segs, int nsegs, uint64_t n, long keys, char *out)
{
    size_t len = 0;

    for (int i = 0; i < nsegs; i++) {
        const seg *s = &segs[i];

        switch (s->kind) {
        case SEG_TEXT:
            memcpy(out + len, s->text, s->len);
            len += s->len;
            break;
        case SEG_TS: {
            int64_t us = mh_bench_real_us();
            len +=
                (size_t)sprintf(out + len, "%lld.%03d", (long long)(us / 1000), (int)(us % 1000));
            break;
        }
        case SEG_N:
            len += (size_t)sprintf(out + len, "%llu", (unsigned long long)n);
            break;
        default:
            len += (size_t)sprintf(out + len, "%llu", (unsigned long long)(n % (uint64_t)keys));
            break;
        }
    }
    return len;
}

/* redis://[[user]:password@]host[:port][/db] */
static int parse_redis_url(config *cfg, const char *url)
{
    const char *p, *at, *slash, *colon, *hend;
    size_t n;

    if (strncmp(url, "redis://", 8) != 0)
        goto bad;
    p = url + 8;
    slash = strchr(p, '/');
    hend = slash ? slash : p + strlen(p);
    at = memchr(p, '@', (size_t)(hend - p));
    if (at) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        const char *pw = c ? c + 1 : p;

        if (c && (size_t)(c - p) < sizeof(cfg->user))
            snprintf(cfg->user, sizeof(cfg->user), "%.*s", (int)(c - p), p);
        n = (size_t)(at - pw);
        if (n >= sizeof(cfg->password))
            goto bad;
        snprintf(cfg->password, sizeof(cfg->password), "%.*s", (int)n, pw);
        p = at + 1;
    }
    colon = memchr(p, ':', (size_t)(hend - p));
    n = (size_t)((colon ? colon : hend) - p);
    if (n == 0 || n >= sizeof(cfg->host))
        goto bad;
    snprintf(cfg->host, sizeof(cfg->host), "%.*s", (int)n, p);
    cfg->port = 6379;
    if (colon) {
        char *e;
        long port = strtol(colon + 1, &e, 10);
        if (e != hend || port < 1 || port > 65535)
            goto bad;
        cfg->port = (int)port;
    }
    cfg->db = 0;
    if (slash && slash[1]) {
        char *e;
        long db = strtol(slash + 1, &e, 10);
        if (*e || db < 0 || db > 1000000)
            goto bad;
        cfg->db = (int)db;
    }
    return 0;
bad:
    fprintf(stderr, "--redis: '%s' is not redis://[[user]:password@]host[:port][/db]\n", url);
    return -1;
}

static redisContext *connect_redis(const config *cfg)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(cfg->host, cfg->port, tv);
    redisReply *r = NULL;

    if (!c || c->err) {
        fprintf(stderr, "mh-publish: cannot connect to %s:%d: %s\n", cfg->host, cfg->port,
                c ? c->errstr : "out of memory");
        goto fail;
    }
    if (cfg->password[0]) {
        if (cfg->user[0])
            r = redisCommand(c, "AUTH %s %s", cfg->user, cfg->password);
        else
            r = redisCommand(c, "AUTH %s", cfg->password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "mh-publish: AUTH failed: %s\n", r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (cfg->db) {
        r = redisCommand(c, "SELECT %d", cfg->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "mh-publish: SELECT failed: %s\n", r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    return c;
fail:
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return NULL;
}

/* Counts one PUBLISH reply; returns -1 if the link is gone. */
static int take_reply(redisContext *c, redisReply *r, result *res)
{
    if (!r) {
        fprintf(stderr, "mh-publish: Redis link lost: %s\n", c->errstr);
        res->link_lost = 1;
        return -1;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        res->receivers_sum += (uint64_t)r->integer;
        if (res->sent == 0 || r->integer < res->receivers_min)
            res->receivers_min = r->integer;
        if (r->integer > res->receivers_max)
            res->receivers_max = r->integer;
    } else {
        if (res->errors++ == 0)
            fprintf(stderr, "mh-publish: PUBLISH answered: %s\n",
                    r->type == REDIS_REPLY_ERROR ? r->str : "(not an integer)");
    }
    res->sent++;
    freeReplyObject(r);
    return 0;
}

static int run(const config *cfg, const seg *segs, int nsegs, char *buf, result *res)
{
    redisContext *c = connect_redis(cfg);
    uint64_t total = (uint64_t)cfg->count;
    size_t chlen = strlen(cfg->channel);
    int64_t start, now;

    if (!c)
        return -1;
    if (cfg->duration > 0) {
        uint64_t by_time = (uint64_t)llround(cfg->rate * cfg->duration);
        if (!total || by_time < total)
            total = by_time;
    }
    start = mh_bench_mono_us();
    while (res->sent < total && !stop_flag) {
        int64_t due_at = start + (int64_t)((double)res->sent * 1e6 / cfg->rate);
        uint64_t due, batch;

        now = mh_bench_mono_us();
        if (now < due_at) {
            mh_bench_sleep_until(due_at);
            continue;
        }
        if (now - due_at > res->max_lag_us)
            res->max_lag_us = now - due_at;
        due = (uint64_t)((double)(now - start) * cfg->rate / 1e6) + 1;
        if (due > total)
            due = total;
        batch = due - res->sent;
        if (batch > (uint64_t)cfg->pipeline)
            batch = (uint64_t)cfg->pipeline;

        if (batch == 1) {
            size_t len = render(segs, nsegs, res->sent + 1, cfg->keys, buf);
            if (take_reply(c, redisCommand(c, "PUBLISH %b %b", cfg->channel, chlen, buf, len), res))
                goto out;
            continue;
        }
        for (uint64_t i = 0; i < batch; i++) {
            size_t len = render(segs, nsegs, res->sent + 1 + i, cfg->keys, buf);
            if (redisAppendCommand(c, "PUBLISH %b %b", cfg->channel, chlen, buf, len) != REDIS_OK)
                goto lost;
        }
        for (uint64_t i = 0; i < batch; i++) {
            void *r = NULL;
            if (redisGetReply(c, &r) != REDIS_OK)
                goto lost;
            if (take_reply(c, r, res))
                goto out;
        }
    }
    /* The last event owns the interval after it: end the run there, so a
     * run of R events/s for S seconds takes S seconds. */
    if (!stop_flag && res->sent == total)
        mh_bench_sleep_until(start + (int64_t)((double)total * 1e6 / cfg->rate));
    goto out;
lost:
    (void)take_reply(c, NULL, res);
out:
    res->elapsed_us = mh_bench_mono_us() - start;
    redisFree(c);
    return res->link_lost ? -1 : 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mh-publish [options]\n"
               "  --redis URL       redis://[[user]:password@]host[:port][/db]\n"
               "                    (default redis://127.0.0.1:6379/0)\n"
               "  --channel NAME    pub/sub channel (default mizan:events)\n"
               "  --rate R          events per second (default 100)\n"
               "  --duration S      seconds (default 10; 0 = until --count)\n"
               "  --count N         stop after N events (default: rate x duration)\n"
               "  --template TEXT   event text; {ts} Unix ms with µs fraction, {n} event number\n"
               "                    from 1, {k} n modulo --keys (default: an invalidate envelope)\n"
               "  --keys K          modulus for {k} (default 1000)\n"
               "  --pipeline B      up to B PUBLISHes per round trip when behind (default 1)\n"
               "  --json            print the report as JSON on stdout\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"redis", required_argument, 0, 'r'},
        {"channel", required_argument, 0, 'c'},
        {"rate", required_argument, 0, 'R'},
        {"duration", required_argument, 0, 'd'},
        {"count", required_argument, 0, 'n'},
        {"template", required_argument, 0, 't'},
        {"keys", required_argument, 0, 'k'},
        {"pipeline", required_argument, 0, 'p'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static config cfg = {
        .redis_url = "redis://127.0.0.1:6379/0",
        .channel = "mizan:events",
        .tpl = DEFAULT_TEMPLATE,
        .rate = 100,
        .duration = 10,
        .keys = 1000,
        .pipeline = 1,
    };
    static seg segs[MAX_SEGS];
    struct sigaction sa = {.sa_handler = on_signal};
    result res = {0};
    char *buf = NULL;
    int nsegs, o, rc = 1;
    double secs, achieved;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;

        switch (o) {
        case 'r':
            cfg.redis_url = optarg;
            break;
        case 'c':
            cfg.channel = optarg;
            break;
        case 'R':
            bad = mh_bench_parse_double("--rate", optarg, 0.001, 1e7, &cfg.rate);
            break;
        case 'd':
            bad = mh_bench_parse_double("--duration", optarg, 0, 1e7, &cfg.duration);
            break;
        case 'n':
            bad = mh_bench_parse_long("--count", optarg, 0, 1L << 50, &cfg.count);
            break;
        case 't':
            cfg.tpl = optarg;
            break;
        case 'k':
            bad = mh_bench_parse_long("--keys", optarg, 1, 1L << 50, &cfg.keys);
            break;
        case 'p':
            bad = mh_bench_parse_long("--pipeline", optarg, 1, 100000, &cfg.pipeline);
            break;
        case 'j':
            cfg.json = 1;
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
    if (optind < argc || parse_redis_url(&cfg, cfg.redis_url))
        return 2;
    if (cfg.duration <= 0 && cfg.count <= 0) {
        fprintf(stderr, "mh-publish: give --duration or --count\n");
        return 2;
    }
    nsegs = split_template(cfg.tpl, segs, MAX_SEGS);
    if (nsegs < 0) {
        fprintf(stderr, "--template: too many placeholders\n");
        return 2;
    }
    /* Every placeholder renders to at most 24 bytes. */
    buf = malloc(strlen(cfg.tpl) + (size_t)nsegs * 24 + 1);
    if (!buf)
        return 1;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    rc = run(&cfg, segs, nsegs, buf, &res) ? 1 : 0;
    secs = (double)res.elapsed_us / 1e6;
    achieved = secs > 0 ? (double)res.sent / secs : 0;
    if (cfg.json)
        printf("{\"channel\":\"%s\",\"sent\":%llu,\"errors\":%llu,\"seconds\":%.3f,"
               "\"rate_target\":%g,\"rate_achieved\":%.1f,\"max_lag_ms\":%.3f,"
               "\"receivers_min\":%lld,\"receivers_max\":%lld,\"receivers_mean\":%.1f,"
               "\"link_lost\":%s,\"interrupted\":%s}\n",
               cfg.channel, (unsigned long long)res.sent, (unsigned long long)res.errors, secs,
               cfg.rate, achieved, (double)res.max_lag_us / 1000.0, res.receivers_min,
               res.receivers_max, res.sent ? (double)res.receivers_sum / (double)res.sent : 0,
               res.link_lost ? "true" : "false", stop_flag ? "true" : "false");
    else
        printf("mh-publish: %llu events to %s in %.3f s: %.1f/s (target %g/s), max %.3f ms "
               "behind schedule, receivers per event %lld..%lld, errors %llu%s%s\n",
               (unsigned long long)res.sent, cfg.channel, secs, achieved, cfg.rate,
               (double)res.max_lag_us / 1000.0, res.receivers_min, res.receivers_max,
               (unsigned long long)res.errors, res.link_lost ? ", REDIS LINK LOST" : "",
               stop_flag ? ", interrupted" : "");
    free(buf);
    return rc;
}
