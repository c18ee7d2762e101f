/*
 * mh_netaddr — IP addresses and CIDR lists (--trusted-proxies), and the
 * PROXY protocol header (v1 text, v2 binary) a trusted load balancer puts
 * before a connection's first byte to say whose connection it is.
 *
 * No I/O: the intake peeks at the socket and hands the bytes here.
 */
#ifndef MH_NETADDR_H
#define MH_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/** An address of either family, in network order, for comparisons. */
typedef struct mh_ip {
    int family; /* AF_INET or AF_INET6; 0: none */
    unsigned char b[16];
} mh_ip;

typedef struct mh_cidr {
    mh_ip ip;
    int prefix; /* bits */
} mh_cidr;

#define MH_CIDR_MAX 64

typedef struct mh_cidr_list {
    mh_cidr e[MH_CIDR_MAX];
    size_t n;
} mh_cidr_list;

/**
 * Parses "10.0.0.0/8, 127.0.0.1, ::1, fd00::/8" (commas and/or spaces).
 * Returns 0, or -1 with the offending entry in 'err'.
 */
int mh_cidr_parse(mh_cidr_list *l, const char *text, char *err, size_t errlen);

/** Whether 'ip' falls in one of the list's networks (an IPv4-mapped IPv6 counts as IPv4). */
bool mh_cidr_match(const mh_cidr_list *l, const mh_ip *ip);

/** The address of a socket address; false for other families. */
bool mh_ip_from_sockaddr(mh_ip *ip, const struct sockaddr *sa, socklen_t len);

/** Parses the text form (inet_pton, either family) of s[0..n). */
bool mh_ip_parse(mh_ip *ip, const char *s, size_t n);

/** The text form of 'ip' into out[0..n) (inet_ntop); "?" when none. */
void mh_ip_text(const mh_ip *ip, char *out, size_t n);

/** What a PROXY header said. */
typedef struct mh_proxy_info {
    bool local; /* LOCAL (v2) or UNKNOWN (v1): the proxy's own connection */
    mh_ip src;  /* the client, when !local */
} mh_proxy_info;

/** Longest header accepted (v1 is at most 107 bytes; v2 with its TLVs). */
#define MH_PROXY_MAX 1040

/**
 * Looks at the first bytes of a connection. Returns the header's length
 * (> 0) with 'out' filled, 0 while more bytes are needed, -1 when they are
 * not a valid PROXY v1 or v2 header.
 */
int mh_proxy_parse(const unsigned char *buf, size_t len, mh_proxy_info *out);

/**
 * The client of an X-Forwarded-For chain: walking from the right, the first
 * address that is not a trusted proxy (all trusted: the left-most). The
 * header values are given in order; returns false when no entry parses.
 */
bool mh_xff_client(const mh_cidr_list *trusted, const char *const *values, const size_t *lens,
                   size_t nvalues, mh_ip *out);

#endif
