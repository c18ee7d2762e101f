/*
 * mh_heal — SPEC section 10 on the hub: versions in subscribe acks, resume
 * checks, and healing after the hub's own Redis link dropped. Each path
 * invalidates when in doubt: an extra refetch is cheap, a stale page is a bug.
 */
#ifndef MH_HEAL_H
#define MH_HEAL_H

#include <jansson.h>
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

/** The subscription is back: read versions, invalidate and replay what was missed. */
void mh_heal_run(mh_hub *h);

#endif
