/*
 * mh_versions — SPEC section 10's rule: given what a subscriber last saw and
 * a context's version hash now, could it have missed an invalidation?
 *
 * Pure logic, no I/O, so the rule that decides between "stale page" and "one
 * extra refetch" is tested on its own. Every doubt answers "missed".
 */
#ifndef MH_VERSIONS_H
#define MH_VERSIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "mh_envelope.h"
#include "mh_inval.h"

/** Subscriptions with more params than this are checked by counter only. */
#define MH_VERSIONS_MAX_PARAMS 6
#define MH_VERSIONS_MAX_BUCKETS 63

/** A context's version hash as read from Redis. */
typedef struct mh_vhash {
    bool exists; /* false: no hash (nothing was ever published, or it was lost) */
    char epoch[MH_EPOCH_MAX + 1];
    uint64_t n; /* counter */
    uint64_t u; /* counter at the last unscoped entry */
} mh_vhash;

/**
 * The buckets of the canonical keys of every non-empty subset of 'sub''s
 * params, deduplicated, into out[] (room for MH_VERSIONS_MAX_BUCKETS).
 * Returns their number, or -1 when 'sub' has too many params to enumerate.
 */
int mh_versions_buckets(const mh_entry *sub, unsigned *out);

/**
 * Did a subscriber that saw version (since_epoch, since_n) miss something?
 * 'max_bucket' is the largest value among the subscription's bucket fields
 * (0 when absent); 'enumerated' is false when the buckets could not be listed.
 */
bool mh_versions_missed(const char *since_epoch, uint64_t since_n, const mh_vhash *h,
                        uint64_t max_bucket, bool enumerated);

#endif
