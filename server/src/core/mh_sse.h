/*
 * mh_sse — what a Server-Sent Events stream keeps beyond a WebSocket
 * connection (SPEC 6.1): the secret its POSTs prove, and the resume point of
 * each subscription its query named, moved by the frames written to it the
 * way SPEC 10 moves a client's, so that each event that moves one carries
 * them all as its `id:` and a reconnecting EventSource's Last-Event-ID
 * resumes them. No I/O: the writer (mh_conn) hands it each frame it writes.
 */
#ifndef MH_SSE_H
#define MH_SSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** A point: a version E:N (SPEC 10: at most 128 bytes, as `since`). */
#define MH_SSE_POINT_MAX 128
/** 16 random bytes in hex. */
#define MH_SSE_SECRET_LEN 32

typedef struct mh_sse_sub {
    char *key; /* 'c' or 'h' (context, channel) + canonical key; NULL: not a subscription */
    char *context;
    char point[MH_SSE_POINT_MAX + 1]; /* "" when none yet */
    bool acked;                       /* in the hub's index: live frames of its context move it */
} mh_sse_sub;

/** POSTs that arrived before an earlier one, kept for it (SPEC 6.1), and how long. */
#define MH_SSE_HELD_MAX 16
#define MH_SSE_HELD_MS 5000

typedef struct mh_sse_post {
    uint64_t n;
    char *body; /* owned */
    size_t len;
} mh_sse_post;

typedef struct mh_sse {
    char secret[MH_SSE_SECRET_LEN + 1];
    /* POST order: the `n` handled next; later ones that came first, since when */
    uint64_t next_n;
    mh_sse_post held[MH_SSE_HELD_MAX];
    unsigned nheld;
    uint64_t held_since_ms;
    mh_sse_sub *subs;
    size_t nsubs;
    size_t id_max; /* a bound on the id's length, for the writer's buffer */
    char *id;      /* owned: id_max + 1 bytes, what mh_sse_id writes */
} mh_sse;

/** A stream's state with a fresh secret from the system's CSPRNG; NULL on failure. */
mh_sse *mh_sse_new(void);
void mh_sse_free(mh_sse *s);

/**
 * Adds the query's next subscription: 'obj' is its JSON (a subscribe frame
 * without its action), or NULL when it was not an object (it keeps its place
 * in the id, always `-`). 'since' is the point it starts from (NULL: none).
 * Returns 0, or -1 when out of memory.
 */
int mh_sse_add(mh_sse *s, const json_t *obj, const char *since);

/**
 * Splits a Last-Event-ID into 'n' points (SPEC 6.1): fills points[i] with
 * the i-th one ("" for `-`) and returns 0, or -1 when it is not of that shape
 * (then it is ignored).
 */
int mh_sse_parse_id(const char *id, size_t n, char (*points)[MH_SSE_POINT_MAX + 1]);

/**
 * A frame (SPEC 8) is being written to the stream: moves the points it
 * moves. Returns true when one moved (the event then carries the id).
 */
bool mh_sse_note(mh_sse *s, const char *frame, size_t len);

/**
 * A POST numbered 'n' (SPEC 6.1: 1, 2, ... per stream; 0: unnumbered) with
 * body[0..len): returns 1 when it is the next one (handle it, then
 * mh_sse_next_held), 0 when it is kept for later (copied) or is a repeat
 * (dropped), -1 when it cannot be kept (too far ahead, too many, out of
 * memory: the stream is to end).
 */
int mh_sse_order(mh_sse *s, uint64_t n, const char *body, size_t len, uint64_t now_ms);

/** After the next POST was handled: a kept one that is next now (the caller frees
 * its body), or NULL. */
mh_sse_post *mh_sse_next_held(mh_sse *s, mh_sse_post *out, uint64_t now_ms);

/** True when a kept POST has waited MH_SSE_HELD_MS for an earlier one (lost). */
bool mh_sse_stalled(const mh_sse *s, uint64_t now_ms);

/** The id: every point in query order, `-` for none, joined by ',' (valid until the next call). */
const char *mh_sse_id(mh_sse *s);

#endif
