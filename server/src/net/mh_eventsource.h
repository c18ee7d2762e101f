/*
 * mh_eventsource — the Server-Sent Events transport (SPEC 6.1) on the
 * hub's HTTP requests: `GET /sse` opens a stream, a connection like a
 * WebSocket one (mh_conn with an mh_sse), whose query subscriptions are
 * handled as subscribe frames; `POST /sse/<conn>?secret=` hands one browser
 * frame to it. mh_transport calls these from its HTTP callback, the intake
 * mh_es_post (lws 4.1 serves a POST body adopted with its head wrongly: it
 * hands the head's first bytes as the body).
 */
#ifndef MH_EVENTSOURCE_H
#define MH_EVENTSOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "mh_hub.h"

struct lws;
typedef struct mh_es mh_es;

/** True when 'path' is served here ("/sse" or "/sse/..."). */
bool mh_es_path(const char *path);

/**
 * LWS_CALLBACK_HTTP for such a path: opens the stream or starts a POST.
 * '*out' is what the request keeps (freed by mh_es_free). Returns 0, or
 * non-zero when lws is to close (an answer was written).
 */
int mh_es_start(mh_hub *h, struct lws *wsi, mh_peer *peer, const char *path, mh_es **out);

/**
 * `POST /sse/<conn>?secret=` (target[0..target_len)) with one browser frame
 * body[0..len) (the intake read it): hands the frame to the stream. Returns
 * the HTTP status to answer with, and a sentence for the body; refusals are
 * counted (stage `sse`).
 */
int mh_es_post(mh_hub *h, const char *target, size_t target_len, const char *body, size_t len,
               const char **message);

/**
 * This process lost its link to Redis shard 'shard': the POSTs handed on to
 * its streams over that shard meanwhile (and those Redis had sent into the
 * link before it was found dead) are lost, though answered 202 where they
 * were POSTed. Every stream whose POSTs travel on that shard ends with 1013,
 * so its client reconnects and sends its subscriptions again (SPEC 6.1).
 */
void mh_es_link_lost(mh_hub *h, unsigned shard);

/**
 * On the hub's tick: numbered POSTs handed on whose link dropped before
 * Redis answered their PUBLISH are published again (for up to 10 s).
 */
void mh_es_tick(mh_hub *h);

/** At exit: what mh_es_tick still held. */
void mh_es_free_all(void);

/** LWS_CALLBACK_HTTP_WRITEABLE; as mh_es_start. */
int mh_es_writeable(mh_es *e);

/** The request ended (CLOSED_HTTP, WSI_DESTROY): its connection goes too. */
void mh_es_free(mh_es **e);

#endif
