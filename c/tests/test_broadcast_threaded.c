/* The broadcast algorithm with real threads over one plain buffer (the TSan target): one
 * publisher thread, several subscriber threads of different habits (a blocking reader on
 * the real futex, a slow reader that is lapped again and again, a latest-value reader, a
 * zero-copy reader), numbered and checksummed messages. Every subscriber must receive no
 * torn message, in order, and account for every message: delivered + missed == published. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "broadcast.h"
#include "ct.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1 /* in-place writes and views race by design: TSan would report them */
#endif

TestSuite(bcast_threads, .timeout = 500);

#define MAXP 256u
#define SEED 0xB40ADCA57ull

enum habit { FAST, SLOW, LATEST, VIEW, CHURN };

struct subr;

struct shared {
    struct shm__bcast b;
    uint64_t count;
    struct subr *subs;
    int n;
    int lockstep; /* the publisher waits for every subscriber to keep up */
};

struct subr {
    struct shared *sh;
    struct shm__bcast_sub s;
    enum habit habit;
    /* results */
    uint64_t delivered, missed, torn, order, stale, timeouts, laps, sleeps, stalls, sessions;
    int rc;
    int finished;
};

static uint64_t msg_len(uint64_t m)
{
    return 16 + ct_msg_len(SEED, m, MAXP - 16);
}

static long futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

static void *publisher(void *arg)
{
    struct shared *sh = arg;
    struct shm__bcast_pub p;
    uint8_t buf[MAXP];
    if (shm__bcast_pub_attach(&sh->b, &p) != 0)
        abort();
    for (uint64_t m = 1; m <= sh->count; m++) {
        uint64_t len = msg_len(m);
        /* Pacing, for the test only (the algorithm never waits): every 2000 messages, let
         * any subscriber more than 1000 behind catch up, so that every habit runs for the
         * whole test however the threads are scheduled. */
        uint64_t slack = sh->lockstep ? sh->b.g.depth - 1 : 1000;
        if (sh->lockstep || m % 2000 == 0)
            for (int i = 0; i < sh->n; i++)
                while (__atomic_load_n(&sh->b.subs[i].next_seq, __ATOMIC_RELAXED) +
                               slack < m &&
                       !__atomic_load_n(&sh->subs[i].finished, __ATOMIC_ACQUIRE))
                    sched_yield();
        int wake;
#ifndef UNDER_TSAN
        if (m % 2) {
            void *ptr;
            if (shm__bcast_reserve(&sh->b, &p, len, &ptr) != 0)
                abort();
            ct_msg_fill(ptr, SEED, m, len);
            shm__bcast_commit(&sh->b, &p, len);
            wake = shm__bcast_publish(&sh->b, &p);
        } else
#endif
        {
            ct_msg_fill(buf, SEED, m, len);
            wake = shm__bcast_write(&sh->b, &p, buf, len);
        }
        if (wake)
            futex(&sh->b.hdr->notify_seq, FUTEX_WAKE, INT_MAX, NULL);
    }
    if (shm__bcast_pub_close(&sh->b, &p))
        futex(&sh->b.hdr->notify_seq, FUTEX_WAKE, INT_MAX, NULL);
    return NULL;
}

/* Check a delivered message: it must be the one that follows the last one delivered plus
 * those reported missed, and intact. */
static void check(struct subr *r, const uint8_t *buf, uint64_t len, uint64_t missed)
{
    uint64_t want = r->delivered + r->missed + missed + 1;
    r->missed += missed;
    r->delivered++;
    if (missed)
        r->laps++;
    if (len < 16 || ct_msg_seq(buf) != want)
        r->order++;
    else if (ct_msg_verify(buf, len, SEED, want, msg_len(want)) != 0)
        r->torn++;
}

static int done_reading(struct subr *r)
{
    return shm__bcast_publisher_state(&r->sh->b) == SHM_CHANNEL_PEER_CLOSED;
}

/* The next message, copied; blocks on the futex when there is none. 0, or 1 at
 * end-of-stream once drained. */
static int next_blocking(struct subr *r, uint8_t *buf, uint64_t *len, uint64_t *missed)
{
    struct shm__bcast *b = &r->sh->b;
    for (;;) {
        int rc = shm__bcast_next(b, &r->s, buf, MAXP, len, missed);
        if (rc != -EAGAIN)
            return rc;
        if (r->habit != FAST) { /* the others poll */
            if (done_reading(r)) {
                rc = shm__bcast_next(b, &r->s, buf, MAXP, len, missed);
                return rc == -EAGAIN ? 1 : rc;
            }
            sched_yield();
            continue;
        }
        uint32_t seen = shm__bcast_wait_prepare(b, &r->s);
        rc = shm__bcast_next(b, &r->s, buf, MAXP, len, missed);
        if (rc != -EAGAIN) {
            shm__bcast_wait_done(b, &r->s);
            return rc;
        }
        if (done_reading(r)) {
            shm__bcast_wait_done(b, &r->s);
            rc = shm__bcast_next(b, &r->s, buf, MAXP, len, missed);
            return rc == -EAGAIN ? 1 : rc;
        }
        struct timespec ts = {10, 0}; /* a lost wake-up shows as a timeout */
        r->sleeps++;
        if (futex(&b->hdr->notify_seq, FUTEX_WAIT, seen, &ts) != 0 && errno == ETIMEDOUT)
            r->timeouts++;
        shm__bcast_wait_done(b, &r->s);
    }
}

static void *subscriber_loop(struct subr *r)
{
    struct shm__bcast *b = &r->sh->b;
    uint8_t buf[MAXP];
    uint64_t len, missed;
    if (r->habit == CHURN) {
        /* join, read 50 messages, leave, again, until end-of-stream; every session's
         * messages are intact and in order, and add up */
        for (;;) {
            uint64_t s0 = r->s.next, prev = s0 - 1;
            for (int k = 0; k < 50;) {
                int closed = done_reading(r);
                int rc = shm__bcast_next(b, &r->s, buf, MAXP, &len, &missed);
                if (rc == -EAGAIN) {
                    if (closed) {
                        shm__bcast_sub_leave(b, &r->s);
                        return NULL;
                    }
                    sched_yield();
                    continue;
                }
                if (rc) {
                    r->rc = rc;
                    return NULL;
                }
                uint64_t m = r->s.next - 1;
                if (len < 16 || ct_msg_seq(buf) != m || m != prev + missed + 1)
                    r->order++;
                else if (ct_msg_verify(buf, len, SEED, m, msg_len(m)) != 0)
                    r->torn++;
                prev = m;
                k++;
            }
            if (r->s.delivered + r->s.missed != r->s.next - s0)
                r->order++;
            r->sessions++;
            shm__bcast_sub_leave(b, &r->s);
            if (shm__bcast_sub_join(b, &r->s, r->s.index, 1) != 0) {
                r->rc = -1000;
                return NULL;
            }
        }
    }
    if (r->habit == LATEST) {
        uint64_t last = 0;
        for (;;) {
            int is_new, closed = done_reading(r);
            int rc = shm__bcast_latest(b, &r->s, buf, MAXP, &len, &is_new, &missed);
            if (rc == -EAGAIN && !closed)
                continue; /* nothing yet, or overwritten too often */
            if (rc) {
                r->rc = rc;
                return NULL;
            }
            uint64_t m = len >= 16 ? ct_msg_seq(buf) : 0;
            if (ct_msg_verify(buf, len, SEED, m, msg_len(m)) != 0)
                r->torn++;
            if (is_new) {
                if (m <= last || m != last + missed + 1)
                    r->order++;
                r->delivered++;
                r->missed += missed;
                if (missed)
                    r->laps++;
                last = m;
            } else {
                if (m != last)
                    r->order++;
                sched_yield();
            }
            if (closed && !is_new)
                return NULL;
        }
    }
    for (;;) {
#ifndef UNDER_TSAN
        if (r->habit == VIEW) {
            const void *p;
            int rc = shm__bcast_peek(b, &r->s, 0, &p, &len, &missed, NULL);
            if (rc == -EAGAIN) {
                if (!done_reading(r))
                    continue;
                /* end-of-stream: drain (this peek's result is processed below) */
                rc = shm__bcast_peek(b, &r->s, 0, &p, &len, &missed, NULL);
                if (rc == -EAGAIN)
                    return NULL;
            }
            if (rc) {
                r->rc = rc;
                return NULL;
            }
            uint64_t want = r->delivered + r->missed + r->stale + missed + 1;
            int bad = len < 16 || ct_msg_seq(p) != want ||
                      ct_msg_verify(p, len, SEED, want, msg_len(want)) != 0;
            r->missed += missed;
            if (missed)
                r->laps++;
            rc = shm__bcast_release(b, &r->s);
            if (rc == -ESTALE) {
                r->stale++; /* counted as missed by the algorithm too */
            } else {
                r->delivered++;
                r->torn += bad; /* reported intact, yet it was not: torn delivery */
            }
            continue;
        }
#endif
        int rc = next_blocking(r, buf, &len, &missed);
        if (rc == 1)
            return NULL;
        if (rc) {
            r->rc = rc;
            return NULL;
        }
        check(r, buf, len, missed);
        if (r->habit == SLOW && r->delivered % 25 == 0) {
            /* stand still until the publisher has lapped us (observable: pub_seq) */
            uint64_t target = r->s.next + 2 * b->g.depth;
            while (__atomic_load_n(&b->hdr->pub_seq, __ATOMIC_ACQUIRE) < target &&
                   !done_reading(r))
                sched_yield();
            if (__atomic_load_n(&b->hdr->pub_seq, __ATOMIC_ACQUIRE) >= target)
                r->stalls++;
        }
    }
}

static void *subscriber(void *arg)
{
    struct subr *r = arg;
    subscriber_loop(r);
    __atomic_store_n(&r->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void run(uint32_t depth, uint64_t count, const enum habit *habits, int n, int lockstep)
{
    struct shared sh;
    sh.lockstep = lockstep;
    struct shm__bcast_geom g;
    cr_assert_eq(shm__bcast_geometry(&g, MAXP, depth, 16, "ct-msg"), 0);
    void *mem = NULL;
    cr_assert_eq(posix_memalign(&mem, 4096, g.segment_size), 0);
    memset(mem, 0, g.segment_size);
    shm__bcast_format(mem, &g, (uint32_t)getpid(), ct_now_ns());
    cr_assert_eq(shm__bcast_validate(mem, g.segment_size, &g), 0);
    shm__bcast_bind(&sh.b, mem, &g);
    sh.count = count;
    struct subr *r = calloc((size_t)n, sizeof *r);
    sh.subs = r;
    sh.n = n;
    pthread_t *th = calloc((size_t)n + 1, sizeof *th);
    for (int i = 0; i < n; i++) {
        r[i].sh = &sh;
        r[i].habit = habits[i];
        cr_assert_eq(shm__bcast_sub_join(&sh.b, &r[i].s, (uint32_t)i, (uint32_t)getpid()), 0);
        cr_assert_eq(pthread_create(&th[i + 1], NULL, subscriber, &r[i]), 0);
    }
    cr_assert_eq(pthread_create(&th[0], NULL, publisher, &sh), 0);
    for (int i = 0; i <= n; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        struct subr *x = &r[i];
        fprintf(stderr,
                "  subscriber %d (habit %d): delivered %lu missed %lu stale %lu laps %lu "
                "sleeps %lu stalls %lu sessions %lu\n",
                i, (int)x->habit, (unsigned long)x->delivered, (unsigned long)x->missed,
                (unsigned long)x->stale, (unsigned long)x->laps, (unsigned long)x->sleeps,
                (unsigned long)x->stalls, (unsigned long)x->sessions);
        cr_assert_eq(x->rc, 0, "subscriber %d: error %d", i, x->rc);
        cr_assert_eq(x->torn, 0, "subscriber %d: %lu torn deliveries", i, (unsigned long)x->torn);
        cr_assert_eq(x->order, 0, "subscriber %d: %lu out of order", i, (unsigned long)x->order);
        cr_assert_eq(x->timeouts, 0, "subscriber %d: %lu lost wake-ups", i,
                     (unsigned long)x->timeouts);
        if (x->habit == CHURN) {
            cr_assert(x->sessions >= 1, "subscriber %d: no join/leave session completed", i);
            continue;
        }
        cr_assert_eq(x->delivered + x->missed + x->stale, count,
                     "subscriber %d: delivered + missed == published", i);
        cr_assert_eq(x->s.delivered, x->delivered, "subscriber %d: handle's total", i);
        cr_assert_eq(x->s.missed, x->missed + x->stale, "subscriber %d: handle's total", i);
        cr_assert_eq(x->s.entry->delivered + x->s.entry->missed, count, "entry counters");
        if (x->habit == SLOW)
            cr_assert(x->stalls >= 1 && x->laps >= x->stalls,
                      "the slow subscriber was lapped %lu times in %lu stalls",
                      (unsigned long)x->laps, (unsigned long)x->stalls);
        if (lockstep)
            cr_assert_eq(x->missed + x->stale, 0, "subscriber %d kept up, yet missed %lu", i,
                         (unsigned long)(x->missed + x->stale));
    }
    cr_assert_eq(sh.b.hdr->pub_seq, count);
    cr_assert_eq(sh.b.hdr->waiting, 0, "nobody counted in, no wake owed");
    uint32_t left = 0;
    for (int i = 0; i < n; i++)
        left += r[i].habit == CHURN;
    cr_assert_eq(sh.b.hdr->subscribers, (uint32_t)n - left, "attached count after churn");
    free(r);
    free(th);
    free(mem);
}

Test(bcast_threads, four_habits_small_depth)
{
    static const enum habit h[] = {FAST, SLOW, LATEST, VIEW, FAST, SLOW, CHURN};
    run(4, ct_scaled(1000000, 20000), h, 7, 0);
}

Test(bcast_threads, depth_three_many_blocking_readers)
{
    static const enum habit h[] = {FAST, FAST, FAST, FAST, SLOW, LATEST};
    run(3, ct_scaled(300000, 10000), h, 6, 0);
}

/* A subscriber that keeps up reads every message, in order: the publisher (for this test
 * only) publishes message m once every subscriber has taken m - depth + 1. */
Test(bcast_threads, subscribers_that_keep_up_miss_nothing)
{
    static const enum habit h[] = {FAST, FAST, VIEW};
    run(2, ct_scaled(30000, 3000), h, 3, 1);
}
