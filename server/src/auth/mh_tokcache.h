/*
 * mh_tokcache — connection tokens already verified, remembered with what
 * they said, so a token seen again (a tab reconnecting, many tabs of one
 * login, a storm after a restart of the balancer) costs a hash and a
 * compare instead of a signature check and two JSON parses.
 *
 * Bounded: a fixed number of slots chosen by a keyed hash of the whole
 * token, one token per slot (a newcomer replaces the holder). Only tokens
 * that verified are kept, and a kept one is answered only until its `exp`
 * (with the same leeway as a check): the keys never change while the
 * process runs and a token is not revocable before its expiry (SPEC 12),
 * so a remembered answer is the answer a check would give.
 */
#ifndef MH_TOKCACHE_H
#define MH_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mh_identity.h"

/* Longer tokens are checked every time (none of ours is near it). */
#define MH_TOKCACHE_TOKEN_MAX 4096

typedef struct mh_tokcache mh_tokcache;

/** 'slots' rounded up to a power of two; NULL when 'slots' is 0 (off) or no memory. */
mh_tokcache *mh_tokcache_new(size_t slots);
void mh_tokcache_free(mh_tokcache *tc);

/**
 * 1 and 'id' filled when 'token' verified before and is not expired at
 * 'now' (seconds) with 'leeway'; 0 otherwise (an expired one is dropped:
 * the check that follows gives the reason).
 */
int mh_tokcache_get(mh_tokcache *tc, const char *token, size_t len, int64_t now, int leeway,
                    mh_identity *id);

/** Remembers a token that verified as 'id' (copied). Silently skipped without memory. */
void mh_tokcache_put(mh_tokcache *tc, const char *token, size_t len, const mh_identity *id);

/** Tokens remembered now. */
size_t mh_tokcache_count(const mh_tokcache *tc);

#endif
