/*
 * CHECK: the fuzz targets' assertion. Unlike assert(), it survives NDEBUG
 * (release flags), and it never hides a call with side effects.
 */
#ifndef MH_FUZZ_CHECK_H
#define MH_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "CHECK failed: %s (%s:%d)\n", #x, __FILE__, __LINE__);                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
