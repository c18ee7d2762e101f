/*
 * mh_wsock — the WebSocket connections the hub reads and writes itself:
 * every WebSocket upgrade, plain TCP or TLS (mh_tls: the hub terminates
 * TLS itself; reads through SSL_read, writes through mh_writer's SSL_write).
 * Server-Sent Events streams are own sockets too (c->sse): never read, so
 * any readable event (EOF, a reset, a byte) ends one.
 *
 * Why not lws for these: at saturation a socket's send buffer fills, and
 * lws then asks its libuv plugin for POLLOUT, which libuv 1.44 turns into
 * an EPOLL_CTL_DEL + ADD for every partial write, with level-triggered
 * POLLOUT reported for every waiting socket on every wait (bench/RESULTS.md,
 * "where the fan-out saturates"). Here each socket is registered once for
 * its whole life in two private epoll sets watched by the loop: one
 * level-triggered for reading, one edge-triggered for writing, so a full
 * send buffer costs a flag and one event when it drains. Frames go out with
 * writev straight from the shared messages (no copy), one call for
 * everything a socket has queued.
 *
 * This module reads (frames, control frames, the close handshake); the
 * writing is mh_writer's, the queue's consumer. Ownership: a connection is
 * allocated by the transport (or the stream module) and freed by mh_conn_destroy, only
 * from the loop's top level (an epoll event, the end-of-iteration flush,
 * the once-a-second sweep), never under a caller that still holds 'c'.
 */
#ifndef MH_WSOCK_H
#define MH_WSOCK_H

#include <stddef.h>

#include "mh_conn.h"
#include "mh_hub.h"

/** The epoll sets and their loop handles. Returns 0, or -1 (logged). */
int mh_wsock_init(mh_hub *h);

/** Drops every own connection without a close frame, closes the handles. */
void mh_wsock_stop(mh_hub *h);

/**
 * Watches 'fd' in the read set under 'id' (a socket whose request head is
 * being read: events go to hooks.intake until a connection takes the id).
 * One registration for the socket's whole life. Returns 0, or -1.
 */
int mh_wsock_watch(mh_hub *h, int fd, uint64_t id);

/** Stops watching 'fd' (it is handed to lws). */
void mh_wsock_unwatch(mh_hub *h, int fd);

/**
 * Makes 'c' (zeroed but for its peer and the credentials the auth filter
 * set) an open connection on 'fd', watched under 'id' already: named,
 * counted (it joins the write set at its first blocked write); 'tls'
 * (NULL: plain) is the socket's TLS,
 * shaken hands. Returns 0 ('c' owns 'tls' then); on -1 the caller still
 * owns 'c', 'fd' and 'tls'.
 */
int mh_wsock_open(mh_conn *c, mh_hub *h, int fd, uint64_t id, struct ssl_st *tls);

/**
 * Bytes that arrived with the request head (a client may send frames
 * without waiting for the 101), read as if from the socket.
 */
void mh_wsock_feed(mh_conn *c, const unsigned char *p, size_t n);

#endif
