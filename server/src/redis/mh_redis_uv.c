#include "mh_redis_uv.h"

#include <stdlib.h>

typedef struct uvev {
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
    uv_poll_t handle;
    int events;
} uvev;

static void on_poll(uv_poll_t *handle, int status, int events)
{
    uvev *p = handle->data;

    if (status != 0) {
        /* libuv stopped polling; make hiredis notice the socket's error. */
        if (p->ac && !(p->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(p->ac); /* completes (fails) the connect */
        else if (p->ac)
            redisAsyncHandleRead(p->ac); /* reads the error, disconnects */
        return;
    }
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    /* the read may have freed the context: cleanup clears p->ac */
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void update(uvev *p, int add, int del)
{
    p->events = (p->events | add) & ~del;
    if (p->events)
        uv_poll_start(&p->handle, p->events, on_poll);
    else
        uv_poll_stop(&p->handle);
}

static void add_read(void *d)
{
    update(d, UV_READABLE, 0);
}

static void del_read(void *d)
{
    update(d, 0, UV_READABLE);
}

static void add_write(void *d)
{
    update(d, UV_WRITABLE, 0);
}

static void del_write(void *d)
{
    update(d, 0, UV_WRITABLE);
}

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *d)
{
    uvev *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->handle, on_close);
}

int mh_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    uvev *p;

    if (ac->ev.data)
        return REDIS_ERR;
    p = calloc(1, sizeof *p);
    if (!p)
        return REDIS_ERR;
    if (uv_poll_init(loop, &p->handle, ac->c.fd)) {
        free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->handle.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    return REDIS_OK;
}
