/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/bench_clock.h - the clocks the benchmarks time themselves with. */
#ifndef TIERMM_BENCH_CLOCK_H
#define TIERMM_BENCH_CLOCK_H

#include <time.h>

/* Seconds of the monotonic clock. */
static inline double bench_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of the calling thread. */
static inline double bench_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
