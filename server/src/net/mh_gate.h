/*
 * mh_gate — the one judgment of a request that wants a connection (a
 * WebSocket upgrade or a Server-Sent Events stream; the intake read its
 * head, plain or TLS): the admin listener and the drain first, then
 * mh_auth_filter on a view of its headers. (Shared by the transport and the stream module, so
 * neither calls the other for it.)
 */
#ifndef MH_GATE_H
#define MH_GATE_H

#include "mh_conn.h"
#include "mh_hub.h"
#include "mh_upgrade.h"

/** Judges a request from a view of its headers: 0 go on, 1 refused ('why', counted). */
int mh_gate_judge(mh_hub *h, mh_conn *c, const mh_upgrade_view *v, mh_upgrade_refusal *why);

#endif
