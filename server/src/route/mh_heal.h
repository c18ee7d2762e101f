/*
 * mh_heal — SPEC section 10 on the hub: versions in subscribe acks, resume
 * checks, and healing after the hub's own Redis link dropped. Each path
 * invalidates when in doubt: an extra refetch is cheap, a stale page is a bug.
 */
#ifndef MH_HEAL_H
#define MH_HEAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mh_conn.h"
#include "mh_hub.h"

/**
 * Acknowledges a new context subscription, first checking 'since' (may be
 * NULL) against Redis when given, or reading the version when unknown.
 * 'ref' is borrowed until return.
 */
void mh_heal_subscribe_context(mh_conn *c, mh_sub *sub, const char *since, size_t since_len,
                               const json_t *ref);

/** The same for a channel: replays from history or sends a gap, then acks. */
void mh_heal_subscribe_channel(mh_conn *c, mh_sub *sub, const char *since, size_t since_len,
                               const json_t *ref);

/** The subscriber link dropped: remember what every context and channel had seen. */
void mh_heal_mark_gap(mh_hub *h);

/**
 * The subscription is back: read versions, invalidate and replay what was
 * missed. One round: a context or channel whose read fails (an error reply
 * such as -LOADING or -BUSY, or no reply) stays in gap, and mh_redis runs
 * another round after a backoff; each read sent and answered is reported to
 * mh_redis (mh_redis_heal_read_sent/_done) so it knows when a round is over.
 */
void mh_heal_run(mh_hub *h);

/** Contexts and channels still in gap (not healed yet). */
size_t mh_heal_unhealed(mh_hub *h);

/**
 * The heal ran out of time (heal_timeout_ms): every subscription of each
 * context still in gap gets a "gap" invalidation, every channel still in gap
 * a `gap` frame (hub_link_lost), and the frames held for it go out.
 */
void mh_heal_give_up(mh_hub *h);

/**
 * A channel resume (subscribe with since) may go ahead: the connection's
 * resume_rate token bucket has a token. Otherwise counts the refusal and
 * writes why into msg; the caller answers `rate_limited`.
 */
bool mh_heal_resume_ok(mh_conn *c, char *msg, size_t msglen);

#endif
