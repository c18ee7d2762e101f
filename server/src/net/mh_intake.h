/*
 * mh_intake — a plain-TCP connection from accept until its request head is
 * complete: read with a deadline for the whole head (--header-timeout),
 * judged by mh_upgrade, refused here with a proper HTTP/1.1 answer, or
 * handed on with the bytes read.
 *
 * TLS (--tls-cert) is terminated here too: the handshake, then the head
 * read through SSL_read exactly as a plain one.
 *
 * Slow or malformed requests never reach libwebsockets: its header tables
 * (a small pool) and its lenient parser only see heads that are complete
 * and valid, so a few sockets trickling headers cannot delay /healthz or
 * anybody's upgrade.
 */
#ifndef MH_INTAKE_H
#define MH_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mh_hub.h"
#include "mh_peer.h"
#include "mh_tls.h"
#include "mh_upgrade.h"

/**
 * Hands a judged socket on (to lws). Takes 'fd' and 'peer'; 'head' is
 * borrowed until return (the bytes read so far: the head and whatever
 * followed it).
 */
typedef void (*mh_intake_adopt_fn)(mh_hub *h, int fd, mh_peer *peer, const char *head, size_t len);

/**
 * Upgrades a judged WebSocket request on a plain socket (the hub speaks
 * WebSocket on those itself: mh_wsock). 'fd' is in the own read set under
 * 'id', which the connection keeps as its id. Returns 0 when it took 'fd',
 * its registration, 'peer' and 'tls' (the socket's TLS, NULL on a plain
 * socket); 1 when refused, counted, with 'why' saying what the intake
 * answers. 'buf' (the head, then whatever followed it) and 'req' are
 * borrowed until return.
 */
typedef int (*mh_intake_upgrade_fn)(mh_hub *h, int fd, mh_tls *tls, mh_peer *peer, uint64_t id,
                                    const char *buf, size_t len, const mh_http_request *req,
                                    mh_upgrade_refusal *why);

typedef struct mh_intake mh_intake;

/** The intake of 'h'; NULL when out of memory. */
mh_intake *mh_intake_new(mh_hub *h, mh_intake_adopt_fn adopt, mh_intake_upgrade_fn upgrade);

/**
 * Takes an accepted socket and its peer: the address's limit, the PROXY
 * header or X-Forwarded-For of a trusted proxy (--trusted-proxies,
 * --proxy-protocol), with 'tls' the TLS handshake (h->tls_ctx; within the
 * same --header-timeout as the head, the limit answered after it), the
 * head (decrypted), then the hand-over: a TLS socket that is not a
 * WebSocket upgrade goes to lws through mh_tlspipe.
 */
void mh_intake_add(mh_intake *in, int fd, mh_peer *peer, bool tls);

/** Closes every socket still in the intake and its timer; frees 'in' after the loop ran. */
void mh_intake_stop(mh_intake *in);

#endif
