/* shm_channel_bench: throughput and round trips of shm_channel between two processes, next
 * to baselines measured in the same run (memcpy, a minimal SPSC ring, a bare cache line).
 * See bench/README.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "c_ipc_baselines.h"
#include "harness.h"
#include "report.h"
#include "shm_channel.h"
#include "svc_cases.h"

#define MIB (1024u * 1024u)

static const uint64_t default_sizes[] = {64, 1024, 4096, 65536, 1048576, 6220800};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shm_channel_bench [options]\n"
            "  --quick            3 runs of ~0.05 s per figure (about 15 s in all)\n"
            "  --full             7 runs of ~0.25 s per figure (default, under 3 minutes)\n"
            "  --reps N           runs per figure (1..%d)\n"
            "  --time S           seconds per run (approximate)\n"
            "  --sizes LIST       throughput message sizes, e.g. 64,4096,6220800\n"
            "  --only LIST        shm_channel cases to run (ids: shm_copy, shm_zerocopy,\n"
            "                     shm_batch, shm_spin, shm_zerocopy_spin, shm_block,\n"
            "                     bcast_pub0, bcast_pub1, bcast_pub8, bcast_pub64,\n"
            "                     bcast_pub0again, bcast_pub1s, bcast_pub8s, bcast_pub64s,\n"
            "                     bcast_latest, bcast_frames4, svc_spin1, svc_spin8,\n"
            "                     svc_spin64, svc_block1, svc_block8, svc_block64,\n"
            "                     compat_copy, compat_zerocopy);\n"
            "                     the baselines always run\n"
            "  --throughput       throughput only      --roundtrip   round trips only\n"
            "  --no-broadcast     leave out the broadcast (kind 2) cases\n"
            "  --batch N          messages per *_batch call (default 32)\n"
            "  --capacity BYTES   ring capacity for every size (default: 4 MiB, more for\n"
            "                     messages over 1 MiB)\n"
            "  --cpus A,B         pin the two processes to CPUs A and B (default: first two)\n"
            "  --no-pin           do not pin\n"
            "  --json FILE        write every figure and every run as JSON\n"
            "  --csv FILE         write every figure as CSV\n"
            "  --spin NS          shm_channel spin before sleeping, for every case but\n"
            "                     the blocking one (default: the library's, %d ns)\n"
            "  --verbose          print every run (with shm_channel's wait counters)\n"
            "  --help\n",
            BENCH_MAX_REPS, SHM_CHANNEL_DEFAULT_SPIN_NS);
}

static int has_id(const char *list, const char *id)
{
    if (!list)
        return 1;
    size_t n = strlen(id);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, id, n) == 0)
            return 1;
        p += len + (e ? 1 : 0);
    }
    return 0;
}

static uint64_t next_pow2(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

/* 4 MiB as the baseline ring, or the next power of two holding three records. */
static uint64_t capacity_for(uint64_t size, uint64_t forced)
{
    if (forced)
        return forced;
    /* The recommended capacity (issue 14): the smallest power of two whose largest payload
     * (capacity/2 - 8) holds the message, at least 4 MiB. Large frames then take turns in
     * two slots that stay in the last-level cache (16 MiB for 1080p, where a 32 MiB ring
     * walked through memory at ~0.7x the L3-resident copy). */
    uint64_t need = next_pow2(2 * (size + 8));
    return need > 4 * MIB ? need : 4 * MIB;
}

static double timer_cost_ns(void)
{
    uint64_t t0 = bench_now_ns(), x = 0;
    for (int i = 0; i < 100000; i++)
        x += bench_now_ns();
    double per = (double)(bench_now_ns() - t0) / 100000.0;
    return x ? per : per;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples. */
static double pct(const uint64_t *s, uint64_t n, double q)
{
    uint64_t k = (uint64_t)ceil(q * (double)n);
    return (double)s[k ? k - 1 : 0];
}

struct cfg {
    int reps;
    double rep_s;
    uint32_t batch;
    uint64_t capacity;
    const char *only;
    unsigned uniq;
    int verbose;
};

static void note_run(struct cfg *c, struct result *r, const struct bench_run *run,
                     double value, const char *unit)
{
    if (r->count) { /* a measured run (not the calibration): its counters for the JSON */
        uint64_t n = run->count; /* a round trip's run can end early (its time budget) */
        if (r->t->kind == BENCH_ROUNDTRIP && run->rtt_done < run->warmup + run->count)
            n = run->rtt_done > run->warmup ? run->rtt_done - run->warmup : 0;
        for (int k = 0; k < 6; k++)
            r->info_sum[k] += run->info[k];
        r->messages += n;
    }
    if (!c->verbose)
        return;
    fprintf(stderr, "\n  %-32s %8llu B x %-10llu %12.4g %s", r->t->label,
            (unsigned long long)r->size, (unsigned long long)run->count, value, unit);
    if (!strncmp(r->t->id, "bcast_", 6)) /* publisher: wake calls, own CPU time */
        fprintf(stderr, "  wakes %llu pub cpu %.2f ns/msg", (unsigned long long)run->info[4],
                (double)run->info[5] / 1000.0);
    else if (!strcmp(r->t->group, "shm_channel"))
        fprintf(stderr, "  full %llu empty %llu sleeps %llu/%llu wakes %llu/%llu",
                (unsigned long long)run->info[0], (unsigned long long)run->info[1],
                (unsigned long long)run->info[2], (unsigned long long)run->info[3],
                (unsigned long long)run->info[4], (unsigned long long)run->info[5]);
}

/* What the watchdog names if this run hangs: the case, the size, which run. */
static void describe_run(struct bench_run *run, const char *what, const struct result *r)
{
    if (r->count)
        snprintf(run->what, sizeof run->what, "%s %s %llu B, run %d", what, r->t->id,
                 (unsigned long long)r->size, r->n + 1);
    else
        snprintf(run->what, sizeof run->what, "%s %s %llu B, calibration", what, r->t->id,
                 (unsigned long long)r->size);
}

/* One measured run of a throughput/local transport: msgs/s into *rate. */
static int run_tp(struct cfg *c, struct result *r, uint64_t count, double *rate)
{
    struct bench_run run;
    memset(&run, 0, sizeof run);
    run.size = r->size;
    run.capacity = r->capacity;
    run.count = count;
    run.batch = c->batch;
    uint64_t rec = r->size + 8;
    run.warmup = 2 * r->capacity / rec;
    if (run.warmup < 16)
        run.warmup = 16;
    snprintf(run.name, sizeof run.name, "shmcb-%d-%u", (int)getpid(), c->uniq++);
    describe_run(&run, "throughput", r);
    unsigned watchdog = 60 + (unsigned)(c->rep_s * 20);
    if (bench_run_once(r->t, &run, watchdog) != 0) {
        snprintf(r->err, sizeof r->err, "%s", run.err);
        return -1;
    }
    double ns = r->t->kind == BENCH_LOCAL ? run.local_ns
                                          : (double)(run.t_end - run.t_start);
    *rate = ns > 0 ? (double)count * 1e9 / ns : 0;
    note_run(c, r, &run, *rate, "msgs/s");
    return 0;
}

/* One measured run of a round-trip transport: per-run median, p99, p99.9, mean and max (ns). */
static int run_rtt(struct cfg *c, struct result *r, uint64_t count, double out[5])
{
    struct bench_run run;
    memset(&run, 0, sizeof run);
    run.size = r->size;
    run.capacity = r->capacity;
    run.count = count;
    run.warmup = count / 10 < 1000 ? count / 10 + 10 : 1000;
    run.batch = c->batch;
    run.samples = calloc(count, sizeof *run.samples);
    if (!run.samples) {
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    snprintf(run.name, sizeof run.name, "shmcb-%d-%u", (int)getpid(), c->uniq++);
    describe_run(&run, "round trip", r);
    /* A time budget (bench.h, bench_rtt_total): a loaded machine can make each hand-off
     * wait for a CPU; the run then ends early with the samples it has. */
    run.rtt_budget_ns = (uint64_t)((c->rep_s * 20 + 2) * 1e9);
    unsigned watchdog = 60 + (unsigned)(c->rep_s * 20);
    if (bench_run_once(r->t, &run, watchdog) != 0) {
        snprintf(r->err, sizeof r->err, "%s", run.err);
        free(run.samples);
        return -1;
    }
    if (run.rtt_done < run.warmup + count) {
        uint64_t got = run.rtt_done > run.warmup ? run.rtt_done - run.warmup : 0;
        fprintf(stderr, "  %s: time budget spent after %llu of %llu round trips (loaded?)\n",
                r->t->id, (unsigned long long)got, (unsigned long long)count);
        if (got < 10) {
            snprintf(r->err, sizeof r->err, "fewer than 10 round trips in %.0f s",
                     (double)run.rtt_budget_ns / 1e9);
            free(run.samples);
            return -1;
        }
        count = got;
    }
    double sum = 0;
    for (uint64_t i = 0; i < count; i++)
        sum += (double)run.samples[i];
    qsort(run.samples, count, sizeof *run.samples, cmp_u64);
    out[0] = pct(run.samples, count, 0.5);
    out[1] = pct(run.samples, count, 0.99);
    out[2] = pct(run.samples, count, 0.999);
    out[3] = sum / (double)count;
    out[4] = (double)run.samples[count - 1];
    note_run(c, r, &run, out[0], "ns median");
    free(run.samples);
    return 0;
}

/* Calibrate: one short run, then the count that makes a run last about rep_s. */
static int calibrate(struct cfg *c, struct result *r)
{
    if (r->t->kind == BENCH_ROUNDTRIP) {
        double st[5];
        if (run_rtt(c, r, 2000, st))
            return -1;
        double n = c->rep_s * 1e9 / st[3];
        r->count = n < 2000 ? 2000 : n > 2e6 ? 2000000 : (uint64_t)n;
        return 0;
    }
    uint64_t count0 = 32 * MIB / (r->size + 8);
    if (count0 > 1000000)
        count0 = 1000000;
    if (count0 < 16)
        count0 = 16;
    double rate;
    if (run_tp(c, r, count0, &rate))
        return -1;
    double n = rate * c->rep_s;
    r->count = n < 16 ? 16 : n > 1e10 ? 10000000000ull : (uint64_t)n;
    return 0;
}

static void measure(struct cfg *c, struct result *res, int nres)
{
    for (int i = 0; i < nres; i++)
        if (calibrate(c, &res[i]))
            res[i].failed = 1;
    /* Interleave the cases run by run, so that a noisy moment hits all of them alike. */
    for (int rep = 0; rep < c->reps; rep++) {
        for (int i = 0; i < nres; i++) {
            struct result *r = &res[i];
            if (r->failed)
                continue;
            if (r->t->kind == BENCH_ROUNDTRIP) {
                double st[5];
                if (run_rtt(c, r, r->count, st)) {
                    r->failed = 1;
                    continue;
                }
                r->v[r->n] = st[0];
                r->p99[r->n] = st[1];
                r->p999[r->n] = st[2];
                r->pmax[r->n] = st[4];
            } else if (run_tp(c, r, r->count, &r->v[r->n])) {
                r->failed = 1;
                continue;
            }
            r->n++;
        }
        fprintf(stderr, ".");
    }
}

static struct result *add(struct result *res, int *n, const struct bench_transport *t,
                          uint64_t size, uint64_t capacity, const char *baseline)
{
    struct result *r = &res[(*n)++];
    memset(r, 0, sizeof *r);
    r->t = t;
    r->size = size;
    r->capacity = capacity;
    r->baseline = baseline;
    return r;
}

int main(int argc, char **argv)
{
    struct cfg c = {.reps = 7, .rep_s = 0.25, .batch = 32};
    int do_tp = 1, do_rtt = 1, do_bcast = 1, pin = 1, cpu_a = -1, cpu_b = -1;
    const char *json = NULL, *csv = NULL;
    uint64_t sizes[32];
    int nsizes = 0;
    for (size_t i = 0; i < sizeof default_sizes / sizeof default_sizes[0]; i++)
        sizes[nsizes++] = default_sizes[i];

    /* --inproc spsc_ring|shm_copy N: the one-process loop of bench/callgrind.sh, alone. */
    if (argc == 4 && !strcmp(argv[1], "--inproc")) {
        uint64_t n = strtoull(argv[3], NULL, 0);
        uint64_t bad = !strcmp(argv[2], "spsc_ring")  ? bench_spsc_inproc(n, 64)
                       : !strcmp(argv[2], "shm_copy") ? bench_shm_inproc(n, 64)
                                                      : 1;
        return bad ? 1 : 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) {
            c.reps = 3;
            c.rep_s = 0.05;
        } else if (!strcmp(a, "--full")) {
            c.reps = 7;
            c.rep_s = 0.25;
        } else if (!strcmp(a, "--reps") && v) {
            c.reps = atoi(v);
            i++;
        } else if (!strcmp(a, "--time") && v) {
            c.rep_s = atof(v);
            i++;
        } else if (!strcmp(a, "--sizes") && v) {
            nsizes = 0;
            for (char *p = argv[++i]; *p && nsizes < 32;) {
                char *e;
                sizes[nsizes++] = strtoull(p, &e, 0);
                p = *e == ',' ? e + 1 : e;
                if (e == p && *p)
                    break;
            }
        } else if (!strcmp(a, "--only") && v) {
            c.only = argv[++i];
        } else if (!strcmp(a, "--throughput")) {
            do_rtt = 0;
        } else if (!strcmp(a, "--roundtrip")) {
            do_tp = 0;
        } else if (!strcmp(a, "--no-broadcast")) {
            do_bcast = 0;
        } else if (!strcmp(a, "--batch") && v) {
            c.batch = (uint32_t)atoi(v);
            i++;
        } else if (!strcmp(a, "--capacity") && v) {
            c.capacity = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(a, "--cpus") && v) {
            if (sscanf(argv[++i], "%d,%d", &cpu_a, &cpu_b) != 2) {
                usage(stderr);
                return 2;
            }
        } else if (!strcmp(a, "--spin") && v) {
            bench_spin_ns = strtoll(argv[++i], NULL, 0);
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            c.verbose = 1;
        } else if (!strcmp(a, "--no-pin")) {
            pin = 0;
        } else if (!strcmp(a, "--json") && v) {
            json = argv[++i];
        } else if (!strcmp(a, "--csv") && v) {
            csv = argv[++i];
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "shm_channel_bench: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (c.reps < 1 || c.reps > BENCH_MAX_REPS || c.rep_s <= 0 || c.batch < 1 ||
        (c.capacity && (c.capacity & (c.capacity - 1)))) {
        usage(stderr);
        return 2;
    }

    struct bench_meta meta;
    memset(&meta, 0, sizeof meta);
    bench_pin_init(pin, cpu_a, cpu_b, meta.pinning, sizeof meta.pinning);
    meta.reps = c.reps;
    meta.rep_s = c.rep_s;
    meta.batch = c.batch;
    meta.timer_ns = timer_cost_ns();
    bench_meta_collect(&meta);
    bench_print_header(stdout, &meta);

    struct result *res = calloc(256, sizeof *res);
    if (!res)
        return 1;
    int nres = 0;

    if (do_tp) {
        for (int s = 0; s < nsizes; s++) {
            uint64_t size = sizes[s], cap = capacity_for(size, c.capacity);
            if (size > cap / 2 - 8) {
                fprintf(stderr, "size %llu too large for capacity %llu; skipped\n",
                        (unsigned long long)size, (unsigned long long)cap);
                continue;
            }
            int first = nres;
            fprintf(stderr, "throughput %llu B ", (unsigned long long)size);
            add(res, &nres, &bench_memcpy, size, cap, NULL);
            if (size >= 1024 * 1024)
                add(res, &nres, &bench_memcpy_ring, size, cap, NULL);
            add(res, &nres, &bench_spsc_ring, size, cap, NULL);
            add(res, &nres, &bench_pipe, size, cap, NULL);
            add(res, &nres, &bench_unix, size, cap, NULL);
            if (size == 64)
                add(res, &nres, &bench_spsc_fenced, size, cap, "spsc_ring");
            if (size == 64)
                add(res, &nres, &bench_spsc_mlp, size, cap, "spsc_ring");
            if (has_id(c.only, "shm_copy"))
                add(res, &nres, &bench_shm_copy, size, cap, "spsc_ring");
            if (size == 64 && has_id(c.only, "shm_copy_fenced"))
                add(res, &nres, &bench_shm_copy_fenced, size, cap, "spsc_ring");
            if (has_id(c.only, "shm_zerocopy"))
                add(res, &nres, &bench_shm_zerocopy, size, cap, "spsc_ring");
            if (size == 64 && has_id(c.only, "shm_batch"))
                add(res, &nres, &bench_shm_batch, size, cap, "spsc_ring");
            if (size == 64 && do_bcast) {
                /* Broadcast: publish cost with 0/1/8/64 subscribers vs the stream write,
                 * and the latest-value read vs a bare seqlock read. */
                for (const struct bench_transport *const *pc = bench_bcast_pub_cases; *pc; pc++)
                    if (has_id(c.only, (*pc)->id))
                        add(res, &nres, *pc, size, cap, "shm_copy");
                add(res, &nres, &bench_seqlock_read, size, cap, NULL);
                if (has_id(c.only, "bcast_latest"))
                    add(res, &nres, &bench_bcast_latest, size, cap, "seqlock_read");
            }
            /* Compat (kind 3): the same sizes and ring through seed 002's layout, against
             * the stream kind's figure of this run. */
            if (size <= 65536 && has_id(c.only, "compat_copy"))
                add(res, &nres, &bench_compat_copy, size, cap, "shm_copy");
            if (size <= 65536 && has_id(c.only, "compat_zerocopy"))
                add(res, &nres, &bench_compat_zerocopy, size, cap, "shm_zerocopy");
            if (size == 6220800 && do_bcast && has_id(c.only, "bcast_frames4"))
                add(res, &nres, &bench_bcast_frames4, size, cap, "memcpy");
            measure(&c, res + first, nres - first);
            fprintf(stderr, "\n");
        }
    }
    if (do_rtt) {
        int first = nres;
        uint64_t cap = 4 * MIB;
        fprintf(stderr, "round trips ");
        /* Our spinning round trip runs right after the floor it is divided by, round by
         * round: this host switches between a ~130 ns and a ~480 ns cache line from one
         * minute to the next, and a switch between the two runs of a round would put the
         * ratio of that round across regimes. */
        add(res, &nres, &bench_cacheline, 64, cap, NULL);
        if (has_id(c.only, "shm_spin"))
            add(res, &nres, &bench_shm_rtt_spin, 64, cap, "cacheline");
        add(res, &nres, &bench_cacheline1, 64, cap, "cacheline");
        add(res, &nres, &bench_spsc_rtt, 64, cap, "cacheline");
        add(res, &nres, &bench_spsc_hdr_rtt, 64, cap, "cacheline");
        add(res, &nres, &bench_spsc_mlp_rtt, 64, cap, "cacheline");
        add(res, &nres, &bench_spsc_mlp2_rtt, 64, cap, "cacheline");
        if (has_id(c.only, "spsc_mlp_load"))
            add(res, &nres, &bench_spsc_mlp_load_rtt, 64, cap, "cacheline");
        if (has_id(c.only, "spsc_mlp_pw"))
            add(res, &nres, &bench_spsc_mlp_pw_rtt, 64, cap, "cacheline");
        if (has_id(c.only, "spsc_ring_pw"))
            add(res, &nres, &bench_spsc_ring_pw_rtt, 64, cap, "cacheline");
        add(res, &nres, &bench_pipe_rtt, 64, cap, "cacheline");
        add(res, &nres, &bench_unix_rtt, 64, cap, "cacheline");
        if (has_id(c.only, "shm_zerocopy_spin"))
            add(res, &nres, &bench_shm_rtt_zc_spin, 64, cap, "cacheline");
        if (has_id(c.only, "shm_block"))
            add(res, &nres, &bench_shm_rtt_block, 64, cap, "cacheline");
        /* Services (kind 4): one client's round trip among 1, 8 and 64 clients. */
        const struct bench_transport *svc_spin[] = {&bench_svc_spin1, &bench_svc_spin8,
                                                    &bench_svc_spin64};
        const struct bench_transport *svc_block[] = {&bench_svc_block1, &bench_svc_block8,
                                                     &bench_svc_block64};
        for (int k = 0; k < 3; k++) {
            if (has_id(c.only, svc_spin[k]->id))
                add(res, &nres, svc_spin[k], 64, cap, "cacheline");
            if (has_id(c.only, svc_block[k]->id))
                add(res, &nres, svc_block[k], 64, cap, "unix");
        }
        measure(&c, res + first, nres - first);
        fprintf(stderr, "\n");
    }

    bench_meta_finish(&meta);
    bench_summarize(res, nres);
    bench_print_tables(stdout, &meta, res, nres);
    int rc = 0;
    if (json && bench_write_json(json, &meta, res, nres) != 0) {
        fprintf(stderr, "shm_channel_bench: cannot write %s: %s\n", json, strerror(errno));
        rc = 1;
    }
    if (csv && bench_write_csv(csv, &meta, res, nres) != 0) {
        fprintf(stderr, "shm_channel_bench: cannot write %s: %s\n", csv, strerror(errno));
        rc = 1;
    }
    for (int i = 0; i < nres; i++)
        if (res[i].failed)
            rc = 1;
    free(res);
    return rc;
}
