#include "mh_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mh_ip_count {
    uint32_t n;
    size_t len;
    char addr[48]; /* the map's key */
};

static void addr_text(const struct sockaddr *sa, socklen_t salen, char *out, size_t n)
{
    if (sa && sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
        if (inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n))
            return;
    } else if (sa && sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        if (inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n))
            return;
    }
    snprintf(out, n, "?");
}

mh_peer *mh_peer_new(mh_hub *h, const struct sockaddr *sa, socklen_t salen)
{
    mh_peer *p = calloc(1, sizeof *p);
    struct mh_ip_count *ip;
    size_t len;

    if (!p)
        return NULL;
    p->hub = h;
    h->npeers++;
    addr_text(sa, salen, p->addr, sizeof p->addr);
    len = strlen(p->addr);
    ip = mh_map_get(&h->ips, p->addr, len);
    if (!ip) {
        ip = calloc(1, sizeof *ip);
        if (!ip)
            return p; /* not counted: the limit is best effort under OOM */
        memcpy(ip->addr, p->addr, len + 1);
        ip->len = len;
        if (mh_map_put(&h->ips, ip->addr, ip->len, ip)) {
            free(ip);
            return p;
        }
    }
    ip->n++;
    p->ip = ip;
    return p;
}

uint32_t mh_peer_count(const mh_peer *p)
{
    return p->ip ? p->ip->n : 1;
}

void mh_peer_free(mh_peer *p)
{
    mh_hub *h;

    if (!p)
        return;
    h = p->hub;
    h->npeers--;
    if (p->ip) {
        if (--p->ip->n == 0) {
            mh_map_del(&h->ips, p->ip->addr, p->ip->len);
            free(p->ip);
        }
    }
    free(p);
}
