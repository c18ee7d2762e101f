#include "mh_map.h"

#include <stdlib.h>
#include <string.h>

/*
 * SipHash-1-3 with a per-process key: keys are chosen by clients
 * (canonical keys, addresses), and an unkeyed hash would let them pick keys
 * that all probe the same run of slots. Redis keys its dict hash the same
 * way.
 */
static uint64_t sip_k0, sip_k1;

void mh_map_seed(const unsigned char key[16])
{
    memcpy(&sip_k0, key, 8);
    memcpy(&sip_k1, key + 8, 8);
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

uint64_t mh_map_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t v0 = 0x736f6d6570736575ull ^ sip_k0, v1 = 0x646f72616e646f6dull ^ sip_k1,
             v2 = 0x6c7967656e657261ull ^ sip_k0, v3 = 0x7465646279746573ull ^ sip_k1;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i, full = len & ~(size_t)7;

    for (i = 0; i < full; i += 8) {
        memcpy(&m, p + i, 8); /* host order: a hash only has to agree with itself */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t k = 0; k < (len & 7); k++)
        b |= (uint64_t)p[full + k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void mh_map_init(mh_map *m)
{
    m->slots = NULL;
    m->cap = m->count = 0;
}

void mh_map_free(mh_map *m)
{
    free(m->slots);
    mh_map_init(m);
}

static size_t find_slot(const mh_map *m, const void *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i].key) {
        if (m->slots[i].hash == h && m->slots[i].len == len && !memcmp(m->slots[i].key, key, len))
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

void *mh_map_get(const mh_map *m, const void *key, size_t len)
{
    size_t i;
    if (!m->cap)
        return NULL;
    i = find_slot(m, key, len, mh_map_hash(key, len));
    return m->slots[i].key ? m->slots[i].value : NULL;
}

static int grow(mh_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    mh_map_slot *old = m->slots, *ns = calloc(ncap, sizeof *ns);
    size_t ocap = m->cap;

    if (!ns)
        return -1;
    m->slots = ns;
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].key) {
            size_t j = old[i].hash & (ncap - 1);
            while (ns[j].key)
                j = (j + 1) & (ncap - 1);
            ns[j] = old[i];
        }
    }
    free(old);
    return 0;
}

int mh_map_put(mh_map *m, const void *key, size_t len, void *value)
{
    uint64_t h = mh_map_hash(key, len);
    size_t i;

    if ((m->count + 1) * 4 > m->cap * 3 && grow(m))
        return -1;
    i = find_slot(m, key, len, h);
    if (!m->slots[i].key) {
        m->slots[i].key = key;
        m->slots[i].hash = h;
        m->slots[i].len = len;
        m->count++;
    }
    m->slots[i].key = key; /* a replacing value may own new key bytes */
    m->slots[i].value = value;
    return 0;
}

void *mh_map_del(mh_map *m, const void *key, size_t len)
{
    size_t mask, i, j;
    void *value;

    if (!m->cap)
        return NULL;
    mask = m->cap - 1;
    i = find_slot(m, key, len, mh_map_hash(key, len));
    if (!m->slots[i].key)
        return NULL;
    value = m->slots[i].value;
    /* Backward-shift: move later members of the probe run into the hole. */
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (!m->slots[j].key)
            break;
        home = m->slots[j].hash & mask;
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->count--;
    return value;
}

int mh_map_next(const mh_map *m, size_t *i, const char **key, size_t *len, void **value)
{
    while (*i < m->cap) {
        const mh_map_slot *s = &m->slots[(*i)++];
        if (s->key) {
            if (key)
                *key = s->key;
            if (len)
                *len = s->len;
            if (value)
                *value = s->value;
            return 1;
        }
    }
    return 0;
}
