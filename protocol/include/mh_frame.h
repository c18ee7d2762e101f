/*
 * mh_frame — SPEC section 7: frames a browser sends to the hub.
 *
 * The decoder checks everything the SPEC asks before the hub acts, so the
 * hub only ever sees well-formed actions with names checked and params in
 * canonical form.
 */
#ifndef MH_FRAME_H
#define MH_FRAME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mh_buf.h"
#include "mh_err.h"
#include "mh_inval.h"

#define MH_TOKEN_MAX 8192
#define MH_SINCE_MAX 128
#define MH_REF_MAX 64

typedef enum mh_action {
    MH_ACT_AUTH,
    MH_ACT_REFRESH,
    MH_ACT_SUBSCRIBE,
    MH_ACT_UNSUBSCRIBE,
    MH_ACT_MESSAGE,
    MH_ACT_RPC,
    MH_ACT_CTX,
    MH_ACT_PING,
    MH_ACT_PRESENCE, /* a presence query (SPEC 11.2) */
} mh_action;

typedef enum mh_target {
    MH_TARGET_NONE,
    MH_TARGET_CONTEXT,
    MH_TARGET_CHANNEL,
} mh_target;

typedef struct mh_frame {
    mh_action action;
    json_t *root; /* owned: the parsed frame; the borrowed pointers below live in it */

    mh_target target; /* subscribe/unsubscribe/message/ctx/presence */
    mh_entry scope;   /* owned: the context or channel and its params (scoped) */

    const char *since; /* borrowed, NULL when absent */
    size_t since_len;
    const char *token; /* borrowed: auth/refresh token, or subscribe token; NULL when absent */
    size_t token_len;
    const char *fn; /* borrowed: rpc function name */
    size_t fn_len;

    json_t *ref;  /* borrowed: string or integral number, NULL when absent */
    json_t *id;   /* borrowed: rpc/ctx id */
    json_t *args; /* borrowed: rpc args (object or array); NULL means {} */
    json_t *data; /* borrowed: message data; NULL means null */
} mh_frame;

/** Name of an action as it appears on the wire. */
const char *mh_action_name(mh_action a);

/**
 * Decodes one frame of 'len' bytes into 'f' (release with mh_frame_free, also
 * after an error). Returns 0 or an MH_E_* code with 'err' filled.
 */
int mh_frame_decode(const char *text, size_t len, mh_frame *f, mh_err *err);

void mh_frame_free(mh_frame *f);

/** An rpc `id` by SPEC 7's rule: a string of 1-64 bytes, or an integer. */
bool mh_frame_id_valid(const json_t *v);

/**
 * Appends the normalized frame (SPEC 7, defaults filled in) as compact JSON;
 * this is what the hub puts in the inbound stream's `body`.
 */
int mh_frame_dump(mh_buf *out, const mh_frame *f);

/** The normalized frame as a JSON value (new reference; NULL on OOM). */
json_t *mh_frame_to_json(const mh_frame *f);

#endif
