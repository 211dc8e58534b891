/* Results, summaries and output (table, JSON, CSV). */
#ifndef SHM_CHANNEL_BENCH_REPORT_H
#define SHM_CHANNEL_BENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "bench.h"

#define BENCH_MAX_REPS 50

struct bench_stat3 {
    double med, min, max;
};

/* One figure: a transport at one message size, measured n times. */
struct result {
    const struct bench_transport *t;
    uint64_t size, capacity;
    uint64_t count;       /* messages or round trips per run (from calibration) */
    const char *baseline; /* id of the same-run baseline for `ratio`, or NULL */
    int n, failed;
    double v[BENCH_MAX_REPS];    /* throughput/local: msgs/s; round trip: median ns */
    double p99[BENCH_MAX_REPS];  /* round trip only */
    double p999[BENCH_MAX_REPS];
    double pmax[BENCH_MAX_REPS]; /* round trip: each run's largest sample */
    char err[256];
    /* filled by bench_summarize */
    struct bench_stat3 sv, s99, s999, smax;
    double ratio;     /* median over runs of (this run / the baseline's run of the same
                         round): msgs/s for throughput, ns for round trips */
    double ratio_of_medians;
    double vs_memcpy; /* throughput: GB/s over memcpy's at the same size */
    /* The transport's notes (bench_run.info) summed over the measured runs, for the JSON:
     * for the stream cases the channel's wait counters (bench.h). */
    uint64_t info_sum[6];
    uint64_t messages; /* messages or round trips of the measured runs, summed */
};

struct bench_meta {
    char pinning[128];
    char cpu[128];
    char kernel[160];
    char started[64];
    int ncpu;
    int reps;
    double rep_s;
    uint32_t batch;
    double timer_ns;
    double load_start[3], load_end[3];
    double wall_s;
    uint64_t t0;
};

struct bench_target {
    const char *what;
    double value, limit;
    int known, met;
};

void bench_meta_collect(struct bench_meta *m);
void bench_meta_finish(struct bench_meta *m);
void bench_summarize(struct result *res, int n);
/* The two targets: 64 B write/read msgs/s >= spsc_ring's, and the 64 B spinning
 * round trip <= 2.5x the cache line's. */
void bench_targets(const struct result *res, int n, struct bench_target t[2]);
void bench_print_header(FILE *f, const struct bench_meta *m);
void bench_print_tables(FILE *f, const struct bench_meta *m, const struct result *res, int n);
int bench_write_json(const char *path, const struct bench_meta *m, const struct result *res,
                     int n);
int bench_write_csv(const char *path, const struct bench_meta *m, const struct result *res,
                    int n);

#endif
