/*
 * mh_metrics — plain counters, summed into Prometheus text when /metrics is
 * read. Incrementing is a field access; nothing is formatted on the hot path.
 */
#ifndef MH_METRICS_H
#define MH_METRICS_H

#include <stdint.h>

#include "mh_buf.h"

#define MH_LAT_BUCKETS 14
#define MH_REJECT_KINDS 64
#define MH_METRICS_SHARDS 16 /* MH_REDIS_MAX_SHARDS */

/* One rejection counter: where (stage) and why (reason), both static strings. */
typedef struct mh_reject_count {
    const char *stage, *reason;
    uint64_t n;
} mh_reject_count;

/*
 * Every field before `rejects` is a uint64_t counter: mh_metrics_add sums
 * them as an array across workers, so a new counter needs nothing else.
 */
typedef struct mh_metrics {
    uint64_t connections_total;
    uint64_t connections_rejected;
    uint64_t frames_in, bytes_in;
    uint64_t frames_out, bytes_out;
    uint64_t writer_tls_writes; /* SSL_write calls of the writer (own TLS WebSockets) */
    uint64_t error_frames;
    uint64_t oversized_closes;
    uint64_t slow_consumer_closes;
    uint64_t ping_timeouts;
    uint64_t envelopes_in, envelopes_bad, envelopes_unknown;
    uint64_t invalidations_in, messages_in;
    uint64_t deliveries; /* frames enqueued by fan-out */
    uint64_t redis_reconnects;
    uint64_t registry_loads, registry_refused;    /* registries read from Redis */
    uint64_t redis_masters_seen, redis_failovers; /* Sentinel: masters named, switches */
    uint64_t redis_errors;
    uint64_t inbound_ok, inbound_failed;
    uint64_t rpc_timeouts, rpc_late_replies, replies_unknown_conn;
    uint64_t resume_invalidations, gap_invalidations, gap_frames, heals;
    uint64_t heal_retries, heal_giveups; /* heal rounds retried; heals given up (SPEC 10) */
    uint64_t resumes, resumes_refused;   /* channel subscribes with since; over resume_rate */
    uint64_t replays, replays_shared;    /* history reads for resumes; resumes served by one */
    uint64_t drain_closes;
    uint64_t shape_limit_refusals; /* subscribes over max_shapes (mh_subs) */
    uint64_t subs_ended;           /* subscriptions ended by an identity change */
    /* per Redis shard (SPEC 11.1), labelled shard="i" */
    uint64_t shard_reconnects[MH_METRICS_SHARDS];
    uint64_t shard_heals[MH_METRICS_SHARDS];
    uint64_t shard_errors[MH_METRICS_SHARDS];
    /* presence (SPEC 11.2): members this process added and removed, members
     * of dead processes its sweeps removed, queries answered */
    uint64_t presence_joins, presence_leaves, presence_swept, presence_queries;
    uint64_t sse_streams;         /* Server-Sent Events streams opened (SPEC 6.1) */
    uint64_t sse_posts_forwarded; /* stream POSTs handed to another hub process via Redis */
    uint64_t tokens_remembered;   /* connection tokens answered by mh_tokcache, not checked */
    mh_reject_count rejects[MH_REJECT_KINDS];
    uint64_t rejects_other; /* past MH_REJECT_KINDS distinct pairs (a bug) */
    /* publish -> write latency, milliseconds */
    uint64_t lat_counts[MH_LAT_BUCKETS + 1];
    double lat_sum_ms;
    uint64_t lat_count;
} mh_metrics;

/** Records one publish -> write latency observation. */
void mh_metrics_latency(mh_metrics *m, double ms);

/**
 * Counts one rejection. 'stage' is upgrade, auth, subscribe, message or
 * limit; 'reason' a fixed word (jwt/cookie reason, guard code, limit name).
 * Both must be static strings: they are kept, not copied.
 */
void mh_metrics_reject(mh_metrics *m, const char *stage, const char *reason);

/** Gauges the metrics module cannot count itself. */
typedef struct mh_gauges {
    uint64_t connections;
    uint64_t subscriptions;
    uint64_t keys;
    uint64_t shapes; /* param shapes, all contexts */
    uint64_t queued_bytes;
    uint64_t sockets, intake, addresses;
    uint64_t http;     /* sockets libwebsockets serves (short HTTP answers) */
    uint64_t ready;    /* workers whose /readyz answers 200 */
    uint64_t redis_up; /* workers whose Redis subscription is live (on every shard) */
    uint64_t shard_configured[MH_METRICS_SHARDS]; /* workers with that shard (none: no shard i) */
    uint64_t shard_up[MH_METRICS_SHARDS]; /* workers whose subscription on shard i is live */
} mh_gauges;                              /* all uint64_t: summed as an array across workers */

/**
 * One worker's numbers in memory shared by every worker of a process
 * (mapped by the supervisor before it forks): each worker copies its own in
 * on every tick, and whichever worker a scrape reaches sums them all.
 * Counters of a worker that died are kept and continued by its successor.
 */
typedef struct mh_metrics_slot {
    mh_metrics m;
    mh_gauges g;
    uint64_t pid; /* 0: never used */
} mh_metrics_slot;

/** dst += src (counters, rejections, latency histogram). */
void mh_metrics_add(mh_metrics *dst, const mh_metrics *src);

/** dst += src. */
void mh_gauges_add(mh_gauges *dst, const mh_gauges *src);

/** Per-worker gauges (connections, readiness) of 'n' slots, labelled worker="i". */
void mh_metrics_render_workers(mh_buf *out, const mh_metrics_slot *slots, int n);

/** Appends the Prometheus exposition of 'm' and 'g' to 'out'. */
void mh_metrics_render(mh_buf *out, const mh_metrics *m, const mh_gauges *g, const char *hub_id);

#endif
