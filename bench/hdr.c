#include "hdr.h"

#include <math.h>
#include <string.h>

#define SUB (1 << MH_HDR_SUB_BITS)
#define TOP_VALUE ((INT64_C(1) << MH_HDR_TOP_BIT) - 1)

void mh_hdr_init(mh_hdr *h)
{
    memset(h, 0, sizeof(*h));
}

static int bucket_of(int64_t v)
{
    int k;

    if (v < MH_HDR_LINEAR)
        return (int)v;
    k = 63 - __builtin_clzll((unsigned long long)v); /* v in [2^k, 2^(k+1)) */
    return MH_HDR_LINEAR + (k - 10) * SUB + (int)((v >> (k - MH_HDR_SUB_BITS)) & (SUB - 1));
}

/* The largest value that lands in bucket 'b'. */
static int64_t bucket_high(int b)
{
    int k, sub;

    if (b < MH_HDR_LINEAR)
        return b;
    k = 10 + (b - MH_HDR_LINEAR) / SUB;
    sub = (b - MH_HDR_LINEAR) % SUB;
    return (INT64_C(1) << k) + ((int64_t)(sub + 1) << (k - MH_HDR_SUB_BITS)) - 1;
}

void mh_hdr_record(mh_hdr *h, int64_t us)
{
    if (us < 0) {
        h->underflow++;
        us = 0;
    } else if (us > TOP_VALUE) {
        h->overflow++;
        us = TOP_VALUE;
    }
    if (h->count == 0 || us < h->min)
        h->min = us;
    if (h->count == 0 || us > h->max)
        h->max = us;
    h->count++;
    h->sum += (uint64_t)us;
    h->counts[bucket_of(us)]++;
}

void mh_hdr_merge(mh_hdr *dst, const mh_hdr *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (dst->count == 0 || src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->overflow += src->overflow;
    dst->underflow += src->underflow;
    dst->sum += src->sum;
    for (int i = 0; i < MH_HDR_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
}

int64_t mh_hdr_percentile(const mh_hdr *h, double p)
{
    uint64_t rank, seen = 0;

    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
    if (rank < 1)
        rank = 1;
    for (int i = 0; i < MH_HDR_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            int64_t v = bucket_high(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

double mh_hdr_mean(const mh_hdr *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
