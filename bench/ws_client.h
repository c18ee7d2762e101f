/*
 * ws_client — the client side of RFC 6455 as a state machine without I/O.
 *
 * The caller owns the socket: it writes what mh_wsc_request() builds, feeds
 * every byte it reads to mh_wsc_feed(), and writes what the 'send' callback
 * hands it (pongs, the close echo). The state machine checks the 101 answer
 * and its Sec-WebSocket-Accept, then decodes frames with ws.h; it masks every
 * frame it produces, as a client must.
 */
#ifndef MH_WS_CLIENT_H
#define MH_WS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ws.h"

/* mh_wsc_feed results besides the ws.h ones (MH_WS_E_*). */
enum {
    MH_WSC_E_HTTP = -10,      /* the answer is not HTTP, or its header is over 8 KiB */
    MH_WSC_E_STATUS = -11,    /* an HTTP status other than 101 (see mh_wsc.status) */
    MH_WSC_E_HANDSHAKE = -12, /* 101, but Upgrade/Connection/extensions are wrong */
    MH_WSC_E_ACCEPT = -13,    /* 101, but Sec-WebSocket-Accept does not match our key */
    MH_WSC_E_SEND = -14,      /* the 'send' callback failed */
};

typedef enum mh_wsc_state {
    MH_WSC_HANDSHAKE,
    MH_WSC_OPEN,
    MH_WSC_CLOSED, /* a close frame was received and echoed */
} mh_wsc_state;

typedef struct mh_wsc_ops {
    /* Bytes to write to the server; return 0, or -1 if the connection is gone. */
    int (*send)(void *ctx, const uint8_t *data, size_t len);
    /* The upgrade was accepted. Non-zero stops mh_wsc_feed. */
    int (*on_open)(void *ctx);
    /* A complete text or binary message, valid until return. Non-zero stops. */
    int (*on_message)(void *ctx, int opcode, uint8_t *data, size_t len);
    /* The server closed with 'code' (1005 when the frame had none); the echo is
     * already sent and mh_wsc_feed returns this callback's value, or 1 if 0. */
    int (*on_close)(void *ctx, int code, const char *reason, size_t reason_len);
} mh_wsc_ops;

typedef struct mh_wsc {
    uint8_t state;
    int status; /* the HTTP status once known */
    char *hs;   /* owned: the answer's header while it arrives in pieces */
    size_t hs_len;
    char accept[MH_WS_ACCEPT_LEN + 1]; /* what the server must answer */
    mh_ws_dec dec;
} mh_wsc;

/** Longest upgrade request mh_wsc_request() writes, extra headers aside. */
#define MH_WSC_REQUEST_BASE 256

/**
 * Starts a connection: picks a random key and writes the upgrade request for
 * 'host' (the Host header value) and 'path' (with its query) into 'out'.
 * 'extra' is NULL or more header lines, each ending in CRLF. Returns the
 * request length, or -1 if 'cap' is too small or randomness failed.
 */
int mh_wsc_start(mh_wsc *c, size_t max_message, const char *host, const char *path,
                 const char *extra, char *out, size_t cap);

/**
 * Feeds bytes read from the socket ('data' is modified in place). Returns 0
 * when all were consumed, a callback's non-zero value when it stopped, or a
 * negative MH_WS_E_* / MH_WSC_E_* code (close the socket).
 */
int mh_wsc_feed(mh_wsc *c, uint8_t *data, size_t len, const mh_wsc_ops *ops, void *ctx);

/**
 * Encodes one masked frame (random mask) into 'out', which needs room for
 * len + MH_WS_HDR_MAX bytes. Returns the frame length, or 0 if randomness failed.
 */
size_t mh_wsc_frame(uint8_t *out, int opcode, const void *payload, size_t len);

/** Releases what 'c' holds. */
void mh_wsc_free(mh_wsc *c);

/** A short English name for a mh_wsc_feed error code. */
const char *mh_wsc_strerror(int err);

#endif
