/*
 * mh_auth — who a connection is and what it may do: the checks on the
 * upgrade request (connection limits, Origin, token, Django session cookie),
 * the asynchronous session-registry lookup, logout, the per-connection frame
 * rate, and the registry guards on subscribe and message (SPEC 12).
 *
 * Every refusal is explicit (an HTTP status before the upgrade, or an error
 * frame / close code after it), counted in /metrics by stage and reason, and
 * logged without the credential.
 */
#ifndef MH_AUTH_H
#define MH_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "mh_conn.h"
#include "mh_frame.h"
#include "mh_hub.h"
#include "mh_upgrade.h"

/**
 * Loads the --registry file into h->registry at start. Returns 0 (also when
 * none is configured) or -1 with the reason logged.
 */
int mh_auth_registry_load(mh_hub *h);

/** SIGHUP: loads the file again; on error keeps the registry in force. */
void mh_auth_registry_reload(mh_hub *h);

/**
 * Reads the registry Django stored at {prefix}registry (SPEC 11: the
 * `registry` envelope announces a new one; with --registry-from-redis it is
 * also read at start) and puts it in force when valid; an invalid one is
 * logged and the registry in force stays. 'version' (the announced one, or
 * NULL) is only for the log. One read at a time.
 */
void mh_auth_registry_fetch(mh_hub *h, const char *version);

/**
 * With --registry-from-redis: whether a registry from Redis is in force
 * yet; *why says what /readyz should.
 */
bool mh_auth_registry_ready(const mh_hub *h, const char **why);

/**
 * The upgrade request, before the 101: limits (HTTP 503/429), then a token
 * (HTTP 401 when bad), else the session cookie (Origin → HTTP 403; a bad
 * signed cookie → HTTP 401). A cookie that needs a registry lookup marks 'c'
 * pending. Returns 0 to go on with the upgrade, 1 when refused: counted,
 * and 'why' says what the transport answers.
 */
int mh_auth_filter(mh_hub *h, mh_conn *c, const mh_upgrade_view *v, mh_upgrade_refusal *why);

/**
 * Counts a refused upgrade under 'stage' and 'reason' and says in 'why'
 * what to answer ('status', 'text'; static strings): the transport that
 * read the request writes it. Returns 1.
 */
int mh_auth_refuse(mh_hub *h, mh_upgrade_refusal *why, int status, const char *stage,
                   const char *reason, const char *text);

/**
 * After mh_conn_open: sends `welcome` now, or starts the session lookup and
 * sends it when the answer comes. Returns 0, or -1 to drop the connection.
 */
int mh_auth_established(mh_conn *c);

/**
 * While the session lookup runs, browser frames wait (in order, bounded).
 * Returns true when 'text' was kept (or refused): the caller must not
 * decode it now.
 */
bool mh_auth_hold_frame(mh_conn *c, const char *text, size_t len, bool binary);

/**
 * The per-connection frame rate (token bucket). Returns true when the frame
 * may be handled; false after sending `rate_limited` and closing with 4029.
 */
bool mh_auth_rate_ok(mh_conn *c);

/**
 * May 'c' add one more entry to the browser -> Django stream now (its own
 * share, --inbound-conn-rate, and the worker's, --inbound-rate)? A refusal
 * is counted; the caller answers it.
 */
bool mh_auth_inbound_ok(mh_conn *c);

/** A `logout` envelope: closes that session's connections with 4005. */
void mh_auth_logout(mh_hub *h, const char *session_hash);

/** Frees what auth keeps on 'c' (held frames, session, per-IP count). */
void mh_auth_release(mh_conn *c);

/**
 * May 'c' subscribe to (or, for `message`, send on) f's context or channel?
 * 0 when allowed; otherwise -1 with *code (SPEC 9: unauthorized, forbidden,
 * not_found, bad_token, token_expired) and 'msg'. The rejection is counted.
 */
int mh_auth_check(mh_conn *c, const mh_frame *f, const char **code, char *msg, size_t msglen);

#endif
