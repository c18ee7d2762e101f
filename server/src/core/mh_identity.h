/*
 * mh_identity — who a connection is: what a verified credential (a token,
 * a Django session) says, in the form every layer keeps.
 */
#ifndef MH_IDENTITY_H
#define MH_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

/** Longest `sub` (subject) accepted, in bytes. */
#define MH_SUB_MAX 256
/** Longest `info` claim, written compactly (SPEC 11.2: a presence member's info). */
#define MH_IDENTITY_INFO_MAX 1024

typedef struct mh_identity {
    char subject[MH_SUB_MAX + 1]; /* a token's `sub`, a session's user id */
    bool staff, super;
    int64_t exp; /* Unix seconds; 0: no expiry */
    char kid[65];
    char info[MH_IDENTITY_INFO_MAX + 1]; /* the `info` claim as compact JSON; "" when none */
} mh_identity;

#endif
