/*
 * mh_eventsource — the Server-Sent Events transport (SPEC 6.1). `GET /sse`
 * opens a stream on the hub's own socket (plain or TLS), like a WebSocket
 * upgrade: the intake read and judged the head and calls mh_es_open, which
 * answers the 200 itself; the stream is an mh_conn with an mh_sse, its query
 * subscriptions handled as subscribe frames, written by mh_writer (its head,
 * events, heartbeats, close event) and never read (mh_wsock ends it at EOF
 * or at any byte). `POST /sse/<conn>?secret=` hands one browser frame to it
 * (mh_es_post, from the intake: lws 4.1 serves a POST body adopted with its
 * head wrongly). lws sees only other methods on these paths (405).
 */
#ifndef MH_EVENTSOURCE_H
#define MH_EVENTSOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "mh_hub.h"
#include "mh_peer.h"
#include "mh_tls.h"
#include "mh_upgrade.h"

struct lws;
typedef struct mh_es mh_es;

/** True when 'path' is served here ("/sse" or "/sse/..."). */
bool mh_es_path(const char *path);

/** A request for a stream: `GET /sse`, with or without a query. */
bool mh_es_stream_request(const mh_http_request *req);

/**
 * Opens the stream a judged `GET /sse` asks for (the intake read its head,
 * req->head_len of the 'len' bytes read; 'fd' in the own read set under
 * 'id', 'tls' its TLS or NULL): the upgrade's rules (admin listener, drain,
 * limits, token, cookie + Origin), then the 200 and the stream. Returns 0
 * when it took 'fd', its registration, 'peer' and 'tls' (even if the stream
 * ended at once); 1 when refused, counted, with 'why' the intake's answer.
 */
int mh_es_open(mh_hub *h, int fd, mh_tls *tls, mh_peer *peer, uint64_t id, size_t len,
               const mh_http_request *req, mh_upgrade_refusal *why);

/**
 * LWS_CALLBACK_HTTP for such a path, which lws serves only for a method the
 * intake does not take: answers 405. '*out' is what the request keeps
 * (freed by mh_es_free). Returns 0, or non-zero when lws is to close.
 */
int mh_es_start(mh_hub *h, struct lws *wsi, mh_es **out);

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

/** The request ended (CLOSED_HTTP, WSI_DESTROY). */
void mh_es_free(mh_es **e);

#endif
