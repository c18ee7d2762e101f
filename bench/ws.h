/*
 * ws — RFC 6455 primitives shared by both ends of the bench tools: the
 * Sec-WebSocket-Accept computation, frame encoding and masking, and a
 * streaming frame decoder. No I/O: bytes in, callbacks out.
 *
 * The decoder is built for many connections per process: its state is a
 * few hundred bytes, a data frame that arrives whole in one fed buffer is
 * handed to the callback in place (no copy), and only messages split across
 * reads or fragments are assembled in a heap buffer that is released again.
 */
#ifndef MH_WS_H
#define MH_WS_H

#include <stddef.h>
#include <stdint.h>

enum {
    MH_WS_OP_CONT = 0x0,
    MH_WS_OP_TEXT = 0x1,
    MH_WS_OP_BINARY = 0x2,
    MH_WS_OP_CLOSE = 0x8,
    MH_WS_OP_PING = 0x9,
    MH_WS_OP_PONG = 0xA,
};

/* Decoder results; the matching close code is in the comment. */
enum {
    MH_WS_OK = 0,
    MH_WS_E_PROTO = -1,   /* 1002: reserved bits, bad opcode, bad masking, ... */
    MH_WS_E_TOO_BIG = -2, /* 1009: message over the decoder's limit */
    MH_WS_E_NOMEM = -3,   /* 1011 */
};

/** Longest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define MH_WS_HDR_MAX 14
/** Longest control frame payload (RFC 6455 5.5). */
#define MH_WS_CTL_MAX 125
/** Length of a Sec-WebSocket-Key (base64 of 16 bytes) without the NUL. */
#define MH_WS_KEY_LEN 24
/** Length of a Sec-WebSocket-Accept (base64 of a SHA-1) without the NUL. */
#define MH_WS_ACCEPT_LEN 28

/**
 * Computes Sec-WebSocket-Accept for 'key' (key_len bytes, not necessarily
 * NUL-terminated) into 'out', NUL-terminated. Returns 0 or -1 (OpenSSL failed).
 */
int mh_ws_accept(const char *key, size_t key_len, char out[MH_WS_ACCEPT_LEN + 1]);

/**
 * Finds header 'name' (case-insensitive) in an HTTP head of 'n' bytes (the
 * start line, header lines, the blank line). Returns its value with the
 * surrounding whitespace trimmed and sets *vlen, or returns NULL. The value
 * points into 'head'; it is not NUL-terminated.
 */
const char *mh_ws_http_header(const char *head, size_t n, const char *name, size_t *vlen);

/** Fills 'key' with a fresh random Sec-WebSocket-Key, NUL-terminated. Returns 0 or -1. */
int mh_ws_new_key(char key[MH_WS_KEY_LEN + 1]);

/**
 * Writes a frame header (FIN set) for an 'opcode' frame of 'len' payload
 * bytes into 'out'; 'mask' NULL means unmasked (server to client). Returns
 * the header length.
 */
size_t mh_ws_header(uint8_t out[MH_WS_HDR_MAX], int opcode, uint64_t len, const uint8_t *mask);

/**
 * XORs 'n' bytes at 'p' with 'mask', as if 'p' started 'offset' bytes into
 * the payload (so a payload can be unmasked piece by piece).
 */
void mh_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/**
 * Encodes a whole frame into 'out' (room for len + MH_WS_HDR_MAX bytes),
 * masking the payload copy with 'mask' when it is not NULL. Returns the
 * frame length.
 */
size_t mh_ws_encode(uint8_t *out, int opcode, const void *payload, size_t len, const uint8_t *mask);

/**
 * Decoder callbacks. 'data' is writable and valid only until the callback
 * returns. A non-zero return stops mh_ws_feed(), which returns that value;
 * the callbacks MUST NOT free the decoder (do it after mh_ws_feed returns).
 */
typedef struct mh_ws_handler {
    /* A complete text or binary message (fragments already joined). */
    int (*on_message)(void *ctx, int opcode, uint8_t *data, size_t len);
    /* A close, ping or pong frame (payload at most 125 bytes). */
    int (*on_control)(void *ctx, int opcode, uint8_t *data, size_t len);
} mh_ws_handler;

typedef struct mh_ws_dec {
    uint8_t hdr[MH_WS_HDR_MAX];
    uint8_t hdr_len;  /* header bytes gathered so far */
    uint8_t hdr_need; /* header bytes this frame needs (2 until known) */
    uint8_t in_payload;
    uint8_t expect_masked; /* 1: we are a server, frames must be masked */
    uint8_t opcode;        /* current frame */
    uint8_t fin;
    uint8_t masked;
    uint8_t msg_opcode; /* text/binary message in progress, 0 if none */
    uint8_t mask[4];
    uint64_t plen;      /* current frame's payload length */
    uint64_t remaining; /* its payload bytes not yet seen */
    uint8_t *msg;       /* owned: assembly buffer for split messages, may be NULL */
    size_t msg_len;
    size_t msg_cap;
    size_t max_message;
    uint8_t ctl[MH_WS_CTL_MAX];
} mh_ws_dec;

/**
 * Prepares 'd'. 'expect_masked' is 1 for a server (client frames must be
 * masked), 0 for a client (server frames must not be). 'max_message' caps
 * one message, all fragments together.
 */
void mh_ws_dec_init(mh_ws_dec *d, int expect_masked, size_t max_message);

/** Releases the assembly buffer. 'd' may be initialised again afterwards. */
void mh_ws_dec_free(mh_ws_dec *d);

/**
 * Decodes 'len' bytes at 'data', calling 'h' for each complete message or
 * control frame. 'data' is modified in place (unmasking). Returns 0 when all
 * bytes were consumed, the callback's non-zero value when one stopped it, or
 * a negative MH_WS_E_* code (the connection must then be closed).
 */
int mh_ws_feed(mh_ws_dec *d, uint8_t *data, size_t len, const mh_ws_handler *h, void *ctx);

/** The close code RFC 6455 asks for after a decoder error. */
int mh_ws_error_close_code(int err);

#endif
