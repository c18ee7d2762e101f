/*
 * mh_clock — the two clocks every module reads: wall time (what publishers
 * stamp events with) and monotonic time (for timeouts).
 */
#ifndef MH_CLOCK_H
#define MH_CLOCK_H

#include <stdint.h>

/** Milliseconds since the Unix epoch (wall clock: publishers stamp with it). */
double mh_now_ms(void);

/** Monotonic milliseconds, for timeouts. */
uint64_t mh_mono_ms(void);

#endif
