/*
 * mh_ops — what the operator page (/ops/) shows, and how hubs share it
 * through Redis (SPEC 11, 13):
 *
 * - once a second every hub writes a compact JSON snapshot of itself to
 *   {prefix}ops:hub:{hub_id} (PX 5000) and its name into the sorted set
 *   {prefix}ops:hubs (score: the time), and reads every live hub's snapshot
 *   back, so the page on any hub lists all hubs sharing the Redis;
 * - traces: the scopes being traced are members of {prefix}ops:traces
 *   (score: when the trace ends; the set itself has a TTL); every hub reads
 *   them once a second, and while any is in force each matching event's
 *   delivery on this hub is appended to the stream {prefix}ops:trace
 *   (MAXLEN ~ 1000). With nothing traced, fan-out pays one flag check
 *   (h->ops_tracing).
 *
 * HTTP answers are built from what the last tick read: nothing here waits
 * for Redis while a request is served.
 */
#ifndef MH_OPS_H
#define MH_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "mh_buf.h"
#include "mh_envelope.h"
#include "mh_hub.h"

/** How long a trace started from the page lasts (the page renews it). */
#define MH_OPS_TRACE_TTL_MS 120000

/**
 * The gauges of this worker (the metrics module cannot count them itself):
 * also what /metrics and the shared worker slots report.
 */
void mh_ops_gauges(mh_hub *h, mh_gauges *g);

/** Once a second (main.c's tick): snapshot written and every hub's read back. */
void mh_ops_tick(mh_hub *h);

/** Frees what the module keeps (at exit). */
void mh_ops_free(void);

/**
 * Tracing: one invalidation entry has been fanned out on this hub to 'sent'
 * connections ('version' "E:N" or NULL, 'ts' the publisher's time or 0).
 * Call only when h->ops_tracing.
 */
void mh_ops_trace_entry(mh_hub *h, const mh_entry *e, const char *version, size_t sent, double ts);

/** Tracing: a channel message reached 'sent' connections ('held': kept for a heal). */
void mh_ops_trace_message(mh_hub *h, const mh_envelope *env, size_t sent, bool held);

/** This hub's snapshot, fresh (the JSON written to Redis). */
void mh_ops_snapshot(mh_hub *h, mh_buf *out);

/** {"self": id, "t": now, "redis": bool, "hubs": [snapshots]} from the last read. */
void mh_ops_render_hubs(mh_hub *h, mh_buf *out);

/**
 * Starts (or renews) tracing a scope: a context or channel 'name' with
 * 'params' (a JSON object as text, or NULL/"" for every params). Returns 200
 * with {"scope": member, "ttl_ms": ...} in 'out', 400 with {"error": reason}
 * for a bad scope, 429 when SCOPES_MAX scopes are traced already, 503 when
 * Redis cannot be reached.
 */
int mh_ops_trace_start(mh_hub *h, bool channel, const char *name, const char *params, mh_buf *out);

/**
 * Ends the trace of 'scope' (a member as trace_start answered it) on every
 * hub (within a second). Returns 200 {"stopped": bool}, 503 when Redis
 * cannot be reached.
 */
int mh_ops_trace_stop(mh_hub *h, const char *scope, mh_buf *out);

/**
 * {"scopes": [in force], "records": [...]} from the last read of the trace
 * stream, newest first; only the records of 'scope' when it is not NULL.
 */
void mh_ops_render_trace(mh_hub *h, const char *scope, mh_buf *out);

#endif
