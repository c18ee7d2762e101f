#include "mh_netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool mh_ip_parse(mh_ip *ip, const char *s, size_t n)
{
    char buf[64];

    memset(ip, 0, sizeof *ip);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, ip->b) == 1) {
        ip->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, ip->b) == 1) {
        ip->family = AF_INET6;
        return true;
    }
    return false;
}

bool mh_ip_from_sockaddr(mh_ip *ip, const struct sockaddr *sa, socklen_t len)
{
    memset(ip, 0, sizeof *ip);
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        ip->family = AF_INET;
        memcpy(ip->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        ip->family = AF_INET6;
        memcpy(ip->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

void mh_ip_text(const mh_ip *ip, char *out, size_t n)
{
    if (!ip->family || !inet_ntop(ip->family, ip->b, out, (socklen_t)n))
        snprintf(out, n, "?");
}

/* ::ffff:a.b.c.d is a.b.c.d: a dual-stack socket reports IPv4 peers so. */
static mh_ip unmapped(const mh_ip *ip)
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    mh_ip v = *ip;

    if (ip->family == AF_INET6 && !memcmp(ip->b, prefix, 12)) {
        memset(&v, 0, sizeof v);
        v.family = AF_INET;
        memcpy(v.b, ip->b + 12, 4);
    }
    return v;
}

int mh_cidr_parse(mh_cidr_list *l, const char *text, char *err, size_t errlen)
{
    const char *p = text;

    memset(l, 0, sizeof *l);
    while (*p) {
        const char *start, *slash, *end;
        mh_cidr *c;
        int max;
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        start = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        end = p;
        if (l->n == MH_CIDR_MAX) {
            snprintf(err, errlen, "more than %d entries", MH_CIDR_MAX);
            return -1;
        }
        c = &l->e[l->n];
        slash = memchr(start, '/', (size_t)(end - start));
        if (!mh_ip_parse(&c->ip, start, (size_t)((slash ? slash : end) - start)))
            goto bad;
        c->ip = unmapped(&c->ip);
        max = c->ip.family == AF_INET ? 32 : 128;
        c->prefix = max;
        if (slash) {
            char *e;
            long v;
            if (slash + 1 == end || end - slash > 4)
                goto bad;
            v = strtol(slash + 1, &e, 10);
            if (e != end || v < 0 || v > max)
                goto bad;
            c->prefix = (int)v;
        }
        l->n++;
        continue;
    bad:
        snprintf(err, errlen, "'%.*s' is not an address or CIDR", (int)(end - start), start);
        return -1;
    }
    return 0;
}

static bool in_net(const mh_cidr *c, const mh_ip *ip)
{
    int full = c->prefix / 8, rest = c->prefix % 8;

    if (c->ip.family != ip->family || memcmp(c->ip.b, ip->b, (size_t)full))
        return false;
    if (!rest)
        return true;
    return ((c->ip.b[full] ^ ip->b[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

bool mh_cidr_match(const mh_cidr_list *l, const mh_ip *ip)
{
    mh_ip v = unmapped(ip);

    for (size_t i = 0; i < l->n; i++)
        if (in_net(&l->e[i], &v))
            return true;
    return false;
}

/* ---- PROXY protocol ---- */

static const unsigned char v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                        0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static bool port_valid(const char *s, size_t n)
{
    unsigned v = 0;

    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535;
}

/* "PROXY TCP4 src dst sport dport\r\n" or "PROXY UNKNOWN ...\r\n" */
static int parse_v1(const unsigned char *buf, size_t len, mh_proxy_info *out)
{
    const char *s = (const char *)buf, *end, *f[6];
    size_t fl[6], nf = 0, scan = len < 107 ? len : 107;
    const char *p;
    mh_ip dst;

    end = memchr(s, '\n', scan);
    if (!end)
        return len >= 107 ? -1 : 0;
    if (end == s || end[-1] != '\r')
        return -1;
    for (p = s; p < end - 1 && nf < 6;) {
        const char *sp = memchr(p, ' ', (size_t)(end - 1 - p));
        const char *fe = sp ? sp : end - 1;
        f[nf] = p;
        fl[nf++] = (size_t)(fe - p);
        p = sp ? sp + 1 : end - 1;
    }
    if (nf < 2 || fl[0] != 5 || memcmp(f[0], "PROXY", 5))
        return -1;
    if (fl[1] == 7 && !memcmp(f[1], "UNKNOWN", 7)) {
        out->local = true;
        return (int)(end - s) + 1;
    }
    if (nf != 6 || p != end - 1 || fl[1] != 4 ||
        (memcmp(f[1], "TCP4", 4) && memcmp(f[1], "TCP6", 4)))
        return -1;
    if (!mh_ip_parse(&out->src, f[2], fl[2]) || !mh_ip_parse(&dst, f[3], fl[3]) ||
        out->src.family != (f[1][3] == '4' ? AF_INET : AF_INET6) || dst.family != out->src.family ||
        !port_valid(f[4], fl[4]) || !port_valid(f[5], fl[5]))
        return -1;
    out->local = false;
    return (int)(end - s) + 1;
}

static int parse_v2(const unsigned char *buf, size_t len, mh_proxy_info *out)
{
    size_t body, total;

    if (len < 16)
        return 0;
    if ((buf[12] & 0xf0) != 0x20)
        return -1; /* version 2 only */
    body = (size_t)buf[14] << 8 | buf[15];
    total = 16 + body;
    if (total > MH_PROXY_MAX)
        return -1;
    if (len < total)
        return 0;
    switch (buf[12] & 0x0f) {
    case 0x0: /* LOCAL: the proxy's own connection (a health check) */
        out->local = true;
        return (int)total;
    case 0x1:
        break;
    default:
        return -1;
    }
    memset(&out->src, 0, sizeof out->src);
    out->local = false;
    switch (buf[13]) {
    case 0x11: /* TCP over IPv4 */
    case 0x12: /* UDP over IPv4 */
        if (body < 12)
            return -1;
        out->src.family = AF_INET;
        memcpy(out->src.b, buf + 16, 4);
        return (int)total;
    case 0x21:
    case 0x22:
        if (body < 36)
            return -1;
        out->src.family = AF_INET6;
        memcpy(out->src.b, buf + 16, 16);
        return (int)total;
    default: /* UNSPEC or unix sockets: no address to learn */
        out->local = true;
        return (int)total;
    }
}

int mh_proxy_parse(const unsigned char *buf, size_t len, mh_proxy_info *out)
{
    size_t n = len < 12 ? len : 12;

    memset(out, 0, sizeof *out);
    if (!memcmp(buf, v2sig, n))
        return len < 12 ? 0 : parse_v2(buf, len, out);
    n = len < 6 ? len : 6;
    if (!memcmp(buf, "PROXY ", n))
        return len < 6 ? 0 : parse_v1(buf, len, out);
    return -1;
}

bool mh_xff_client(const mh_cidr_list *trusted, const char *const *values, const size_t *lens,
                   size_t nvalues, mh_ip *out)
{
    enum { MAXHOPS = 32 };
    mh_ip hops[MAXHOPS];
    size_t n = 0;

    for (size_t v = 0; v < nvalues; v++) {
        const char *p = values[v], *end = values[v] + lens[v];
        while (p < end) {
            const char *s, *e, *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end;
            for (s = p; s < stop && (*s == ' ' || *s == '\t'); s++)
                ;
            for (e = stop; e > s && (e[-1] == ' ' || e[-1] == '\t'); e--)
                ;
            if (n == MAXHOPS) /* keep the right-most hops: the ones our proxies wrote */
                memmove(hops, hops + 1, (MAXHOPS - 1) * sizeof hops[0]), n--;
            if (!mh_ip_parse(&hops[n], s, (size_t)(e - s)))
                return false; /* a chain we cannot read is believed in nothing */
            n++;
            p = comma ? comma + 1 : end;
        }
    }
    if (!n)
        return false;
    for (size_t i = n; i-- > 0;) {
        if (!mh_cidr_match(trusted, &hops[i]) || i == 0) {
            *out = unmapped(&hops[i]);
            return true;
        }
    }
    return false;
}
