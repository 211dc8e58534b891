/* The driver's view of the harness (transports use bench.h only). */
#ifndef SHM_CHANNEL_BENCH_HARNESS_H
#define SHM_CHANNEL_BENCH_HARNESS_H

#include <stddef.h>

#include "bench.h"

/* Pin this process to cpu_a (and children to cpu_b); negative picks the first two allowed
 * CPUs. Describes the outcome in desc. Never fails: an unpinned run is still a run. */
int bench_pin_init(int want_pin, int cpu_a, int cpu_b, char *desc, size_t desc_len);
/* The CPU a side is pinned to, or -1. */
int bench_pinned_cpu(int side);

/* Run one measurement of transport t with run's parameters: setup, fork, the two loops,
 * wait, teardown. A run that exceeds watchdog_s seconds ends the program. 0 or -1 with
 * run->err set. */
int bench_run_once(const struct bench_transport *t, struct bench_run *run, unsigned watchdog_s);

#endif
