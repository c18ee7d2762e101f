#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mh_bench_mono_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

int64_t mh_bench_real_us(void)
{
    return clock_us(CLOCK_REALTIME);
}

void mh_bench_sleep_until(int64_t mono_us)
{
    struct timespec ts = {.tv_sec = mono_us / 1000000, .tv_nsec = (mono_us % 1000000) * 1000};

    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

int mh_bench_parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || v != v || v < lo || v > hi) {
        fprintf(stderr, "%s: '%s' is not a number in [%g, %g]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int mh_bench_parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: '%s' is not an integer in [%ld, %ld]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int mh_bench_parse_hostport(const char *opt, const char *s, struct sockaddr_in *sa)
{
    const char *colon = strrchr(s, ':');
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char host[256];
    long port;
    int rc;

    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host)) {
        fprintf(stderr, "%s: '%s' is not HOST:PORT\n", opt, s);
        return -1;
    }
    if (mh_bench_parse_long(opt, colon + 1, 1, 65535, &port))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc || !res) {
        fprintf(stderr, "%s: cannot resolve '%s': %s\n", opt, host, gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, sizeof(*sa));
    sa->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

static int parse_ip(const char *opt, const char *s, size_t n, uint32_t *host_order)
{
    char buf[INET_ADDRSTRLEN];
    struct in_addr a;

    if (n == 0 || n >= sizeof(buf))
        goto fail;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (inet_pton(AF_INET, buf, &a) != 1)
        goto fail;
    *host_order = ntohl(a.s_addr);
    return 0;
fail:
    fprintf(stderr, "%s: '%.*s' is not an IPv4 address\n", opt, (int)n, s);
    return -1;
}

int mh_bench_parse_addrs(const char *opt, const char *s, struct in_addr *out, int max)
{
    int n = 0;

    while (*s) {
        size_t item = strcspn(s, ",");
        const char *dash = memchr(s, '-', item);
        uint32_t a, b;

        if (parse_ip(opt, s, dash ? (size_t)(dash - s) : item, &a))
            return -1;
        b = a;
        if (dash && parse_ip(opt, dash + 1, item - (size_t)(dash - s) - 1, &b))
            return -1;
        if (b < a) {
            fprintf(stderr, "%s: range '%.*s' runs backwards\n", opt, (int)item, s);
            return -1;
        }
        for (uint64_t v = a; v <= b; v++) {
            if (n == max) {
                fprintf(stderr, "%s: more than %d addresses\n", opt, max);
                return -1;
            }
            out[n++].s_addr = htonl((uint32_t)v);
        }
        s += item;
        if (*s == ',')
            s++;
    }
    if (n == 0) {
        fprintf(stderr, "%s: no address given\n", opt);
        return -1;
    }
    return n;
}

long mh_bench_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl))
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}
