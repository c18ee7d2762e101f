/*
 * mh_envelope — SPEC section 11: what publishers and workers put on Redis
 * pub/sub for the hubs, and the context/channel version strings inside.
 *
 * Envelopes come from trusted code, but a bad one must cost one log line and
 * one counter, never a crash or a wrong delivery, so they are checked as
 * strictly as browser frames.
 */
#ifndef MH_ENVELOPE_H
#define MH_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mh_err.h"
#include "mh_inval.h"

#define MH_EPOCH_MAX 32
#define MH_CLOSE_REASON_MAX 123
/** A presence member's info, written compactly (SPEC 11.2). */
#define MH_INFO_MAX 1024

typedef enum mh_kind {
    MH_KIND_INVALIDATE,
    MH_KIND_MESSAGE,
    MH_KIND_LOGOUT,
    MH_KIND_DISCONNECT,
    MH_KIND_CANARY,
    MH_KIND_REPLY,
    MH_KIND_SEND,
    MH_KIND_CLOSE,
    MH_KIND_REGISTRY,
    MH_KIND_PRESENCE,
    MH_KIND_POST,
} mh_kind;

/** A `post` envelope's body: a POST to a stream is at most max_frame, which is at most this. */
#define MH_POST_BODY_MAX (1 << 20)

typedef struct mh_envelope {
    mh_kind kind;
    json_t *root; /* owned; borrowed pointers below live in it */
    bool has_ts;
    double ts; /* publisher's Unix time, ms */

    mh_inval inval;   /* owned: invalidate */
    json_t *versions; /* borrowed: invalidate, context -> "E:N" */

    mh_entry channel; /* owned: message, presence (channel name + params) */
    const char *type; /* borrowed: message type, "message" by default */
    json_t *data;     /* borrowed: message data, NULL means null */
    uint64_t seq;
    const char *epoch;

    const char *session; /* logout: sha256 hex */
    const char *subject; /* disconnect; presence: the member's sub (NULL: null) */
    const char *reason;  /* disconnect, close ("" by default) */
    const char *hub;     /* canary */
    const char *nonce;   /* canary */
    const char *version; /* registry */
    const char *conn;    /* reply, send, close, post; presence: the member's connection */
    bool join;           /* presence: op join (else leave) */
    json_t *info;        /* borrowed: presence: the member's info, NULL when absent */
    const char *secret;  /* post: the stream's secret, 32 lowercase hex digits */
    const char *body;    /* post: the POST's body (browser frames, one per line) */
    size_t body_len;
    uint64_t post_n; /* post: the POST's number (SPEC 6.1), 0 when it had none */
    json_t *frame;   /* borrowed: reply, send */
    int code;        /* close */
} mh_envelope;

/** Decodes one envelope; release with mh_envelope_free, also after an error. */
int mh_envelope_decode(const char *text, size_t len, mh_envelope *env, mh_err *err);
void mh_envelope_free(mh_envelope *env);
const char *mh_kind_name(mh_kind k);

/** The normalized envelope (for tests and logs); new reference or NULL. */
json_t *mh_envelope_to_json(const mh_envelope *env);

/**
 * Parses a version "E:N" (SPEC 10). Copies the epoch into 'epoch' (at least
 * MH_EPOCH_MAX + 1 bytes) and the counter into *n. Returns 0 or MH_E_BAD_VERSION.
 */
int mh_version_parse(const char *s, size_t len, char *epoch, uint64_t *n);

/** Room for a version's text: the epoch, ':', a counter of up to 20 digits, NUL. */
#define MH_VERSION_MAX (MH_EPOCH_MAX + 22)

/** Writes the version "E:N" (SPEC 10) into out[MH_VERSION_MAX]; returns its length. */
size_t mh_version_format(char out[MH_VERSION_MAX], const char *epoch, uint64_t n);

/** True when 's' is 1..32 characters of [0-9a-z]. */
bool mh_epoch_valid(const char *s, size_t len);

#endif
