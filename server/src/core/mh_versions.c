#include "mh_versions.h"

#include <string.h>

#include "mh_buf.h"
#include "mh_key.h"

int mh_versions_buckets(const mh_entry *sub, unsigned *out)
{
    size_t n = sub->nparams;
    int count = 0;
    mh_buf b;

    if (n > MH_VERSIONS_MAX_PARAMS)
        return -1;
    mh_buf_init(&b);
    for (unsigned mask = 1; mask < (1u << n); mask++) {
        mh_param sel[MH_VERSIONS_MAX_PARAMS];
        size_t k = 0;
        unsigned bucket;
        bool dup = false;

        for (size_t i = 0; i < n; i++)
            if (mask & (1u << i))
                sel[k++] = sub->params[i];
        mh_buf_reset(&b);
        mh_key_canon(&b, sub->context, sub->context_len, sel, k);
        if (b.oom) {
            mh_buf_free(&b);
            return -1;
        }
        bucket = mh_key_bucket(b.data, b.len);
        for (int j = 0; j < count && !dup; j++)
            dup = out[j] == bucket;
        if (!dup)
            out[count++] = bucket;
    }
    mh_buf_free(&b);
    return count;
}

bool mh_versions_missed(const char *since_epoch, uint64_t since_n, const mh_vhash *h,
                        uint64_t max_bucket, bool enumerated)
{
    if (!h->exists)
        return !(since_n == 0 && !strcmp(since_epoch, "0"));
    if (strcmp(h->epoch, since_epoch))
        return true; /* the hash was recreated: anything could have happened */
    if (h->n < since_n)
        return true; /* counters went backwards: data loss */
    if (h->n == since_n)
        return false;
    return h->u > since_n || !enumerated || max_bucket > since_n;
}
