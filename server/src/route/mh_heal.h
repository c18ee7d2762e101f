/*
 * mh_heal — SPEC section 10 after the hub's own Redis link dropped: what
 * every context and channel had seen is remembered, and when the
 * subscription is back, versions are read and what was missed is
 * invalidated or replayed (retried and, after heal_timeout_ms, given up by
 * invalidating everything still in gap). Subscribe-time resumes are
 * mh_resume's.
 */
#ifndef MH_HEAL_H
#define MH_HEAL_H

#include <stdbool.h>
#include <stddef.h>

#include "mh_conn.h"
#include "mh_hub.h"

/*
 * Each function works on what one Redis shard owns (SPEC 11.1: a context by
 * its name, a channel instance by its canonical key); with one shard, on
 * everything.
 */

/** The subscriber link of 'shard' dropped: remember what every context and channel had seen. */
void mh_heal_mark_gap(mh_hub *h, unsigned shard);

/**
 * The subscription is back: read versions, invalidate and replay what was
 * missed. One round: a context or channel whose read fails (an error reply
 * such as -LOADING or -BUSY, or no reply) stays in gap, and mh_redis runs
 * another round after a backoff; each read sent and answered is reported to
 * mh_redis (mh_redis_heal_read_sent/_done) so it knows when a round is over.
 */
void mh_heal_run(mh_hub *h, unsigned shard);

/** Contexts and channels still in gap (not healed yet). */
size_t mh_heal_unhealed(mh_hub *h, unsigned shard);

/**
 * The heal ran out of time (heal_timeout_ms): every subscription of each
 * context still in gap gets a "gap" invalidation, every channel still in gap
 * a `gap` frame (hub_link_lost), and the frames held for it go out.
 */
void mh_heal_give_up(mh_hub *h, unsigned shard);

#endif
