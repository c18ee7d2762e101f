/*
 * mh_hold — channel frames held back while history is being replayed.
 *
 * When a subscription resumes, or the hub heals a channel after losing
 * Redis, live messages start flowing before the replay of the missed ones
 * has come back from Redis. A client that saw seq 10 live would then drop
 * the replayed 5..9 as duplicates. So live frames are held, in order, until
 * the replay has been sent, and then released above what it covered.
 */
#ifndef MH_HOLD_H
#define MH_HOLD_H

#include <stdbool.h>
#include <stdint.h>

#include "mh_msg.h"

#define MH_HOLD_MAX 10000

typedef struct mh_hold {
    mh_msg **msgs;
    uint64_t *seqs;
    uint32_t n, cap;
    bool overflow; /* frames beyond MH_HOLD_MAX were dropped: the release reports a gap */
    uint64_t dropped_from, dropped_to;
} mh_hold;

mh_hold *mh_hold_new(void);

/** Takes a reference on 'm'. */
void mh_hold_push(mh_hold *h, mh_msg *m, uint64_t seq);

/** Releases every reference and the hold. NULL is fine. */
void mh_hold_free(mh_hold *h);

#endif
