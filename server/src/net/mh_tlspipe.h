/*
 * mh_tlspipe — a TLS request that is neither a WebSocket upgrade nor a
 * Server-Sent Events stream (the HTTP endpoints) relayed to libwebsockets, which
 * speaks plain HTTP only: lws gets one end of a socketpair (with the head
 * the intake decrypted, as a plain socket's hand-off gives it), and this
 * module moves bytes between the client's TLS and the other end.
 *
 * Why a relay and not lws's own TLS: the intake must read (and judge) the
 * head before it knows who serves it, and a WebSocket upgrade or a stream
 * then belongs to the hub's own writer; lws cannot take over a TLS session
 * someone else began. The requests relayed are the rare ones (probes,
 * scrapes); the fan-out's connections never pass here.
 *
 * Bounded both ways (a buffer each; a full one stops reading its source),
 * close propagated both ways (the client's EOF, close_notify or error ends
 * the relay and closes lws's end, which lws notices at its next read or
 * write, as it would the client's own socket; lws's close flushes what it
 * wrote, then close_notify and the socket's close). The client's address reaches lws as for a plain
 * hand-off: the peer (mh_peer) rides on the wsi, and counts against its
 * address until lws closes its end.
 */
#ifndef MH_TLSPIPE_H
#define MH_TLSPIPE_H

#include <stddef.h>

#include "mh_hub.h"
#include "mh_peer.h"
#include "mh_tls.h"

/** Hands one end of the pair to lws, as mh_intake_adopt_fn does a socket. */
typedef void (*mh_tlspipe_adopt_fn)(mh_hub *h, int fd, mh_peer *peer, const char *head, size_t len);

/**
 * Starts relaying the client socket 'fd' (its TLS 'tls', shaken hands) to
 * lws, which gets head[0..len) first. Takes 'fd', 'tls' and 'peer' (closed
 * and freed when anything fails).
 */
void mh_tlspipe_start(mh_hub *h, int fd, mh_tls *tls, mh_peer *peer, const char *head, size_t len,
                      mh_tlspipe_adopt_fn adopt);

/** Relays open (a gauge). */
size_t mh_tlspipe_count(void);

/** Ends every relay (at stop, before lws's context goes). */
void mh_tlspipe_stop_all(void);

#endif
