/* Broadcast channels (kind 2) through the public API, next to same-run baselines:
 *  - publish throughput, 64 B, with 0, 1, 8 and 64 subscribers attached and reading
 *    (baseline: the stream's shm_copy of the same size in the same round). The parent
 *    publishes; the child (pinned to the other CPU) and the subscriber processes it forks
 *    (inheriting its pinning, so the publisher's CPU stays its own) read with
 *    shm_channel_recv, blocking, checking each message's number against their missed
 *    counts. The figure is the publisher's rate: it never waits for them;
 *  - 1080p frames (6,220,800 B) to 4 subscribers: the publisher fills each frame in place
 *    (reserve + memcpy + commit), subscribers take zero-copy views (peek + check +
 *    release); vs memcpy of the same size;
 *  - latest-value read, 64 B, one process: shm_channel_read_latest against a bare seqlock
 *    read of the same size (load stamp, copy, fence, load stamp). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "shm_channel.h"

#define FRAME_DEPTH 4

static int bc_setup(struct bench_run *run)
{
    (void)shm_channel_unlink(run->name, SHM_CHANNEL_FORCE);
    return 0;
}

static void bc_teardown(struct bench_run *run)
{
    (void)shm_channel_unlink(run->name, SHM_CHANNEL_FORCE);
}

static uint32_t depth_for(uint64_t size)
{
    return size > 65536 ? FRAME_DEPTH : 1024;
}

/* Parent: open the publisher (creating), wait until the subscribers are attached, publish
 * count messages, timed, then close (end-of-stream). */
static int publish(struct bench_run *run, int in_place)
{
    shm_channel_broadcast_config_t cfg = {run->size, depth_for(run->size), 72, NULL, {0}};
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_broadcast(&ch, run->name, SHM_CHANNEL_PUBLISHER,
                                        SHM_CHANNEL_CREATE, &cfg, 0600);
    if (rc)
        return bench_fail(run, "open publisher: %s", shm_channel_strerror(rc));
    uint8_t *src = calloc(1, run->size);
    if (!src)
        return bench_fail(run, "out of memory");
    bench_mark(run, 1);
    if ((rc = bench_await(run, 1)) != 0)
        goto out;
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    run->ctl->t_start = bench_now_ns();
    for (uint64_t i = 1; i <= run->count; i++) {
        if (in_place) {
            void *p;
            if ((rc = shm_channel_reserve(ch, run->size, &p, 0)) != 0)
                break;
            memcpy(p, src, run->size);
            bench_stamp(p, run->size, i);
            rc = shm_channel_commit(ch, run->size);
        } else {
            bench_stamp(src, run->size, i);
            rc = shm_channel_write(ch, src, run->size, 0);
        }
        if (rc)
            break;
    }
    run->ctl->t_end = bench_now_ns();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    /* The publisher's own CPU time per message (user + system, picoseconds): its cost,
     * whatever else shares its CPU (wall-clock rates on a loaded machine mostly measure
     * the other processes). Shown by -v as "pub cpu". */
    run->ctl->info[5] = run->count ? ((uint64_t)(c1.tv_sec - c0.tv_sec) * 1000000000000ull +
                                      (uint64_t)(c1.tv_nsec - c0.tv_nsec) * 1000ull) /
                                         run->count
                                   : 0;
    if (rc)
        bench_fail(run, "publish: %s", shm_channel_strerror(rc));
    shm_channel_stat_t st;
    if (shm_channel_stat(ch, &st) == 0)
        run->ctl->info[4] = st.producer_wakes; /* wake system calls made while timed (+1) */
out:
    shm_channel_close(ch); /* end-of-stream: the subscribers drain and leave */
    bench_mark(run, 2);
    free(src);
    return rc;
}

/* How the subscribers wait: KEEP_UP spins first (the default 20 us) and so rarely sleeps
 * while the publisher is busy; SLEEPY sleeps on the futex as soon as it has caught up (spin
 * 0), so it registers a sleep after nearly every burst it reads; SPINNING spins for
 * SPINNING_NS, so that 8 or 64 subscribers time-sliced on one CPU (whose 20 us spin runs out
 * while they wait for the CPU) do not sleep either: the readers of bcast_floor_pubN, which
 * never sleep. It notices end-of-stream only when its spin runs out. */
enum { KEEP_UP, SLEEPY, SPINNING };
#define SPINNING_NS 200000000u

/* One subscriber until end-of-stream; 0, or 1 on an out-of-order or failed read. */
static int subscribe_loop(shm_channel_t *ch, struct bench_run *run, int views, int habit)
{
    if (habit == SLEEPY)
        shm_channel_set_spin(ch, 0);
    if (habit == SPINNING)
        shm_channel_set_spin(ch, SPINNING_NS);
    uint64_t next = 0;
    uint8_t *buf = views ? NULL : malloc(run->size);
    int rc;
    for (;;) {
        uint64_t len, missed, seq = 0;
        if (views) {
            const void *p;
            if ((rc = shm_channel_peek(ch, &p, &len, -1)) != 0)
                break;
            memcpy(&seq, p, 8);
            shm_channel_sub_stat_t ss;
            shm_channel_sub_stat(ch, -1, &ss);
            missed = ss.last_missed;
            if (shm_channel_release(ch) == -ESTALE) {
                next = seq + 1;
                continue;
            }
        } else {
            if ((rc = shm_channel_recv(ch, buf, run->size, &len, &missed, -1)) != 0)
                break;
            memcpy(&seq, buf, 8);
        }
        if (len != run->size || (next && seq != next + missed))
            return 1;
        next = seq + 1;
    }
    free(buf);
    return rc == -EPIPE ? 0 : 1;
}

/* Child: attach `subs` subscribers (itself and subs - 1 processes), mark phase 1 when all
 * are attached, read until end-of-stream. */
static int subscribers(struct bench_run *run, int subs, int views, int habit)
{
    if (bench_await(run, 1) != 0)
        return 1;
    if (subs == 0) {
        bench_mark(run, 1);
        return bench_await(run, 2) ? 1 : 0;
    }
    shm_channel_t *obs = NULL;
    if (shm_channel_open_broadcast(&obs, run->name, SHM_CHANNEL_OBSERVER, 0, NULL, 0) != 0)
        return 1;
    pid_t pids[64];
    int n = 0;
    for (int i = 1; i < subs; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            shm_channel_t *ch = NULL;
            if (shm_channel_open_broadcast(&ch, run->name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0))
                _exit(2);
            int r = subscribe_loop(ch, run, views, habit);
            shm_channel_close(ch);
            _exit(r);
        }
        if (pid > 0)
            pids[n++] = pid;
    }
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_broadcast(&ch, run->name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0);
    for (;;) { /* every subscriber attached: then the publisher starts */
        shm_channel_broadcast_stat_t bs;
        if (rc || shm_channel_broadcast_stat(obs, &bs) != 0 || bs.subscribers >= (uint32_t)subs)
            break;
        usleep(100);
    }
    bench_mark(run, 1);
    int bad = rc ? 1 : subscribe_loop(ch, run, views, habit);
    shm_channel_close(ch);
    shm_channel_close(obs);
    for (int i = 0; i < n; i++) {
        int st;
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st))
            bad = 1;
    }
    if (bad)
        snprintf(run->ctl->child_msg, sizeof run->ctl->child_msg,
                 "a subscriber failed or saw a message out of order");
    return bad;
}

/* One publish case: bench_bcast_<kind><k><suffix>, `produce` in the parent (an expression
 * of `run`), k subscribers with the given habit in the child. */
#define BCAST_CASE(kind, k, suffix, habit, produce, label)                                \
    static int produce_##kind##k##suffix(struct bench_run *run) { return produce; }       \
    static int consume_##kind##k##suffix(struct bench_run *run)                           \
    {                                                                                     \
        return subscribers(run, k, 0, habit);                                             \
    }                                                                                     \
    const struct bench_transport bench_bcast_##kind##k##suffix = {                        \
        "bcast_" #kind #k #suffix, label, "shm_channel", BENCH_THROUGHPUT, bc_setup,      \
        bc_teardown, produce_##kind##k##suffix, consume_##kind##k##suffix, NULL, NULL, NULL};
#define PUB_CASE(k, habit, suffix, what)                                                  \
    BCAST_CASE(pub, k, suffix, habit, publish(run, 0),                                    \
               "bcast publish, " #k " subs" what " (vs shm_copy)")
PUB_CASE(0, KEEP_UP, , "")
PUB_CASE(1, KEEP_UP, , "")
PUB_CASE(8, KEEP_UP, , "")
PUB_CASE(64, KEEP_UP, , "")
/* The same publisher with subscribers that sleep between bursts (blocking recv, spin 0),
 * and the 0-subscriber case once more, so the table shows the noise between two cases that
 * measure the same thing. */
PUB_CASE(0, KEEP_UP, again, ", again")
PUB_CASE(1, SLEEPY, s, " sleeping")
PUB_CASE(8, SLEEPY, s, " sleeping")
PUB_CASE(64, SLEEPY, s, " sleeping")
/* Subscribers that never sleep, as the floor's readers (bcast_floor_pubN). */
PUB_CASE(1, SPINNING, spin, " never sleeping")
PUB_CASE(8, SPINNING, spin, " never sleeping")
PUB_CASE(64, SPINNING, spin, " never sleeping")

/* ---- paced publisher: the robotics user (a 64 B value every 10 us) ---------------------
 * bcast_paced0/1/8/64 (subscribers spinning: at this pace their 20 us spin never runs out,
 * unless the machine's load deschedules them) and bcast_paced1s/8s/64s (subscribers that
 * sleep as soon as they have caught up: a wake call per publish). The publisher writes one
 * message every PACE_NS, PACED_MSGS of them, and times each write call on its own with the
 * cycle counter; the figure is the mean call (the slowest 5 % left out: preemptions), in ns
 * ("pub cpu" with -v; the table's msgs/s is 1e9 / that mean). At such a pace the lines the
 * publisher stores to sit in the subscribers' caches: each publish takes them back. */
#define PACE_NS 10000u
#define PACED_MSGS 3000u

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A cycle counter where there is one (x86: the TSC, invariant on the CPUs we bench on),
 * else the clock: the call takes tens of ns, below the clock's resolution on some VMs. */
static inline uint64_t ticks(void)
{
#if defined(__x86_64__)
    unsigned lo, hi;
    __asm__ __volatile__("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
#else
    return bench_now_ns();
#endif
}

static int publish_paced(struct bench_run *run)
{
    shm_channel_broadcast_config_t cfg = {run->size, depth_for(run->size), 72, NULL, {0}};
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_broadcast(&ch, run->name, SHM_CHANNEL_PUBLISHER,
                                        SHM_CHANNEL_CREATE, &cfg, 0600);
    if (rc)
        return bench_fail(run, "open publisher: %s", shm_channel_strerror(rc));
    uint8_t *src = calloc(1, run->size);
    uint64_t *ns = calloc(PACED_MSGS, sizeof *ns);
    if (!src || !ns) {
        rc = bench_fail(run, "out of memory");
        goto out;
    }
    uint64_t clk[64]; /* the cost of the two counter reads around a call, in ticks */
    for (int i = 0; i < 64; i++) {
        uint64_t a = ticks();
        clk[i] = ticks() - a;
    }
    qsort(clk, 64, sizeof clk[0], cmp_u64);
    bench_mark(run, 1);
    if ((rc = bench_await(run, 1)) != 0)
        goto out;
    uint64_t t0 = bench_now_ns(), k0 = ticks();
    for (uint64_t i = 1; i <= PACED_MSGS; i++) {
        while (bench_now_ns() < t0 + i * PACE_NS)
            ;
        bench_stamp(src, run->size, i);
        uint64_t a = ticks();
        rc = shm_channel_write(ch, src, run->size, 0);
        uint64_t d = ticks() - a;
        ns[i - 1] = d > clk[32] ? d - clk[32] : 0;
        if (rc) {
            bench_fail(run, "publish: %s", shm_channel_strerror(rc));
            goto out;
        }
    }
    double ns_per_tick = (double)(bench_now_ns() - t0) / (double)(ticks() - k0);
    qsort(ns, PACED_MSGS, sizeof ns[0], cmp_u64);
    /* The counter ticks in steps of ~10 ns on some VMs: a mean over the calls (the slowest
     * 5 % left out: preemptions, interrupts) resolves what a median cannot. */
    double sum = 0;
    for (unsigned i = 0; i < PACED_MSGS * 95 / 100; i++)
        sum += (double)ns[i];
    double mean = sum / (PACED_MSGS * 95 / 100) * ns_per_tick;
    if (mean < 0.1)
        mean = 0.1;
    /* The run's rate is 1e9 / mean (count messages in count x mean ns). */
    run->ctl->t_start = 1;
    run->ctl->t_end = 1 + (uint64_t)(mean * (double)run->count);
    run->ctl->info[5] = (uint64_t)(mean * 1000); /* picoseconds, as publish()'s "pub cpu" */
    shm_channel_stat_t st;
    if (shm_channel_stat(ch, &st) == 0)
        run->ctl->info[4] = st.producer_wakes;
out:
    shm_channel_close(ch);
    bench_mark(run, 2);
    free(ns);
    free(src);
    return rc;
}

#define PACED_CASE(k, habit, suffix, what)                                                \
    BCAST_CASE(paced, k, suffix, habit, publish_paced(run),                               \
               "bcast every 10 us, " #k " subs" what " (1 / publish cost)")
PACED_CASE(0, KEEP_UP, , "")
PACED_CASE(1, KEEP_UP, , " spinning")
PACED_CASE(8, KEEP_UP, , " spinning")
PACED_CASE(64, KEEP_UP, , " spinning")
PACED_CASE(1, SLEEPY, s, " sleeping")
PACED_CASE(8, SLEEPY, s, " sleeping")
PACED_CASE(64, SLEEPY, s, " sleeping")

/* The bare seqlock broadcast of baselines.c: the hardware's share with the same readers. */
extern const struct bench_transport bench_bcast_floor_pub0, bench_bcast_floor_pub1,
    bench_bcast_floor_pub8, bench_bcast_floor_pub64;

/* Every publish case, in the order of the table. */
const struct bench_transport *const bench_bcast_pub_cases[] = {
    &bench_bcast_pub0,   &bench_bcast_pub1,  &bench_bcast_pub8,  &bench_bcast_pub64,
    &bench_bcast_pub0again, &bench_bcast_pub1s, &bench_bcast_pub8s, &bench_bcast_pub64s,
    &bench_bcast_pub1spin, &bench_bcast_pub8spin, &bench_bcast_pub64spin,
    &bench_bcast_floor_pub0, &bench_bcast_floor_pub1, &bench_bcast_floor_pub8,
    &bench_bcast_floor_pub64, &bench_bcast_paced0, &bench_bcast_paced1, &bench_bcast_paced8,
    &bench_bcast_paced64, &bench_bcast_paced1s, &bench_bcast_paced8s, &bench_bcast_paced64s,
    NULL};

static int produce_frames(struct bench_run *run) { return publish(run, 1); }
static int consume_frames(struct bench_run *run) { return subscribers(run, 4, 1, KEEP_UP); }
const struct bench_transport bench_bcast_frames4 = {
    "bcast_frames4", "bcast frames in place, 4 view subs", "shm_channel", BENCH_THROUGHPUT,
    bc_setup, bc_teardown, produce_frames, consume_frames, NULL, NULL, NULL};

/* ---- latest value, one process ---------------------------------------------------------- */

static int latest_local(struct bench_run *run)
{
    shm_channel_broadcast_config_t cfg = {run->size, 8, 4, NULL, {0}};
    shm_channel_t *pub = NULL, *sub = NULL;
    int rc = shm_channel_open_broadcast(&pub, run->name, SHM_CHANNEL_PUBLISHER,
                                        SHM_CHANNEL_CREATE, &cfg, 0600);
    if (!rc)
        rc = shm_channel_open_broadcast(&sub, run->name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0);
    uint8_t *buf = calloc(1, run->size);
    if (rc || !buf) {
        shm_channel_close(sub);
        shm_channel_close(pub);
        free(buf);
        return bench_fail(run, "open: %s", shm_channel_strerror(rc));
    }
    bench_stamp(buf, run->size, 7);
    shm_channel_write(pub, buf, run->size, 0);
    uint64_t len, sum = 0;
    int32_t is_new;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < run->count; i++) {
        if (shm_channel_read_latest(sub, buf, run->size, &len, &is_new, NULL) != 0)
            break;
        sum += buf[0];
    }
    run->local_ns = (double)(bench_now_ns() - t0);
    shm_channel_close(sub);
    shm_channel_close(pub);
    free(buf);
    return sum == 7 * run->count ? 0 : bench_fail(run, "read_latest returned other bytes");
}

const struct bench_transport bench_bcast_latest = {
    "bcast_latest", "bcast read_latest (vs seqlock_read)", "shm_channel", BENCH_LOCAL,
    bc_setup, bc_teardown, NULL, NULL, NULL, NULL, latest_local};

/* A bare seqlock slot: stamp, then the payload. */
static int seqlock_local(struct bench_run *run)
{
    struct {
        uint64_t stamp;
        uint8_t data[];
    } *slot = calloc(1, 8 + run->size + 8);
    uint8_t *buf = calloc(1, run->size);
    if (!slot || !buf)
        return bench_fail(run, "out of memory");
    slot->stamp = 2;
    slot->data[0] = 7;
    uint64_t sum = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < run->count; i++) {
        uint64_t s1, s2;
        do {
            s1 = __atomic_load_n(&slot->stamp, __ATOMIC_ACQUIRE);
            memcpy(buf, slot->data, run->size);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            s2 = __atomic_load_n(&slot->stamp, __ATOMIC_RELAXED);
        } while (s1 != s2 || (s1 & 1));
        sum += buf[0];
        __asm__ __volatile__("" ::: "memory");
    }
    run->local_ns = (double)(bench_now_ns() - t0);
    free(slot);
    free(buf);
    return sum == 7 * run->count ? 0 : bench_fail(run, "seqlock read returned other bytes");
}

const struct bench_transport bench_seqlock_read = {
    "seqlock_read", "seqlock read (floor, 1 process)", "baseline", BENCH_LOCAL,
    NULL, NULL, NULL, NULL, NULL, NULL, seqlock_local};
