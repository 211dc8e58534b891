/* Broadcast publish cost, isolated (issue 10): the algorithm of c/src/broadcast.c over a
 * plain buffer in one process, the publisher thread pinned to CPU 0, reader threads pinned
 * to CPU 1 spinning (they never sleep, so no system call is involved). It prints the
 * publisher's own CPU time per 64 B message (CLOCK_THREAD_CPUTIME_ID) for 0, 1, 8 and 64
 * readers (shm__bcast_next in a loop, a pause after each -EAGAIN), with the publisher's
 * wake check "fence" (a full fence per publish, layout 1.0's) or "nofence" (the membarrier
 * handshake of layout 1.1: a compiler barrier only).
 * Median of --reps runs [min-max], the two handshakes alternating run by run; 0 readers
 * is measured first and last, so the gap between those two is the run-to-run noise.
 *
 * Build (Release flags, from the repository root):
 *   cc -O2 -std=c11 -pthread -Ic/include -Ic/src bench/bcast_micro.c c/src/broadcast.c \
 *      c/src/handshake.c -o build-bench/bcast_micro
 *   build-bench/bcast_micro [--msgs N] [--reps R] [--pace-ns NS]
 *
 * A third row per reader count, "bare seqlock (floor)", publishes into the same slots with
 * the bare seqlock steps only (no counters, no fence, no wake check): the hardware's share
 * with the same readers. --pace-ns publishes one message every NS ns instead of back to
 * back and gives the mean publish call (the robotics user: a value every 10 us is
 * --pace-ns 10000 --msgs 20000); there the readers have caught up before every publish.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atomics.h"
#include "broadcast.h"
#include "handshake.h"

/* broadcast.c's validation calls the shared identity check (segment.c); unused here. */
int shm__identity_check(const void *hdr, uint64_t file_size, uint32_t want_kind);
int shm__identity_check(const void *hdr, uint64_t file_size, uint32_t want_kind)
{
    (void)hdr, (void)file_size, (void)want_kind;
    return 0;
}

#define MAXR 64

static struct shm__bcast B;
static struct shm__bcast_sub S[MAXR];
static int g_stop, g_ready;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *reader(void *arg)
{
    struct shm__bcast_sub *s = arg;
    pin(1);
    uint8_t buf[64];
    uint64_t len, missed;
    __atomic_add_fetch(&g_ready, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&g_stop, __ATOMIC_RELAXED)) {
        while (shm__bcast_next(&B, s, buf, sizeof buf, &len, &missed) == 0)
            ;
        shm__cpu_relax();
    }
    return NULL;
}

static double now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static double g_pace_ns; /* --pace-ns: publish at this interval, time each call */

static inline uint64_t ticks(void)
{
    unsigned lo, hi;
    __asm__ __volatile__("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
}

#define HS_BARE 9u /* not a handshake: the bare seqlock publisher below, the floor */

/* One message: the library's write, or (HS_BARE) a bare seqlock publish into the same
 * slots: stamp 2m+1, copy, length, stamp 2m, pub_seq = m; no counters, no fence, no
 * load of `waiting`. The readers are the library's in both cases. */
static void publish_one(struct shm__bcast_pub *p, const uint8_t *msg, uint32_t hs)
{
    if (hs != HS_BARE) {
        shm__bcast_write(&B, p, msg, 64);
        return;
    }
    uint64_t m = ++p->seq;
    uint8_t *sl = B.slots + (m % B.g.depth) * B.g.slot_stride;
    __atomic_store_n((uint64_t *)(void *)sl, 2 * m + 1, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(sl + 16, msg, 64);
    __atomic_store_n((uint32_t *)(void *)(sl + 8), 64u, __ATOMIC_RELAXED);
    __atomic_store_n((uint64_t *)(void *)sl, 2 * m, __ATOMIC_RELEASE);
    __atomic_store_n(&B.hdr->pub_seq, m, __ATOMIC_RELEASE);
}

/* One run: n readers, m messages; the publisher's CPU ns per message (paced: the mean
 * publish call, preempted calls left out). */
static double run(int n, uint64_t msgs, uint32_t hs)
{
    struct shm__bcast_geom g;
    if (shm__bcast_geometry(&g, 64, 1024, 72, NULL))
        abort();
    void *base = aligned_alloc(4096, (g.segment_size + 4095) & ~4095ull);
    memset(base, 0, g.segment_size);
    shm__bcast_format(base, &g, 1, 0);
    shm__bcast_bind(&B, base, &g);
    struct shm__bcast_pub p;
    shm__bcast_pub_attach_hs(&B, &p, hs == HS_BARE ? SHM__HS_MEMBARRIER : hs);
    g_stop = 0;
    g_ready = 0;
    pthread_t th[MAXR];
    for (int i = 0; i < n; i++) {
        shm__bcast_sub_join(&B, &S[i], (uint32_t)i, 1);
        pthread_create(&th[i], NULL, reader, &S[i]);
    }
    while (__atomic_load_n(&g_ready, __ATOMIC_SEQ_CST) < n)
        sched_yield();
    uint8_t msg[64] = {1};
    double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC), sum = 0;
    uint64_t k0 = ticks(), kept = 0;
    for (uint64_t i = 0; i < msgs; i++) {
        msg[0] = (uint8_t)i;
        if (g_pace_ns) { /* one publish every g_pace_ns, each timed on its own */
            while (now(CLOCK_MONOTONIC) < w0 + (double)(i + 1) * g_pace_ns)
                ;
            uint64_t a = ticks();
            publish_one(&p, msg, hs);
            uint64_t d = ticks() - a;
            if (d < 100000) { /* not preempted */
                sum += (double)d;
                kept++;
            }
        } else {
            publish_one(&p, msg, hs);
        }
    }
    double c1 = now(CLOCK_THREAD_CPUTIME_ID);
    if (g_pace_ns && kept) {
        double ns_per_tick = (now(CLOCK_MONOTONIC) - w0) / (double)(ticks() - k0);
        c0 = 0;
        c1 = sum / (double)kept * ns_per_tick * (double)msgs;
    }
    __atomic_store_n(&g_stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    free(base);
    return (c1 - c0) / (double)msgs;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void show(const char *label, int n, double *v, int reps)
{
    qsort(v, (size_t)reps, sizeof v[0], cmp);
    printf("  %-22s %2d readers: %6.2f ns/msg [%.2f-%.2f]\n", label, n, v[reps / 2], v[0],
           v[reps - 1]);
}

/* The two handshakes alternate run by run, so that drifting load hits both alike. */
static void row(int n, uint64_t msgs, int reps)
{
    double f[32], nf[32], bare[32];
    for (int r = 0; r < reps; r++) {
        f[r] = run(n, msgs, SHM__HS_FENCE);
        nf[r] = run(n, msgs, SHM__HS_MEMBARRIER);
        bare[r] = run(n, msgs, HS_BARE);
    }
    show("fence", n, f, reps);
    show("nofence (membarrier)", n, nf, reps);
    show("bare seqlock (floor)", n, bare, reps);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    uint64_t msgs = 2000000;
    int reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--msgs"))
            msgs = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pace-ns"))
            g_pace_ns = atof(argv[i + 1]);
    }
    if (reps < 1 || reps > 32)
        reps = 5;
    pin(0);
    static const int counts[] = {0, 1, 8, 64, 0};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
        row(counts[k], msgs, reps);
    return 0;
}
