/*
 * mh_rlink — one Redis connection on the hub's libuv loop.
 *
 * The hub owns the socket: the host name is resolved with uv_getaddrinfo
 * (IPv4 and IPv6, every address tried in turn), the connect is non-blocking,
 * TLS (OpenSSL) is optional and its handshake is non-blocking too. Commands
 * are formatted by hiredis and buffered; the buffer is written when the
 * socket is writable. Replies are parsed by hiredis's I/O-free redisReader
 * and handed, in order, to the callback given with each command. After
 * mh_rlink_subscribe the link is in pub/sub mode: `message`, `smessage`,
 * `subscribe`, `ssubscribe` (and their p/un- kin) go to the push callback.
 *
 * Debian 12's hiredis 0.14 has neither TLS nor a way to put its async
 * context on a socket it did not open; its reader and command formatter do
 * no I/O, so that is all this module takes from it.
 *
 * Lifetime: mh_rlink_connect() starts a link; exactly one 'lost' callback
 * follows (the connect failed, the link dropped, or mh_rlink_disconnect()
 * finished). The link stays valid during that call and is freed by this
 * module after it: the owner drops its pointer there. No callback is ever
 * called from inside mh_rlink_connect, _cmd, _cmdf or _subscribe.
 */
#ifndef MH_RLINK_H
#define MH_RLINK_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct mh_rlink mh_rlink;

/** The TLS settings every link shares (an OpenSSL context). */
typedef struct mh_rlink_tls mh_rlink_tls;

/**
 * Loads the trust anchors from 'ca_file' (NULL or "": the system store) and,
 * when 'cert_file' is given, the client certificate chain and its 'key_file'.
 * Peers are verified: the chain, and the host name or IP address connected
 * to. Returns NULL with the reason in 'err'.
 */
mh_rlink_tls *mh_rlink_tls_new(const char *ca_file, const char *cert_file, const char *key_file,
                               char *err, size_t errlen);
/** Links still open keep their own reference: this may be called any time. */
void mh_rlink_tls_free(mh_rlink_tls *t);

/**
 * A reply to one command, or NULL when the link dropped before it came.
 * 'reply' is owned by the link: valid only during the call.
 */
typedef void (*mh_rlink_reply_fn)(mh_rlink *l, redisReply *reply, void *arg);

typedef struct mh_rlink_events {
    /* connected (and the TLS handshake done): commands may be sent */
    void (*connected)(mh_rlink *l);
    /* the end of the link, once; 'why' is for the log */
    void (*lost)(mh_rlink *l, const char *why);
    /* pub/sub replies, and any reply no command waits for; may be NULL */
    void (*push)(mh_rlink *l, redisReply *reply);
} mh_rlink_events;

/**
 * Starts connecting to host:port ('tls' NULL: plain TCP). Resolving,
 * connecting and the TLS handshake must be done within 'timeout_ms' (0: no
 * limit) or the link is lost. 'ev' is borrowed for the life of the link
 * (use a static); 'data' is the owner's. Returns NULL with the reason in
 * 'err' when nothing could be started (then no callback follows).
 */
mh_rlink *mh_rlink_connect(uv_loop_t *loop, const char *host, int port, mh_rlink_tls *tls,
                           unsigned timeout_ms, const mh_rlink_events *ev, void *data, char *err,
                           size_t errlen);

/** The owner's pointer given to mh_rlink_connect. */
void *mh_rlink_data(const mh_rlink *l);

/**
 * Queues a command ('argv'/'lens' are copied). 'fn' (may be NULL) is called
 * exactly once, with the reply or with NULL. Commands queued before the link
 * is connected are sent once it is. Returns 0, or -1 when the link is
 * closing or out of memory ('fn' is not called).
 */
int mh_rlink_cmd(mh_rlink *l, mh_rlink_reply_fn fn, void *arg, int argc, const char **argv,
                 const size_t *lens);
/** Like mh_rlink_cmd, the command from a hiredis format ("SELECT %d"). */
int mh_rlink_cmdf(mh_rlink *l, mh_rlink_reply_fn fn, void *arg, const char *fmt, ...);

/**
 * Sends a (S)SUBSCRIBE command and puts the link in pub/sub mode: its
 * confirmations and every message go to the push callback.
 */
int mh_rlink_subscribe(mh_rlink *l, int argc, const char **argv, const size_t *lens);

/**
 * Closes the link once every reply it waits for has come (at once when none
 * is awaited, or when not connected yet); 'lost' follows with "closed". No
 * command can be queued after this. Safe inside the link's own callbacks.
 */
void mh_rlink_disconnect(mh_rlink *l);

#endif
