/*
 * mh_map — open-addressing hash map from byte strings to pointers.
 *
 * Keys are borrowed: the caller keeps each key's bytes alive while it is in
 * the map (typically the value owns them), so an entry costs one slot and no
 * allocation. Linear probing with backward-shift deletion: no tombstones, so
 * lookups stay short however much the index churns.
 */
#ifndef MH_MAP_H
#define MH_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct mh_map_slot {
    const char *key; /* NULL: empty */
    uint64_t hash;
    size_t len;
    void *value;
} mh_map_slot;

typedef struct mh_map {
    mh_map_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
} mh_map;

/** Keyed hash of a map key (SipHash-1-3 under the process key). */
uint64_t mh_map_hash(const void *key, size_t len);

/**
 * Sets the process's hash key (16 random bytes, at start before any map is
 * filled; every map's order depends on it).
 */
void mh_map_seed(const unsigned char key[16]);

void mh_map_init(mh_map *m);
/** Frees the slots, not the keys or values. */
void mh_map_free(mh_map *m);

void *mh_map_get(const mh_map *m, const void *key, size_t len);
/** Inserts or replaces. Returns 0, or -1 when out of memory. */
int mh_map_put(mh_map *m, const void *key, size_t len, void *value);
/** Removes and returns the value, or NULL when absent. */
void *mh_map_del(mh_map *m, const void *key, size_t len);

/**
 * Iterates: start with *i = 0; returns 0 at the end. The map must not be
 * modified during iteration.
 */
int mh_map_next(const mh_map *m, size_t *i, const char **key, size_t *len, void **value);

#endif
