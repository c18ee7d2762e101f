/*
 * mh_inval — SPEC section 2: invalidation entries and lists.
 *
 * An entry is a context name, unscoped or scoped with params. Params are kept
 * sorted in canonical order (UTF-8 bytes of their names), with every value
 * already in its string form, so keys and matching never sort again. The same
 * struct describes a subscription (always scoped; no params = `{}`).
 */
#ifndef MH_INVAL_H
#define MH_INVAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mh_buf.h"
#include "mh_err.h"

#define MH_ENTRIES_MAX 256

typedef struct mh_param {
    char *name; /* owned, NUL-terminated, valid name (SPEC 1) */
    size_t name_len;
    char *value; /* owned, NUL-terminated string form */
    size_t value_len;
} mh_param;

typedef struct mh_entry {
    char *context; /* owned */
    size_t context_len;
    bool scoped;
    size_t nparams;
    mh_param *params; /* owned array, sorted by name bytes; NULL when nparams == 0 */
} mh_entry;

typedef struct mh_inval {
    size_t n;
    mh_entry *entries; /* owned array */
} mh_inval;

void mh_entry_free(mh_entry *e);
void mh_inval_free(mh_inval *l);

/** Deep copy of 'src' into 'dst'. Returns 0 or MH_E_NOMEM. */
int mh_entry_copy(mh_entry *dst, const mh_entry *src);

/**
 * Sets e->context to a copy of 'name' (checked as a name: MH_E_BAD_NAME) —
 * used where the name and params come from different places.
 */
int mh_entry_set_context(mh_entry *e, const char *name, size_t len, mh_err *err);

/**
 * Fills e->params from a JSON object (the caller has checked it is one):
 * names checked, values in string form, sorted. 'path' is the object's JSON
 * path for errors. Returns 0, MH_E_BAD_NAME, MH_E_BAD_PARAM, MH_E_TOO_LARGE
 * or MH_E_NOMEM. Sets e->scoped.
 */
int mh_entry_params_from_json(mh_entry *e, const json_t *obj, const char *path, mh_err *err);

/**
 * A scope {"context": NAME, "params": PARAMS} found at 'path' (what a
 * subscription names): like a scoped entry, but anything other than an
 * object is `bad_invalidation` at 'path'. 'e' is reset first; the caller
 * frees it with mh_entry_free, also on error.
 */
int mh_scope_from_json(mh_entry *e, const json_t *scope, const char *path, mh_err *err);

/** One invalidation entry (SPEC 2) found at 'path'; as mh_scope_from_json. */
int mh_entry_from_json(mh_entry *e, const json_t *item, const char *path, mh_err *err);

/** Sorts params by the bytes of their names (canonical order). */
void mh_params_sort(mh_param *p, size_t n);

/**
 * Decodes a JSON invalidation list (SPEC 2) into 'out' (which the caller
 * frees with mh_inval_free, also on error). Errors carry a path.
 */
int mh_inval_from_json(const json_t *list, mh_inval *out, mh_err *err);

/** Appends the normalized JSON of one entry / of params (canonical order). */
void mh_entry_dump(mh_buf *out, const mh_entry *e);
void mh_params_dump(mh_buf *out, const mh_param *p, size_t n);

/** Normalized JSON value of an entry / params / list (new references, NULL on OOM). */
json_t *mh_entry_to_json(const mh_entry *e);
json_t *mh_params_to_json(const mh_param *p, size_t n);
json_t *mh_inval_to_json(const mh_inval *l);

#endif
