/*
 * mh_value — SPEC section 1: names, param values and their string forms.
 *
 * Param values compare as strings, the way a query string carries them; a
 * JSON number becomes what JavaScript's String() gives, so the C hub, the
 * browser and Django agree on every key byte for byte.
 */
#ifndef MH_VALUE_H
#define MH_VALUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mh_err.h"

#define MH_NAME_MAX 128      /* context, channel and fn names */
#define MH_PARAM_NAME_MAX 64 /* param names */
#define MH_VALUE_MAX 256     /* string form of a param value */
#define MH_PARAMS_MAX 16     /* params per entry or subscription */
#define MH_NUMBER_MAX 32     /* room for any mh_value_number() output + NUL */

/** True when s[0..n) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool mh_utf8_valid(const char *s, size_t n);

/**
 * Checks a name of 'n' bytes against SPEC section 1 with the given maximum
 * length: returns 0 or MH_E_BAD_NAME (err filled, without position or path).
 */
int mh_name_check(const char *s, size_t n, size_t max, mh_err *err);

/** Checks a value's string form: returns 0 or MH_E_BAD_PARAM. */
int mh_value_check(const char *s, size_t n, mh_err *err);

/**
 * ECMAScript Number::toString(d) into 'out' (at least MH_NUMBER_MAX bytes).
 * Returns the length, or -1 for NaN and infinities, which JSON cannot carry.
 */
int mh_value_number(double d, char *out);

/**
 * The string form of a JSON param value, as a new NUL-terminated string in
 * *out (caller frees) with its length in *len. Returns 0, MH_E_BAD_PARAM
 * (object, array, too long, contains U+0000) or MH_E_NOMEM.
 */
int mh_value_form(const json_t *v, char **out, size_t *len, mh_err *err);

#endif
