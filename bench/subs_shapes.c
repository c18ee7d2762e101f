/*
 * mh-subs-shapes — issue 12 item 5: what invented param shapes cost the
 * subscription index (mh_subs), without sockets or Redis.
 *
 * One context ("feed") holds 1,000 honest subscriptions {user_id: i}. Then
 * an attacker tries N more subscriptions, each with a param name nobody else
 * uses ({x<i>: "1"}), so each is a new shape. We report the CPU time to add
 * them, how many the index accepted, and the mean cost of matching one
 * scoped entry {user_id: k} (what every invalidation of that context pays).
 * Both are process CPU time, so other load on the machine does not count.
 *
 * The index refuses a new shape past max_shapes per context (the hub's
 * default, 64; --max-shapes=0 lifts the cap, as before issue 12).
 *
 *   build/bin/mh-subs-shapes [--max-shapes=M] [N ...]   (default: 0 1000 10000 50000)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mh_subs.h"

#define HONEST 1000
#define MATCHES 20000
#define MAX_SHAPES 64 /* the hub's default --max-shapes (mh_config.c) */

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void count(mh_keynode *node, void *arg)
{
    (void)node;
    ++*(long *)arg;
}

/* One subscription of 'owner' to feed {name: value}; false when refused. */
static bool add(mh_subs *s, const char *name, const char *value, void *owner)
{
    mh_param p = {(char *)name, strlen(name), (char *)value, strlen(value)};
    mh_entry e = {"feed", 4, true, 1, &p};
    mh_sub *sub;
    return mh_subs_add(s, false, &e, owner, &sub) == 0;
}

static int run(long attempted, size_t max_shapes)
{
    mh_subs s;
    int owner;
    char name[32], val[32];
    long accepted = 0, visits = 0;
    double t0, build_cpu, match_cpu;

    mh_subs_init(&s, max_shapes);
    for (int i = 0; i < HONEST; i++) {
        snprintf(val, sizeof val, "%d", i);
        if (!add(&s, "user_id", val, &owner)) {
            fprintf(stderr, "honest subscription %d refused\n", i);
            return 1;
        }
    }
    t0 = cpu_s();
    for (long i = 0; i < attempted; i++) {
        snprintf(name, sizeof name, "x%ld", i);
        if (add(&s, name, "1", &owner))
            accepted++;
    }
    build_cpu = cpu_s() - t0;
    t0 = cpu_s();
    for (int i = 0; i < MATCHES; i++) {
        mh_param p = {"user_id", 7, val, 0};
        mh_entry e = {"feed", 4, true, 1, &p};
        p.value_len = (size_t)snprintf(val, sizeof val, "%d", i % HONEST);
        if (mh_subs_match(&s, &e, count, &visits) < 0) {
            fprintf(stderr, "out of memory while matching\n");
            return 1;
        }
    }
    match_cpu = cpu_s() - t0;
    if (visits != MATCHES) {
        fprintf(stderr, "expected one match per entry, got %ld for %d\n", visits, MATCHES);
        return 1;
    }
    printf("| %ld | %ld | %.2f s | %.2f µs |\n", attempted, accepted, build_cpu,
           match_cpu / MATCHES * 1e6);
    mh_subs_free(&s);
    return 0;
}

int main(int argc, char **argv)
{
    static const long defaults[] = {0, 1000, 10000, 50000};
    size_t shapes = MAX_SHAPES;

    if (argc > 1 && !strncmp(argv[1], "--max-shapes=", 13)) {
        shapes = (size_t)atol(argv[1] + 13);
        argv++, argc--;
    }

    printf("| invented shapes attempted | accepted | CPU to add them | CPU per scoped entry |\n"
           "|---|---|---|---|\n");
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            if (run(atol(argv[i]), shapes))
                return 1;
    } else {
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
            if (run(defaults[i], shapes))
                return 1;
    }
    return 0;
}
