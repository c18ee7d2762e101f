/*
 * mh_writer — the one place that writes connections' queues to sockets.
 *
 * What it owns: the dirty list (connections with frames to write at the
 * end of this loop iteration, coalesced into one write each), the framing
 * of the shared messages on the fly (WebSocket headers; a Server-Sent Events
 * stream's head, events, heartbeats and close event), the plain WebSockets'
 * writev straight from the shared mh_msgs, the batches framed for TLS and
 * for streams (one write or SSL_write each, the rest kept in c->tx), the
 * EPOLLOUT flag (c->blocked), and an own socket's linger after its close
 * frame went out (a stream's socket is closed after its close event).
 *
 * It sits above mh_conn: it calls mh_conn's functions (destroy, release,
 * close), and mh_conn reaches it only through h->hooks.write_due, which
 * mh_writer_init registers, so the two never call each other in a circle.
 */
#ifndef MH_WRITER_H
#define MH_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "mh_conn.h"
#include "mh_hub.h"

/**
 * Sets up write coalescing on 'h' (a check handle on its loop) and
 * registers h->hooks.write_due. Frames for an idle plain-TCP connection are
 * written at the end of the loop iteration, all of them in one send: when
 * events come faster than a fan-out takes, as at saturation, each socket
 * gets one syscall for many frames.
 */
void mh_writer_init(mh_hub *h);
/** Frees what coalescing holds (after the loop stopped). */
void mh_writer_free(mh_hub *h);

/**
 * 'c' has something new to write (a frame, a control frame, a ping, its
 * close): it is written at the end of this loop iteration, or at its
 * socket's next EPOLLOUT (the kernel did not take everything). Returns 0,
 * or -1 when out of memory.
 */
int mh_writer_due(mh_conn *c);

/**
 * An own socket waits for its EPOLLOUT (c->blocked): it joins the write set
 * the first time. Returns 0, or -1 when it cannot (it would never resume).
 */
int mh_writer_wait_writable(mh_conn *c);

/**
 * Writes an own socket's queue now (its EPOLLOUT came). May destroy 'c':
 * only from the loop's top level.
 */
void mh_writer_flush_one(mh_conn *c);

/*
 * An own socket after our close frame went out: the connection is released
 * at once (its subscriptions, presence, the gauges: a drain is not held up
 * by peers that never answer), and the socket waits, read and discarded,
 * for the peer's close or EOF before it is closed, three seconds at most,
 * so the close frame is not destroyed by a reset.
 */
typedef struct mh_linger {
    uint64_t id; /* its key in hub->lingering (the map keeps a pointer to it) */
    int fd;
    mh_peer *peer; /* owned; no longer counted against its address */
    uint64_t deadline_ms;
} mh_linger;

/** A lingering socket under 'id' became readable: false when there is none. */
bool mh_writer_linger_read(mh_hub *h, uint64_t id);

/** Closes the lingering sockets past their deadline (all of them with 'all'). */
void mh_writer_linger_sweep(mh_hub *h, uint64_t now_ms, bool all);

#endif
