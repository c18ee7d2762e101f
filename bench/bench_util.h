/*
 * bench_util — clocks and command-line parsing the bench tools share.
 */
#ifndef MH_BENCH_UTIL_H
#define MH_BENCH_UTIL_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

/** CLOCK_MONOTONIC in µs: for schedules and durations (the same in every process). */
int64_t mh_bench_mono_us(void);

/** CLOCK_REALTIME in µs: what latencies are measured against (publishers stamp it). */
int64_t mh_bench_real_us(void);

/** Sleeps until CLOCK_MONOTONIC reaches 'us' (returns early on a signal). */
void mh_bench_sleep_until(int64_t mono_us);

/**
 * Parses a decimal number in [lo, hi] for option 'opt'. Prints a message
 * naming the option and returns -1 when 's' is not one.
 */
int mh_bench_parse_double(const char *opt, const char *s, double lo, double hi, double *out);

/** Same for an integer. */
int mh_bench_parse_long(const char *opt, const char *s, long lo, long hi, long *out);

/**
 * Parses "HOST:PORT" (HOST an IPv4 address or a name resolving to one) into
 * 'sa'. Returns 0 or -1 with a message.
 */
int mh_bench_parse_hostport(const char *opt, const char *s, struct sockaddr_in *sa);

/**
 * Parses a list of IPv4 addresses: comma-separated items, each an address or
 * an inclusive range "A-B" ("127.0.0.1-127.0.0.8"). Fills at most 'max'
 * addresses (network order) into 'out'; returns how many, or -1 with a message.
 */
int mh_bench_parse_addrs(const char *opt, const char *s, struct in_addr *out, int max);

/** Raises RLIMIT_NOFILE's soft limit to the hard one; returns the new soft limit. */
long mh_bench_raise_nofile(void);

#endif
