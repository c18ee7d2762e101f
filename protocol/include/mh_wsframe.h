/*
 * mh_wsframe — RFC 6455 framing, both ways: the headers of the hub's frames
 * (unmasked, final) and the parse of a browser's frames (masked), with the
 * checks RFC 6455 section 5 asks of a server. No I/O: the hub's socket code
 * (server/src/core/mh_wsock) reads and writes; this judges bytes.
 */
#ifndef MH_WSFRAME_H
#define MH_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    MH_WS_CONT = 0x0,
    MH_WS_TEXT = 0x1,
    MH_WS_BINARY = 0x2,
    MH_WS_CLOSE = 0x8,
    MH_WS_PING = 0x9,
    MH_WS_PONG = 0xA,
};

/* A server frame's header is at most 10 bytes (no mask). */
#define MH_WS_HEADER_MAX 10
/* A control frame's payload (RFC 6455 5.5). */
#define MH_WS_CONTROL_MAX 125

/** Writes the header of a final, unmasked frame; returns its length (2, 4 or 10). */
size_t mh_ws_header(unsigned char out[MH_WS_HEADER_MAX], int opcode, uint64_t payload_len);

typedef struct mh_ws_frame {
    int opcode;
    bool fin;
    uint64_t len;          /* payload length */
    unsigned char mask[4]; /* a browser's frames are always masked */
    size_t head_len;       /* bytes of header, mask included */
} mh_ws_frame;

/* What a refused frame is closed with, and why (static text for the log). */
typedef struct mh_ws_fault {
    uint16_t code; /* 1002 protocol error, 1009 too large */
    const char *why;
} mh_ws_fault;

/**
 * Parses the header of a browser frame at buf[0..len). Returns 1 with 'f'
 * set, 0 when more bytes are needed, -1 with 'fault' set when the frame
 * breaks RFC 6455 (reserved bits or opcodes, unmasked, a fragmented or long
 * control frame, a 64-bit length with its top bit set) or its payload is
 * over 'max_payload' (1009: known from the header, before any payload).
 */
int mh_ws_parse(const unsigned char *buf, size_t len, uint64_t max_payload, mh_ws_frame *f,
                mh_ws_fault *fault);

/** Unmasks p[0..n) in place; 'offset' is where p starts in the payload. */
void mh_ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t offset);

/**
 * A close frame's payload from the browser: 0 with *code (1005 when empty),
 * or -1 with 'fault' (a 1-byte payload, a code RFC 6455 7.4 forbids on the
 * wire, a reason that is not UTF-8).
 */
int mh_ws_close_parse(const unsigned char *p, size_t n, uint16_t *code, mh_ws_fault *fault);

/**
 * A close frame's payload: the code and as much of 'reason' as fits in a
 * control frame, never cutting a UTF-8 sequence. Returns its length.
 */
size_t mh_ws_close_payload(unsigned char out[MH_WS_CONTROL_MAX], uint16_t code, const char *reason);

#endif
