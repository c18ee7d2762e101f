/*
 * mh_browser — what the hub does with each browser frame (SPEC section 7).
 * Every malformed or refused frame gets an error frame and the connection
 * stays up; only transport-level violations close it.
 */
#ifndef MH_BROWSER_H
#define MH_BROWSER_H

#include <stdbool.h>
#include <stddef.h>

#include "mh_conn.h"

/** The welcome frame, first on every connection. */
void mh_browser_welcome(mh_conn *c);

/**
 * A POST to a Server-Sent Events stream (SPEC 6.1), made here or forwarded
 * by another hub process: 'secret' (slen bytes) must be the stream's; then
 * each line of body[0..len) is a browser frame of the connection, as if it
 * had come from a socket (rate limits, held during a session lookup), in
 * the order of the POSTs' numbers 'n' (0: unnumbered, handled at once).
 * Returns 202, or 404 (not a stream) / 403 (another secret), counted under
 * stage `sse`, with a sentence in '*message'.
 */
int mh_browser_post(mh_conn *c, const char *secret, size_t slen, uint64_t n, const char *body,
                    size_t len, const char **message);

/** Handles one complete browser frame; a binary one gets `bad_frame`. */
void mh_browser_input(mh_conn *c, const char *text, size_t len, bool binary);

/** Handles one complete text frame. */
void mh_browser_frame(mh_conn *c, const char *text, size_t len);

/** Sends an error frame with no target (e.g. a binary frame). */
void mh_browser_error(mh_conn *c, const char *code, const char *message);

#endif
