#include "mh_config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mh_log.h"

typedef enum { T_INT, T_BOOL, T_STR, T_LISTEN, T_REDIS, T_LEVEL, T_FORMAT, T_HUBID } stype;

typedef struct setting {
    const char *name; /* flag is --name with '_' -> '-', env MIZAN_HUB_NAME */
    stype type;
    const char *def;
    long min, max; /* T_INT bounds; T_STR max length */
    size_t off;
    size_t size; /* T_STR buffer size */
    const char *help;
} setting;

#define OFF(f) offsetof(mh_config, f)
#define STR(f) OFF(f), sizeof(((mh_config *)0)->f)

static const setting table[] = {
    {"config", T_STR, "", 0, 0, STR(config_file), "read settings from FILE (lines 'name = value')"},
    {"listen", T_LISTEN, "127.0.0.1:8765", 1, 0, OFF(listen_host), 0,
     "HOST:PORT for WebSocket and HTTP (/healthz, /readyz, /metrics)"},
    {"admin_listen", T_LISTEN, "", 0, 0, OFF(admin_host), 0,
     "HOST:PORT of a separate HTTP listener for /metrics, /healthz, /readyz and the operator "
     "page /ops/ (then /metrics is not served on --listen); empty: none"},
    {"ops_public", T_BOOL, "false", 0, 1, OFF(ops_public), 0,
     "also serve the operator page /ops/ and its JSON (every hub's state, traces of any "
     "context or channel) on --listen, to whoever reaches that port; without it /ops/ is "
     "served on --admin-listen only"},
    {"redis", T_REDIS, "redis://127.0.0.1:6379/0", 0, 0, OFF(redis), 0,
     "redis://[[USER]:PASSWORD@]HOST:PORT/DB (USER: a Redis ACL user; none: the default user); "
     "rediss://... for TLS; an IPv6 HOST in brackets ([::1])"},
    {"redis_tls_ca", T_STR, "", 0, 0, STR(redis_tls_ca),
     "with rediss://: PEM file of the CA(s) the Redis server's certificate must chain to "
     "(empty: the system's store); the certificate must also name the host connected to"},
    {"redis_tls_cert", T_STR, "", 0, 0, STR(redis_tls_cert),
     "with rediss://: PEM client certificate (chain) for Redis servers that ask for one "
     "(tls-auth-clients)"},
    {"redis_tls_key", T_STR, "", 0, 0, STR(redis_tls_key), "PEM private key of --redis-tls-cert"},
    {"redis_prefix", T_STR, "mizan:", 0, 0, STR(redis_prefix),
     "prefix of every Redis key and channel (SPEC 11)"},
    {"hub_id", T_HUBID, "", 0, 0, STR(hub_id),
     "this hub's id ([0-9a-z-], 1-32 chars); random when empty"},
    {"allow_anonymous", T_BOOL, "false", 0, 1, OFF(allow_anonymous), 0,
     "accept connections without credentials, treating every context and channel as public"},
    {"workers", T_INT, "1", 1, 64, OFF(workers), 0,
     "worker processes sharing the listen port (SO_REUSEPORT)"},
    {"tls_cert", T_STR, "", 0, 0, STR(tls_cert), "PEM certificate file: serve wss:// and https://"},
    {"tls_key", T_STR, "", 0, 0, STR(tls_key), "PEM private key file for --tls-cert"},
    {"max_frame", T_INT, "65536", 256, 16777216, OFF(max_frame), 0,
     "largest browser frame in bytes; larger closes with 1009"},
    {"ping_interval", T_INT, "25", 1, 3600, OFF(ping_interval), 0,
     "seconds of silence before the hub pings a connection"},
    {"pong_timeout", T_INT, "10", 1, 600, OFF(pong_timeout), 0,
     "seconds a pinged peer has to answer before it is dropped"},
    {"queue_max_msgs", T_INT, "16384", 4, 1000000, OFF(queue_max_msgs), 0,
     "hard limit: frames queued for one connection before it is closed as a slow consumer (4008)"},
    {"queue_max_bytes", T_INT, "16777216", 4096, 1073741824, OFF(queue_max_bytes), 0,
     "hard limit: bytes queued for one connection before it is closed with 4008"},
    {"queue_soft_bytes", T_INT, "1048576", 1024, 1073741824, OFF(queue_soft_bytes), 0,
     "soft limit: a connection over this many queued bytes for queue_soft_seconds is closed "
     "with 4008 (bursts pass, laggards do not)"},
    {"queue_soft_seconds", T_INT, "5", 1, 3600, OFF(queue_soft_seconds), 0,
     "how long a connection may stay over queue_soft_bytes"},
    {"max_subs", T_INT, "256", 1, 100000, OFF(max_subs), 0, "subscriptions per connection"},
    {"max_shapes", T_INT, "64", 1, 65536, OFF(max_shapes), 0,
     "distinct param-name sets (shapes) subscribed per context, per worker; a subscribe that "
     "would add one more gets too_large (each scoped invalidation costs one lookup per shape)"},
    {"rpc_timeout_ms", T_INT, "30000", 100, 3600000, OFF(rpc_timeout_ms), 0,
     "an rpc without a reply after this long gets a TIMEOUT error"},
    {"spread_max_ms", T_INT, "2000", 0, 600000, OFF(spread_max_ms), 0,
     "largest refetch spread window suggested to clients"},
    {"refetch_rate", T_INT, "10000", 1, 100000000, OFF(refetch_rate), 0,
     "refetches per second the backend should see after one invalidation (sets spread_ms)"},
    {"drain_window", T_INT, "10", 0, 3600, OFF(drain_window), 0,
     "seconds over which SIGTERM spreads the 1012 closes"},
    {"canary_interval_ms", T_INT, "1000", 50, 60000, OFF(canary_interval_ms), 0,
     "how often the hub publishes a canary through Redis"},
    {"canary_window", T_INT, "5", 1, 600, OFF(canary_window), 0,
     "/readyz fails when no canary came back for this many seconds"},
    {"redis_backoff_max_ms", T_INT, "5000", 10, 600000, OFF(redis_backoff_max_ms), 0,
     "cap of the jittered exponential backoff between Redis reconnects"},
    {"redis_connect_timeout_ms", T_INT, "5000", 100, 600000, OFF(redis_connect_timeout_ms), 0,
     "a Redis or Sentinel connection not up this long after it began (resolving, TCP connect, "
     "TLS handshake) is given up and retried"},
    {"heal_timeout_ms", T_INT, "5000", 100, 600000, OFF(heal_timeout_ms), 0,
     "after the Redis link comes back, how long a heal whose version reads fail is retried "
     "(jittered backoff); then every context still unhealed is invalidated and every channel "
     "still unhealed gets a gap (SPEC 10)"},
    {"inbound_maxlen", T_INT, "100000", 100, 100000000, OFF(inbound_maxlen), 0,
     "approximate cap (XADD MAXLEN ~) of the browser->Django stream"},
    {"jwt_keys", T_STR, "", 0, 0, STR(jwt_keys),
     "JWKS file of the keys that sign connection tokens (each key pins its alg)"},
    {"jwt_secret", T_STR, "", 0, 0, STR(jwt_secret),
     "HS256 secret of Mizan's MWT tokens (at least 32 bytes), key id --jwt-kid"},
    {"jwt_kid", T_STR, "v1", 0, 0, STR(jwt_kid), "key id of --jwt-secret"},
    {"jwt_audience", T_STR, "", 0, 0, STR(jwt_audience),
     "required `aud` of tokens (empty: not checked)"},
    {"jwt_issuer", T_STR, "", 0, 0, STR(jwt_issuer),
     "required `iss` of tokens (empty: not checked)"},
    {"jwt_leeway", T_INT, "30", 0, 600, OFF(jwt_leeway), 0,
     "seconds of clock skew tolerated on exp, nbf and iat"},
    {"jwt_cache", T_INT, "1024", 0, 1048576, OFF(jwt_cache), 0,
     "connection tokens remembered per process once verified, until their exp "
     "(about 1.4 KiB each; 0: check every token's signature)"},
    {"token_query", T_BOOL, "false", 0, 1, OFF(token_query), 0,
     "also accept the token in the `token` query parameter (it ends up in access logs)"},
    {"expiry_warning", T_INT, "30", 1, 3600, OFF(expiry_warning), 0,
     "seconds before a token expires that the hub sends `expiring`"},
    {"registry", T_STR, "", 0, 0, STR(registry),
     "authorization registry file (manage.py mizan_hub_registry): guards and param rules of "
     "every context and channel (SPEC 12); reloaded on SIGHUP"},
    {"session_cookie", T_STR, "sessionid", 0, 0, STR(session_cookie),
     "name of Django's session cookie (SESSION_COOKIE_NAME); empty: cookies are ignored"},
    {"session_max_age", T_INT, "1209600", 1, 315360000, OFF(session_max_age), 0,
     "SESSION_COOKIE_AGE: oldest signed-cookie session accepted, in seconds"},
    {"django_secret_key", T_STR, "", 0, 0, STR(django_secret_key),
     "Django's SECRET_KEY, to verify signed_cookies sessions (prefer the env var or the file)"},
    {"django_secret_keys_file", T_STR, "", 0, 0, STR(django_secret_keys_file),
     "file with SECRET_KEY on its first line and SECRET_KEY_FALLBACKS on the next ones"},
    {"allowed_origins", T_STR, "", 0, 0, STR(allowed_origins),
     "comma-separated Origins allowed for cookie-authenticated upgrades (scheme://host[:port], "
     "'https://*.example.com' for subdomains); empty: only the upgrade's own Host"},
    {"max_connections", T_INT, "0", 0, 10000000, OFF(max_connections), 0,
     "connections per worker process before upgrades get HTTP 503 (0: no limit but the "
     "open-file limit)"},
    {"max_connections_per_ip", T_INT, "0", 0, 10000000, OFF(max_connections_per_ip), 0,
     "connections from one IP address per worker before upgrades get HTTP 429 (0: no limit)"},
    {"frame_rate", T_INT, "100", 0, 1000000, OFF(frame_rate), 0,
     "browser frames per second per connection; over it: a rate_limited error, then close 4029 "
     "(0: no limit)"},
    {"frame_burst", T_INT, "300", 1, 10000000, OFF(frame_burst), 0,
     "frames a connection may send at once above frame_rate (a page subscribing to everything "
     "at load)"},
    {"header_timeout", T_INT, "5", 1, 600, OFF(header_timeout), 0,
     "seconds a new connection has to send its whole request head; slower ones get HTTP 408"},
    {"inbound_rate", T_INT, "2000", 0, 100000000, OFF(inbound_rate), 0,
     "message/rpc/ctx frames per second this worker adds to the browser->Django stream, all "
     "connections together (burst: twice as many); over it a sender gets rate_limited (0: none)"},
    {"inbound_conn_rate", T_INT, "50", 0, 1000000, OFF(inbound_conn_rate), 0,
     "message/rpc/ctx frames per second one connection may send to Django (burst: twice as "
     "many); so one connection cannot fill the capped stream for everyone (0: none)"},
    {"trusted_proxies", T_STR, "", 0, 0, STR(trusted_proxies),
     "comma-separated addresses/CIDRs of the load balancers in front: only their PROXY header "
     "or X-Forwarded-For names the client (limits and logs use it)"},
    {"proxy_protocol", T_BOOL, "false", 0, 1, OFF(proxy_protocol), 0,
     "connections from --trusted-proxies start with a PROXY protocol v1/v2 header "
     "(HAProxy send-proxy / send-proxy-v2); without it their X-Forwarded-For is read"},
    {"resume_rate", T_INT, "10", 0, 1000000, OFF(resume_rate), 0,
     "channel resumes (subscribe with since) per second per connection; over it the subscribe "
     "gets a rate_limited error and is not made (0: no limit)"},
    {"resume_burst", T_INT, "256", 1, 10000000, OFF(resume_burst), 0,
     "channel resumes a connection may make at once above resume_rate (a reconnect resumes "
     "every channel, so max_subs when that is larger)"},
    {"presence_heartbeat_ms", T_INT, "5000", 100, 600000, OFF(presence_heartbeat_ms), 0,
     "H: how often the hub refreshes its presence heartbeat and sweeps dead hubs' members; a "
     "hub that dies leaves every presence answer within 3H and its leaves go out within 4H"},
    {"presence_max", T_INT, "10000", 0, 10000000, OFF(presence_max), 0,
     "presence members per channel instance, all hubs together; the subscription over it is "
     "ended with too_large (0: no limit)"},
    {"redis_sentinels", T_STR, "", 0, 0, STR(redis_sentinels),
     "HOST:PORT,... of Redis Sentinels: the master comes from them (and --redis only names the "
     "database, user and password), and a failover (+switch-master) is followed"},
    {"redis_shards", T_STR, "", 0, 0, STR(redis_shards),
     "URL,URL,... (each as --redis, at most 16): spread the hub's Redis data over these "
     "independent Redis servers by SPEC 11.1's mapping (the order matters: every hub and "
     "publisher lists the same URLs in the same order); empty: one shard, --redis"},
    {"redis_master_name", T_STR, "mymaster", 0, 0, STR(redis_master_name),
     "the master's name in --redis-sentinels"},
    {"redis_sentinel_password", T_STR, "", 0, 0, STR(redis_sentinel_password),
     "password of the Sentinels themselves (their requirepass), if any"},
    {"registry_from_redis", T_BOOL, "false", 0, 1, OFF(registry_from_redis), 0,
     "read the registry Django stores in Redis (manage.py mizan_hub_registry --publish) at start "
     "and whenever a `registry` envelope announces a new one; nothing is allowed before"},
    {"log_level", T_LEVEL, "info", 0, 0, OFF(log_level), 0, "debug, info, warn or error"},
    {"log_format", T_FORMAT, "text", 0, 0, OFF(log_json), 0, "text or json"},
};

#define NSETTINGS (sizeof table / sizeof table[0])

static int fail(char *err, size_t errlen, const setting *s, const char *value, const char *why)
{
    snprintf(err, errlen, "invalid value for %s (--%s): '%s': %s", s->name, s->name, value, why);
    return -1;
}

static int parse_port(const char *p, int *port)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(p, &end, 10);
    if (errno || *end || end == p || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

static int url_fail(char *why, size_t whylen, const char *msg)
{
    snprintf(why, whylen, "%s", msg);
    return -1;
}

int mh_config_parse_redis_url(const char *v, mh_redis_addr *a, char *why, size_t whylen)
{
    const char *p = v, *at, *colon, *slash, *host, *host_end = NULL;
    char port[16] = "6379";
    if (!strncmp(p, "redis://", 8))
        a->tls = 0, p += 8;
    else if (!strncmp(p, "rediss://", 9))
        a->tls = 1, p += 9;
    else
        return url_fail(why, whylen,
                        "expected redis://[[USER]:PASSWORD@]HOST:PORT/DB or rediss://...");
    if (strlen(v) >= sizeof a->url)
        return url_fail(why, whylen, "too long");
    a->password[0] = '\0';
    a->user[0] = '\0';
    at = strrchr(p, '@');
    if (at) {
        const char *pw = memchr(p, ':', (size_t)(at - p));
        /* USER:PASSWORD@ authenticates as an ACL user (Redis 6+) */
        if (pw && pw > p) {
            if ((size_t)(pw - p) >= sizeof a->user)
                return url_fail(why, whylen, "user too long");
            memcpy(a->user, p, (size_t)(pw - p));
            a->user[pw - p] = '\0';
        }
        pw = pw ? pw + 1 : p;
        if ((size_t)(at - pw) >= sizeof a->password)
            return url_fail(why, whylen, "password too long");
        memcpy(a->password, pw, (size_t)(at - pw));
        a->password[at - pw] = '\0';
        p = at + 1;
    }
    host = p;
    if (*p == '[') { /* [IPv6] */
        const char *close = strchr(p, ']');
        if (!close)
            return url_fail(why, whylen, "missing ']' after the IPv6 address");
        host = p + 1;
        host_end = close;
        p = close + 1;
        if (*p && *p != ':' && *p != '/')
            return url_fail(why, whylen, "expected :PORT or /DB after ']'");
    }
    slash = strchr(p, '/');
    colon = strchr(p, ':');
    if (colon && slash && colon > slash)
        colon = NULL;
    if (host == p)
        host_end = colon ? colon : (slash ? slash : p + strlen(p));
    if (host_end == host || (size_t)(host_end - host) >= sizeof a->host)
        return url_fail(why, whylen, "missing host");
    memcpy(a->host, host, (size_t)(host_end - host));
    a->host[host_end - host] = '\0';
    if (colon) {
        size_t n = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
        if (n == 0 || n >= sizeof port)
            return url_fail(why, whylen, "bad port");
        memcpy(port, colon + 1, n);
        port[n] = '\0';
    }
    if (parse_port(port, &a->port))
        return url_fail(why, whylen, "port must be 1-65535");
    a->db = 0;
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 15)
            return url_fail(why, whylen, "DB must be 0-15");
        a->db = (int)db;
    }
    strcpy(a->url, v);
    return 0;
}

static int set_value(mh_config *c, const setting *s, const char *v, char *err, size_t errlen)
{
    char *base = (char *)c;

    switch (s->type) {
    case T_INT: {
        char *end;
        long n;
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno || *end || end == v)
            return fail(err, errlen, s, v, "not an integer");
        if (n < s->min || n > s->max) {
            char why[96];
            snprintf(why, sizeof why, "must be between %ld and %ld", s->min, s->max);
            return fail(err, errlen, s, v, why);
        }
        *(int *)(base + s->off) = (int)n;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
            *(int *)(base + s->off) = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
            *(int *)(base + s->off) = 0;
        else
            return fail(err, errlen, s, v, "expected true or false");
        return 0;
    case T_STR:
    case T_HUBID:
        if (strlen(v) >= s->size)
            return fail(err, errlen, s, v, "too long");
        if (s->type == T_HUBID) {
            if (strlen(v) > 32)
                return fail(err, errlen, s, v, "at most 32 characters");
            for (const char *p = v; *p; p++)
                if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
                    return fail(err, errlen, s, v, "only [0-9a-z-] allowed");
        }
        strcpy(base + s->off, v);
        return 0;
    case T_LISTEN: {
        /* host[MH_HOST_MAX] then its int port (static asserts in mh_config.h) */
        char *host = (char *)c + s->off;
        int *port = (int *)(host + MH_HOST_MAX);
        const char *colon = strrchr(v, ':');
        if (!v[0] && s->min == 0) { /* optional listener: none */
            host[0] = '\0';
            *port = 0;
            return 0;
        }
        if (!colon || colon == v || (size_t)(colon - v) >= MH_HOST_MAX)
            return fail(err, errlen, s, v, "expected HOST:PORT");
        if (parse_port(colon + 1, port))
            return fail(err, errlen, s, v, "port must be 1-65535");
        memcpy(host, v, (size_t)(colon - v));
        host[colon - v] = '\0';
        return 0;
    }
    case T_REDIS: {
        char why[128];
        if (mh_config_parse_redis_url(v, (mh_redis_addr *)(base + s->off), why, sizeof why))
            return fail(err, errlen, s, v, why);
        return 0;
    }
    case T_LEVEL: {
        int l = mh_log_level_from(v);
        if (l < 0)
            return fail(err, errlen, s, v, "expected debug, info, warn or error");
        *(int *)(base + s->off) = l;
        return 0;
    }
    case T_FORMAT:
        if (strcmp(v, "text") && strcmp(v, "json"))
            return fail(err, errlen, s, v, "expected text or json");
        *(int *)(base + s->off) = !strcmp(v, "json");
        return 0;
    }
    return fail(err, errlen, s, v, "unknown type");
}

static const setting *find(const char *name, size_t n)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strlen(table[i].name) == n && !strncmp(table[i].name, name, n))
            return &table[i];
    return NULL;
}

/* "--max-frame" -> "max_frame" */
static void flag_to_name(const char *flag, char *out, size_t outlen)
{
    size_t i;
    for (i = 0; flag[i] && flag[i] != '=' && i + 1 < outlen; i++)
        out[i] = flag[i] == '-' ? '_' : flag[i];
    out[i] = '\0';
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int load_file(mh_config *c, const char *path, char *err, size_t errlen)
{
    char line[1024];
    int lineno = 0;
    FILE *f = fopen(path, "r");

    if (!f) {
        snprintf(err, errlen, "cannot read config file '%s': %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *s = trim(line), *eq, *name, *value;
        const setting *st;
        lineno++;
        if (!*s || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'name = value'", path, lineno);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        name = trim(s);
        value = trim(eq + 1);
        st = find(name, strlen(name));
        if (!st || st->off == OFF(config_file)) {
            snprintf(err, errlen, "%s:%d: unknown setting '%s'", path, lineno, name);
            fclose(f);
            return -1;
        }
        if (set_value(c, st, value, err, errlen)) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (%s:%d)", path, lineno);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

void mh_config_help(const char *prog)
{
    printf("usage: %s [--setting value ...]\n\n"
           "mizan-hub: WebSocket and cache-invalidation fan-out for Mizan (protocol/SPEC.md).\n"
           "Each setting is also read from the environment (MIZAN_HUB_<NAME>) and from\n"
           "--config FILE; flags win over the environment, which wins over the file.\n\n",
           prog);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &table[i];
        char flag[64], env[64];
        size_t k;
        for (k = 0; s->name[k]; k++) {
            flag[k] = s->name[k] == '_' ? '-' : s->name[k];
            env[k] = (char)toupper((unsigned char)s->name[k]);
        }
        flag[k] = env[k] = '\0';
        printf("  --%-22s %s\n", flag, s->help);
        printf("  %24s env MIZAN_HUB_%s, default '%s'", "", env, s->def);
        if (s->type == T_INT)
            printf(", %ld..%ld", s->min, s->max);
        printf("\n");
    }
    printf("  --%-22s print this help\n  --%-22s print the version\n", "help", "version");
}

/* c->shards from --redis-shards, or --redis as the one shard. */
static int build_shards(mh_config *c, char *err, size_t errlen)
{
    const char *p = c->redis_shards;
    char url[sizeof c->shards[0].url], why[128];

    c->nshards = 0;
    if (!c->redis_shards[0]) {
        c->shards[0] = c->redis;
        c->redis_tls = c->redis.tls;
        c->nshards = 1;
        return 0;
    }
    if (c->redis_sentinels[0]) {
        snprintf(err, errlen,
                 "invalid value for redis_shards: not with --redis-sentinels (Sentinel and "
                 "sharding together are not supported)");
        return -1;
    }
    while (*p) {
        size_t n;
        while (*p == ',' || *p == ' ')
            p++;
        if (!*p)
            break;
        n = strcspn(p, ", ");
        if (n >= sizeof url) {
            snprintf(err, errlen, "invalid value for redis_shards: a URL is too long");
            return -1;
        }
        if (c->nshards == MH_REDIS_MAX_SHARDS) {
            snprintf(err, errlen, "invalid value for redis_shards: at most %d shards",
                     MH_REDIS_MAX_SHARDS);
            return -1;
        }
        memcpy(url, p, n);
        url[n] = '\0';
        if (mh_config_parse_redis_url(url, &c->shards[c->nshards], why, sizeof why)) {
            snprintf(err, errlen, "invalid value for redis_shards: '%s': %s", url, why);
            return -1;
        }
        c->nshards++;
        p += n;
    }
    if (!c->nshards) {
        snprintf(err, errlen, "invalid value for redis_shards: no URL");
        return -1;
    }
    /* The CA and client certificate go to every rediss:// shard. */
    c->redis_tls = 0;
    for (int i = 0; i < c->nshards; i++)
        c->redis_tls |= c->shards[i].tls;
    return 0;
}

int mh_config_load(mh_config *c, int argc, char **argv, char *err, size_t errlen)
{
    char name[64];

    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NSETTINGS; i++)
        if (set_value(c, &table[i], table[i].def, err, errlen))
            return -1;
    /* The config file comes first, wherever --config appears. */
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            v = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            v = argv[i] + 9;
        if (v && (set_value(c, find("config", 6), v, err, errlen) ||
                  load_file(c, c->config_file, err, errlen)))
            return -1;
    }
    if (!c->config_file[0] && getenv("MIZAN_HUB_CONFIG") &&
        (set_value(c, find("config", 6), getenv("MIZAN_HUB_CONFIG"), err, errlen) ||
         load_file(c, c->config_file, err, errlen)))
        return -1;
    for (size_t i = 0; i < NSETTINGS; i++) {
        char env[64] = "MIZAN_HUB_";
        size_t k = strlen(env);
        const char *v;
        for (const char *p = table[i].name; *p && k + 1 < sizeof env; p++)
            env[k++] = (char)toupper((unsigned char)*p);
        env[k] = '\0';
        v = getenv(env);
        if (v && table[i].off != OFF(config_file) && set_value(c, &table[i], v, err, errlen)) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (from %s)", env);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v, *eq;
        const setting *s;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            mh_config_help(argv[0]);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("mizan-hub 0.1.0 (protocol 1)\n");
            return 1;
        }
        if (strncmp(a, "--", 2)) {
            snprintf(err, errlen, "unexpected argument '%s' (settings are --name value)", a);
            return -1;
        }
        flag_to_name(a + 2, name, sizeof name);
        s = find(name, strlen(name));
        if (!s) {
            snprintf(err, errlen, "unknown setting '%s' (see --help)", a);
            return -1;
        }
        eq = strchr(a, '=');
        if (eq) {
            v = eq + 1;
        } else if (s->type == T_BOOL) {
            /* "--flag" alone is true; "--flag false" takes a literal that follows */
            static const char *lits[] = {"true", "false", "1", "0", "yes", "no", "on", "off"};
            v = "true";
            for (size_t k = 0; i + 1 < argc && k < sizeof lits / sizeof lits[0]; k++)
                if (!strcmp(argv[i + 1], lits[k])) {
                    v = argv[++i];
                    break;
                }
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            snprintf(err, errlen, "%s needs a value", a);
            return -1;
        }
        if (s->off == OFF(config_file))
            continue; /* already loaded */
        if (set_value(c, s, v, err, errlen))
            return -1;
    }
    if (!!c->tls_cert[0] != !!c->tls_key[0]) {
        snprintf(err, errlen, "invalid value for tls_cert/tls_key: give both or neither");
        return -1;
    }
    if (!!c->redis_tls_cert[0] != !!c->redis_tls_key[0]) {
        snprintf(err, errlen,
                 "invalid value for redis_tls_cert/redis_tls_key: give both or "
                 "neither");
        return -1;
    }
    if (build_shards(c, err, errlen))
        return -1;
    if (!c->redis_tls && (c->redis_tls_ca[0] || c->redis_tls_cert[0])) {
        /* a CA or a client certificate for a plain link is a mistake, not a wish */
        snprintf(err, errlen,
                 "invalid value for redis_tls_ca/redis_tls_cert: they need a "
                 "rediss:// --redis or --redis-shards URL (TLS); none is rediss://");
        return -1;
    }
    return 0;
}

void mh_config_log(const mh_config *c)
{
    mh_info(
        "listen %s:%d%s, redis %s:%d/%d%s%s%s prefix '%s', hub id %s, %d worker(s)", c->listen_host,
        c->listen_port, c->tls_cert[0] ? " (TLS)" : "", c->shards[0].host, c->shards[0].port,
        c->shards[0].db,
        c->shards[0].tls ? (c->redis_tls_cert[0] ? " (TLS, client certificate)" : " (TLS)") : "",
        c->shards[0].password[0]
            ? (c->shards[0].user[0] ? " (ACL user, password set)" : " (password set)")
            : "",
        c->nshards > 1 ? " and more shards (below)," : "", c->redis_prefix, c->hub_id, c->workers);
    for (int i = 0; c->nshards > 1 && i < c->nshards; i++)
        mh_info("redis shard %d: %s:%d/%d%s%s", i, c->shards[i].host, c->shards[i].port,
                c->shards[i].db, c->shards[i].tls ? " (TLS)" : "",
                c->shards[i].password[0] ? " (password set)" : "");
    if (c->allow_anonymous)
        mh_warn("--allow-anonymous: every connection is accepted and everything is public");
}
