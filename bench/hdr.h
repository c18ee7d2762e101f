/*
 * hdr — a log-linear latency histogram in microseconds, HDR style.
 *
 * Values below 1024 µs each have their own bucket (1 µs resolution); above,
 * every power of two is split into 128 equal buckets, so a reported value is
 * at most 1/128 (0.8 %) above the true one. The range ends at 2^26 µs (67 s);
 * larger values are counted in the top bucket and in 'overflow'. Negative
 * values (clock steps) count as 0 and in 'underflow'.
 *
 * The struct is plain data of fixed size: a forked worker can write it to a
 * pipe as is and the parent merges it with mh_hdr_merge().
 */
#ifndef MH_HDR_H
#define MH_HDR_H

#include <stdint.h>

#define MH_HDR_LINEAR 1024 /* exact buckets for 0 .. 1023 µs */
#define MH_HDR_SUB_BITS 7  /* 128 buckets per power of two above */
#define MH_HDR_TOP_BIT 26  /* values up to 2^26 - 1 µs */
#define MH_HDR_BUCKETS (MH_HDR_LINEAR + (MH_HDR_TOP_BIT - 10) * (1 << MH_HDR_SUB_BITS))

typedef struct mh_hdr {
    uint64_t count;
    uint64_t overflow;  /* values over the range, recorded at its top */
    uint64_t underflow; /* negative values, recorded as 0 */
    uint64_t sum;       /* of recorded values, for the mean */
    int64_t min;        /* exact, of recorded values; valid when count > 0 */
    int64_t max;
    uint64_t counts[MH_HDR_BUCKETS];
} mh_hdr;

/** Empties 'h'. */
void mh_hdr_init(mh_hdr *h);

/** Records one value in microseconds. */
void mh_hdr_record(mh_hdr *h, int64_t us);

/** Adds every value of 'src' to 'dst'. */
void mh_hdr_merge(mh_hdr *dst, const mh_hdr *src);

/**
 * The value at percentile 'p' (0 < p <= 100): the highest value its bucket
 * holds, but never more than the exact maximum. 0 when 'h' is empty.
 */
int64_t mh_hdr_percentile(const mh_hdr *h, double p);

/** The mean of recorded values (of their clamped values), 0 when empty. */
double mh_hdr_mean(const mh_hdr *h);

#endif
