#include "mh_key.h"

#include <string.h>

#include "mh_json.h"

void mh_key_canon(mh_buf *out, const char *context, size_t context_len, const mh_param *params,
                  size_t nparams)
{
    mh_buf_putc(out, '[');
    mh_json_put_string(out, context, context_len);
    mh_buf_putc(out, ',');
    mh_params_dump(out, params, nparams);
    mh_buf_putc(out, ']');
}

uint32_t mh_key_fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

unsigned mh_key_bucket(const char *key, size_t n)
{
    return mh_key_fnv1a(key, n) % MH_BUCKETS;
}

uint16_t mh_key_crc16(const char *s, size_t n)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)s[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned mh_key_shard(const char *key, size_t n, unsigned nshards)
{
    uint32_t slot = mh_key_crc16(key, n) % MH_SLOTS;

    /* Slot ranges, as a cluster splits them: shard i owns
     * [i*16384/N, (i+1)*16384/N); with N = 1 everything is shard 0. */
    return nshards <= 1 ? 0 : (unsigned)((slot * nshards) / MH_SLOTS);
}

bool mh_match(const mh_entry *e, const mh_entry *sub)
{
    size_t j = 0;

    if (e->context_len != sub->context_len || memcmp(e->context, sub->context, e->context_len))
        return false;
    if (!e->scoped)
        return true;
    /* Both sides are sorted by name: one merge walk. */
    for (size_t i = 0; i < e->nparams; i++) {
        const mh_param *p = &e->params[i];
        int c = 1;
        while (j < sub->nparams && (c = strcmp(sub->params[j].name, p->name)) < 0)
            j++;
        if (j == sub->nparams || c != 0)
            return false;
        if (sub->params[j].value_len != p->value_len ||
            memcmp(sub->params[j].value, p->value, p->value_len))
            return false;
        j++;
    }
    return true;
}
