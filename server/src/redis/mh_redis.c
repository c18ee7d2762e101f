#include "mh_redis.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mh_buf.h"
#include "mh_log.h"
#include "mh_out.h"
#include "mh_rlink.h"

typedef enum { LINK_DOWN, LINK_CONNECTING, LINK_UP } link_state;

typedef struct link {
    mh_redis *r;
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

struct mh_redis {
    mh_hub *h;
    mh_redis_events ev; /* upward, to the router and the heal */
    mh_rlink_tls *tls;  /* rediss://: every link, Sentinels too */
    link subscriber, cmd;
    /* where the links go: --redis, or the master the Sentinels name */
    char host[256];
    int port;
    bool have_master;
    /* Sentinel (--redis-sentinels): one link to one Sentinel at a time, which
     * names the master and then tells of failovers (+switch-master) */
    link sen;
    struct {
        char host[256];
        int port;
    } sentinels[MAX_SENTINELS];
    int nsentinels, sen_next;
    bool sen_asked;  /* the master's address was asked on this Sentinel link */
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
    char events[128], hub_channel[160];
    uv_timer_t canary;
    uint64_t canary_nonce;
    uint64_t canary_seen_ms;   /* mono time our canary last came back */
    uint64_t subscribed_at_ms; /* mono time the subscription was confirmed */
    bool stopping;
    sync_wait *sync_head, *sync_tail;
    uint64_t sync_nonce;
};

/* Completes waits up to 'upto' (all of them when upto is UINT64_MAX). */
static void sync_complete(mh_redis *r, uint64_t upto)
{
    while (r->sync_head && r->sync_head->nonce <= upto) {
        sync_wait *w = r->sync_head;
        r->sync_head = w->next;
        if (!r->sync_head)
            r->sync_tail = NULL;
        w->fn(r->h, w->arg);
        free(w);
    }
}

typedef struct pending_cmd {
    mh_redis *r;
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
        mh_warn("redis %s link lost: %s", l->name, why);
    } else if (!r->stopping) {
        /* The first failure and every tenth: enough to see, not a flood. */
        MH_LOG(l->attempt % 10 == 0 ? MH_LOG_WARN : MH_LOG_DEBUG,
               "redis %s link: cannot connect to %s:%d: %s (attempt %u)", l->name, r->host, r->port,
               why, l->attempt + 1);
    }
    if (l == &r->subscriber) {
        if (r->subscribed || was_up) {
            r->gap = true;
            r->ev.lost(r->h);
            /* A round in flight read versions before this loss: stale. The
             * heal stays outstanding; the next subscription starts a round. */
            r->heal_gen++;
            r->heal_round = false;
            r->heal_reads = 0;
            uv_timer_stop(&r->heal_timer);
        }
        r->subscribed = false;
        r->confirmed = 0;
        sync_complete(r, UINT64_MAX);
    }
    schedule_retry(l);
}

/* ---- heal rounds, retries and the deadline (SPEC 10) ---- */

static void on_heal_timer(uv_timer_t *t);

static void heal_arm(mh_redis *r, uint64_t delay)
{
    if (r->stopping)
        return; /* the timer is closed */
    uv_timer_start(&r->heal_timer, on_heal_timer, delay, 0);
}

static uint64_t heal_left_ms(const mh_redis *r)
{
    uint64_t now = mh_mono_ms();
    return r->heal_deadline_ms > now ? r->heal_deadline_ms - now : 0;
}

static void heal_end(mh_redis *r)
{
    r->healing = false;
    r->heal_round = false;
    r->heal_pending = false;
    r->heal_reads = 0;
    r->heal_attempt = 0;
    uv_timer_stop(&r->heal_timer);
}

static void heal_give_up(mh_redis *r, size_t left)
{
    r->h->metrics.heal_giveups++;
    mh_warn("heal: %zu context(s)/channel(s) still unread after %d ms: invalidating every "
            "subscription of them",
            left, r->h->cfg->heal_timeout_ms);
    r->heal_gen++; /* replies still in flight change nothing now */
    heal_end(r);
    r->ev.give_up(r->h);
}

static void heal_round_over(mh_redis *r)
{
    size_t left = r->ev.unhealed(r->h);
    uint64_t delay;

    r->heal_round = false;
    if (!left) {
        mh_info("redis: heal complete%s", r->heal_attempt ? " after retrying" : "");
        heal_end(r);
        return;
    }
    if (!heal_left_ms(r)) {
        heal_give_up(r, left);
        return;
    }
    delay = backoff_ms(r, r->heal_attempt++);
    if (delay > heal_left_ms(r))
        delay = heal_left_ms(r);
    mh_warn("heal: %zu context(s)/channel(s) could not be read; retrying in %llu ms", left,
            (unsigned long long)delay);
    heal_arm(r, delay);
}

/* One round: mh_heal sends the reads; the last answer ends the round. */
static void heal_round_start(mh_redis *r)
{
    r->heal_round = true;
    r->heal_reads = 0;
    heal_arm(r, heal_left_ms(r)); /* a round that is never answered ends here */
    r->heal_in_run = true;
    r->ev.heal(r->h);
    r->heal_in_run = false;
    if (r->heal_round && !r->heal_reads)
        heal_round_over(r);
}

static void on_heal_timer(uv_timer_t *t)
{
    mh_redis *r = t->data;

    if (!r->healing || !r->subscribed || r->stopping)
        return; /* the next subscription runs a round */
    if (!heal_left_ms(r)) {
        size_t left = r->ev.unhealed(r->h);
        if (left)
            heal_give_up(r, left);
        else
            heal_end(r);
        return;
    }
    if (r->heal_round) {
        /* Timers run on the loop's cached time, which may lag the clock the
         * deadline is on: a little early, wait for the rest. */
        heal_arm(r, heal_left_ms(r));
        return;
    }
    if (r->cmd.state != LINK_UP) {
        r->heal_pending = true; /* the command link's return runs the round */
        heal_arm(r, heal_left_ms(r));
        return;
    }
    r->h->metrics.heal_retries++;
    heal_round_start(r);
}

static void maybe_heal(mh_redis *r)
{
    uint64_t now, timeout, grace;

    if (!r->heal_pending || !r->subscribed || r->cmd.state != LINK_UP)
        return;
    r->heal_pending = false;
    now = mh_mono_ms();
    timeout = (uint64_t)r->h->cfg->heal_timeout_ms;
    /* The deadline counts from the first round after the link came back; a
     * round after another loss gets at least a moment of its own. */
    grace = timeout < 1000 ? timeout : 1000;
    if (!r->healing) {
        r->h->metrics.heals++;
        r->healing = true;
        r->heal_attempt = 0;
        r->heal_deadline_ms = now + timeout;
    } else if (r->heal_deadline_ms < now + grace) {
        r->heal_deadline_ms = now + grace;
    }
    if (r->heal_round)
        r->heal_gen++; /* a new round supersedes one in flight */
    heal_round_start(r);
}

uint64_t mh_redis_heal_gen(const mh_redis *r)
{
    return r->heal_gen;
}

void mh_redis_heal_read_sent(mh_redis *r)
{
    r->heal_reads++;
}

void mh_redis_heal_read_done(mh_redis *r, uint64_t gen)
{
    if (gen != r->heal_gen || !r->heal_round || r->stopping)
        return;
    if (r->heal_reads)
        r->heal_reads--;
    if (!r->heal_reads && !r->heal_in_run)
        heal_round_over(r);
}

static void on_sub_message(mh_redis *r, redisReply *rep)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
        return;
    if (rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(rep->element[0]->str, "subscribe")) {
        if (++r->confirmed == 2) {
            r->subscribed = true;
            r->subscriber.attempt = 0;
            r->subscribed_at_ms = mh_mono_ms();
            r->canary_seen_ms = 0;
            mh_info("redis: subscribed to %s and %s", r->events, r->hub_channel);
            /* Also the first subscription: what was subscribed before it
             * (Redis not up yet when the hub started) is in gap too. */
            if (r->gap || r->ev.unhealed(r->h)) {
                r->gap = false;
                r->heal_pending = true;
            }
            maybe_heal(r);
        }
        return;
    }
    if (!strcmp(rep->element[0]->str, "message") && rep->element[1]->type == REDIS_REPLY_STRING &&
        rep->element[2]->type == REDIS_REPLY_STRING)
        r->ev.message(r->h, rep->element[1]->str, (size_t)rep->element[1]->len,
                      rep->element[2]->str, (size_t)rep->element[2]->len);
}

/* ---- Sentinel ---- */

/* The links go to host:port from now on; links up elsewhere are dropped
 * (their loss is a gap like any other: healed by versions). */
static void set_master(mh_redis *r, const char *host, int port)
{
    if (r->have_master && r->port == port && !strcmp(r->host, host))
        return;
    mh_warn("redis: the master of '%s' is %s:%d%s", r->h->cfg->redis_master_name, host, port,
            r->have_master ? " now (failover)" : "");
    snprintf(r->host, sizeof r->host, "%s", host);
    r->port = port;
    r->have_master = true;
    r->h->metrics.redis_failovers += r->h->metrics.redis_masters_seen > 0;
    r->h->metrics.redis_masters_seen++;
    for (link *l = &r->cmd; l; l = l == &r->cmd ? &r->subscriber : NULL) {
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

    (void)rl;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return; /* the link dropped: it reconnects anyway */
    if (!strcmp(rep->element[0]->str, "master"))
        return;
    mh_warn("redis %s:%d is a %s, not the master: asking the Sentinels again", r->host, r->port,
            rep->element[0]->str);
    r->have_master = false;
    if (r->cmd.rl && r->cmd.state != LINK_DOWN)
        mh_rlink_disconnect(r->cmd.rl);
    if (r->subscriber.rl && r->subscriber.state != LINK_DOWN)
        mh_rlink_disconnect(r->subscriber.rl);
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
static void link_open(link *l, const char *host, int port)
{
    char err[256];

    l->rl = mh_rlink_connect(l->r->h->loop, host, port, l->r->tls,
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
    link_open(l, r->sentinels[i].host, r->sentinels[i].port);
}

int mh_redis_parse_sentinels(const char *text, char *err, size_t errlen)
{
    return parse_sentinels(NULL, text, err, errlen);
}

static void on_push(mh_rlink *rl, redisReply *rep)
{
    link *l = mh_rlink_data(rl);

    if (l == &l->r->subscriber)
        on_sub_message(l->r, rep);
    else if (l == &l->r->sen)
        on_switch(l->r, rep);
}

static void on_connected(mh_rlink *rl)
{
    link *l = mh_rlink_data(rl);
    mh_redis *r = l->r;
    const mh_config *cfg = r->h->cfg;

    l->state = LINK_UP;
    l->ever_up = true;
    if (l == &r->sen) {
        sentinel_up(r);
        return;
    }
    mh_info("redis %s link connected to %s:%d", l->name, r->host, r->port);
    if (cfg->redis_password[0] && cfg->redis_user[0])
        mh_rlink_cmdf(rl, NULL, NULL, "AUTH %s %s", cfg->redis_user, cfg->redis_password);
    else if (cfg->redis_password[0])
        mh_rlink_cmdf(rl, NULL, NULL, "AUTH %s", cfg->redis_password);
    if (l == &r->subscriber) {
        const char *argv[] = {"SUBSCRIBE", r->events, r->hub_channel};
        const size_t lens[] = {9, strlen(r->events), strlen(r->hub_channel)};
        r->confirmed = 0;
        mh_rlink_subscribe(rl, 3, argv, lens);
    } else {
        if (cfg->redis_db)
            mh_rlink_cmdf(rl, NULL, NULL, "SELECT %d", cfg->redis_db);
        /* A Sentinel's answer can be stale (an old master back as a replica):
         * the links stay only on a server that says it is the master. */
        if (r->nsentinels)
            mh_rlink_cmdf(rl, on_role, r, "ROLE");
        l->attempt = 0;
        maybe_heal(r);
    }
}

static void on_lost(mh_rlink *rl, const char *why)
{
    link_lost(mh_rlink_data(rl), why);
}

static void link_connect(link *l)
{
    if (l->r->stopping || l->state != LINK_DOWN || !l->r->have_master)
        return; /* with Sentinels: once one names the master */
    link_open(l, l->r->host, l->r->port);
}

/* PUBLISH {prefix}events <the canary envelope with 'nonce'> (SPEC 11). */
static int publish_canary(mh_redis *r, const char *nonce, mh_redis_reply_fn fn)
{
    const char *argv[3];
    size_t lens[3];
    mh_buf payload;
    int rc;

    mh_buf_init(&payload);
    mh_out_canary(&payload, r->h->cfg->hub_id, nonce);
    argv[0] = "PUBLISH", lens[0] = 7;
    argv[1] = r->events, lens[1] = strlen(r->events);
    argv[2] = payload.data, lens[2] = payload.len;
    rc = payload.oom ? -1 : mh_redis_cmd(r, fn, NULL, 3, argv, lens);
    mh_buf_free(&payload);
    return rc;
}

static void on_canary_published(mh_hub *h, redisReply *reply, void *arg)
{
    (void)h, (void)reply, (void)arg;
}

static void on_canary_timer(uv_timer_t *t)
{
    mh_redis *r = t->data;
    const mh_config *cfg = r->h->cfg;
    uint64_t now = mh_mono_ms(), window = (uint64_t)cfg->canary_window * 1000;
    char nonce[32];

    if (r->subscribed && now - r->subscribed_at_ms > window &&
        (!r->canary_seen_ms || now - r->canary_seen_ms > window) && r->subscriber.rl) {
        /* Subscribed on paper, but nothing comes back: reconnect. */
        mh_warn("redis: no canary came back for %llu ms; resubscribing",
                (unsigned long long)(now - (r->canary_seen_ms ? r->canary_seen_ms
                                                              : r->subscribed_at_ms)));
        mh_rlink_disconnect(r->subscriber.rl);
        return;
    }
    if (r->cmd.state != LINK_UP)
        return;
    snprintf(nonce, sizeof nonce, "%llu", (unsigned long long)++r->canary_nonce);
    publish_canary(r, nonce, on_canary_published);
}

void mh_redis_canary_seen(mh_redis *r, const char *nonce)
{
    r->canary_seen_ms = mh_mono_ms();
    if (nonce[0] == 's')
        sync_complete(r, strtoull(nonce + 1, NULL, 10));
}

static void on_sync_published(mh_hub *h, redisReply *reply, void *arg)
{
    (void)h, (void)arg;
    if (!reply) /* never reaches the subscriber: do not leave anyone waiting */
        sync_complete(h->redis, UINT64_MAX);
}

void mh_redis_sync(mh_redis *r, mh_redis_sync_fn fn, void *arg)
{
    sync_wait *w = calloc(1, sizeof *w);
    char nonce[32];

    if (!w || !r->subscribed) {
        free(w);
        fn(r->h, arg);
        return;
    }
    w->nonce = ++r->sync_nonce;
    w->fn = fn;
    w->arg = arg;
    if (r->sync_tail)
        r->sync_tail->next = w;
    else
        r->sync_head = w;
    r->sync_tail = w;
    snprintf(nonce, sizeof nonce, "s%llu", (unsigned long long)w->nonce);
    if (publish_canary(r, nonce, on_sync_published))
        sync_complete(r, UINT64_MAX);
}

mh_redis *mh_redis_new(mh_hub *h, const mh_redis_events *ev)
{
    mh_redis *r = calloc(1, sizeof *r);

    if (!r)
        return NULL;
    r->h = h;
    r->ev = *ev;
    snprintf(r->events, sizeof r->events, "%sevents", h->cfg->redis_prefix);
    snprintf(r->hub_channel, sizeof r->hub_channel, "%shub:%s", h->cfg->redis_prefix,
             h->cfg->hub_id);
    r->subscriber.r = r->cmd.r = r->sen.r = r;
    r->subscriber.name = "subscriber";
    r->cmd.name = "command";
    r->sen.name = "sentinel";
    if (h->cfg->redis_sentinels[0]) {
        char err[256];
        if (parse_sentinels(r, h->cfg->redis_sentinels, err, sizeof err) <= 0) {
            mh_error("redis_sentinels: %s", err);
            free(r);
            return NULL;
        }
    } else {
        snprintf(r->host, sizeof r->host, "%s", h->cfg->redis_host);
        r->port = h->cfg->redis_port;
        r->have_master = true;
    }
    if (h->cfg->redis_tls) {
        char err[512];
        r->tls = mh_rlink_tls_new(h->cfg->redis_tls_ca, h->cfg->redis_tls_cert,
                                  h->cfg->redis_tls_key, err, sizeof err);
        if (!r->tls) {
            mh_error("redis TLS (rediss://): %s", err);
            free(r);
            return NULL;
        }
    }
    uv_timer_init(h->loop, &r->subscriber.retry);
    uv_timer_init(h->loop, &r->cmd.retry);
    uv_timer_init(h->loop, &r->sen.retry);
    r->sen.retry.data = &r->sen;
    uv_timer_init(h->loop, &r->canary);
    uv_timer_init(h->loop, &r->heal_timer);
    r->heal_timer.data = r;
    r->subscriber.retry.data = &r->subscriber;
    r->cmd.retry.data = &r->cmd;
    r->canary.data = r;
    return r;
}

void mh_redis_start(mh_redis *r)
{
    if (r->nsentinels)
        sentinel_connect(r); /* the links follow once it names the master */
    link_connect(&r->cmd);
    link_connect(&r->subscriber);
    uv_timer_start(&r->canary, on_canary_timer, (uint64_t)r->h->cfg->canary_interval_ms,
                   (uint64_t)r->h->cfg->canary_interval_ms);
}

void mh_redis_stop(mh_redis *r)
{
    r->stopping = true;
    sync_complete(r, UINT64_MAX);
    uv_timer_stop(&r->canary);
    uv_timer_stop(&r->subscriber.retry);
    uv_timer_stop(&r->cmd.retry);
    uv_timer_stop(&r->sen.retry);
    uv_timer_stop(&r->heal_timer);
    uv_close((uv_handle_t *)&r->canary, NULL);
    uv_close((uv_handle_t *)&r->heal_timer, NULL);
    uv_close((uv_handle_t *)&r->subscriber.retry, NULL);
    uv_close((uv_handle_t *)&r->cmd.retry, NULL);
    uv_close((uv_handle_t *)&r->sen.retry, NULL);
    if (r->sen.rl)
        mh_rlink_disconnect(r->sen.rl);
    if (r->subscriber.rl)
        mh_rlink_disconnect(r->subscriber.rl);
    if (r->cmd.rl)
        mh_rlink_disconnect(r->cmd.rl);
}

void mh_redis_free(mh_redis *r)
{
    if (r)
        mh_rlink_tls_free(r->tls);
    free(r);
}

bool mh_redis_subscribed(const mh_redis *r)
{
    return r->subscribed;
}

bool mh_redis_cmd_up(const mh_redis *r)
{
    return r->cmd.state == LINK_UP;
}

bool mh_redis_ready(const mh_redis *r, const char **why)
{
    uint64_t window = (uint64_t)r->h->cfg->canary_window * 1000;

    if (!r->have_master) {
        *why = "no redis master known: the sentinels have not named one";
        return false;
    }
    if (!r->subscribed) {
        *why = "redis subscription is down";
        return false;
    }
    if (r->cmd.state != LINK_UP) {
        *why = "redis command link is down";
        return false;
    }
    if (!r->canary_seen_ms || mh_mono_ms() - r->canary_seen_ms > window) {
        *why = "no canary came back through redis recently";
        return false;
    }
    if (r->healing || r->heal_pending) {
        *why = "healing: versions missed while the redis link was down are not read yet";
        return false;
    }
    *why = "ok";
    return true;
}

static void on_cmd_reply(mh_rlink *rl, redisReply *rep, void *arg)
{
    pending_cmd *p = arg;

    (void)rl;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        p->r->h->metrics.redis_errors++;
        mh_warn("redis command error: %s", rep->str);
    }
    if (p->fn)
        p->fn(p->r->h, rep, p->arg);
    free(p);
}

int mh_redis_cmd(mh_redis *r, mh_redis_reply_fn fn, void *arg, int argc, const char **argv,
                 const size_t *lens)
{
    pending_cmd *p;

    if (r->cmd.state != LINK_UP || !r->cmd.rl)
        return -1;
    p = malloc(sizeof *p);
    if (!p)
        return -1;
    p->r = r;
    p->fn = fn;
    p->arg = arg;
    /* mh_rlink calls back with NULL for every pending command if the link drops. */
    if (mh_rlink_cmd(r->cmd.rl, on_cmd_reply, p, argc, argv, lens)) {
        free(p);
        return -1;
    }
    return 0;
}
