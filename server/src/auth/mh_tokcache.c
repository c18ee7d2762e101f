#include "mh_tokcache.h"

#include <stdlib.h>
#include <string.h>

#include "mh_map.h"

typedef struct entry {
    uint64_t hash;
    size_t len, cap; /* the token's bytes; what the allocation can hold */
    mh_identity id;
    char token[];
} entry;

struct mh_tokcache {
    size_t mask, count;
    entry **slots;
};

mh_tokcache *mh_tokcache_new(size_t slots)
{
    mh_tokcache *tc;
    size_t cap = 1;

    if (!slots)
        return NULL;
    while (cap < slots)
        cap <<= 1;
    tc = calloc(1, sizeof *tc);
    if (!tc)
        return NULL;
    tc->slots = calloc(cap, sizeof *tc->slots);
    if (!tc->slots) {
        free(tc);
        return NULL;
    }
    tc->mask = cap - 1;
    return tc;
}

void mh_tokcache_free(mh_tokcache *tc)
{
    if (!tc)
        return;
    for (size_t i = 0; i <= tc->mask; i++)
        free(tc->slots[i]);
    free(tc->slots);
    free(tc);
}

static entry **slot_of(mh_tokcache *tc, uint64_t hash)
{
    return &tc->slots[hash & tc->mask];
}

int mh_tokcache_get(mh_tokcache *tc, const char *token, size_t len, int64_t now, int leeway,
                    mh_identity *id)
{
    uint64_t hash;
    entry **s, *e;

    if (!tc || len > MH_TOKCACHE_TOKEN_MAX)
        return 0;
    hash = mh_map_hash(token, len);
    s = slot_of(tc, hash);
    e = *s;
    if (!e || e->hash != hash || e->len != len || memcmp(e->token, token, len))
        return 0;
    if (e->id.exp && now >= e->id.exp + leeway) {
        free(e);
        *s = NULL;
        tc->count--;
        return 0;
    }
    *id = e->id;
    return 1;
}

void mh_tokcache_put(mh_tokcache *tc, const char *token, size_t len, const mh_identity *id)
{
    uint64_t hash;
    entry **s, *e;

    if (!tc || len > MH_TOKCACHE_TOKEN_MAX)
        return;
    hash = mh_map_hash(token, len);
    s = slot_of(tc, hash);
    e = *s;
    /* a storm of distinct tokens replaces holders all the time: reuse */
    if (e && e->cap < len) {
        free(e);
        *s = e = NULL;
        tc->count--;
    }
    if (!e) {
        size_t cap = len < 512 ? 512 : len;
        e = malloc(sizeof *e + cap);
        if (!e)
            return;
        e->cap = cap;
        *s = e;
        tc->count++;
    }
    e->hash = hash;
    e->len = len;
    e->id = *id;
    memcpy(e->token, token, len);
}

size_t mh_tokcache_count(const mh_tokcache *tc)
{
    return tc ? tc->count : 0;
}
