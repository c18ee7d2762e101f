/*
 * mizan-hub: WebSocket and cache-invalidation fan-out for Mizan.
 *
 * One process runs one libuv loop shared by libwebsockets and hiredis; with
 * --workers N a supervisor forks N such processes on one SO_REUSEPORT port
 * and restarts any that dies.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "mh_auth.h"
#include "mh_config.h"
#include "mh_conn.h"
#include "mh_eventsource.h"
#include "mh_writer.h"
#include "mh_router.h"
#include "mh_heal.h"
#include "mh_hold.h"
#include "mh_hub.h"
#include "mh_jwt.h"
#include "mh_log.h"
#include "mh_ops.h"
#include "mh_redis.h"
#include "mh_registry.h"
#include "mh_presence.h"
#include "mh_rpc.h"
#include "mh_browser.h"
#include "mh_tokcache.h"
#include "mh_transport.h"

static void random_id(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (unsigned char)((tv.tv_usec >> (i % 4)) ^ getpid() ^ (int)i * 131);
    }
    for (size_t i = 0; i + 1 < n && i < 2 * sizeof raw; i++)
        out[i] = hex[(raw[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[n - 1] = '\0';
}

static void free_node_hold(mh_keynode *node)
{
    mh_hold_free(node->hold);
    node->hold = NULL;
}

/* What the upper layers keep for a connection that is going. */
static void release_conn(mh_conn *c)
{
    mh_rpc_forget_conn(c);
    mh_presence_forget_conn(c);
    mh_auth_release(c);
}

/* A lost subscription: what the shard owns heals (mh_heal); on shard 0,
 * which carries presence (SPEC 11.2), presence lists are sent again; the
 * streams whose POSTs come on the shard end (what was handed on is lost). */
static void redis_lost(mh_hub *h, unsigned shard)
{
    mh_heal_mark_gap(h, shard);
    if (shard == 0)
        mh_presence_link_lost(h);
    mh_es_link_lost(h, shard);
}

static void redis_heal(mh_hub *h, unsigned shard)
{
    mh_heal_run(h, shard);
    if (shard == 0)
        mh_presence_heal(h);
}

static const mh_redis_events redis_events = {
    .message = mh_router_envelope,
    .lost = redis_lost,
    .heal = redis_heal,
    .unhealed = mh_heal_unhealed,
    .give_up = mh_heal_give_up,
};

static void on_signal(uv_signal_t *s, int signum)
{
    mh_hub *h = s->data;
    if (h->draining && mh_mono_ms() - h->drain_start_ms < 1000) {
        /* the same stop twice: from the supervisor and from the service
         * manager signalling the whole group (systemd's default KillMode) */
        mh_debug("signal %d again within a second of the first: still draining", signum);
        return;
    }
    if (h->draining) {
        mh_info("signal %d during drain: stopping now", signum);
        h->drain_start_ms = 0; /* the next tick closes everything */
        return;
    }
    mh_info("signal %d: draining", signum);
    mh_transport_drain(h);
}

static void on_hup(uv_signal_t *s, int signum)
{
    (void)signum;
    mh_auth_registry_reload(s->data);
}

static void close_handle(uv_handle_t *hd, void *arg)
{
    (void)arg;
    if (!uv_is_closing(hd))
        uv_close(hd, NULL);
}

static void stop_hub(mh_hub *h)
{
    if (h->stopping)
        return;
    h->stopping = true;
    uv_timer_stop(&h->tick);
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_signal_stop(&h->sig_term);
    uv_signal_stop(&h->sig_int);
    uv_signal_stop(&h->sig_hup);
    uv_close((uv_handle_t *)&h->sig_term, NULL);
    uv_close((uv_handle_t *)&h->sig_int, NULL);
    uv_close((uv_handle_t *)&h->sig_hup, NULL);
    mh_presence_stop(h);
    mh_redis_stop(h->redis);
    mh_transport_stop(h);
}

static void on_tick(uv_timer_t *t)
{
    mh_hub *h = t->data;

    mh_rpc_expire(h);
    mh_transport_share_metrics(h);
    if (h->cfg->registry_from_redis && !h->registry_version[0] && !h->registry_fetching &&
        mh_redis_cmd_up(h->redis) && h->ticks % 5 == 0)
        mh_auth_registry_fetch(h, NULL); /* until Django has stored one */
    if (++h->ticks % 10 == 0) {          /* once a second: a scan, no timer per connection */
        mh_writer_linger_sweep(h, mh_mono_ms(), false);
        mh_conn_keepalive_all(h, mh_mono_ms());
        mh_es_tick(h);  /* handed-on POSTs whose link dropped first, again */
        mh_ops_tick(h); /* this hub's snapshot out, every hub's back (/ops/) */
    }
    if (h->keys->n) {
        /* Expiry: a scan of the connections ten times a second is a few
         * microseconds per thousand connections; no per-connection timers. */
        int64_t now_s = (int64_t)(mh_now_ms() / 1000);
        size_t it = 0;
        void *v;
        while (mh_map_next(&h->conns, &it, NULL, NULL, &v))
            mh_conn_check_expiry(v, now_s);
    }
    if (h->draining) {
        size_t open = mh_transport_drain_step(h);
        uint64_t deadline = (uint64_t)h->cfg->drain_window * 1000 + 3000;
        if (open == 0 || mh_mono_ms() - h->drain_start_ms > deadline) {
            mh_info("drained (%zu connection(s) left): exiting", open);
            stop_hub(h);
        }
    }
}

static mh_jwt_keys keys_loaded;
/* --workers N: one metrics slot per worker, shared (mapped before the fork) */
static mh_metrics_slot *shared_slots;
static int worker_slot;
static mh_cidr_list trusted_loaded; /* --trusted-proxies, parsed before the fork */
/* Django's SECRET_KEY then SECRET_KEY_FALLBACKS, read before the fork */
static char *django_keys[16];
static size_t ndjango_keys;

static int run_worker(const mh_config *cfg)
{
    static mh_jwt_policy policy;
    const mh_jwt_keys *keys = &keys_loaded;
    uv_loop_t loop;
    mh_hub h;

    memset(&h, 0, sizeof h);
    srandom((unsigned)(getpid() ^ (unsigned)time(NULL)));
    h.cfg = cfg;
    h.loop = &loop;
    policy = (mh_jwt_policy){
        .audience = cfg->jwt_audience, .issuer = cfg->jwt_issuer, .leeway = cfg->jwt_leeway};
    h.keys = keys;
    h.policy = &policy;
    {
        char inc[9];
        unsigned char seed[16];
        /* each worker its own hash key: what one learns tells nothing of another */
        if (getrandom(seed, sizeof seed, 0) == (ssize_t)sizeof seed)
            mh_map_seed(seed);
        random_id(inc, sizeof inc);
        snprintf(h.conn_prefix, sizeof h.conn_prefix, "%.40s.%.8s-", cfg->hub_id, inc);
    }
    h.trusted = trusted_loaded;
    if (shared_slots) {
        h.slots = shared_slots;
        h.nslots = cfg->workers;
        h.slot = worker_slot;
        /* a successor continues its predecessor's counters: totals never go back */
        if (shared_slots[worker_slot].pid)
            h.metrics = shared_slots[worker_slot].m;
        shared_slots[worker_slot].pid = (uint64_t)getpid();
    }
    h.django_keys = (const char *const *)django_keys;
    h.ndjango_keys = ndjango_keys;
    if (keys->n)
        h.tokens = mh_tokcache_new((size_t)cfg->jwt_cache); /* NULL (off) is fine */
    mh_map_init(&h.ips);
    if (mh_auth_registry_load(&h))
        return 1;
    uv_loop_init(&loop);
    mh_subs_init(&h.subs, (size_t)cfg->max_shapes);
    h.subs.node_freed = free_node_hold;
    mh_map_init(&h.conns);
    h.hooks.frame = mh_browser_input;
    h.hooks.welcome = mh_browser_welcome;
    h.hooks.release = release_conn;
    h.redis = mh_redis_new(&h, &redis_events);
    if (!h.redis)
        return 1;
    mh_writer_init(&h);
    uv_timer_init(&loop, &h.tick);
    h.tick.data = &h;
    uv_signal_init(&loop, &h.sig_term);
    uv_signal_init(&loop, &h.sig_int);
    h.sig_term.data = h.sig_int.data = &h;
    uv_signal_start(&h.sig_term, on_signal, SIGTERM);
    uv_signal_start(&h.sig_int, on_signal, SIGINT);
    uv_signal_init(&loop, &h.sig_hup);
    h.sig_hup.data = &h;
    uv_signal_start(&h.sig_hup, on_hup, SIGHUP);
    if (mh_transport_start(&h)) {
        h.exit_code = 1;
        stop_hub(&h);
        /* as after a normal stop: lws closes its own handles on the loop
         * first (closing them for it here made it close them twice: an
         * assertion in libuv instead of exit 1) */
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_walk(&loop, close_handle, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        mh_transport_finish(&h);
        uv_loop_close(&loop);
        mh_redis_free(h.redis);
        mh_registry_free(h.registry);
        mh_tokcache_free(h.tokens);
        return 1;
    }
    mh_redis_start(h.redis);
    mh_presence_start(&h);
    uv_timer_start(&h.tick, on_tick, 100, 100);
    mh_config_log(cfg);
    uv_run(&loop, UV_RUN_DEFAULT);
    /* lws and hiredis close their handles on the loop; let them finish. */
    uv_walk(&loop, close_handle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    mh_transport_finish(&h);
    if (uv_loop_close(&loop))
        mh_warn("loop closed with handles still open");
    mh_rpc_free_all(&h);
    mh_es_free_all();
    mh_ops_free();
    mh_presence_free();
    mh_subs_free(&h.subs);
    mh_map_free(&h.conns);
    mh_map_free(&h.ips); /* emptied as the connections went */
    mh_writer_free(&h);
    mh_redis_free(h.redis);
    mh_registry_free(h.registry);
    mh_tokcache_free(h.tokens);
    return h.exit_code;
}

/* SECRET_KEY (flag/env), or the keys file: SECRET_KEY, then fallbacks, one per line. */
static int load_django_keys(const mh_config *cfg, char *err, size_t errlen)
{
    FILE *f;
    char line[1024];

    if (cfg->django_secret_key[0]) {
        django_keys[ndjango_keys] = strdup(cfg->django_secret_key);
        if (!django_keys[ndjango_keys++])
            goto oom;
    }
    if (!cfg->django_secret_keys_file[0])
        return 0;
    f = fopen(cfg->django_secret_keys_file, "r");
    if (!f) {
        snprintf(err, errlen, "invalid value for django_secret_keys_file: %.300s: %s",
                 cfg->django_secret_keys_file, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        if (n == sizeof line - 1 || ndjango_keys == sizeof django_keys / sizeof django_keys[0]) {
            fclose(f);
            snprintf(err, errlen,
                     "invalid value for django_secret_keys_file: %.300s: a key over 1022 bytes "
                     "or more than 16 keys",
                     cfg->django_secret_keys_file);
            return -1;
        }
        line[n] = '\0';
        if (!n)
            continue;
        django_keys[ndjango_keys] = strdup(line);
        if (!django_keys[ndjango_keys++]) {
            fclose(f);
            goto oom;
        }
    }
    fclose(f);
    if (!ndjango_keys) {
        snprintf(err, errlen, "invalid value for django_secret_keys_file: %.300s: no key in it",
                 cfg->django_secret_keys_file);
        return -1;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* ---- supervisor for --workers N ---- */

static volatile sig_atomic_t supervisor_stop, supervisor_hup;

static void supervisor_signal(int sig)
{
    if (sig == SIGHUP)
        supervisor_hup = 1;
    else
        supervisor_stop = 1;
}

static pid_t spawn(mh_config *cfg, const char *base_id, int i)
{
    pid_t pid = fork();
    if (pid == 0) {
        char comp[32];
        /* ids stay within 32 characters: 28 of the base, "-", two digits */
        snprintf(cfg->hub_id, sizeof cfg->hub_id, "%.28s-%u", base_id, (unsigned)i % 100u);
        snprintf(comp, sizeof comp, "w%d", i);
        worker_slot = i;
        mh_log_setup(cfg->log_level, cfg->log_json, comp);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        _exit(run_worker(cfg));
    }
    return pid;
}

static int supervise(mh_config *cfg)
{
    char base[40];
    pid_t *pids = calloc((size_t)cfg->workers, sizeof *pids);
    int alive = 0, rc = 0;

    struct sigaction sa;

    snprintf(base, sizeof base, "%s", cfg->hub_id);
    shared_slots = mmap(NULL, (size_t)cfg->workers * sizeof *shared_slots, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared_slots == MAP_FAILED) {
        mh_warn("supervisor: no shared memory for metrics (%s): /metrics shows one worker",
                strerror(errno));
        shared_slots = NULL;
    }
    /* No SA_RESTART: waitpid() must return EINTR so the signal is forwarded. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = supervisor_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    for (int i = 0; i < cfg->workers; i++) {
        pids[i] = spawn(cfg, base, i);
        if (pids[i] > 0)
            alive++;
    }
    mh_info("supervisor: %d worker(s) on port %d", alive, cfg->listen_port);
    while (alive) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR && supervisor_hup) {
                supervisor_hup = 0;
                for (int i = 0; i < cfg->workers; i++)
                    if (pids[i] > 0)
                        kill(pids[i], SIGHUP);
            }
            if (errno == EINTR && supervisor_stop) {
                for (int i = 0; i < cfg->workers; i++)
                    if (pids[i] > 0)
                        kill(pids[i], SIGTERM);
                supervisor_stop = 2;
            }
            continue;
        }
        for (int i = 0; i < cfg->workers; i++) {
            if (pids[i] != pid)
                continue;
            pids[i] = 0;
            alive--;
            if (supervisor_stop) {
                if (!WIFEXITED(status) || WEXITSTATUS(status))
                    rc = 1;
            } else {
                mh_error("worker %d (pid %d) died (%s %d): restarting", i, (int)pid,
                         WIFSIGNALED(status) ? "signal" : "exit",
                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                sleep(1);
                pids[i] = spawn(cfg, base, i);
                if (pids[i] > 0)
                    alive++;
            }
        }
    }
    free(pids);
    return rc;
}

int main(int argc, char **argv)
{
    static mh_config cfg;
    char err[512];
    int rc = mh_config_load(&cfg, argc, argv, err, sizeof err);

    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "mizan-hub: %s\n", err);
        return 2;
    }
    mh_log_setup(cfg.log_level, cfg.log_json, "hub");
    if ((cfg.jwt_keys[0] && mh_jwt_keys_load(&keys_loaded, cfg.jwt_keys, err, sizeof err)) ||
        (cfg.jwt_secret[0] && mh_jwt_keys_add(&keys_loaded, cfg.jwt_kid, "HS256", cfg.jwt_secret,
                                              strlen(cfg.jwt_secret), err, sizeof err))) {
        fprintf(stderr, "mizan-hub: invalid value for jwt_keys/jwt_secret: %s\n", err);
        return 2;
    }
    if (mh_cidr_parse(&trusted_loaded, cfg.trusted_proxies, err, sizeof err)) {
        fprintf(stderr, "mizan-hub: invalid value for trusted_proxies (--trusted-proxies): %s\n",
                err);
        return 2;
    }
    if (cfg.redis_sentinels[0] &&
        mh_redis_parse_sentinels(cfg.redis_sentinels, err, sizeof err) <= 0) {
        fprintf(stderr, "mizan-hub: invalid value for redis_sentinels (--redis-sentinels): %s\n",
                cfg.redis_sentinels[0] ? err : "empty");
        return 2;
    }
    if (cfg.proxy_protocol && !trusted_loaded.n) {
        fprintf(stderr, "mizan-hub: invalid value for proxy_protocol (--proxy-protocol): it needs "
                        "--trusted-proxies (whose connections carry the header)\n");
        return 2;
    }
    if (load_django_keys(&cfg, err, sizeof err)) {
        fprintf(stderr, "mizan-hub: %s\n", err);
        return 2;
    }
    if (cfg.registry[0]) {
        /* Checked here so a bad file stops the start, not only a worker. */
        mh_registry *r = mh_registry_load(cfg.registry, err, sizeof err);
        if (!r) {
            fprintf(stderr, "mizan-hub: invalid value for registry (--registry): %s\n", err);
            return 2;
        }
        mh_registry_free(r);
    }
    if (!cfg.allow_anonymous && !keys_loaded.n && !ndjango_keys && !cfg.registry[0]) {
        fprintf(stderr, "mizan-hub: no authentication is configured: give --jwt-secret, "
                        "--jwt-keys, --django-secret-key(s-file) or --registry, or start with "
                        "--allow-anonymous to serve every context and channel as public\n");
        return 2;
    }
    if (!cfg.hub_id[0])
        random_id(cfg.hub_id, 13);
    signal(SIGPIPE, SIG_IGN);
    if (cfg.workers > 1)
        return supervise(&cfg);
    return run_worker(&cfg);
}
