/* Service (kind 4) round-trip cases (svc_cases.c). */
#ifndef SHM_CHANNEL_BENCH_SVC_CASES_H
#define SHM_CHANNEL_BENCH_SVC_CASES_H

#include "bench.h"

extern const struct bench_transport bench_svc_spin1, bench_svc_spin8, bench_svc_spin64,
    bench_svc_block1, bench_svc_block8, bench_svc_block64;

#endif
