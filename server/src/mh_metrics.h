/*
 * mh_metrics — plain counters, summed into Prometheus text when /metrics is
 * read. Incrementing is a field access; nothing is formatted on the hot path.
 */
#ifndef MH_METRICS_H
#define MH_METRICS_H

#include <stdint.h>

#include "mh_buf.h"

#define MH_LAT_BUCKETS 14

typedef struct mh_metrics {
    uint64_t connections_total;
    uint64_t connections_rejected;
    uint64_t frames_in, bytes_in;
    uint64_t frames_out, bytes_out;
    uint64_t error_frames;
    uint64_t oversized_closes;
    uint64_t slow_consumer_closes;
    uint64_t ping_timeouts;
    uint64_t envelopes_in, envelopes_bad, envelopes_unknown;
    uint64_t invalidations_in, messages_in;
    uint64_t deliveries; /* frames enqueued by fan-out */
    uint64_t redis_reconnects;
    uint64_t redis_errors;
    uint64_t inbound_ok, inbound_failed;
    uint64_t rpc_timeouts, rpc_late_replies, replies_unknown_conn;
    uint64_t resume_invalidations, gap_invalidations, gap_frames, heals;
    uint64_t drain_closes;
    /* publish -> write latency, milliseconds */
    uint64_t lat_counts[MH_LAT_BUCKETS + 1];
    double lat_sum_ms;
    uint64_t lat_count;
} mh_metrics;

/** Records one publish -> write latency observation. */
void mh_metrics_latency(mh_metrics *m, double ms);

/** Gauges the metrics module cannot count itself. */
typedef struct mh_gauges {
    uint64_t connections;
    uint64_t subscriptions;
    uint64_t keys;
    uint64_t queued_bytes;
    int ready;
    int redis_up;
} mh_gauges;

/** Appends the Prometheus exposition of 'm' and 'g' to 'out'. */
void mh_metrics_render(mh_buf *out, const mh_metrics *m, const mh_gauges *g, const char *hub_id);

#endif
