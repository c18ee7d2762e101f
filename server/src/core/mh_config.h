/*
 * mh_config — every setting in one table: name, flag, env var, default,
 * bounds, help. Sources apply in order defaults < --config file <
 * MIZAN_HUB_* environment < flags; the result is frozen before the loop
 * starts and read-only after.
 */
#ifndef MH_CONFIG_H
#define MH_CONFIG_H

#include <stddef.h>

#define MH_HOST_MAX 64
/* Redis shards a hub can spread its data over (SPEC 11.1). */
#define MH_REDIS_MAX_SHARDS 16

/** One Redis server: a parsed redis:// or rediss:// URL. */
typedef struct mh_redis_addr {
    char url[512]; /* as given, for logs (password masked there) */
    char host[256];
    int port;
    int db;
    char user[128]; /* from redis://USER:PASSWORD@...; empty: AUTH PASSWORD alone */
    char password[256];
    int tls; /* rediss:// */
} mh_redis_addr;

typedef struct mh_config {
    char listen_host[MH_HOST_MAX];
    int listen_port;
    char admin_host[MH_HOST_MAX]; /* "": no admin listener */
    int admin_port;
    int ops_public;           /* the operator page (/ops/) on --listen too */
    mh_redis_addr redis;      /* --redis (with Sentinels: user, password, DB) */
    int redis_tls;            /* a link is rediss:// (--redis or a shard) */
    char redis_tls_ca[512];   /* CA file the server's certificate is checked against */
    char redis_tls_cert[512]; /* client certificate (chain), PEM */
    char redis_tls_key[512];  /* its key */
    char redis_prefix[64];
    char hub_id[40];
    int allow_anonymous;
    int workers;
    char tls_cert[512];
    char tls_key[512];
    int max_frame;
    int ping_interval;
    int pong_timeout;
    int queue_max_msgs;
    int queue_max_bytes;
    int queue_soft_bytes;
    int queue_soft_seconds;
    int max_subs;
    int max_shapes;
    int rpc_timeout_ms;
    int spread_max_ms;
    int refetch_rate;
    int drain_window;
    int canary_interval_ms;
    int canary_window;
    int redis_backoff_max_ms;
    int redis_connect_timeout_ms;
    int heal_timeout_ms;
    int inbound_maxlen;
    char jwt_keys[512];
    char jwt_secret[256];
    char jwt_kid[65];
    char jwt_audience[128];
    char jwt_issuer[128];
    int jwt_leeway;
    int jwt_cache;
    int token_query;
    int expiry_warning;
    char registry[512];
    char session_cookie[128];
    int session_max_age;
    char django_secret_key[512];
    char django_secret_keys_file[512];
    char allowed_origins[2048];
    int max_connections;
    int max_connections_per_ip;
    int frame_rate;
    int frame_burst;
    int header_timeout;
    int registry_from_redis;
    char redis_sentinels[1024];
    char redis_master_name[128];
    char redis_sentinel_password[256];
    char trusted_proxies[2048];
    int proxy_protocol;
    int inbound_rate;
    int inbound_conn_rate;
    int resume_rate;
    int resume_burst;
    int presence_heartbeat_ms;
    int presence_max;
    int log_level;
    int log_json;
    char config_file[512];
    char redis_shards[4096]; /* as given: URL,URL,... */
    /* Where the hub's Redis data lives: --redis-shards, or --redis alone
     * (one shard). Filled once the sources are applied. */
    int nshards;
    mh_redis_addr shards[MH_REDIS_MAX_SHARDS];
} mh_config;

/* A listener setting is a host buffer followed by its port. */
_Static_assert(offsetof(mh_config, listen_port) - offsetof(mh_config, listen_host) == MH_HOST_MAX,
               "listen_port follows listen_host");
_Static_assert(offsetof(mh_config, admin_port) - offsetof(mh_config, admin_host) == MH_HOST_MAX,
               "admin_port follows admin_host");

/**
 * Fills 'c' from defaults, the --config file, the environment and argv.
 * Returns 0, 1 when --help or --version was printed (exit 0), or -1 with a
 * message in 'err' naming the setting and why (exit 2).
 */
int mh_config_load(mh_config *c, int argc, char **argv, char *err, size_t errlen);

/**
 * Parses a redis:// or rediss:// URL into 'a'. Returns 0, or -1 with the
 * reason in 'why'.
 */
int mh_config_parse_redis_url(const char *v, mh_redis_addr *a, char *why, size_t whylen);

/** Prints every setting with its flag, env var, default and help. */
void mh_config_help(const char *prog);

/** Logs the effective settings at info level (secrets masked). */
void mh_config_log(const mh_config *c);

#endif
