#include "mh_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "mh_buf.h"
#include "mh_json.h"
#include "mh_log.h"
#include "mh_out.h"

struct mh_rpc_wait {
    mh_rpc_wait *next;
    uint64_t conn_id;
    uint64_t deadline;
    char id[]; /* as mh_rpc_pending's */
};

int mh_rpc_start(mh_conn *c, const char *id_json)
{
    mh_hub *h = c->hub;
    size_t n = strlen(id_json) + 1;
    mh_rpc_pending *p = calloc(1, sizeof *p + n);
    mh_rpc_wait *w = calloc(1, sizeof *w + n);

    if (!p || !w) {
        free(p);
        free(w);
        return -1;
    }
    memcpy(p->id, id_json, n);
    p->next = c->rpcs;
    c->rpcs = p;
    memcpy(w->id, id_json, n);
    w->conn_id = c->id;
    w->deadline = mh_mono_ms() + (uint64_t)h->cfg->rpc_timeout_ms;
    if (h->rpc_tail)
        h->rpc_tail->next = w;
    else
        h->rpc_head = w;
    h->rpc_tail = w;
    return 0;
}

bool mh_rpc_finish(mh_conn *c, const char *id_json)
{
    for (mh_rpc_pending **pp = &c->rpcs; *pp; pp = &(*pp)->next) {
        if (!strcmp((*pp)->id, id_json)) {
            mh_rpc_pending *p = *pp;
            *pp = p->next;
            free(p);
            return true;
        }
    }
    return false;
}

void mh_rpc_forget_conn(mh_conn *c)
{
    while (c->rpcs) {
        mh_rpc_pending *p = c->rpcs;
        c->rpcs = p->next;
        free(p);
    }
    /* The hub's FIFO entries stay until their deadline and find no connection. */
}

void mh_rpc_send_error(mh_conn *c, const char *id_json, const char *code, const char *msg)
{
    mh_buf b;

    mh_buf_init(&b);
    mh_out_rpc_error(&b, id_json, code, msg);
    if (!b.oom)
        mh_conn_send(c, b.data, b.len);
    mh_buf_free(&b);
}

void mh_rpc_expire(mh_hub *h)
{
    uint64_t now = mh_mono_ms();

    while (h->rpc_head && h->rpc_head->deadline <= now) {
        mh_rpc_wait *w = h->rpc_head;
        mh_conn *c = mh_map_get(&h->conns, &w->conn_id, sizeof w->conn_id);

        h->rpc_head = w->next;
        if (!h->rpc_head)
            h->rpc_tail = NULL;
        if (c && mh_rpc_finish(c, w->id)) {
            h->metrics.rpc_timeouts++;
            mh_info("conn %s: rpc %s got no reply within %d ms", c->name, w->id,
                    h->cfg->rpc_timeout_ms);
            mh_rpc_send_error(c, w->id, "TIMEOUT", "no reply from the server in time");
        }
        free(w);
    }
}

void mh_rpc_free_all(mh_hub *h)
{
    while (h->rpc_head) {
        mh_rpc_wait *w = h->rpc_head;
        h->rpc_head = w->next;
        free(w);
    }
    h->rpc_tail = NULL;
}
