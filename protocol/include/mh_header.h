/*
 * mh_header — SPEC section 5: the X-Mizan-Invalidate header value.
 */
#ifndef MH_HEADER_H
#define MH_HEADER_H

#include <stddef.h>

#include "mh_buf.h"
#include "mh_err.h"
#include "mh_inval.h"

#define MH_HEADER_MAX 8192

/**
 * Decodes a header value of 'len' bytes into 'out' (freed by the caller with
 * mh_inval_free, also on error). Errors carry err->pos, the byte offset of
 * the offending token.
 */
int mh_header_decode(const char *s, size_t len, mh_inval *out, mh_err *err);

/**
 * Appends the header encoding of 'l' (SPEC 5, Encoding) to 'out'. Returns 0,
 * or MH_E_TOO_LARGE (path "") when it would pass the 8192-byte limit, then
 * appending nothing; MH_E_NOMEM when 'out' ran out of memory.
 */
int mh_header_encode(mh_buf *out, const mh_inval *l, mh_err *err);

#endif
