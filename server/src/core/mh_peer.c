#include "mh_peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mh_ip_count {
    uint32_t n;
    size_t len;
    char addr[48]; /* the map's key */
};

/* Counts 'p' against p->addr. */
static void count(mh_peer *p)
{
    mh_hub *h = p->hub;
    size_t len = strlen(p->addr);
    struct mh_ip_count *ip = mh_map_get(&h->ips, p->addr, len);

    if (!ip) {
        ip = calloc(1, sizeof *ip);
        if (!ip)
            return; /* not counted: the limit is best effort under OOM */
        memcpy(ip->addr, p->addr, len + 1);
        ip->len = len;
        if (mh_map_put(&h->ips, ip->addr, ip->len, ip)) {
            free(ip);
            return;
        }
    }
    ip->n++;
    p->ip = ip;
}

static void uncount(mh_peer *p)
{
    if (p->ip && --p->ip->n == 0) {
        mh_map_del(&p->hub->ips, p->ip->addr, p->ip->len);
        free(p->ip);
    }
    p->ip = NULL;
}

mh_peer *mh_peer_new(mh_hub *h, const struct sockaddr *sa, socklen_t salen)
{
    mh_peer *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    p->hub = h;
    h->npeers++;
    mh_ip_from_sockaddr(&p->sock, sa, salen);
    mh_ip_text(&p->sock, p->addr, sizeof p->addr);
    count(p);
    return p;
}

void mh_peer_rekey(mh_peer *p, const mh_ip *ip)
{
    uncount(p);
    mh_ip_text(ip, p->addr, sizeof p->addr);
    count(p);
}

uint32_t mh_peer_count(const mh_peer *p)
{
    return p->ip ? p->ip->n : 1;
}

void mh_peer_release(mh_peer *p)
{
    if (p)
        uncount(p);
}

void mh_peer_free(mh_peer *p)
{
    if (!p)
        return;
    p->hub->npeers--;
    uncount(p);
    free(p);
}
