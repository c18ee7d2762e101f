/*
 * mh_rate — one token bucket: 'rate' tokens a second, at most 'burst' saved
 * up. The frame limit, the inbound stream shares (mh_auth) and the resume
 * limit (mh_heal) all count with it.
 */
#ifndef MH_RATE_H
#define MH_RATE_H

#include <stdbool.h>
#include <stdint.h>

/**
 * Takes one token from the bucket (*tokens, *last_ms: zero before the first
 * call, which starts it full). Returns false when none is left.
 */
static inline bool mh_rate_take(double *tokens, uint64_t *last_ms, int rate, int burst,
                                uint64_t now_ms)
{
    if (!*last_ms) {
        *last_ms = now_ms;
        *tokens = burst;
    }
    *tokens += (double)(now_ms - *last_ms) * rate / 1000.0;
    if (*tokens > burst)
        *tokens = burst;
    *last_ms = now_ms;
    if (*tokens < 1)
        return false;
    *tokens -= 1;
    return true;
}

#endif
