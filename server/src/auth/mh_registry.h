/*
 * mh_registry — the authorization registry Django exports (SPEC 12): for
 * each context and channel, the guard and the param rules, so the hub can
 * apply `@client(auth=...)` itself instead of asking Django on every
 * subscribe.
 *
 * A loaded registry is immutable. Reloading (SIGHUP) builds a new one and
 * swaps the pointer; a file that fails to load leaves the old one in place.
 */
#ifndef MH_REGISTRY_H
#define MH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "mh_inval.h"

typedef enum {
    MH_GUARD_PUBLIC,
    MH_GUARD_AUTH,
    MH_GUARD_STAFF,
    MH_GUARD_SUPERUSER,
    MH_GUARD_TOKEN,
} mh_guard;

typedef struct mh_registry mh_registry;

/** Who is asking: sub NULL for an anonymous connection (borrowed). */
typedef struct mh_who {
    const char *subject;
    bool staff, super;
} mh_who;

/** The outcome of a check. */
typedef enum {
    MH_REG_ALLOW = 0,
    MH_REG_NEED_TOKEN = 1, /* the `token` guard: a subscription token decides */
    MH_REG_DENY = -1,      /* *code is not_found, bad_param, unauthorized or forbidden */
} mh_reg_result;

/**
 * Parses registry JSON. Returns a new registry (caller frees) or NULL with
 * 'err' naming the offending entry and why: an unknown guard, a param rule
 * other than "sub", a bad name, "params" that is not a list of param names,
 * a version other than 1.
 */
mh_registry *mh_registry_parse(const char *text, size_t len, char *err, size_t errlen);

/** Reads and parses a file; NULL with 'err' (including I/O errors). */
mh_registry *mh_registry_load(const char *path, char *err, size_t errlen);

void mh_registry_free(mh_registry *r);

/** Numbers of contexts and channels, for the load log line. */
size_t mh_registry_count(const mh_registry *r, bool channels);

/**
 * May 'who' subscribe or send to 'e' (a channel when 'channel')? On
 * MH_REG_DENY *code is the SPEC 9 error code and 'msg' says why. Where the
 * entry declares "params", a param name not in the list is bad_param
 * (checked before the guard). Param rules apply whatever the guard, staff
 * and superusers included.
 */
mh_reg_result mh_registry_check(const mh_registry *r, bool channel, const mh_entry *e,
                                const mh_who *who, const char **code, char *msg, size_t msglen);

/** Does the registry's channel 'channel' keep presence (SPEC 11.2)? */
bool mh_registry_presence(const mh_registry *r, const char *channel, size_t len);

/**
 * Are its members told of joins and leaves? Presence channels say so unless
 * their entry has "join_leave": false (a large room: N members joining send
 * about N^2/2 frames; the list is still there to query).
 */
bool mh_registry_join_leave(const mh_registry *r, const char *channel, size_t len);

#endif
