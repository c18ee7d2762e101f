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

/** Handles one complete browser frame; a binary one gets `bad_frame`. */
void mh_browser_input(mh_conn *c, const char *text, size_t len, bool binary);

/** Handles one complete text frame. */
void mh_browser_frame(mh_conn *c, const char *text, size_t len);

/** Sends an error frame with no target (e.g. a binary frame). */
void mh_browser_error(mh_conn *c, const char *code, const char *message);

#endif
