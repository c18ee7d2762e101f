#define _GNU_SOURCE /* memmem */
#include "mh_auth.h"

#include <ctype.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mh_djsign.h"
#include "mh_json.h"
#include "mh_jwt.h"
#include "mh_log.h"
#include "mh_out.h"
#include "mh_peer.h"
#include "mh_rate.h"
#include "mh_redis.h"
#include "mh_registry.h"
#include "mh_tokcache.h"
#include "mh_upgrade.h"

/* Frames a connection may send before its session lookup answers, and
 * their bytes together: a lookup that takes long must not let one
 * connection park max_frame x HELD_MAX bytes. */
#define HELD_MAX 64
#define HELD_BYTES 65536

struct mh_held {
    struct mh_held *next;
    size_t len;
    bool binary;
    char text[];
};

/* ---- the registry ---- */

int mh_auth_registry_load(mh_hub *h)
{
    char err[512];

    if (!h->cfg->registry[0])
        return 0;
    h->registry = mh_registry_load(h->cfg->registry, err, sizeof err);
    if (!h->registry) {
        mh_error("registry %s: %s", h->cfg->registry, err);
        return -1;
    }
    mh_info("registry %s: %zu context(s), %zu channel(s)", h->cfg->registry,
            mh_registry_count(h->registry, false), mh_registry_count(h->registry, true));
    return 0;
}

void mh_auth_registry_reload(mh_hub *h)
{
    char err[512];
    mh_registry *r;

    if (!h->cfg->registry[0]) {
        mh_info("SIGHUP: no --registry to reload");
        return;
    }
    r = mh_registry_load(h->cfg->registry, err, sizeof err);
    if (!r) {
        mh_error("SIGHUP: registry %s not reloaded, the previous one stays in force: %s",
                 h->cfg->registry, err);
        return;
    }
    /* Subscriptions already granted stay: a reload never drops a connection. */
    mh_registry_free(h->registry);
    h->registry = r;
    mh_info("SIGHUP: registry %s reloaded: %zu context(s), %zu channel(s)", h->cfg->registry,
            mh_registry_count(r, false), mh_registry_count(r, true));
}

static void sha256_hex(const char *s, size_t n, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)s, n, d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The version a registry text is known by: the first 16 hex digits of its
 * sha256 (what `mizan_hub_registry --publish` announces too). */
static void registry_digest(const char *text, size_t len, char out[17])
{
    char hex[65];

    sha256_hex(text, len, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

static void on_registry(mh_hub *h, redisReply *reply, void *arg)
{
    char err[512], version[17];
    mh_registry *r;

    (void)arg;
    h->registry_fetching = false;
    if (!reply || reply->type != REDIS_REPLY_STRING) {
        mh_warn("registry from redis: %s; the registry in force stays",
                !reply                           ? "redis link lost"
                : reply->type == REDIS_REPLY_NIL ? "nothing stored yet"
                                                 : "not a string");
        return;
    }
    registry_digest(reply->str, reply->len, version);
    if (!strcmp(version, h->registry_version))
        return; /* already in force */
    r = mh_registry_parse(reply->str, reply->len, err, sizeof err);
    if (!r) {
        mh_error("registry from redis (version %s) refused, the registry in force stays: %s",
                 version, err);
        h->metrics.registry_refused++;
        return;
    }
    mh_registry_free(h->registry);
    h->registry = r;
    snprintf(h->registry_version, sizeof h->registry_version, "%s", version);
    h->metrics.registry_loads++;
    mh_info("registry from redis: version %s in force: %zu context(s), %zu channel(s)", version,
            mh_registry_count(r, false), mh_registry_count(r, true));
}

void mh_auth_registry_fetch(mh_hub *h, const char *version)
{
    const char *argv[2];
    size_t lens[2];
    mh_buf key;

    if (!h->cfg->registry_from_redis) {
        if (version)
            mh_debug("registry %s announced; not read (--registry-from-redis is off)", version);
        return;
    }
    if (h->registry_fetching)
        return;
    mh_buf_init(&key);
    mh_redis_name(h->redis, &key, "registry", NULL, 0);
    argv[0] = "GET", lens[0] = 3;
    argv[1] = key.data, lens[1] = key.len;
    if (!key.oom && mh_redis_cmd(h->redis, on_registry, NULL, 2, argv, lens) == 0)
        h->registry_fetching = true;
    mh_buf_free(&key);
}

bool mh_auth_registry_ready(const mh_hub *h, const char **why)
{
    if (!h->cfg->registry_from_redis || h->registry_version[0])
        return true;
    *why = "no registry read from redis yet (manage.py mizan_hub_registry --publish)";
    return false;
}

/* ---- limits ---- */

int mh_auth_refuse(mh_hub *h, mh_upgrade_refusal *why, int status, const char *stage,
                   const char *reason, const char *text)
{
    h->metrics.connections_rejected++;
    mh_metrics_reject(&h->metrics, stage, reason);
    why->status = status;
    why->reason = reason;
    why->message = text;
    why->extra = NULL;
    return 1;
}

static int refuse_http(mh_hub *h, mh_upgrade_refusal *why, int status, const char *reason,
                       const char *text)
{
    return mh_auth_refuse(h, why, status, "upgrade", reason, text);
}

static int check_limits(mh_hub *h, mh_upgrade_refusal *why)
{
    const mh_config *cfg = h->cfg;

    if (cfg->max_connections && h->conns.count >= (size_t)cfg->max_connections) {
        mh_warn("upgrade refused: %zu connections, the limit (--max-connections)", h->conns.count);
        return mh_auth_refuse(h, why, 503, "limit", "connection_limit", "connection limit reached");
    }
    /* The per-address limit was answered by the intake (plain: once the
     * address is known; TLS: after the handshake). */
    return 0;
}

bool mh_auth_rate_ok(mh_conn *c)
{
    const mh_config *cfg = c->hub->cfg;
    uint64_t now = mh_mono_ms();

    if (!cfg->frame_rate || c->closing)
        return !c->closing;
    if (mh_rate_take(&c->rate_tokens, &c->rate_ms, cfg->frame_rate, cfg->frame_burst, now))
        return true;
    mh_metrics_reject(&c->hub->metrics, "limit", "frame_rate");
    mh_info("conn %s: over %d frames/s (burst %d): closing with 4029", c->name, cfg->frame_rate,
            cfg->frame_burst);
    {
        char msg[96];
        snprintf(msg, sizeof msg, "more than %d frames per second", cfg->frame_rate);
        mh_conn_send_error(c, "rate_limited", msg, NULL, 0, NULL);
    }
    mh_conn_close_flushed(c, 4029, "rate limited");
    return false;
}

bool mh_auth_inbound_ok(mh_conn *c)
{
    mh_hub *h = c->hub;
    const mh_config *cfg = h->cfg;
    uint64_t now = mh_mono_ms();

    /* The stream to Django is capped (MAXLEN ~): what one connection adds
     * beyond its share would push others' unread entries out. Bursts: twice
     * the rate. */
    if (cfg->inbound_conn_rate && !mh_rate_take(&c->in_tokens, &c->in_ms, cfg->inbound_conn_rate,
                                                2 * cfg->inbound_conn_rate, now)) {
        mh_metrics_reject(&h->metrics, "limit", "inbound_conn_rate");
        return false;
    }
    if (cfg->inbound_rate &&
        !mh_rate_take(&h->in_tokens, &h->in_ms, cfg->inbound_rate, 2 * cfg->inbound_rate, now)) {
        mh_metrics_reject(&h->metrics, "limit", "inbound_rate");
        return false;
    }
    return true;
}

/* ---- Origin ---- */

/* One allowlist entry against the Origin: exact, '*', or scheme://\*.domain. */
static bool origin_entry_matches(const char *e, size_t elen, const char *origin)
{
    const char *star;
    size_t olen = strlen(origin);

    if (elen == 1 && e[0] == '*')
        return true;
    star = memmem(e, elen, "://*.", 5);
    if (star) {
        size_t scheme = (size_t)(star - e) + 3, suffix = elen - scheme - 1; /* ".domain" */
        const char *host = origin + scheme;
        return olen > scheme + suffix && !strncasecmp(origin, e, scheme) &&
               !strncasecmp(origin + olen - suffix, e + scheme + 1, suffix) &&
               !memchr(host, '/', (size_t)(origin + olen - host));
    }
    return olen == elen && !strncasecmp(origin, e, elen);
}

/*
 * With no list, the same origin only: the Origin is exactly the scheme this
 * request came by (https behind our TLS, or when the proxy in front says so
 * with X-Forwarded-Proto) and the Host it asked for.
 */
static bool origin_allowed(const mh_config *cfg, const char *origin, const char *host,
                           const char *scheme)
{
    const char *p = cfg->allowed_origins, *sep;

    if (!cfg->allowed_origins[0]) {
        size_t sl = strlen(scheme);
        return host[0] && !strncasecmp(origin, scheme, sl) && !strncmp(origin + sl, "://", 3) &&
               !strcasecmp(origin + sl + 3, host);
    }
    while (*p) {
        size_t n;
        while (*p == ' ' || *p == ',')
            p++;
        sep = strchr(p, ',');
        n = sep ? (size_t)(sep - p) : strlen(p);
        while (n && p[n - 1] == ' ')
            n--;
        if (n && origin_entry_matches(p, n, origin))
            return true;
        p += n;
    }
    return false;
}

/*
 * A cookie upgrade's Origin, when it has one: 0 allowed (or absent), 1
 * refused (answered). An Origin that cannot be read whole is refused: the
 * check never fails open.
 */
static int check_origin(mh_hub *h, const mh_upgrade_view *v, mh_upgrade_refusal *why)
{
    const mh_config *cfg = h->cfg;
    const char *scheme = "http";

    if (!v->origin)
        return 0;
    if (cfg->tls_cert[0] || (v->forwarded_proto && !strcasecmp(v->forwarded_proto, "https")))
        scheme = "https";
    if (!origin_allowed(cfg, v->origin, v->host ? v->host : "", scheme)) {
        mh_info("upgrade refused: session cookie from origin '%.200s' (not allowed)", v->origin);
        return refuse_http(h, why, 403, "origin", "origin not allowed");
    }
    return 0;
}

/* ---- credentials on the upgrade ---- */

/*
 * A token on the upgrade request: Authorization: Bearer, X-Mizan-Token, or
 * (when 'query') ?token=; borrowed from the view, NULL if none.
 */
static const char *upgrade_token(const mh_upgrade_view *v, bool query)
{
    if (v->authorization && !strncasecmp(v->authorization, "Bearer ", 7) && v->authorization[7])
        return v->authorization + 7;
    if (v->mizan_token && v->mizan_token[0])
        return v->mizan_token;
    if (query && v->query_token && v->query_token[0])
        return v->query_token;
    return NULL;
}

static int filter_token(mh_hub *h, mh_conn *c, mh_upgrade_refusal *why, const char *token, size_t n)
{
    mh_identity id;
    const char *reason = "malformed";
    int64_t now;

    if (!h->keys->n)
        return refuse_http(h, why, 401, "token_not_configured", "this hub accepts no tokens");
    now = (int64_t)(mh_now_ms() / 1000);
    if (mh_tokcache_get(h->tokens, token, n, now, h->policy->leeway, &id)) {
        h->metrics.tokens_remembered++;
        reason = "ok";
    } else if (mh_jwt_verify(h->keys, h->policy, token, n, now, &id, &reason) == 0) {
        mh_tokcache_put(h->tokens, token, n, &id);
    }
    if (!strcmp(reason, "ok")) {
        if (mh_conn_set_identity(c, &id) == 0)
            return 0;
        reason = "out_of_memory";
    }
    mh_info("upgrade refused: token %s", reason);
    return refuse_http(h, why, 401, reason, reason);
}

/* A verified signed cookie's session data: who, and the registry id. */
static int signed_session(mh_hub *h, mh_conn *c, mh_upgrade_refusal *why, const char *value,
                          size_t len)
{
    mh_djsign_cfg dc = {.keys = h->django_keys,
                        .nkeys = h->ndjango_keys,
                        .salt = NULL,
                        .max_age = h->cfg->session_max_age};
    char *json = NULL;
    size_t json_len = 0;
    const char *reason;
    json_t *data = NULL, *uid, *sid;
    char uidbuf[MH_SUB_MAX + 1], hash[65];
    mh_err err;
    int rc = 1;

    if (mh_djsign_unsign(&dc, value, len, (int64_t)(mh_now_ms() / 1000), &json, &json_len,
                         &reason)) {
        mh_info("upgrade refused: session cookie %s", reason);
        return mh_auth_refuse(h, why, 401, "cookie", reason, "session cookie refused");
    }
    data = mh_json_parse(json, json_len, &err);
    if (!data || !json_is_object(data)) {
        mh_info("upgrade refused: signed session is not a JSON object");
        rc = refuse_http(h, why, 401, "bad_session_data", "session cookie refused");
        goto done;
    }
    uid = json_object_get(data, "_auth_user_id");
    sid = json_object_get(data, "_mizan_hub_sid");
    rc = 0;
    if (!uid)
        goto done; /* an anonymous session: the connection is anonymous */
    if (mh_jwt_sub_form(uid, uidbuf))
        goto done;
    if (!json_is_string(sid) || !json_string_length(sid)) {
        /* Without the registry entry there are no flags and no logout. */
        mh_warn("signed session of user %s has no _mizan_hub_sid (is the Django app's session "
                "registry on?): connection is anonymous",
                uidbuf);
        mh_metrics_reject(&h->metrics, "cookie", "unregistered");
        goto done;
    }
    /* Signed sessions have their own key space, sha256("s:" + sid): the sid
     * is readable in every signed cookie, and a bare cookie value (never
     * with ':', see bare_session_key) must not reach its entry. */
    {
        size_t n = json_string_length(sid);
        char *pre = malloc(n + 2);
        if (pre) {
            memcpy(pre, "s:", 2);
            memcpy(pre + 2, json_string_value(sid), n);
            sha256_hex(pre, n + 2, hash);
            free(pre);
            c->session = strdup(hash);
        }
    }
    c->cookie_uid = strdup(uidbuf);
    if (!c->session || !c->cookie_uid) {
        rc = refuse_http(h, why, 503, "out_of_memory", "try again");
        goto done;
    }
    c->auth_pending = true;
done:
    json_decref(data);
    free(json);
    return rc;
}

/*
 * A database/cache session key as Django makes them: 8-128 of [a-z0-9].
 * Nothing else is looked up bare, so no value can name a signed session's
 * entry (sha256 of "s:" + sid).
 */
static bool bare_session_key(const char *v, size_t n)
{
    if (n < 8 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9')))
            return false;
    return true;
}

static int filter_cookie(mh_hub *h, mh_conn *c, const mh_upgrade_view *v, mh_upgrade_refusal *why)
{
    const mh_config *cfg = h->cfg;
    const char *value;
    size_t vlen;
    int rc;

    if (!cfg->session_cookie[0] || !v->cookie ||
        mh_djsign_cookie_find(v->cookie, strlen(v->cookie), cfg->session_cookie, &value, &vlen) ||
        vlen == 0)
        return 0;
    /* Cross-site WebSocket hijacking: a cookie rides along with any page's
     * request; only the Origin says which page asked. */
    rc = check_origin(h, v, why);
    if (rc)
        return rc;
    if (h->ndjango_keys && memchr(value, ':', vlen))
        return signed_session(h, c, why, value, vlen);
    if (!bare_session_key(value, vlen)) {
        mh_info("upgrade refused: session cookie is neither signed nor a session key");
        return mh_auth_refuse(h, why, 401, "cookie", "malformed", "session cookie refused");
    }
    {
        char hash[65];
        sha256_hex(value, vlen, hash);
        c->session = strdup(hash);
        if (!c->session)
            return refuse_http(h, why, 503, "out_of_memory", "try again");
    }
    c->auth_pending = true;
    return 0;
}

int mh_auth_filter(mh_hub *h, mh_conn *c, const mh_upgrade_view *v, mh_upgrade_refusal *why)
{
    const char *token;

    /* Whatever is refused or fails from here, mh_auth_release frees what
     * this set on 'c' (the transport releases a refused connection). */
    c->hub = h;
    if (check_limits(h, why))
        return 1;
    /* an EventSource cannot send headers: a stream's query token is always read (SPEC 6.1) */
    token = upgrade_token(v, h->cfg->token_query || c->sse);
    if (token) {
        size_t n = strlen(token);
        if (n > 8192) {
            mh_info("upgrade refused: token over 8192 bytes");
            return refuse_http(h, why, 401, "malformed", "malformed");
        }
        return filter_token(h, c, why, token, n); /* a token wins over a cookie */
    }
    return filter_cookie(h, c, v, why);
}

/* ---- the session lookup ---- */

static void release_held(mh_conn *c)
{
    while (c->held) {
        struct mh_held *x = c->held;
        c->held = x->next;
        free(x);
    }
    c->nheld = 0;
    c->held_bytes = 0;
}

static void lookup_done(mh_conn *c)
{
    struct mh_held *list = c->held;

    c->auth_pending = false;
    free(c->cookie_uid);
    c->cookie_uid = NULL;
    c->held = NULL;
    c->nheld = 0;
    c->held_bytes = 0;
    c->hub->hooks.welcome(c);
    /* The frames that waited, in order, as if they arrived now. */
    while (list) {
        struct mh_held *x = list;
        list = x->next;
        if (!c->closing)
            c->hub->hooks.frame(c, x->text, x->len, x->binary);
        free(x);
    }
}

/* Reads {"sub","staff","super"}; 0 and 'id', or -1. */
static int parse_entry(const char *s, size_t n, mh_identity *id)
{
    json_t *v = json_loadb(s, n, 0, NULL), *sub;
    int rc = -1;

    memset(id, 0, sizeof *id);
    if (!json_is_object(v))
        goto done;
    sub = json_object_get(v, "sub");
    if (!json_is_string(sub) || !json_string_length(sub) || json_string_length(sub) > MH_SUB_MAX)
        goto done;
    snprintf(id->subject, sizeof id->subject, "%s", json_string_value(sub));
    id->staff = json_is_true(json_object_get(v, "staff"));
    id->super = json_is_true(json_object_get(v, "super"));
    rc = 0;
done:
    json_decref(v);
    return rc;
}

static void on_session(mh_hub *h, redisReply *reply, void *arg)
{
    uint64_t id = *(uint64_t *)arg;
    mh_conn *c = mh_map_get(&h->conns, &id, sizeof id);
    mh_identity ident;

    free(arg);
    if (!c || c->closing)
        return;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        mh_warn("conn %s: session lookup failed (%s): closing with 1013", c->name,
                reply ? reply->str : "Redis link lost");
        mh_metrics_reject(&h->metrics, "cookie", "lookup_failed");
        mh_conn_close(c, 1013, "cannot verify the session now");
        return;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        /* As Django does with a session it does not know: anonymous. */
        mh_info("conn %s: session not in the registry (logged out or expired): anonymous", c->name);
        mh_metrics_reject(&h->metrics, "cookie", "session_unknown");
        free(c->session);
        c->session = NULL;
    } else if (parse_entry(reply->str, reply->len, &ident) ||
               (c->cookie_uid && strcmp(c->cookie_uid, ident.subject))) {
        mh_warn("conn %s: session registry entry %s: anonymous", c->name,
                c->cookie_uid ? "is for another user" : "is malformed");
        mh_metrics_reject(&h->metrics, "cookie", "session_mismatch");
        free(c->session);
        c->session = NULL;
    } else if (mh_conn_set_identity(c, &ident)) {
        mh_conn_close(c, 1011, "out of memory");
        return;
    }
    lookup_done(c);
}

int mh_auth_established(mh_conn *c)
{
    mh_hub *h = c->hub;
    mh_buf key;
    uint64_t *arg;
    const char *argv[2];
    size_t lens[2];
    int rc;

    if (!c->auth_pending) {
        h->hooks.welcome(c);
        return 0;
    }
    arg = malloc(sizeof *arg);
    mh_buf_init(&key);
    mh_redis_name(h->redis, &key, "sess:", c->session, strlen(c->session));
    if (!arg || key.oom) {
        free(arg);
        mh_buf_free(&key);
        return -1;
    }
    *arg = c->id;
    argv[0] = "GET";
    lens[0] = 3;
    argv[1] = key.data;
    lens[1] = key.len;
    rc = mh_redis_cmd(h->redis, on_session, arg, 2, argv, lens);
    mh_buf_free(&key);
    if (rc) {
        free(arg);
        mh_warn("conn %s: Redis is down, the session cannot be looked up: closing with 1013",
                c->name);
        mh_metrics_reject(&h->metrics, "cookie", "lookup_failed");
        mh_conn_close(c, 1013, "cannot verify the session now");
    }
    return 0;
}

bool mh_auth_hold_frame(mh_conn *c, const char *text, size_t len, bool binary)
{
    struct mh_held *x, **tail;

    if (!c->auth_pending)
        return false;
    if (c->nheld >= HELD_MAX || c->held_bytes + len > HELD_BYTES) {
        mh_metrics_reject(&c->hub->metrics, "limit", "held_frames");
        mh_info("conn %s: over %d frames or %d bytes before its session was looked up: closing "
                "with 4029",
                c->name, HELD_MAX, HELD_BYTES);
        mh_conn_close(c, 4029, "too many frames before welcome");
        return true;
    }
    x = malloc(sizeof *x + len);
    if (!x) {
        mh_conn_close(c, 1011, "out of memory");
        return true;
    }
    x->next = NULL;
    x->len = len;
    x->binary = binary;
    memcpy(x->text, text, len);
    for (tail = &c->held; *tail; tail = &(*tail)->next)
        ;
    *tail = x;
    c->nheld++;
    c->held_bytes += len;
    return true;
}

void mh_auth_logout(mh_hub *h, const char *session_hash)
{
    size_t it = 0, n = 0;
    void *v;

    /* Logouts are rare next to connections: a scan, no second index. */
    while (mh_map_next(&h->conns, &it, NULL, NULL, &v)) {
        mh_conn *c = v;
        if (c->session && !strcmp(c->session, session_hash)) {
            mh_conn_close(c, 4005, "session ended");
            n++;
        }
    }
    if (n)
        mh_info("logout: closed %zu connection(s) of the session with 4005", n);
}

void mh_auth_release(mh_conn *c)
{
    release_held(c);
    free(c->session);
    free(c->cookie_uid);
    c->session = c->cookie_uid = NULL;
}

/* ---- the guards ---- */

static int deny(mh_conn *c, const char *stage, const char *code, const char **out)
{
    *out = code;
    mh_metrics_reject(&c->hub->metrics, stage, code);
    return -1;
}

int mh_auth_check(mh_conn *c, const mh_frame *f, const char **code, char *msg, size_t msglen)
{
    mh_hub *h = c->hub;
    bool channel = f->target == MH_TARGET_CHANNEL;
    const char *stage = f->action == MH_ACT_MESSAGE    ? "message"
                        : f->action == MH_ACT_PRESENCE ? "presence"
                                                       : "subscribe";
    mh_who who = {.subject = c->subject, .staff = c->staff, .super = c->super};
    const char *reason;
    int64_t exp;

    if (h->cfg->registry_from_redis && !h->registry_version[0]) {
        /* The registry is to come from Redis: nothing is allowed before it. */
        snprintf(msg, msglen, "the hub has not read its registry yet; retry shortly");
        return deny(c, stage, "unavailable", code);
    }
    if (!h->registry) {
        /* No registry: an identity may use everything; anonymous connections
         * nothing, unless the hub serves everything as public. */
        if (c->subject || h->cfg->allow_anonymous)
            return 0;
        snprintf(msg, msglen, "authenticate first");
        return deny(c, stage, "unauthorized", code);
    }
    switch (mh_registry_check(h->registry, channel, &f->scope, &who, code, msg, msglen)) {
    case MH_REG_ALLOW:
        return 0;
    case MH_REG_DENY:
        return deny(c, stage, *code, code);
    case MH_REG_NEED_TOKEN:
        break;
    }
    if (f->action == MH_ACT_MESSAGE || f->action == MH_ACT_PRESENCE) {
        /* Sending (or asking who is there) needs the subscription the token granted. */
        mh_keynode *node = mh_subs_find(&h->subs, true, &f->scope);
        if (node && mh_conn_find_sub(c, node))
            return 0;
        snprintf(msg, msglen, "subscribe with a subscription token first");
        return deny(c, stage, "forbidden", code);
    }
    if (!f->token) {
        snprintf(msg, msglen, "%s '%.128s' needs a subscription token",
                 channel ? "channel" : "context", f->scope.context);
        return deny(c, stage, "forbidden", code);
    }
    if (!h->keys->n) {
        snprintf(msg, msglen, "this hub has no keys to verify subscription tokens");
        return deny(c, stage, "bad_token", code);
    }
    if (mh_jwt_verify_subscription(h->keys, h->policy, f->token, f->token_len,
                                   (int64_t)(mh_now_ms() / 1000), channel, &f->scope, c->subject,
                                   &exp, &reason) == 0)
        return 0;
    snprintf(msg, msglen, "subscription token refused: %s", reason);
    mh_info("conn %s: subscription token refused: %s", c->name, reason);
    mh_metrics_reject(&h->metrics, "sub_token", reason);
    *code = !strcmp(reason, "expired") ? "token_expired" : "bad_token";
    return -1;
}
