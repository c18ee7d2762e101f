/*
 * mh_resume — SPEC section 10 at subscribe time: the version in a context's
 * ack, the resume check of a `since`, a channel's replay from history (or a
 * gap) before its ack, the per-connection resume rate, and one history read
 * shared by the resumes of one channel from one point. Each path
 * invalidates when in doubt: an extra refetch is cheap, a stale page is a bug.
 */
#ifndef MH_RESUME_H
#define MH_RESUME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mh_conn.h"
#include "mh_hub.h"

/**
 * Acknowledges a new context subscription, first checking 'since' (may be
 * NULL) against Redis when given, or reading the version when unknown.
 * 'ref' is borrowed until return.
 */
void mh_resume_context(mh_conn *c, mh_sub *sub, const char *since, size_t since_len,
                       const json_t *ref);

/** The same for a channel: replays from history or sends a gap, then acks. */
void mh_resume_channel(mh_conn *c, mh_sub *sub, const char *since, size_t since_len,
                       const json_t *ref);

/**
 * A channel resume (subscribe with since) may go ahead: the connection's
 * resume_rate token bucket has a token. Otherwise counts the refusal and
 * writes why into msg; the caller answers `rate_limited`.
 */
bool mh_resume_ok(mh_conn *c, char *msg, size_t msglen);

#endif
