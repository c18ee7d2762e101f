/*
 * mh_gate — the one judgment of a request that wants a connection (a
 * WebSocket upgrade or a Server-Sent Events stream), whoever read its head:
 * the admin listener and the drain first, then mh_auth_filter on a view of
 * its headers; and the HTTP answer to one that lws read and we refused.
 * (Shared by the transport and the stream module, so neither calls the
 * other for it.)
 */
#ifndef MH_GATE_H
#define MH_GATE_H

#include "mh_conn.h"
#include "mh_hub.h"
#include "mh_upgrade.h"

struct lws;

/** Judges a request from a view of its headers: 0 go on, 1 refused ('why', counted). */
int mh_gate_judge(mh_hub *h, mh_conn *c, const mh_upgrade_view *v, mh_upgrade_refusal *why);

/** The same for a request lws read (TLS, streams): its headers copied into a view first. */
int mh_gate_filter_lws(mh_hub *h, mh_conn *c, struct lws *wsi, mh_upgrade_refusal *why);

/** Writes 'why' as the HTTP answer to an lws request. Returns 1. */
int mh_gate_answer_lws(struct lws *wsi, const mh_upgrade_refusal *why);

#endif
