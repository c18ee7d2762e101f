/*
 * mh_history — a channel's position and history in Redis (SPEC 10: `c:K`
 * holds epoch `e` and last seq `s`; `h:K` is a stream whose ids are
 * "<seq>-0" and whose field `f` is the frame), read for resumes (mh_resume)
 * and for the link-gap heal (mh_heal), on the shard that owns them.
 */
#ifndef MH_HISTORY_H
#define MH_HISTORY_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "mh_hub.h"
#include "mh_redis.h"
#include "mh_subs.h"

/**
 * The Redis shard that owns a subscribed key's data (SPEC 11.1): a channel
 * instance's by its canonical key, a context scope's by its context's name.
 */
unsigned mh_history_shard(mh_hub *h, const mh_keynode *node);

/** XRANGE h:K <from>-0 + COUNT 10000. Returns 0, or -1 when not sent. */
int mh_history_read(mh_hub *h, const mh_keynode *node, uint64_t from, mh_redis_reply_fn fn,
                    void *arg);

/** HMGET c:K e s. Returns 0, or -1 when not sent. */
int mh_history_read_pos(mh_hub *h, const mh_keynode *node, mh_redis_reply_fn fn, void *arg);

typedef void (*mh_history_fn)(uint64_t seq, const char *frame, size_t len, void *arg);

/**
 * Walks an XRANGE reply in order, calling 'fn' (may be NULL) for each
 * well-formed entry. Returns the seq of the first entry (0: none, or not a
 * history); *last gets the seq of the last entry passed.
 */
uint64_t mh_history_each(const redisReply *reply, uint64_t *last, mh_history_fn fn, void *arg);

/** A string reply as an unsigned decimal; 0 for anything else. */
uint64_t mh_history_u64(const redisReply *r);

#endif
