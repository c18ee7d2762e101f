/*
 * mh_upgrade — the HTTP request head a browser (or a load balancer's probe)
 * sends before anything else, parsed and judged the way RFC 9112 and
 * RFC 6455 say a server must, before libwebsockets sees a byte of it.
 *
 * No I/O: the hub's intake reads the head and hands it here; what this
 * refuses is answered with the status and reason phrase given, on a
 * `Connection: close` HTTP/1.1 response formatted by mh_upgrade_response().
 * Every refusal has a fixed reason word for logs and metrics (SPEC 12.2).
 */
#ifndef MH_UPGRADE_H
#define MH_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

/** The whole head (request line + headers + blank line), SPEC 14. */
#define MH_UPGRADE_HEAD_MAX 8192
/** Header lines in one head; more is 431. */
#define MH_UPGRADE_MAX_HEADERS 64
/** An Origin longer than this is refused (no browser sends one). */
#define MH_UPGRADE_ORIGIN_MAX 1024

typedef struct mh_http_header {
    const char *name, *value; /* into the head; not NUL-terminated */
    size_t name_len, value_len;
} mh_http_header;

typedef struct mh_http_request {
    const char *method, *target; /* into the head */
    size_t method_len, target_len;
    int minor;    /* HTTP/1.<minor>: 0 or 1 */
    bool upgrade; /* asks for a WebSocket (Upgrade: websocket) */
    size_t head_len;
    size_t nheaders;
    mh_http_header headers[MH_UPGRADE_MAX_HEADERS];
} mh_http_request;

/** Why a head was refused: the HTTP status, a metric word, a sentence. */
typedef struct mh_upgrade_refusal {
    int status;
    const char *reason;  /* static: "duplicate_header", "bad_key", ... */
    const char *message; /* static: the response body */
    const char *extra;   /* static: one more header line without CRLF, or NULL */
} mh_upgrade_refusal;

/**
 * Where the head in buf[0..len) ends: its length including the blank line,
 * 0 while it is incomplete, -1 when MH_UPGRADE_HEAD_MAX bytes hold no end
 * (answer 431).
 */
long mh_upgrade_head_end(const char *buf, size_t len);

/**
 * Parses and judges the head buf[0..head_len) (head_len from
 * mh_upgrade_head_end). Returns 0 when the request may go on ('req' points
 * into 'buf', which must outlive it), -1 with '*why' filled otherwise.
 */
int mh_upgrade_check(const char *buf, size_t head_len, mh_http_request *req,
                     mh_upgrade_refusal *why);

/** The first header called 'name' (case-insensitive), or NULL. */
const mh_http_header *mh_upgrade_header(const mh_http_request *req, const char *name);

/** The reason phrase of an HTTP status this hub sends ("Bad Request"). */
const char *mh_upgrade_phrase(int status);

/**
 * Formats a complete answer into out[0..cap): an HTTP/1.1 status line with
 * its reason phrase, `Connection: close`, `Cache-Control: no-store`, a text
 * body, and 'extra' (a header line without CRLF) when not NULL. Returns its
 * length, or -1 when 'cap' is too small.
 */
int mh_upgrade_response(char *out, size_t cap, int status, const char *extra, const char *body);

/*
 * The parts of an upgrade request the auth layer judges, whoever read the
 * head (the intake for plain sockets, lws for TLS): NUL-terminated, NULL
 * when absent; borrowed.
 */
typedef struct mh_upgrade_view {
    const char *origin, *host, *forwarded_proto, *authorization, *mizan_token, *query_token,
        *cookie;
} mh_upgrade_view;

/* Room mh_upgrade_view_of needs: every value of a head, each NUL-terminated. */
#define MH_UPGRADE_VIEW_STORE (MH_UPGRADE_HEAD_MAX + 16)

/**
 * Fills 'v' from a checked request, copying into store[0..cap). Returns 0,
 * or -1 when 'cap' is too small.
 */
int mh_upgrade_view_of(const mh_http_request *req, mh_upgrade_view *v, char *store, size_t cap);

/**
 * The 101 answer that accepts a checked upgrade: Sec-WebSocket-Accept, and
 * our subprotocol when the request lists it. Returns its length, or -1.
 */
int mh_upgrade_accept(const mh_http_request *req, char *out, size_t cap);

#endif
