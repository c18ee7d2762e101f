#include "mh_metrics.h"

#include <stddef.h>
#include <string.h>

_Static_assert(offsetof(mh_metrics, rejects) % sizeof(uint64_t) == 0, "counters are uint64_t");
_Static_assert(sizeof(mh_gauges) % sizeof(uint64_t) == 0, "gauges are uint64_t");

static const double lat_bounds[MH_LAT_BUCKETS] = {0.5, 1,   2,   5,    10,   20,   50,
                                                  100, 200, 500, 1000, 2000, 5000, 10000};

void mh_metrics_latency(mh_metrics *m, double ms)
{
    int i = 0;
    if (ms < 0)
        ms = 0;
    while (i < MH_LAT_BUCKETS && ms > lat_bounds[i])
        i++;
    m->lat_counts[i]++;
    m->lat_sum_ms += ms;
    m->lat_count++;
}

void mh_metrics_reject(mh_metrics *m, const char *stage, const char *reason)
{
    /* A few dozen distinct pairs at most, and rejections are rare: a scan. */
    for (int i = 0; i < MH_REJECT_KINDS; i++) {
        mh_reject_count *r = &m->rejects[i];
        if (!r->stage) {
            r->stage = stage;
            r->reason = reason;
        }
        if (!strcmp(r->stage, stage) && !strcmp(r->reason, reason)) {
            r->n++;
            return;
        }
    }
    m->rejects_other++;
}

void mh_metrics_add(mh_metrics *dst, const mh_metrics *src)
{
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *sv = (const uint64_t *)src;

    for (size_t i = 0; i < offsetof(mh_metrics, rejects) / sizeof(uint64_t); i++)
        d[i] += sv[i];
    for (int i = 0; i < MH_REJECT_KINDS && src->rejects[i].stage; i++) {
        /* the same static strings in every forked worker; merged by name */
        const mh_reject_count *r = &src->rejects[i];
        int k;
        for (k = 0; k < MH_REJECT_KINDS && dst->rejects[k].stage; k++)
            if (!strcmp(dst->rejects[k].stage, r->stage) &&
                !strcmp(dst->rejects[k].reason, r->reason))
                break;
        if (k == MH_REJECT_KINDS) {
            dst->rejects_other += r->n;
            continue;
        }
        if (!dst->rejects[k].stage) {
            dst->rejects[k].stage = r->stage;
            dst->rejects[k].reason = r->reason;
        }
        dst->rejects[k].n += r->n;
    }
    dst->rejects_other += src->rejects_other;
    for (int i = 0; i <= MH_LAT_BUCKETS; i++)
        dst->lat_counts[i] += src->lat_counts[i];
    dst->lat_sum_ms += src->lat_sum_ms;
    dst->lat_count += src->lat_count;
}

void mh_gauges_add(mh_gauges *dst, const mh_gauges *src)
{
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *sv = (const uint64_t *)src;

    for (size_t i = 0; i < sizeof *dst / sizeof(uint64_t); i++)
        d[i] += sv[i];
}

void mh_metrics_render_workers(mh_buf *o, const mh_metrics_slot *slots, int n)
{
    mh_buf_printf(o,
                  "# HELP mizan_hub_workers Worker processes reporting.\n"
                  "# TYPE mizan_hub_workers gauge\nmizan_hub_workers %d\n",
                  n);
    mh_buf_puts(o, "# HELP mizan_hub_worker_connections Open WebSocket connections per worker.\n"
                   "# TYPE mizan_hub_worker_connections gauge\n");
    for (int i = 0; i < n; i++)
        mh_buf_printf(o, "mizan_hub_worker_connections{worker=\"%d\"} %llu\n", i,
                      (unsigned long long)slots[i].g.connections);
    mh_buf_puts(o, "# HELP mizan_hub_worker_ready 1 when the worker's /readyz answers 200.\n"
                   "# TYPE mizan_hub_worker_ready gauge\n");
    for (int i = 0; i < n; i++)
        mh_buf_printf(o, "mizan_hub_worker_ready{worker=\"%d\"} %llu\n", i,
                      (unsigned long long)slots[i].g.ready);
}

static void counter(mh_buf *o, const char *name, const char *help, uint64_t v)
{
    mh_buf_printf(o, "# HELP mizan_hub_%s %s\n# TYPE mizan_hub_%s counter\nmizan_hub_%s %llu\n",
                  name, help, name, name, (unsigned long long)v);
}

static void gauge(mh_buf *o, const char *name, const char *help, uint64_t v)
{
    mh_buf_printf(o, "# HELP mizan_hub_%s %s\n# TYPE mizan_hub_%s gauge\nmizan_hub_%s %llu\n", name,
                  help, name, name, (unsigned long long)v);
}

/* One series per configured Redis shard, labelled shard="i". */
static void shard_series(mh_buf *o, const char *name, const char *type, const char *help,
                         const uint64_t *v, const mh_gauges *g)
{
    mh_buf_printf(o, "# HELP mizan_hub_%s %s\n# TYPE mizan_hub_%s %s\n", name, help, name, type);
    for (int i = 0; i < MH_METRICS_SHARDS; i++)
        if (g->shard_configured[i])
            mh_buf_printf(o, "mizan_hub_%s{shard=\"%d\"} %llu\n", name, i,
                          (unsigned long long)v[i]);
}

void mh_metrics_render(mh_buf *o, const mh_metrics *m, const mh_gauges *g, const char *hub_id)
{
    uint64_t cum = 0;

    mh_buf_printf(o,
                  "# HELP mizan_hub_info This hub.\n# TYPE mizan_hub_info gauge\n"
                  "mizan_hub_info{hub=\"%s\",protocol=\"1\"} 1\n",
                  hub_id);
    gauge(o, "ready", "Workers whose /readyz answers 200 (1 for a single process).", g->ready);
    gauge(o, "redis_up", "Workers whose Redis subscription is live.", g->redis_up);
    gauge(o, "connections", "Open WebSocket connections.", g->connections);
    gauge(o, "subscriptions", "Context and channel subscriptions held.", g->subscriptions);
    gauge(o, "subscription_keys", "Distinct canonical keys subscribed.", g->keys);
    gauge(o, "queued_bytes", "Bytes waiting in outbound queues.", g->queued_bytes);
    gauge(o, "sockets", "Accepted TCP connections not yet closed (WebSocket, HTTP, being read).",
          g->sockets);
    gauge(o, "intake_sockets", "Of those, connections whose request head is being read.",
          g->intake);
    gauge(o, "http_sockets",
          "Of those, HTTP requests libwebsockets serves (/healthz, /readyz, /metrics, /ops/).",
          g->http);
    gauge(o, "peer_addresses", "Client addresses with open connections (the per-address counts).",
          g->addresses);
    gauge(o, "param_shapes", "Param-name sets subscribed, all contexts (max_shapes per context).",
          g->shapes);
    counter(o, "connections_total", "Connections accepted.", m->connections_total);
    counter(o, "connections_rejected_total", "Upgrades refused.", m->connections_rejected);
    mh_buf_puts(o, "# HELP mizan_hub_rejections_total Connections, frames and subscriptions "
                   "refused, by stage and reason.\n# TYPE mizan_hub_rejections_total counter\n");
    for (int i = 0; i < MH_REJECT_KINDS && m->rejects[i].stage; i++)
        mh_buf_printf(o, "mizan_hub_rejections_total{stage=\"%s\",reason=\"%s\"} %llu\n",
                      m->rejects[i].stage, m->rejects[i].reason,
                      (unsigned long long)m->rejects[i].n);
    if (m->rejects_other)
        mh_buf_printf(o, "mizan_hub_rejections_total{stage=\"other\",reason=\"other\"} %llu\n",
                      (unsigned long long)m->rejects_other);
    counter(o, "frames_in_total", "Browser frames received.", m->frames_in);
    counter(o, "bytes_in_total", "Browser frame bytes received.", m->bytes_in);
    counter(o, "frames_out_total", "Frames written to browsers.", m->frames_out);
    counter(o, "bytes_out_total", "Frame bytes written to browsers.", m->bytes_out);
    counter(o, "writer_tls_writes_total",
            "SSL_write calls of the writer: frames of TLS WebSockets, batched per socket.",
            m->writer_tls_writes);
    counter(o, "error_frames_total", "Error frames sent.", m->error_frames);
    counter(o, "oversized_closes_total", "Connections closed with 1009.", m->oversized_closes);
    counter(o, "slow_consumer_closes_total", "Connections closed with 4008.",
            m->slow_consumer_closes);
    counter(o, "drain_closes_total", "Connections closed with 1012 while draining.",
            m->drain_closes);
    counter(o, "shape_limit_refusals_total",
            "Subscribes refused (too_large) because their context had max_shapes shapes.",
            m->shape_limit_refusals);
    counter(o, "subscriptions_ended_total",
            "Subscriptions ended because the connection's new identity may not hold them.",
            m->subs_ended);
    counter(o, "envelopes_total", "Envelopes received from Redis.", m->envelopes_in);
    counter(o, "envelopes_bad_total", "Envelopes rejected (bad_envelope or bad_json).",
            m->envelopes_bad);
    counter(o, "envelopes_unknown_total", "Envelopes of an unknown kind.", m->envelopes_unknown);
    counter(o, "invalidations_total", "Invalidation events received.", m->invalidations_in);
    counter(o, "channel_messages_total", "Channel message events received.", m->messages_in);
    counter(o, "deliveries_total", "Frames queued to connections by fan-out.", m->deliveries);
    counter(o, "redis_reconnects_total", "Redis reconnections.", m->redis_reconnects);
    counter(o, "presence_joins_total", "Presence members added to Redis (join published).",
            m->presence_joins);
    counter(o, "presence_leaves_total", "Presence members removed from Redis (leave published).",
            m->presence_leaves);
    counter(o, "presence_swept_total",
            "Presence members of hubs without a heartbeat removed by this hub's sweeps.",
            m->presence_swept);
    counter(o, "presence_queries_total", "Presence queries answered.", m->presence_queries);
    counter(o, "registry_loads_total", "Registries read from Redis and put in force.",
            m->registry_loads);
    counter(o, "registry_refused_total",
            "Registries read from Redis and refused (the one in force stayed).",
            m->registry_refused);
    counter(o, "redis_failovers_total",
            "Times the Sentinels named a new master and the links moved to it.",
            m->redis_failovers);
    counter(o, "redis_errors_total", "Redis command errors.", m->redis_errors);
    counter(o, "inbound_total", "Browser messages/rpcs appended to the inbound stream.",
            m->inbound_ok);
    counter(o, "inbound_failed_total", "Browser messages/rpcs that could not be queued.",
            m->inbound_failed);
    counter(o, "rpc_timeouts_total", "rpcs answered with TIMEOUT.", m->rpc_timeouts);
    counter(o, "rpc_late_replies_total", "Replies for unknown or timed-out rpcs.",
            m->rpc_late_replies);
    counter(o, "replies_unknown_conn_total",
            "Envelopes from Django for a connection this hub does not hold (closed, or another "
            "process's).",
            m->replies_unknown_conn);
    counter(o, "sse_streams_total",
            "Server-Sent Events streams opened (also counted as connections).", m->sse_streams);
    counter(o, "sse_posts_forwarded_total",
            "POSTs to a stream another hub process holds, handed on through Redis.",
            m->sse_posts_forwarded);
    counter(o, "jwt_remembered_total",
            "Connection tokens accepted from the cache of verified tokens (--jwt-cache) "
            "without a signature check.",
            m->tokens_remembered);
    counter(o, "resume_invalidations_total", "Invalidations sent because a resume found a gap.",
            m->resume_invalidations);
    counter(o, "gap_invalidations_total", "Invalidations sent to heal a Redis link gap.",
            m->gap_invalidations);
    counter(o, "gap_frames_total", "Channel gap frames sent.", m->gap_frames);
    counter(o, "heals_total",
            "Gap heals started after a Redis link loss (their retries: heal_retries_total).",
            m->heals);
    counter(o, "heal_retries_total",
            "Heal rounds retried because versions could not be read (error or no reply).",
            m->heal_retries);
    counter(o, "heal_giveups_total",
            "Heals given up after heal_timeout_ms: what was still unhealed was invalidated.",
            m->heal_giveups);
    counter(o, "resumes_total", "Channel subscribes with since (resumes) accepted.", m->resumes);
    counter(o, "resumes_refused_total", "Channel resumes refused over resume_rate (rate_limited).",
            m->resumes_refused);
    counter(o, "replays_total", "History reads (XRANGE) sent for channel resumes.", m->replays);
    counter(o, "replays_shared_total",
            "Channel resumes served by a history read already in flight for the same point.",
            m->replays_shared);
    shard_series(o, "redis_shard_up", "gauge",
                 "Workers whose Redis subscription on this shard is live (SPEC 11.1).", g->shard_up,
                 g);
    shard_series(o, "redis_shard_reconnects_total", "counter", "Redis reconnections, per shard.",
                 m->shard_reconnects, g);
    shard_series(o, "redis_shard_heals_total", "counter", "Gap heals started, per shard.",
                 m->shard_heals, g);
    shard_series(o, "redis_shard_errors_total", "counter", "Redis command errors, per shard.",
                 m->shard_errors, g);
    mh_buf_puts(o, "# HELP mizan_hub_publish_to_write_ms Publisher timestamp to socket write.\n"
                   "# TYPE mizan_hub_publish_to_write_ms histogram\n");
    for (int i = 0; i < MH_LAT_BUCKETS; i++) {
        cum += m->lat_counts[i];
        mh_buf_printf(o, "mizan_hub_publish_to_write_ms_bucket{le=\"%g\"} %llu\n", lat_bounds[i],
                      (unsigned long long)cum);
    }
    cum += m->lat_counts[MH_LAT_BUCKETS];
    mh_buf_printf(
        o,
        "mizan_hub_publish_to_write_ms_bucket{le=\"+Inf\"} %llu\n"
        "mizan_hub_publish_to_write_ms_sum %.3f\nmizan_hub_publish_to_write_ms_count %llu\n",
        (unsigned long long)cum, m->lat_sum_ms, (unsigned long long)m->lat_count);
}
