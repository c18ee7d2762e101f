/*
 * mh_out — every frame the hub sends (SPEC section 8) and the envelopes it
 * writes itself (SPEC 11: the canary; the identity it adds to the inbound
 * stream). Pure functions of plain arguments, each appending compact JSON
 * to a buffer (non-ASCII raw, as SPEC 3 writes it); no I/O. Every encoder is
 * covered by protocol/vectors/outbound.json (tests/unit/test_out.c).
 */
#ifndef MH_OUT_H
#define MH_OUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mh_buf.h"
#include "mh_envelope.h"
#include "mh_inval.h"

/**
 * {"welcome":{"protocol":1,"hub","conn","identity","expires","spread_ms","max_frame"}}:
 * 'subject' NULL is an anonymous connection (identity null); 'expires' 0 is null.
 */
void mh_out_welcome(mh_buf *b, const char *hub_id, const char *conn, const char *subject,
                    bool staff, bool super, int64_t expires, int spread_ms, int max_frame);

/** {"authed":{"identity":{...},"expires":N,"ref"?}} after an auth/refresh. */
void mh_out_authed(mh_buf *b, const char *subject, bool staff, bool super, int64_t expires,
                   const json_t *ref);

/** {"expiring":{"expires":N,"in":S}}. */
void mh_out_expiring(mh_buf *b, int64_t expires, int64_t in);

/** An rpc error from the hub: {"id":ID,"ok":false,"error":{"code","message"}}; 'id_json' is the id
 * as JSON. */
void mh_out_rpc_error(mh_buf *b, const char *id_json, const char *code, const char *message);

/** The identity the inbound stream carries (SPEC 11): {"sub","staff","super"}, or null. */
void mh_out_identity(mh_buf *b, const char *subject, bool staff, bool super);

/** The canary envelope (SPEC 11): {"v":1,"kind":"canary","hub":ID,"nonce":N}. */
void mh_out_canary(mh_buf *b, const char *hub_id, const char *nonce);

/**
 * {"invalidate":[entry],"versions":{ctx:version},...}: 'version' may be
 * NULL (no versions key), 'reason' NULL, 'spread_ms' < 0 and 'ts' <= 0 omit
 * their keys.
 */
void mh_out_invalidate(mh_buf *b, const mh_entry *e, const char *version, const char *reason,
                       int spread_ms, double ts);

/** {"subscribed":true,"context":..,"params":..,"version":..} (or "unsubscribed"). */
void mh_out_ack(mh_buf *b, bool subscribed, bool channel, const mh_entry *e, const char *version,
                const char *epoch, uint64_t seq, const json_t *ref);

/** {"error":{"code","message"},"ref"?,"context"|"channel"?,"params"?}. */
void mh_out_error(mh_buf *b, const char *code, const char *message, const json_t *ref,
                  int target /* 0 none, 1 context, 2 channel */, const mh_entry *e);

/**
 * {"unsubscribed":true,"context"|"channel":..,"params":..,"error":{"code","message"}}:
 * the hub ended a subscription the connection may no longer hold (SPEC 8).
 */
void mh_out_ended(mh_buf *b, bool channel, const mh_entry *e, const char *code,
                  const char *message);

void mh_out_gap(mh_buf *b, const mh_entry *channel, uint64_t from, uint64_t to, bool recovered,
                const char *reason);

/** A channel message frame from a message envelope. */
int mh_out_channel_message(mh_buf *b, const mh_envelope *env);

void mh_out_pong(mh_buf *b, const json_t *ref);

/*
 * Presence (SPEC 11.2). A member is {"conn","sub"[,"info"]}; the hub writes
 * it once, stores it in Redis, and every frame and envelope carries those
 * bytes as they are.
 */
/** The member: 'subject' NULL is null; 'info' (compact JSON text) NULL leaves the key out. */
void mh_out_member(mh_buf *b, const char *conn, const char *subject, const char *info);

/** The instance as an envelope carries it: "channel":NAME,"params":{...} (no braces). */
void mh_out_presence_scope(mh_buf *b, const mh_entry *channel);

/**
 * The presence envelope (SPEC 11): {"v":1,"kind":"presence","op":..,SCOPE,"member":M},
 * where 'scope' is what mh_out_presence_scope wrote and 'member' what
 * mh_out_member wrote (the sweep script builds leaves the same way).
 */
void mh_out_presence_envelope(mh_buf *b, bool join, const char *scope, size_t scope_len,
                              const char *member, size_t member_len);

/** {"join"|"leave":{"channel","params","member":M}}; 'member' is member JSON. */
void mh_out_presence_event(mh_buf *b, bool join, const mh_entry *channel, const char *member,
                           size_t member_len);

/**
 * The answer to a presence query: {"presence":{"channel","params","members":[M...]},"ref"?};
 * members[i] is member JSON of lens[i] bytes.
 */
void mh_out_presence(mh_buf *b, const mh_entry *channel, const char *const *members,
                     const size_t *lens, size_t n, const json_t *ref);

/** {"stream":{"conn","secret"}}: the first event of a Server-Sent Events stream (SPEC 6.1). */
void mh_out_stream(mh_buf *b, const char *conn, const char *secret);

/**
 * {"v":1,"kind":"post","conn","secret","n"?,"body"} on {prefix}hub:{hub id}: a
 * stream's POST that reached another hub process than the stream's (SPEC
 * 6.1, 11); 'n' 0 (an unnumbered POST) leaves "n" out.
 */
void mh_out_post(mh_buf *b, const char *conn, const char *secret, uint64_t n, const char *body,
                 size_t len);

/** {"close":{"code":N,"reason":".."}}: how a stream says it ends (SPEC 6.1). */
void mh_out_close(mh_buf *b, unsigned code, const char *reason);

/** The heartbeat of a stream: a comment line, then the blank line. */
#define MH_SSE_HEARTBEAT ":\n\n"

/**
 * One Server-Sent Event (SPEC 6.1): `id: <id>` when 'id' is not NULL, then
 * data[0..len) as `data:` lines (split at CR, LF and CRLF, which an
 * EventSource joins back with LF), then a blank line. Writes into 'out'
 * when it is not NULL (the caller sized it with a first call with NULL) and
 * returns the length either way.
 */
size_t mh_out_sse_event(char *out, const char *id, const char *data, size_t len);

#endif
