/*
 * mh_json — JSON text in and out under SPEC section 1's rules.
 *
 * Parsing gives every number JavaScript's meaning (an IEEE double), rejects
 * what a browser would parse differently (lone surrogates, overflow) and
 * bounds nesting; the text is read front to back and the first place that
 * breaks SPEC 1 decides the error. Object keys may hold U+0000: read them
 * with json_object_keylen_foreach / json_object_getn, never strlen. Dumping writes what
 * JSON.stringify writes, so a payload the hub re-encodes reads back in the browser exactly as
 * published.
 */
#ifndef MH_JSON_H
#define MH_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mh_buf.h"
#include "mh_err.h"

#define MH_JSON_DEPTH_MAX 64

/**
 * Parses one JSON text of 'len' bytes. Returns a new reference, or NULL with
 * err set to MH_E_BAD_JSON or MH_E_TOO_LARGE (nesting over 64 levels).
 */
json_t *mh_json_parse(const char *text, size_t len, mh_err *err);

/** mh_json_parse with another nesting limit (test data, not wire input). */
json_t *mh_json_parse_depth(const char *text, size_t len, int max_depth, mh_err *err);

/**
 * Like mh_json_parse, but a document nested deeper than 64 levels is still
 * returned (a new reference) with err set to MH_E_TOO_LARGE and *too_deep set,
 * so a caller can read a few top-level fields (a frame's `ref`) for its reply:
 * what was read before the bracket that opened the 65th level.
 */
json_t *mh_json_parse_keep(const char *text, size_t len, mh_err *err, int *too_deep);

/** Appends 's' as a JSON string literal, escaped as SPEC section 3 says. */
void mh_json_put_string(mh_buf *out, const char *s, size_t len);

/**
 * Appends 'v' as compact JSON: object keys in insertion order, numbers as
 * ECMAScript formats them (integral values without ".0"). Returns 0, or -1
 * for a non-finite number (then 'out' holds a partial text).
 */
int mh_json_dump(mh_buf *out, const json_t *v);

/**
 * True when 'v' is a number JavaScript holds exactly as an integer: integral
 * (1.0 counts, SPEC 7) and of magnitude at most 2^53 - 1.
 */
bool mh_json_is_safe_integer(const json_t *v);

#endif
