/*
 * mh_conn — one browser connection: its outbound queue of shared frames,
 * its subscriptions, its identity.
 *
 * Fan-out only appends references; the writer (mh_writer) takes them off
 * the queue's head, reached through h->hooks.write_due (it calls this
 * module, never the other way round by name). A connection whose queue
 * passes its bound is marked and closed with 4008 without making anyone
 * else wait.
 */
#ifndef MH_CONN_H
#define MH_CONN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mh_envelope.h"
#include "mh_hub.h"
#include "mh_inval.h"
#include "mh_msg.h"
#include "mh_subs.h"

typedef struct mh_rpc_pending {
    struct mh_rpc_pending *next;
    /* the rpc id as compact JSON ("\"7\"" or "42"), allocated to its length:
     * SPEC 7's 64-byte string id escapes to up to 386 bytes */
    char id[];
} mh_rpc_pending;

struct mh_conn {
    mh_hub *hub;
    uint64_t id;   /* key in hub->conns (its bytes) */
    char name[88]; /* conn_prefix + n (mh_hub.h), what Django replies to */
    /* outbound: a ring of references to shared frames */
    mh_msg **q;
    uint32_t q_head, q_count, q_cap;
    uint32_t q_bytes;
    uint64_t soft_since_ms; /* when the queue went over the soft limit, 0 when under */
    /* subscriptions held (each also in the index) */
    mh_sub **subs;
    uint32_t nsubs, subs_cap;
    /* reassembly of a fragmented browser frame */
    char *rx;
    uint32_t rx_len, rx_cap;
    uint64_t stamp;
    mh_rpc_pending *rpcs;
    /* identity: NULL sub means anonymous */
    char *subject; /* the identity's subject (a JWT sub); NULL: anonymous */
    char *info;    /* the token's `info` claim, compact JSON; NULL: none (SPEC 11.2) */
    bool staff, super;
    int64_t expires; /* Unix seconds the credentials end; 0: never */
    bool warned;     /* `expiring` sent for this expiry */
    /* mh_auth: the session cookie and its lookup, limits */
    char *session;        /* owned: sha256 hex of the session id, or NULL */
    char *cookie_uid;     /* owned: a signed cookie's _auth_user_id until the lookup answers */
    struct mh_held *held; /* owned: frames that arrived during the lookup */
    uint16_t nheld;
    uint32_t held_bytes;
    bool auth_pending;
    mh_peer *peer; /* owned (freed by mh_conn_destroy); NULL when unknown */
    double rate_tokens;
    uint64_t rate_ms;
    double in_tokens; /* inbound stream share (mh_auth_inbound_ok) */
    uint64_t in_ms;
    double resume_tokens; /* mh_resume_ok: channel resumes (resume_rate) */
    uint64_t resume_ms;
    /* keepalive (mh_conn_keepalive): the hub pings, not lws */
    uint64_t last_rx_ms; /* mono time anything last came from the peer */
    bool pinged;         /* a ping went out since then */
    bool dead;           /* dropped without a close frame (it stopped answering) */
    /* closing */
    uint16_t close_code;
    bool closing;
    bool established;
    bool dirty; /* in hub->dirty: written at the end of this loop iteration */
    /* the socket (mh_wsock: every connection, WebSocket or stream, is the hub's own) */
    bool blocked;     /* the kernel took less than offered: wait for its EPOLLOUT */
    bool wr_watched;  /* in the hub's write set (joined at the first blocked write) */
    bool close_sent;  /* our close frame is out: nothing more is written */
    bool close_heard; /* the peer's close frame came */
    uint8_t frag_op;  /* the opcode of a fragmented message being read, 0 none */
    int fd;
    uint32_t wr_off;            /* bytes of the queue's head frame already written */
    uint64_t close_deadline_ms; /* closing: dropped without more ado after this */
    unsigned char *pend;        /* owned: read bytes that are not a whole frame yet */
    uint32_t pend_len;
    /* an own socket with TLS (mh_tls; NULL: plain): the writer frames into
     * a scratch buffer and SSL_writes it; what the socket did not take
     * waits in 'tx' (owned) to be offered again first */
    struct ssl_st *tls;
    unsigned char *tx;
    uint32_t tx_len, tx_off;
    bool tls_wr_wants_rd; /* the write waits for the socket to be readable */
    bool tls_rd_wants_wr; /* the read waits for the socket to be writable */
    /* owned: a Server-Sent Events stream's state (SPEC 6.1); NULL for a
     * WebSocket. The writer frames for it (sse_frame) and so does a close. */
    struct mh_sse *sse;
    char close_reason[MH_CLOSE_REASON_MAX + 1]; /* a whole SPEC 14 reason, never cut */
};

/**
 * Sets up 'c' (zeroed, allocated by the transport for its own socket) for a
 * new connection.
 */
int mh_conn_open(mh_conn *c, mh_hub *h);

/**
 * An own socket's end: closes it (no close frame), releases 'c' and frees
 * it. Only from the loop's top level (mh_wsock.h).
 */
void mh_conn_destroy(mh_conn *c);

/**
 * Queues a control frame for an own socket, ahead of data frames not yet
 * begun; MH_MSG_RAW: bytes without a frame header (the 101, which then
 * leaves in one write with the welcome).
 */
int mh_conn_push_control(mh_conn *c, int opcode, const void *payload, size_t len);

/** The connection with this id string ("<hub>.<incarnation>-<n>"), or NULL. */
mh_conn *mh_conn_by_name(mh_hub *h, const char *name);

/** Releases everything 'c' holds: subscriptions, queue, its id; and, through
 * h->hooks.release, what upper layers keep (rpcs, auth state). */
void mh_conn_release(mh_conn *c);

/**
 * Queues a reference to 'm' (takes its own reference). Returns 0, or -1 when
 * the queue passed its bound: then the connection is closing with 4008.
 */
int mh_conn_enqueue(mh_conn *c, mh_msg *m);

/**
 * Like mh_conn_close, but what is already queued (an error frame saying
 * why) goes out before the close frame.
 */
void mh_conn_close_flushed(mh_conn *c, uint16_t code, const char *reason);

/** Queues a copy of text[0..len) (a frame for this connection only). */
int mh_conn_send(mh_conn *c, const char *text, size_t len);

/** Queues a copy of what an encoder wrote into 'b', unless it ran out of memory. */
void mh_conn_send_buf(mh_conn *c, const mh_buf *b);

/**
 * Queues an `error` frame (SPEC 8) and counts it; 'target' 0 none, 1
 * context, 2 channel, with 'e' the subscription it concerns. 'ref' and 'e'
 * are borrowed until return.
 */
void mh_conn_send_error(mh_conn *c, const char *code, const char *message, const json_t *ref,
                        int target, const mh_entry *e);

/**
 * Closes with 'code' and 'reason' as soon as the socket can take the close
 * frame; drops what is queued. Safe to call from anywhere on the loop.
 */
void mh_conn_close(mh_conn *c, uint16_t code, const char *reason);

/**
 * Sets the connection's identity from a verified token (copies it). Returns
 * 0, or -1 when out of memory.
 */
int mh_conn_set_identity(mh_conn *c, const mh_identity *id);

/** Something came from the peer (a frame, a pong): it is alive. */
void mh_conn_heard(mh_conn *c, uint64_t now_ms);

/**
 * The keepalive of SPEC 6, for every connection (about once a second):
 * silent for ping_interval -> a ping; silent for ping_interval +
 * pong_timeout -> dropped without a close frame. (lws's own validity timers
 * sit in one sorted list whose every insert walks all of them: at 8k
 * connections that was over half of a connect storm's CPU.)
 */
void mh_conn_keepalive_all(mh_hub *h, uint64_t now_ms);

/** Sends `expiring` or closes with 4004 when the credentials are due. */
void mh_conn_check_expiry(mh_conn *c, int64_t now_s);

/**
 * Appends a piece of a browser message being reassembled (c->rx): 0; 1
 * when the message would pass --max-frame (counted: close with 1009); -1
 * when out of memory. mh_conn_rx_done frees it once the whole message went
 * up: reassembly memory is only kept while a message is in flight.
 */
int mh_conn_rx_append(mh_conn *c, const void *p, size_t n);
void mh_conn_rx_done(mh_conn *c);

/** Adds/removes 'sub' to/from the connection's list (the index owns it). */
int mh_conn_add_sub(mh_conn *c, mh_sub *sub);
void mh_conn_drop_sub(mh_conn *c, mh_sub *sub);
/** The connection's subscription on 'node', or NULL. */
mh_sub *mh_conn_find_sub(const mh_conn *c, const mh_keynode *node);

#endif
