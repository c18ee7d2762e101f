#include "mh_redis.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mh_buf.h"
#include "mh_key.h"
#include "mh_log.h"
#include "mh_out.h"
#include "mh_rlink.h"

_Static_assert(MH_METRICS_SHARDS == MH_REDIS_MAX_SHARDS, "a metrics slot per shard");

typedef enum { LINK_DOWN, LINK_CONNECTING, LINK_UP } link_state;

typedef struct shard shard;

typedef struct link {
    mh_redis *r;
    shard *s;         /* the shard it belongs to (the Sentinel link: the one shard) */
    const char *name; /* "subscriber" / "command" */
    mh_rlink *rl;     /* NULL while down */
    link_state state;
    unsigned attempt;
    uv_timer_t retry;
    bool ever_up;
} link;

typedef struct sync_wait {
    struct sync_wait *next;
    uint64_t nonce;
    mh_redis_sync_fn fn;
    void *arg;
} sync_wait;

#define MAX_SENTINELS 8

/*
 * One Redis server of --redis-shards (or the one of --redis): its two
 * links, its subscription, its canary and its own heal (SPEC 11.1: a gap on
 * one shard heals only what that shard owns).
 */
struct shard {
    mh_redis *r;
    unsigned idx;
    const mh_redis_addr *addr; /* user, password, db, TLS */
    char label[24];            /* "" with one shard, else " (shard K)" for logs */
    link subscriber, cmd;
    /* where the links go: the URL's host, or the master the Sentinels name */
    char host[256];
    int port;
    bool have_master;
    int confirmed;   /* SUBSCRIBE confirmations on the current subscriber link */
    bool subscribed; /* both channels confirmed */
    bool gap;        /* the subscription was lost since the last heal */
    bool heal_pending;
    /* A heal is outstanding from its first round until nothing is left in gap
     * or it is given up at heal_deadline_ms; /readyz is 503 meanwhile. */
    bool healing;
    bool heal_round;   /* a round's reads are in flight */
    bool heal_in_run;  /* inside mh_heal_run: the round cannot end yet */
    uint64_t heal_gen; /* replies of an older generation are stale (mh_heal) */
    size_t heal_reads; /* reads of the current round not answered yet */
    unsigned heal_attempt;
    uint64_t heal_deadline_ms;
    uv_timer_t heal_timer;
    uint64_t canary_seen_ms;   /* mono time our canary last came back */
    uint64_t subscribed_at_ms; /* mono time the subscription was confirmed */
    sync_wait *sync_head, *sync_tail;
};

struct mh_redis {
    mh_hub *h;
    mh_redis_events ev; /* upward, to the router and the heal */
    mh_rlink_tls *tls;  /* rediss://: every TLS link, Sentinels too */
    unsigned nshards;
    shard shards[MH_REDIS_MAX_SHARDS];
    /* Sentinel (--redis-sentinels, one shard only): one link to one Sentinel
     * at a time, which names the master and then tells of failovers */
    link sen;
    struct {
        char host[256];
        int port;
    } sentinels[MAX_SENTINELS];
    int nsentinels, sen_next;
    char events[128], hub_channel[160];
    uv_timer_t canary;
    uint64_t canary_nonce;
    bool stopping;
    uint64_t sync_nonce;
};

/* Completes waits up to 'upto' (all of them when upto is UINT64_MAX). */
static void sync_complete(shard *s, uint64_t upto)
{
    while (s->sync_head && s->sync_head->nonce <= upto) {
        sync_wait *w = s->sync_head;
        s->sync_head = w->next;
        if (!s->sync_head)
            s->sync_tail = NULL;
        w->fn(s->r->h, w->arg);
        free(w);
    }
}

typedef struct pending_cmd {
    shard *s;
    mh_redis_reply_fn fn;
    void *arg;
} pending_cmd;

static void link_connect(link *l);
static void on_retry(uv_timer_t *t);
static void sentinel_connect(mh_redis *r);

void mh_redis_name(const mh_redis *r, mh_buf *out, const char *suffix, const char *rest,
                   size_t rest_len)
{
    mh_buf_puts(out, r->h->cfg->redis_prefix);
    mh_buf_puts(out, suffix);
    if (rest)
        mh_buf_put(out, rest, rest_len);
}

/* Capped exponential backoff from 100 ms, full jitter: many hubs losing
 * Redis together must not return together. */
static uint64_t backoff_ms(const mh_redis *r, unsigned attempt)
{
    uint64_t cap = (uint64_t)r->h->cfg->redis_backoff_max_ms, ceiling = 100;

    for (unsigned i = 0; i < attempt && ceiling < cap; i++)
        ceiling *= 2;
    if (ceiling > cap)
        ceiling = cap;
    return 1 + (uint64_t)random() % ceiling;
}

/* "host:port,host:port" into r->sentinels (r NULL: only checks). */
static int parse_sentinels(mh_redis *r, const char *text, char *err, size_t errlen)
{
    const char *p = text;
    int n = 0;

    while (*p) {
        const char *start, *end, *colon;
        char *e;
        long port;
        while (*p == ',' || *p == ' ')
            p++;
        if (!*p)
            break;
        start = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        end = p;
        colon = NULL;
        for (const char *q = start; q < end; q++)
            if (*q == ':')
                colon = q;
        if (!colon || colon == start || (size_t)(colon - start) >= 256 || n == MAX_SENTINELS)
            goto bad;
        port = strtol(colon + 1, &e, 10);
        if (e != end || port < 1 || port > 65535)
            goto bad;
        if (r) {
            memcpy(r->sentinels[n].host, start, (size_t)(colon - start));
            r->sentinels[n].host[colon - start] = '\0';
            r->sentinels[n].port = (int)port;
        }
        n++;
        continue;
    bad:
        snprintf(err, errlen, "'%.*s' is not HOST:PORT (at most %d Sentinels)", (int)(end - start),
                 start, MAX_SENTINELS);
        return -1;
    }
    if (r)
        r->nsentinels = n;
    return n;
}

static void schedule_retry(link *l)
{
    uint64_t delay;

    if (l->r->stopping)
        return;
    delay = backoff_ms(l->r, l->attempt);
    l->attempt++;
    mh_debug("redis %s link: retry in %llu ms", l->name, (unsigned long long)delay);
    uv_timer_start(&l->retry, on_retry, delay, 0);
}

static void on_retry(uv_timer_t *t)
{
    link *l = t->data;

    if (l == &l->r->sen)
        sentinel_connect(l->r);
    else
        link_connect(l);
}

static void link_lost(link *l, const char *why)
{
    mh_redis *r = l->r;
    shard *s = l->s;
    bool was_up = l->state == LINK_UP;

    if (l == &r->sen) {
        l->state = LINK_DOWN;
        l->rl = NULL;
        if (!r->stopping)
            MH_LOG(was_up ? MH_LOG_WARN : MH_LOG_DEBUG, "redis sentinel %s:%d: %s",
                   r->sentinels[(r->sen_next + r->nsentinels - 1) % r->nsentinels].host,
                   r->sentinels[(r->sen_next + r->nsentinels - 1) % r->nsentinels].port, why);
        schedule_retry(l); /* the next Sentinel of the list */
        return;
    }

    l->state = LINK_DOWN;
    l->rl = NULL;
    if (was_up) {
        r->h->metrics.redis_reconnects++;
        r->h->metrics.shard_reconnects[s->idx]++;
        mh_warn("redis %s link%s lost: %s", l->name, s->label, why);
    } else if (!r->stopping) {
        /* The first failure and every tenth: enough to see, not a flood. */
        MH_LOG(l->attempt % 10 == 0 ? MH_LOG_WARN : MH_LOG_DEBUG,
               "redis %s link%s: cannot connect to %s:%d: %s (attempt %u)", l->name, s->label,
               s->host, s->port, why, l->attempt + 1);
    }
    if (l == &s->subscriber) {
        if (s->subscribed || was_up) {
            s->gap = true;
            r->ev.lost(r->h, s->idx);
            /* A round in flight read versions before this loss: stale. The
             * heal stays outstanding; the next subscription starts a round. */
            s->heal_gen++;
            s->heal_round = false;
            s->heal_reads = 0;
            uv_timer_stop(&s->heal_timer);
        }
        s->subscribed = false;
        s->confirmed = 0;
        sync_complete(s, UINT64_MAX);
    }
    schedule_retry(l);
}

/* ---- heal rounds, retries and the deadline (SPEC 10) ---- */

static void on_heal_timer(uv_timer_t *t);

static void heal_arm(shard *s, uint64_t delay)
{
    if (s->r->stopping)
        return; /* the timer is closed */
    uv_timer_start(&s->heal_timer, on_heal_timer, delay, 0);
}

static uint64_t heal_left_ms(const shard *s)
{
    uint64_t now = mh_mono_ms();
    return s->heal_deadline_ms > now ? s->heal_deadline_ms - now : 0;
}

static void heal_end(shard *s)
{
    s->healing = false;
    s->heal_round = false;
    s->heal_pending = false;
    s->heal_reads = 0;
    s->heal_attempt = 0;
    uv_timer_stop(&s->heal_timer);
}

static void heal_give_up(shard *s, size_t left)
{
    s->r->h->metrics.heal_giveups++;
    mh_warn("heal%s: %zu context(s)/channel(s) still unread after %d ms: invalidating every "
            "subscription of them",
            s->label, left, s->r->h->cfg->heal_timeout_ms);
    s->heal_gen++; /* replies still in flight change nothing now */
    heal_end(s);
    s->r->ev.give_up(s->r->h, s->idx);
}

static void heal_round_over(shard *s)
{
    size_t left = s->r->ev.unhealed(s->r->h, s->idx);
    uint64_t delay;

    s->heal_round = false;
    if (!left) {
        mh_info("redis%s: heal complete%s", s->label, s->heal_attempt ? " after retrying" : "");
        heal_end(s);
        return;
    }
    if (!heal_left_ms(s)) {
        heal_give_up(s, left);
        return;
    }
    delay = backoff_ms(s->r, s->heal_attempt++);
    if (delay > heal_left_ms(s))
        delay = heal_left_ms(s);
    mh_warn("heal%s: %zu context(s)/channel(s) could not be read; retrying in %llu ms", s->label,
            left, (unsigned long long)delay);
    heal_arm(s, delay);
}

/* One round: mh_heal sends the reads; the last answer ends the round. */
static void heal_round_start(shard *s)
{
    s->heal_round = true;
    s->heal_reads = 0;
    heal_arm(s, heal_left_ms(s)); /* a round that is never answered ends here */
    s->heal_in_run = true;
    s->r->ev.heal(s->r->h, s->idx);
    s->heal_in_run = false;
    if (s->heal_round && !s->heal_reads)
        heal_round_over(s);
}

static void on_heal_timer(uv_timer_t *t)
{
    shard *s = t->data;

    if (!s->healing || !s->subscribed || s->r->stopping)
        return; /* the next subscription runs a round */
    if (!heal_left_ms(s)) {
        size_t left = s->r->ev.unhealed(s->r->h, s->idx);
        if (left)
            heal_give_up(s, left);
        else
            heal_end(s);
        return;
    }
    if (s->heal_round) {
        /* Timers run on the loop's cached time, which may lag the clock the
         * deadline is on: a little early, wait for the rest. */
        heal_arm(s, heal_left_ms(s));
        return;
    }
    if (s->cmd.state != LINK_UP) {
        s->heal_pending = true; /* the command link's return runs the round */
        heal_arm(s, heal_left_ms(s));
        return;
    }
    s->r->h->metrics.heal_retries++;
    heal_round_start(s);
}

static void maybe_heal(shard *s)
{
    uint64_t now, timeout, grace;

    if (!s->heal_pending || !s->subscribed || s->cmd.state != LINK_UP)
        return;
    s->heal_pending = false;
    now = mh_mono_ms();
    timeout = (uint64_t)s->r->h->cfg->heal_timeout_ms;
    /* The deadline counts from the first round after the link came back; a
     * round after another loss gets at least a moment of its own. */
    grace = timeout < 1000 ? timeout : 1000;
    if (!s->healing) {
        s->r->h->metrics.heals++;
        s->r->h->metrics.shard_heals[s->idx]++;
        s->healing = true;
        s->heal_attempt = 0;
        s->heal_deadline_ms = now + timeout;
    } else if (s->heal_deadline_ms < now + grace) {
        s->heal_deadline_ms = now + grace;
    }
    if (s->heal_round)
        s->heal_gen++; /* a new round supersedes one in flight */
    heal_round_start(s);
}

uint64_t mh_redis_heal_gen(const mh_redis *r, unsigned idx)
{
    return r->shards[idx].heal_gen;
}

void mh_redis_heal_read_sent(mh_redis *r, unsigned idx)
{
    r->shards[idx].heal_reads++;
}

void mh_redis_heal_read_done(mh_redis *r, unsigned idx, uint64_t gen)
{
    shard *s = &r->shards[idx];

    if (gen != s->heal_gen || !s->heal_round || s->r->stopping)
        return;
    if (s->heal_reads)
        s->heal_reads--;
    if (!s->heal_reads && !s->heal_in_run)
        heal_round_over(s);
}

static void on_sub_message(shard *s, redisReply *rep)
{
    mh_redis *r = s->r;

    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
        return;
    if (rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(rep->element[0]->str, "subscribe")) {
        if (++s->confirmed == 2) {
            s->subscribed = true;
            s->subscriber.attempt = 0;
            s->subscribed_at_ms = mh_mono_ms();
            s->canary_seen_ms = 0;
            mh_info("redis%s: subscribed to %s and %s", s->label, r->events, r->hub_channel);
            /* Also the first subscription: what was subscribed before it
             * (Redis not up yet when the hub started) is in gap too. */
            if (s->gap || r->ev.unhealed(r->h, s->idx)) {
                s->gap = false;
                s->heal_pending = true;
            }
            maybe_heal(s);
        }
        return;
    }
    if (!strcmp(rep->element[0]->str, "message") && rep->element[1]->type == REDIS_REPLY_STRING &&
        rep->element[2]->type == REDIS_REPLY_STRING)
        r->ev.message(r->h, s->idx, rep->element[1]->str, (size_t)rep->element[1]->len,
                      rep->element[2]->str, (size_t)rep->element[2]->len);
}

/* ---- Sentinel (one shard only: mh_config refuses both) ---- */

/* The links go to host:port from now on; links up elsewhere are dropped
 * (their loss is a gap like any other: healed by versions). */
static void set_master(mh_redis *r, const char *host, int port)
{
    shard *s = &r->shards[0];

    if (s->have_master && s->port == port && !strcmp(s->host, host))
        return;
    mh_warn("redis: the master of '%s' is %s:%d%s", r->h->cfg->redis_master_name, host, port,
            s->have_master ? " now (failover)" : "");
    snprintf(s->host, sizeof s->host, "%s", host);
    s->port = port;
    s->have_master = true;
    r->h->metrics.redis_failovers += r->h->metrics.redis_masters_seen > 0;
    r->h->metrics.redis_masters_seen++;
    for (link *l = &s->cmd; l; l = l == &s->cmd ? &s->subscriber : NULL) {
        if (l->state != LINK_DOWN && l->rl) {
            mh_rlink_disconnect(l->rl); /* reconnects to the new master */
        } else {
            uv_timer_stop(&l->retry);
            l->attempt = 0;
            link_connect(l);
        }
    }
}

/* Asks the Sentinel again (after a ROLE that was not master). */
static void sentinel_requery(mh_redis *r)
{
    if (r->sen.rl && r->sen.state == LINK_UP)
        mh_rlink_disconnect(r->sen.rl);
}

static void on_role(mh_rlink *rl, redisReply *rep, void *arg)
{
    mh_redis *r = arg;
    shard *s = &r->shards[0];

    (void)rl;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return; /* the link dropped: it reconnects anyway */
    if (!strcmp(rep->element[0]->str, "master"))
        return;
    mh_warn("redis %s:%d is a %s, not the master: asking the Sentinels again", s->host, s->port,
            rep->element[0]->str);
    s->have_master = false;
    if (s->cmd.rl && s->cmd.state != LINK_DOWN)
        mh_rlink_disconnect(s->cmd.rl);
    if (s->subscriber.rl && s->subscriber.state != LINK_DOWN)
        mh_rlink_disconnect(s->subscriber.rl);
    sentinel_requery(r);
}

/* "<name> <old ip> <old port> <new ip> <new port>" */
static void on_switch(mh_redis *r, redisReply *rep)
{
    char name[128], ip[256];
    int port;

    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message") ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return;
    if (sscanf(rep->element[2]->str, "%127s %*s %*s %255s %d", name, ip, &port) == 3 &&
        !strcmp(name, r->h->cfg->redis_master_name) && port > 0 && port < 65536)
        set_master(r, ip, port);
}

static void on_master_addr(mh_rlink *rl, redisReply *rep, void *arg)
{
    mh_redis *r = arg;
    long port;
    char *end;

    if (!rep)
        return;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        mh_warn("redis sentinel: no master named '%s' (%s)", r->h->cfg->redis_master_name,
                rep->type == REDIS_REPLY_ERROR ? rep->str : "no address");
        mh_rlink_disconnect(rl); /* the next Sentinel may know it */
        return;
    }
    port = strtol(rep->element[1]->str, &end, 10);
    if (*end || port < 1 || port > 65535)
        return;
    r->sen.attempt = 0;
    set_master(r, rep->element[0]->str, (int)port);
    /* From here this link only listens: failovers it announces are followed. */
    {
        const char *argv[] = {"SUBSCRIBE", "+switch-master"};
        const size_t lens[] = {9, 14};
        mh_rlink_subscribe(rl, 2, argv, lens);
    }
}

static void sentinel_up(mh_redis *r)
{
    if (r->h->cfg->redis_sentinel_password[0])
        mh_rlink_cmdf(r->sen.rl, NULL, NULL, "AUTH %s", r->h->cfg->redis_sentinel_password);
    mh_rlink_cmdf(r->sen.rl, on_master_addr, r, "SENTINEL get-master-addr-by-name %s",
                  r->h->cfg->redis_master_name);
}

static void on_connected(mh_rlink *rl);
static void on_lost(mh_rlink *rl, const char *why);
static void on_push(mh_rlink *rl, redisReply *rep);

static const mh_rlink_events link_events = {on_connected, on_lost, on_push};

/* Starts the link to host:port; its end comes back through link_lost. */
static void link_open(link *l, const char *host, int port, bool tls)
{
    char err[256];

    l->rl = mh_rlink_connect(l->r->h->loop, host, port, tls ? l->r->tls : NULL,
                             (unsigned)l->r->h->cfg->redis_connect_timeout_ms, &link_events, l, err,
                             sizeof err);
    if (!l->rl) {
        link_lost(l, err);
        return;
    }
    l->state = LINK_CONNECTING;
}

static void sentinel_connect(mh_redis *r)
{
    link *l = &r->sen;
    int i = r->sen_next;

    if (r->stopping || l->state != LINK_DOWN)
        return;
    r->sen_next = (r->sen_next + 1) % r->nsentinels;
    link_open(l, r->sentinels[i].host, r->sentinels[i].port, r->tls != NULL);
}

int mh_redis_parse_sentinels(const char *text, char *err, size_t errlen)
{
    return parse_sentinels(NULL, text, err, errlen);
}

static void on_push(mh_rlink *rl, redisReply *rep)
{
    link *l = mh_rlink_data(rl);

    if (l == &l->r->sen)
        on_switch(l->r, rep);
    else if (l == &l->s->subscriber)
        on_sub_message(l->s, rep);
}

static void on_connected(mh_rlink *rl)
{
    link *l = mh_rlink_data(rl);
    mh_redis *r = l->r;
    shard *s = l->s;
    const mh_redis_addr *a = s->addr;

    l->state = LINK_UP;
    l->ever_up = true;
    if (l == &r->sen) {
        sentinel_up(r);
        return;
    }
    mh_info("redis %s link%s connected to %s:%d", l->name, s->label, s->host, s->port);
    if (a->password[0] && a->user[0])
        mh_rlink_cmdf(rl, NULL, NULL, "AUTH %s %s", a->user, a->password);
    else if (a->password[0])
        mh_rlink_cmdf(rl, NULL, NULL, "AUTH %s", a->password);
    if (l == &s->subscriber) {
        const char *argv[] = {"SUBSCRIBE", r->events, r->hub_channel};
        const size_t lens[] = {9, strlen(r->events), strlen(r->hub_channel)};
        s->confirmed = 0;
        mh_rlink_subscribe(rl, 3, argv, lens);
    } else {
        if (a->db)
            mh_rlink_cmdf(rl, NULL, NULL, "SELECT %d", a->db);
        /* A Sentinel's answer can be stale (an old master back as a replica):
         * the links stay only on a server that says it is the master. */
        if (r->nsentinels)
            mh_rlink_cmdf(rl, on_role, r, "ROLE");
        l->attempt = 0;
        maybe_heal(s);
    }
}

static void on_lost(mh_rlink *rl, const char *why)
{
    link_lost(mh_rlink_data(rl), why);
}

static void link_connect(link *l)
{
    shard *s = l->s;

    if (l->r->stopping || l->state != LINK_DOWN || !s->have_master)
        return; /* with Sentinels: once one names the master */
    link_open(l, s->host, s->port, s->addr->tls);
}

/* PUBLISH {prefix}events <the canary envelope with 'nonce'> on shard 's' (SPEC 11). */
static int publish_canary(shard *s, const char *nonce, mh_redis_reply_fn fn)
{
    mh_redis *r = s->r;
    const char *argv[3];
    size_t lens[3];
    mh_buf payload;
    int rc;

    mh_buf_init(&payload);
    mh_out_canary(&payload, r->h->cfg->hub_id, nonce);
    argv[0] = "PUBLISH", lens[0] = 7;
    argv[1] = r->events, lens[1] = strlen(r->events);
    argv[2] = payload.data, lens[2] = payload.len;
    rc = payload.oom ? -1 : mh_redis_cmd_on(r, s->idx, fn, s, 3, argv, lens);
    mh_buf_free(&payload);
    return rc;
}

static void on_canary_published(mh_hub *h, redisReply *reply, void *arg)
{
    (void)h, (void)reply, (void)arg;
}

static void canary_shard(shard *s, uint64_t now)
{
    const mh_config *cfg = s->r->h->cfg;
    uint64_t window = (uint64_t)cfg->canary_window * 1000;
    char nonce[32];

    if (s->subscribed && now - s->subscribed_at_ms > window &&
        (!s->canary_seen_ms || now - s->canary_seen_ms > window) && s->subscriber.rl) {
        /* Subscribed on paper, but nothing comes back: reconnect. */
        mh_warn("redis%s: no canary came back for %llu ms; resubscribing", s->label,
                (unsigned long long)(now - (s->canary_seen_ms ? s->canary_seen_ms
                                                              : s->subscribed_at_ms)));
        mh_rlink_disconnect(s->subscriber.rl);
        return;
    }
    if (s->cmd.state != LINK_UP)
        return;
    snprintf(nonce, sizeof nonce, "%llu", (unsigned long long)++s->r->canary_nonce);
    publish_canary(s, nonce, on_canary_published);
}

static void on_canary_timer(uv_timer_t *t)
{
    mh_redis *r = t->data;
    uint64_t now = mh_mono_ms();

    for (unsigned i = 0; i < r->nshards; i++)
        canary_shard(&r->shards[i], now);
}

void mh_redis_canary_seen(mh_redis *r, unsigned idx, const char *nonce)
{
    shard *s;

    if (idx >= r->nshards)
        return;
    s = &r->shards[idx];
    s->canary_seen_ms = mh_mono_ms();
    if (nonce[0] == 's')
        sync_complete(s, strtoull(nonce + 1, NULL, 10));
}

static void on_sync_published(mh_hub *h, redisReply *reply, void *arg)
{
    (void)h;
    if (!reply) /* never reaches the subscriber: do not leave anyone waiting */
        sync_complete(arg, UINT64_MAX);
}

void mh_redis_sync(mh_redis *r, unsigned idx, mh_redis_sync_fn fn, void *arg)
{
    shard *s = &r->shards[idx < r->nshards ? idx : 0];
    sync_wait *w = calloc(1, sizeof *w);
    char nonce[32];

    if (!w || !s->subscribed) {
        free(w);
        fn(r->h, arg);
        return;
    }
    w->nonce = ++r->sync_nonce;
    w->fn = fn;
    w->arg = arg;
    if (s->sync_tail)
        s->sync_tail->next = w;
    else
        s->sync_head = w;
    s->sync_tail = w;
    snprintf(nonce, sizeof nonce, "s%llu", (unsigned long long)w->nonce);
    if (publish_canary(s, nonce, on_sync_published))
        sync_complete(s, UINT64_MAX);
}

static void link_init(mh_redis *r, shard *s, link *l, const char *name)
{
    l->r = r;
    l->s = s;
    l->name = name;
    uv_timer_init(r->h->loop, &l->retry);
    l->retry.data = l;
}

mh_redis *mh_redis_new(mh_hub *h, const mh_redis_events *ev)
{
    const mh_config *cfg = h->cfg;
    mh_redis *r = calloc(1, sizeof *r);

    if (!r)
        return NULL;
    r->h = h;
    r->ev = *ev;
    snprintf(r->events, sizeof r->events, "%sevents", cfg->redis_prefix);
    snprintf(r->hub_channel, sizeof r->hub_channel, "%shub:%s", cfg->redis_prefix, cfg->hub_id);
    r->nshards = cfg->nshards >= 1 ? (unsigned)cfg->nshards : 1;
    if (cfg->redis_sentinels[0]) {
        char err[256];
        if (parse_sentinels(r, cfg->redis_sentinels, err, sizeof err) <= 0) {
            mh_error("redis_sentinels: %s", err);
            free(r);
            return NULL;
        }
    }
    if (cfg->redis_tls) {
        char err[512];
        r->tls = mh_rlink_tls_new(cfg->redis_tls_ca, cfg->redis_tls_cert, cfg->redis_tls_key, err,
                                  sizeof err);
        if (!r->tls) {
            mh_error("redis TLS (rediss://): %s", err);
            free(r);
            return NULL;
        }
    }
    for (unsigned i = 0; i < r->nshards; i++) {
        shard *s = &r->shards[i];
        s->r = r;
        s->idx = i;
        s->addr = &cfg->shards[i];
        if (r->nshards > 1)
            snprintf(s->label, sizeof s->label, " (shard %u)", i);
        if (!r->nsentinels) {
            snprintf(s->host, sizeof s->host, "%s", s->addr->host);
            s->port = s->addr->port;
            s->have_master = true;
        }
        link_init(r, s, &s->subscriber, "subscriber");
        link_init(r, s, &s->cmd, "command");
        uv_timer_init(h->loop, &s->heal_timer);
        s->heal_timer.data = s;
    }
    link_init(r, &r->shards[0], &r->sen, "sentinel");
    uv_timer_init(h->loop, &r->canary);
    r->canary.data = r;
    return r;
}

void mh_redis_start(mh_redis *r)
{
    if (r->nsentinels)
        sentinel_connect(r); /* the links follow once it names the master */
    for (unsigned i = 0; i < r->nshards; i++) {
        link_connect(&r->shards[i].cmd);
        link_connect(&r->shards[i].subscriber);
    }
    uv_timer_start(&r->canary, on_canary_timer, (uint64_t)r->h->cfg->canary_interval_ms,
                   (uint64_t)r->h->cfg->canary_interval_ms);
}

void mh_redis_stop(mh_redis *r)
{
    r->stopping = true;
    uv_timer_stop(&r->canary);
    uv_timer_stop(&r->sen.retry);
    uv_close((uv_handle_t *)&r->canary, NULL);
    uv_close((uv_handle_t *)&r->sen.retry, NULL);
    for (unsigned i = 0; i < r->nshards; i++) {
        shard *s = &r->shards[i];
        sync_complete(s, UINT64_MAX);
        uv_timer_stop(&s->subscriber.retry);
        uv_timer_stop(&s->cmd.retry);
        uv_timer_stop(&s->heal_timer);
        uv_close((uv_handle_t *)&s->heal_timer, NULL);
        uv_close((uv_handle_t *)&s->subscriber.retry, NULL);
        uv_close((uv_handle_t *)&s->cmd.retry, NULL);
    }
    if (r->sen.rl)
        mh_rlink_disconnect(r->sen.rl);
    for (unsigned i = 0; i < r->nshards; i++) {
        shard *s = &r->shards[i];
        if (s->subscriber.rl)
            mh_rlink_disconnect(s->subscriber.rl);
        if (s->cmd.rl)
            mh_rlink_disconnect(s->cmd.rl);
    }
}

void mh_redis_free(mh_redis *r)
{
    if (r)
        mh_rlink_tls_free(r->tls);
    free(r);
}

unsigned mh_redis_nshards(const mh_redis *r)
{
    return r->nshards;
}

unsigned mh_redis_shard_of(const mh_redis *r, const char *key, size_t len)
{
    return r->nshards > 1 ? mh_key_shard(key, len, r->nshards) : 0; /* one shard: no CRC */
}

bool mh_redis_shard_subscribed(const mh_redis *r, unsigned idx)
{
    return idx < r->nshards && r->shards[idx].subscribed;
}

bool mh_redis_subscribed(const mh_redis *r)
{
    for (unsigned i = 0; i < r->nshards; i++)
        if (!r->shards[i].subscribed)
            return false;
    return true;
}

bool mh_redis_cmd_up(const mh_redis *r)
{
    return r->shards[0].cmd.state == LINK_UP;
}

void mh_redis_gauges(const mh_redis *r, mh_gauges *g)
{
    g->redis_up = mh_redis_subscribed(r);
    for (unsigned i = 0; i < r->nshards; i++) {
        g->shard_configured[i] = 1;
        g->shard_up[i] = r->shards[i].subscribed;
    }
}

/* Why shard 's' is not ready, or NULL when it is. */
static const char *shard_not_ready(const shard *s, uint64_t window)
{
    if (!s->have_master)
        return "no redis master known: the sentinels have not named one";
    if (!s->subscribed)
        return "redis subscription is down";
    if (s->cmd.state != LINK_UP)
        return "redis command link is down";
    if (!s->canary_seen_ms || mh_mono_ms() - s->canary_seen_ms > window)
        return "no canary came back through redis recently";
    if (s->healing || s->heal_pending)
        return "healing: versions missed while the redis link was down are not read yet";
    return NULL;
}

bool mh_redis_ready(const mh_redis *r, const char **why)
{
    /* the hub is one thread (one loop) per process: the text lives here */
    static char text[384];
    uint64_t window = (uint64_t)r->h->cfg->canary_window * 1000;

    for (unsigned i = 0; i < r->nshards; i++) {
        const shard *s = &r->shards[i];
        const char *no = shard_not_ready(s, window);
        if (!no)
            continue;
        if (r->nshards == 1) {
            *why = no;
        } else {
            snprintf(text, sizeof text, "redis shard %u (%s:%d): %s", i, s->host, s->port, no);
            *why = text;
        }
        return false;
    }
    *why = "ok";
    return true;
}

static void on_cmd_reply(mh_rlink *rl, redisReply *rep, void *arg)
{
    pending_cmd *p = arg;
    mh_redis *r = p->s->r;

    (void)rl;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        r->h->metrics.redis_errors++;
        r->h->metrics.shard_errors[p->s->idx]++;
        mh_warn("redis command error%s: %s", p->s->label, rep->str);
    }
    if (p->fn)
        p->fn(r->h, rep, p->arg);
    free(p);
}

int mh_redis_cmd_on(mh_redis *r, unsigned idx, mh_redis_reply_fn fn, void *arg, int argc,
                    const char **argv, const size_t *lens)
{
    shard *s;
    pending_cmd *p;

    if (idx >= r->nshards)
        return -1;
    s = &r->shards[idx];
    if (s->cmd.state != LINK_UP || !s->cmd.rl)
        return -1;
    p = malloc(sizeof *p);
    if (!p)
        return -1;
    p->s = s;
    p->fn = fn;
    p->arg = arg;
    /* mh_rlink calls back with NULL for every pending command if the link drops. */
    if (mh_rlink_cmd(s->cmd.rl, on_cmd_reply, p, argc, argv, lens)) {
        free(p);
        return -1;
    }
    return 0;
}

int mh_redis_cmd(mh_redis *r, mh_redis_reply_fn fn, void *arg, int argc, const char **argv,
                 const size_t *lens)
{
    return mh_redis_cmd_on(r, 0, fn, arg, argc, argv, lens);
}
