/*
 * mh_err — the protocol library's error codes and error record.
 *
 * Every function returns 0 or a negative MH_E_* code and, given an mh_err,
 * fills it with the SPEC's code name, a message naming the offending part,
 * and the byte position (header) or JSON path (lists) where the SPEC asks.
 */
#ifndef MH_ERR_H
#define MH_ERR_H

#include <stddef.h>

enum {
    MH_OK = 0,
    MH_E_NOMEM = -1,
    MH_E_BAD_JSON = -2,
    MH_E_BAD_FRAME = -3,
    MH_E_UNKNOWN_ACTION = -4,
    MH_E_BAD_NAME = -5,
    MH_E_BAD_PARAM = -6,
    MH_E_BAD_INVALIDATION = -7,
    MH_E_BAD_HEADER = -8,
    MH_E_TOO_LARGE = -9,
    MH_E_BAD_VERSION = -10,
    MH_E_BAD_ENVELOPE = -11,
    MH_E_UNKNOWN_KIND = -12,
};

#define MH_ERR_PATH_MAX 512
#define MH_ERR_MSG_MAX 200

typedef struct mh_err {
    int code;                   /* one of MH_E_* */
    long pos;                   /* byte offset for header errors, else -1 */
    int has_path;               /* path is meaningful (JSON list errors) */
    char path[MH_ERR_PATH_MAX]; /* JSON-pointer style: "/1/params/user_id" */
    size_t path_len;            /* a param name may hold U+0000, and so may its path */
    char msg[MH_ERR_MSG_MAX];
} mh_err;

/** The SPEC's name of a code ("bad_json", ...); "internal" for unknown ones. */
const char *mh_code_name(int code);

/** Resets 'e' to "no error". 'e' may be NULL. */
void mh_err_clear(mh_err *e);

/**
 * Records an error in 'e' (which may be NULL) and returns 'code', so callers
 * can write `return mh_err_set(err, MH_E_BAD_NAME, "...")`.
 */
int mh_err_set(mh_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Sets the byte position of the error already recorded in 'e'. */
void mh_err_at(mh_err *e, long pos);

/**
 * Sets the JSON path of the recorded error: 'prefix' (already a path, e.g.
 * "/0/params") followed, when 'key' is not NULL, by "/" and 'key' escaped as
 * a JSON-pointer token ("~" -> "~0", "/" -> "~1").
 */
void mh_err_path(mh_err *e, const char *prefix, const char *key, size_t key_len);

#endif
