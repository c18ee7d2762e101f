/*
 * mh_tls — TLS on the hub's own public sockets (--tls-cert/--tls-key):
 * OpenSSL driven non-blocking by the loop's readiness events, whoever holds
 * the socket (the intake during the handshake and the head, mh_wsock and
 * mh_writer for a WebSocket or a stream, the net layer's relay to
 * libwebsockets for the HTTP endpoints). Every call reports "would wait" with the direction it
 * waits for, so each owner can wait on the right epoll set.
 */
#ifndef MH_TLS_H
#define MH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct ssl_ctx_st mh_tls_ctx;
typedef struct ssl_st mh_tls;

/**
 * The server context: the certificate chain and key read once (TLS 1.2 at
 * least, partial writes, a moving write buffer, no renegotiation, buffers
 * released while idle). NULL with the reason in 'err' when a file is
 * unreadable or the key does not match.
 */
mh_tls_ctx *mh_tls_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen);
void mh_tls_ctx_free(mh_tls_ctx *ctx);

/**
 * Loads a PEM certificate chain and its key into 'ctx' (a server's or a
 * client's), checking that they match. 0, or -1 with "cannot load the
 * <label> certificate '...'" / "cannot use the <label> key '...'" and
 * OpenSSL's reason in 'err'.
 */
int mh_tls_use_cert(mh_tls_ctx *ctx, const char *cert_file, const char *key_file, const char *label,
                    char *err, size_t errlen);

/** A server-side TLS object on 'fd' (not yet shaken hands); NULL when out of memory. */
mh_tls *mh_tls_new(mh_tls_ctx *ctx, int fd);

/**
 * Frees 't'; with 'notify' a close_notify is offered first (best effort:
 * nothing waits for the socket to take it).
 */
void mh_tls_free(mh_tls *t, bool notify);

/**
 * A step of the handshake: 1 done, 0 to be called again when the socket is
 * readable (*want_write false) or writable (*want_write true), -1 failed
 * ('why' says why, for the log).
 */
int mh_tls_handshake(mh_tls *t, bool *want_write, char *why, size_t whylen);

/**
 * Reads decrypted bytes: how many (> 0); 0 when none now (*other: it waits
 * for the socket to be writable, not readable); -1 when the peer is gone
 * (close_notify, EOF, an error).
 */
ssize_t mh_tls_read(mh_tls *t, void *buf, size_t len, bool *other);

/**
 * Encrypts and writes up to 'len' bytes: how many were taken (> 0, maybe
 * fewer: partial writes); 0 when the socket takes nothing now (*other: it
 * waits for readable, not writable) -- then the next call must offer the
 * same bytes again (the buffer may move); -1 when the peer is gone.
 */
ssize_t mh_tls_write(mh_tls *t, const void *buf, size_t len, bool *other);

/**
 * "what: " and OpenSSL's own words for its last error into buf[0..len)
 * (its error queue emptied); also the Redis links' (mh_rlink).
 */
void mh_tls_errstr(char *buf, size_t len, const char *what);

/** Decrypted bytes already read from the socket and not yet taken by mh_tls_read. */
bool mh_tls_pending(const mh_tls *t);

#endif
