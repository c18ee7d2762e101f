/*
 * mh_redis — the hub's Redis links, on the hub's libuv loop (each an
 * mh_rlink: plain or TLS, rediss://).
 *
 * The subscriber link listens on {prefix}events and {prefix}hub:{id}; the
 * command link appends to the inbound stream, reads versions and publishes
 * the canary. Either link reconnects with capped, full-jitter exponential
 * backoff. Readiness means: subscribed, and this hub's own canary came back
 * through Redis recently — a subscription that silently died is noticed and
 * reconnected. With --redis-sentinels a third link asks a Sentinel for the
 * master and follows its failovers.
 *
 * With --redis-shards the hub's data is spread over N independent Redis
 * servers (SPEC 11.1): each shard has its own two links, subscription,
 * canary and heal; a context's versions, a channel's position and history
 * are read on the shard that owns them (mh_redis_shard_of), and a link gap
 * on shard k heals only what shard k owns. With one shard everything is as
 * it was with --redis alone.
 */
#ifndef MH_REDIS_H
#define MH_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "mh_hub.h"
#include "mh_metrics.h"

/**
 * Called with the reply, or with NULL when the command failed or the link
 * dropped before the reply came. 'reply' is owned by the link: valid only
 * during the call.
 */
typedef void (*mh_redis_reply_fn)(mh_hub *h, redisReply *reply, void *arg);

/**
 * What the links report upward, to the layer that routes envelopes and
 * heals gaps (registered at start-up: this module never calls it by name).
 */
typedef struct mh_redis_events {
    /* a pub/sub message on one of the hub's channels of shard 'shard'; the
     * bytes are hiredis's */
    void (*message)(mh_hub *h, unsigned shard, const char *channel, size_t clen,
                    const char *payload, size_t plen);
    /* the subscription on 'shard' was lost: remember what every subscription
     * of what that shard owns had seen */
    void (*lost)(mh_hub *h, unsigned shard);
    /* one heal round of 'shard': send the reads (each sent/answered through
     * mh_redis_heal_read_sent/_done) */
    void (*heal)(mh_hub *h, unsigned shard);
    /* how many contexts/channels 'shard' owns are still unhealed */
    size_t (*unhealed)(mh_hub *h, unsigned shard);
    /* the heal of 'shard' ran out of time: invalidate / gap whatever it owns
     * that is unhealed */
    void (*give_up)(mh_hub *h, unsigned shard);
} mh_redis_events;

/**
 * Checks a --redis-sentinels value ("HOST:PORT,..."): the number of
 * Sentinels, or -1 with the reason in 'err'.
 */
int mh_redis_parse_sentinels(const char *text, char *err, size_t errlen);

/** Creates the bridge for 'h' (not yet connected); 'ev' is copied. */
mh_redis *mh_redis_new(mh_hub *h, const mh_redis_events *ev);
void mh_redis_start(mh_redis *r);
/** Disconnects both links and stops the timers; their close completes on the loop. */
void mh_redis_stop(mh_redis *r);
void mh_redis_free(mh_redis *r);

/** How many shards (1 without --redis-shards). */
unsigned mh_redis_nshards(const mh_redis *r);
/**
 * The shard that owns a shard key (SPEC 11.1): a context's name, a channel
 * instance's canonical key, a connection's id.
 */
unsigned mh_redis_shard_of(const mh_redis *r, const char *key, size_t len);

/** Subscribed on both channels, on every shard. */
bool mh_redis_subscribed(const mh_redis *r);
/** Subscribed on both channels of shard 'shard'. */
bool mh_redis_shard_subscribed(const mh_redis *r, unsigned shard);
/**
 * On every shard: subscribed, the canary came back within the window, and
 * no heal is outstanding. 'why' names the first shard that is not.
 */
bool mh_redis_ready(const mh_redis *r, const char **why);
/** The command link of the first shard is up. */
bool mh_redis_cmd_up(const mh_redis *r);
/** Fills the Redis gauges (redis_up, per shard up) of 'g'. */
void mh_redis_gauges(const mh_redis *r, mh_gauges *g);

/**
 * Sends a command on the command link of shard 'shard'. Returns 0 when sent
 * ('fn' will be called exactly once), or -1 when the link is down ('fn' is
 * not called). 'fn' may be NULL.
 */
int mh_redis_cmd_on(mh_redis *r, unsigned shard, mh_redis_reply_fn fn, void *arg, int argc,
                    const char **argv, const size_t *lens);
/** mh_redis_cmd_on the first shard, which holds the registry and the sessions (SPEC 11.1). */
int mh_redis_cmd(mh_redis *r, mh_redis_reply_fn fn, void *arg, int argc, const char **argv,
                 const size_t *lens);

/** Our canary came back through the subscription of 'shard' (called by the router). */
void mh_redis_canary_seen(mh_redis *r, unsigned shard, const char *nonce);

typedef void (*mh_redis_sync_fn)(mh_hub *h, void *arg);

/**
 * Calls 'fn' once every event published before now has come through this
 * hub's subscription on 'shard': a marker is published on that shard's
 * events channel and pub/sub keeps order. Used so an ack's position read
 * from the owning shard is never ahead of what the connection has been
 * sent. 'fn' is called exactly once (also when the link drops first: the
 * gap heal then covers what was missed).
 */
void mh_redis_sync(mh_redis *r, unsigned shard, mh_redis_sync_fn fn, void *arg);

/*
 * Heal rounds (mh_heal does the reads, this module the timing): a round's
 * reads are counted as sent and answered; when the last one is answered and
 * something is still in gap, another round follows after a jittered backoff,
 * until heal_timeout_ms after the link came back, when mh_heal_give_up
 * invalidates what is left. /readyz is 503 "healing" until then.
 */
/** The current heal generation of 'shard': a reply sent in an older one is stale. */
uint64_t mh_redis_heal_gen(const mh_redis *r, unsigned shard);
/** A heal read of the current round of 'shard' was sent. */
void mh_redis_heal_read_sent(mh_redis *r, unsigned shard);
/** A heal read of 'shard' sent in generation 'gen' was answered (or failed) and handled. */
void mh_redis_heal_read_done(mh_redis *r, unsigned shard, uint64_t gen);

/** Redis names, prefixed: "events", "in", "v:<ctx>" ... written into 'out'. */
void mh_redis_name(const mh_redis *r, mh_buf *out, const char *suffix, const char *rest,
                   size_t rest_len);

#endif
