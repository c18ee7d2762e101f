/*
 * mh_fanout — from an invalidation or channel message to queued frames.
 *
 * Each pushed frame is encoded once per entry and queued by reference to
 * every matching connection, each connection once; the publisher never
 * waits for a connection, and a connection over its bound is closed without
 * delaying the rest.
 */
#ifndef MH_FANOUT_H
#define MH_FANOUT_H

#include <stddef.h>

#include "mh_envelope.h"
#include "mh_hub.h"
#include "mh_msg.h"
#include "mh_subs.h"

/** An `invalidate` envelope: one frame per entry, queued to every match. */
void mh_fanout_invalidate(mh_hub *h, const mh_envelope *env);

/** A channel `message` envelope: one frame, through the holds of resuming subscriptions. */
void mh_fanout_message(mh_hub *h, const mh_envelope *env);

/** Queues 'm' to each subscriber of 'node' not yet served in this round. Returns how many. */
size_t mh_fanout_node(mh_hub *h, mh_keynode *node, mh_msg *m);

/**
 * Delivers a channel frame with sequence number 'seq' to every subscriber of
 * 'node', or into the subscriber's hold while it is resuming. Returns how
 * many connections it was queued to.
 */
size_t mh_fanout_channel(mh_hub *h, mh_keynode *node, mh_msg *m, uint64_t seq);

/** Starts a new round: afterwards every connection can receive one copy again. */
void mh_fanout_round(mh_hub *h);

/** The refetch spread for an event that reaches 'recipients' connections. */
int mh_fanout_spread(const mh_hub *h, size_t recipients);

/** Records a context version "E:N" seen for 'ctx', keeping the newest. */
void mh_fanout_note_version(mh_ctx *ctx, const char *version, size_t len);

#endif
