/*
 * mh_redis_uv — attaches a hiredis async context to a libuv loop.
 *
 * Debian's hiredis 0.14 ships a libuv adapter whose poll callback returns
 * early when libuv reports an error (a refused connect, a reset socket): the
 * link then hangs with no callback at all, and a hub would wait forever for
 * a Redis that has come back. This adapter does what the shipped one does,
 * and on an error lets hiredis find it by reading or writing, so the connect
 * or disconnect callback fires and the link reconnects.
 */
#ifndef MH_REDIS_UV_H
#define MH_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/** Returns REDIS_OK, or REDIS_ERR (already attached, or out of memory). */
int mh_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
