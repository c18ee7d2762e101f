/*
 * mh_peer — one accepted TCP connection's address and its place in the
 * per-address count (--max-connections-per-ip), from accept to close.
 *
 * Count on accept, release on close: mh_peer_new counts the address,
 * mh_peer_free releases it, and exactly one owner frees each peer — the
 * intake while it reads the request head (and when it refuses it), then
 * the own connection it became (a WebSocket or a stream: mh_conn_destroy,
 * or the linger after its close frame), or the lws connection it was handed
 * to, whose LWS_CALLBACK_WSI_DESTROY (always delivered to the first
 * protocol, callback_http in mh_transport) frees it.
 */
#ifndef MH_PEER_H
#define MH_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mh_hub.h"
#include "mh_netaddr.h"

typedef struct mh_peer {
    mh_hub *hub;
    struct mh_ip_count *ip; /* the address's entry in hub->ips; NULL: not counted (OOM) */
    mh_ip sock;             /* the socket's own peer (a proxy, when one is in front) */
    char addr[48];          /* the client's address in text, for logs and the count */
    bool admin;             /* came through --admin-listen: HTTP endpoints only */
} mh_peer;

/**
 * A peer for the socket accepted from 'sa' (NULL: unknown), counted against
 * its address. Returns NULL when out of memory.
 */
mh_peer *mh_peer_new(mh_hub *h, const struct sockaddr *sa, socklen_t salen);

/**
 * The client is 'ip' after all (a trusted proxy said so): the count moves
 * from the socket's address to it.
 */
void mh_peer_rekey(mh_peer *p, const mh_ip *ip);

/** Connections open from the peer's address in this worker, itself included. */
uint32_t mh_peer_count(const mh_peer *p);

/**
 * Stops counting the socket against its address (it is being closed: a
 * refusal lingering for the client's close); it still counts as a socket.
 */
void mh_peer_release(mh_peer *p);

/** Releases the peer's count and frees it; NULL is a no-op. */
void mh_peer_free(mh_peer *p);

#endif
