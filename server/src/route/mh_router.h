/*
 * mh_router — every pub/sub message the hub receives (SPEC 11), decoded and
 * sent where its kind says: invalidations and channel messages to the
 * fan-out, canaries to the Redis links, logouts, disconnects and registry
 * announcements to auth, replies, sends and closes to one connection of
 * this hub. Bad envelopes are counted and logged, never delivered.
 */
#ifndef MH_ROUTER_H
#define MH_ROUTER_H

#include <stddef.h>

#include "mh_hub.h"

/**
 * One pub/sub message from Redis shard 'shard': 'channel' tells the events
 * channel from the hub's own.
 */
void mh_router_envelope(mh_hub *h, unsigned shard, const char *channel, size_t chlen,
                        const char *payload, size_t len);

#endif
