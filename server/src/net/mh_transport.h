/*
 * mh_transport — libwebsockets on the hub's libuv loop: the WebSocket
 * protocol, HTTP endpoints on the same port, ping/pong, frame size limits,
 * graceful drain.
 */
#ifndef MH_TRANSPORT_H
#define MH_TRANSPORT_H

#include "mh_hub.h"
#include "mh_upgrade.h"

struct lws;

/** Creates the lws context on h->loop (a foreign loop) and starts listening. */
int mh_transport_start(mh_hub *h);

/** Starts the drain: refuse new upgrades, close the rest with 1012 over the window. */
void mh_transport_drain(mh_hub *h);

/** Called from the hub's tick while draining: closes the next slice. Returns open count. */
size_t mh_transport_drain_step(mh_hub *h);

/** Destroys the lws context (the loop must keep running until its handles close). */
void mh_transport_stop(mh_hub *h);

/** Frees what lws keeps until the loop has closed its handles. */
void mh_transport_finish(mh_hub *h);

/**
 * With --workers: copies this worker's counters and gauges into its shared
 * slot (every tick), so a scrape that reaches any worker sees them all.
 */
void mh_transport_share_metrics(mh_hub *h);

#endif
