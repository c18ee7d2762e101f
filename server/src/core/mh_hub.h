/*
 * mh_hub — the state of one hub process: one libuv loop that libwebsockets
 * and hiredis share, the subscription index, the connections, the counters.
 * Everything runs on the loop's thread; nothing here takes a lock.
 */
#ifndef MH_HUB_H
#define MH_HUB_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "mh_clock.h"
#include "mh_config.h"
#include "mh_identity.h"
#include "mh_map.h"
#include "mh_metrics.h"
#include "mh_netaddr.h"
#include "mh_subs.h"

struct lws_context;
struct lws_vhost;
typedef struct mh_conn mh_conn;
typedef struct mh_redis mh_redis;
typedef struct mh_rpc_wait mh_rpc_wait;
typedef struct mh_registry mh_registry;
typedef struct mh_peer mh_peer;

/*
 * What is counted when something opens and released when it closes, and the
 * one place that releases each (test_hardening checks they return to zero):
 *   npeers, ips      mh_peer_new on accept        -> mh_peer_free: the intake
 *                                                    (refused/failed), the own
 *                                                    connection's destroy/linger,
 *                                                    else the wsi's
 *                                                    LWS_CALLBACK_WSI_DESTROY
 *   nintake          mh_intake track()            -> unlink_sock() (handed on,
 *                                                    refused, gone, stopped)
 *   nhttp            LWS_CALLBACK_WSI_CREATE      -> LWS_CALLBACK_WSI_DESTROY
 *   conns            mh_conn_open (ESTABLISHED)   -> mh_conn_release (CLOSED)
 *   auth state on c  mh_auth_filter               -> mh_auth_release (conn release,
 *                                                    or WSI_DESTROY when never open)
 *   subs             mh_subs_add (subscribe)      -> mh_subs_remove (unsubscribe,
 *                                                    conn release)
 *   queued_bytes     mh_conn_enqueue              -> pop_written / queue_clear
 *   rpc_head         mh_rpc_start                 -> mh_rpc_finish (reply, error,
 *                                                    expiry, mh_rpc_forget_conn)
 */
typedef struct mh_hub {
    const mh_config *cfg; /* borrowed, frozen */
    uv_loop_t *loop;
    struct lws_context *lws;
    mh_subs subs;
    mh_map conns; /* connection id (8 bytes) -> mh_conn */
    uint64_t next_conn_id;
    /* "<hub id>.<8 random hex>-": connection names never repeat across a
     * worker's restarts, so what Django still holds for a dead connection
     * (replies, sends, closes) cannot reach a new one */
    char conn_prefix[64];
    mh_redis *redis;
    mh_metrics metrics;
    /* --workers N: every worker's numbers, shared (mh_metrics_slot); NULL alone */
    mh_metrics_slot *slots;
    int nslots, slot;
    /* token keys and policy (auth layer types; main owns them, frozen):
     * token auth is on when keys->n > 0 */
    const struct mh_jwt_keys *keys;
    const struct mh_jwt_policy *policy;
    struct mh_tokcache *tokens; /* verified connection tokens (auth's; main owns it) */
    mh_registry *registry;      /* owned; NULL: no registry (SPEC 6's fallback) */
    /* --registry-from-redis: the version in force ("" before the first
     * load, when every subscription is refused), a read in flight */
    char registry_version[72];
    bool registry_fetching;
    /* Upward calls, registered at start-up (main.c): the lower layers
     * (connections, auth, Redis) reach the routing layer only through these. */
    struct mh_hub_hooks {
        /* a browser frame for the router (auth replays held frames with it) */
        void (*frame)(mh_conn *c, const char *text, size_t len, bool binary);
        /* a connection's credentials are settled: say welcome */
        void (*welcome)(mh_conn *c);
        /* a connection is going: forget what upper layers keep for it */
        void (*release)(mh_conn *c);
        /* a whole browser message off an own socket (mh_wsock), before any
         * check: the transport's rate limit and session hold, then 'frame' */
        void (*input)(mh_conn *c, const char *text, size_t len, bool binary);
        /* a socket in the own read set that is not a connection yet (the
         * intake reads its request head): readable, or closed */
        void (*intake)(void *ctx, uint64_t id);
        /* a connection has something new to write (mh_writer_due): the
         * writer sits above mh_conn, which reaches it only through this */
        int (*write_due)(mh_conn *c);
    } hooks;
    void *intake_ctx;               /* what hooks.intake gets */
    const char *const *django_keys; /* SECRET_KEY then fallbacks; borrowed, frozen */
    size_t ndjango_keys;
    mh_cidr_list trusted; /* --trusted-proxies */
    mh_map ips;           /* peer address -> its open TCP connections (mh_peer) */
    size_t npeers;        /* accepted sockets not yet closed (mh_peer); gauge */
    size_t nintake;       /* of those, reading their request head (mh_intake); gauge */
    size_t nhttp;         /* lws's connections: HTTP requests it serves; gauge */
    mh_peer *adopting;    /* the peer of the socket lws is adopting right now (mh_transport) */
    double in_tokens;     /* the worker's inbound stream budget (mh_auth_inbound_ok) */
    uint64_t in_ms;
    uint64_t stamp; /* fan-out generation, to send each connection one copy */
    uint64_t queued_bytes;
    /* a scope is traced (route/mh_ops): fan-out reports what it delivered */
    bool ops_tracing;
    /* rpc deadlines in arrival order; the timeout is constant, so FIFO = sorted */
    mh_rpc_wait *rpc_head, *rpc_tail;
    /* drain (SIGTERM) */
    bool draining;
    uint64_t drain_start_ms;
    size_t drain_total;
    bool stopping;
    uv_timer_t tick;
    uint64_t ticks;
    /* write coalescing (mh_writer): connections with frames to write at the end
     * of this loop iteration, by id (a connection may close meanwhile) */
    uv_check_t flush;
    uint64_t *dirty;
    size_t ndirty, dirty_cap;
    unsigned char *scratch; /* a batch of framed bytes (TLS, streams), reused */
    size_t scratch_cap;
    /* own sockets (mh_wsock): a level-triggered epoll set for reading and an
     * edge-triggered one for writing, each watched by one loop handle */
    int ws_rd, ws_wr;
    uv_poll_t ws_rd_poll, ws_wr_poll;
    bool ws_started;
    unsigned char *rbuf; /* reads land here, then are parsed in place */
    size_t rbuf_cap;
    struct mh_msg *ping_msg; /* the hub's ping, shared by every own socket */
    mh_map lingering;        /* id -> mh_linger: own sockets after their close frame (mh_writer) */
    /* --tls-cert: the public listener's TLS, terminated by the hub itself
     * (mh_tls; NULL without): read once at start-up */
    struct ssl_ctx_st *tls_ctx;
    uv_signal_t sig_term, sig_int, sig_hup;
    int exit_code;
} mh_hub;

#endif
