/*
 * mh_key — SPEC sections 3 and 4: canonical keys, buckets, matching; and
 * section 11.1: which Redis shard owns a context or a channel instance.
 */
#ifndef MH_KEY_H
#define MH_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mh_buf.h"
#include "mh_inval.h"

#define MH_BUCKETS 1024

/**
 * Appends the canonical key of (context, params) to 'out'. 'params' must be
 * sorted (as mh_entry keeps them); values are already string forms.
 */
void mh_key_canon(mh_buf *out, const char *context, size_t context_len, const mh_param *params,
                  size_t nparams);

/** FNV-1a, 32 bits, of s[0..n). */
uint32_t mh_key_fnv1a(const char *s, size_t n);

/** Bucket (0..MH_BUCKETS-1) of a canonical key. */
unsigned mh_key_bucket(const char *key, size_t n);

#define MH_SLOTS 16384

/** CRC16-XMODEM (poly 0x1021, init 0, as Redis Cluster's key slot) of s[0..n). */
uint16_t mh_key_crc16(const char *s, size_t n);

/**
 * The shard (0..nshards-1) of a shard key (SPEC 11.1: a context's name, a
 * channel instance's canonical key, a connection's id): its slot,
 * crc16 mod 16384, by even slot ranges. 'nshards' is at least 1.
 */
unsigned mh_key_shard(const char *key, size_t n, unsigned nshards);

/**
 * Does entry 'e' match subscription 'sub' (SPEC 4)? Both hold sorted params;
 * the cost is O(e->nparams + sub->nparams).
 */
bool mh_match(const mh_entry *e, const mh_entry *sub);

#endif
