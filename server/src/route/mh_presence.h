/*
 * mh_presence — who subscribes to each instance of a presence channel
 * (SPEC 11.2), shared by every hub through Redis: members in a hash per
 * instance, a heartbeat per hub process, a sweep that publishes the leaves
 * of processes whose heartbeat expired, join/leave envelopes on the events
 * channel delivered like channel messages, and the browser's query.
 *
 * Each Redis step is one Lua script, so a member is added, removed or swept
 * once, and each of its joins gets exactly one leave.
 */
#ifndef MH_PRESENCE_H
#define MH_PRESENCE_H

#include "mh_conn.h"
#include "mh_envelope.h"
#include "mh_frame.h"
#include "mh_hub.h"

/** Starts the heartbeat and sweep timer (every presence_heartbeat_ms) on h's loop. */
void mh_presence_start(mh_hub *h);
/** Stops the timer (its handle closes on the loop). */
void mh_presence_stop(mh_hub *h);
/** Frees what is still held (after the loop stopped). */
void mh_presence_free(void);

/**
 * A new subscription of 'c' on 'node' was granted: when the registry says
 * the channel keeps presence, 'c' joins it (the join script runs; over
 * presence_max the subscription is ended with too_large).
 */
void mh_presence_joined(mh_conn *c, mh_keynode *node);

/** The subscription of 'c' on 'node' is ending: its member leaves. */
void mh_presence_left(mh_conn *c, const mh_keynode *node);

/** 'c' is going (its subscriptions are gone already): all its members leave. */
void mh_presence_forget_conn(mh_conn *c);

/** A `presence` frame: the guard, then the members read from Redis, or an error. */
void mh_presence_query(mh_conn *c, const mh_frame *f);

/**
 * The subscription link was lost: join/leave envelopes may have been
 * missed. The next mh_presence_heal sends every subscriber of each presence
 * instance the member list again (the `presence` frame without `ref`).
 */
void mh_presence_link_lost(mh_hub *h);
/** A heal round after the link came back (the Redis events' `heal`). */
void mh_presence_heal(mh_hub *h);

/** A presence envelope: join/leave frames to this hub's subscribers of the instance. */
void mh_presence_event(mh_hub *h, const mh_envelope *env);

#endif
