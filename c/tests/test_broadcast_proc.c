/* The broadcast algorithm across real processes over one shared mapping (MAP_SHARED,
 * anonymous: no files, no locks yet; the integration adds those): publishers killed with
 * SIGKILL in the middle of a message, again and again, each successor taking over from
 * pub_seq; subscriber processes of four habits (one asleep on the real futex, one lapped
 * at will, one reading the latest value, one reading in place) verifying every message;
 * a subscriber killed while asleep and replaced (its entry reclaimed, the sleeper count
 * repaired). Nothing half-written is ever delivered, and delivered + missed == published. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "broadcast.h"
#include "ct.h"

TestSuite(bcast_proc, .timeout = 500);

#define MAXP 240u
#define SEED 0x5EED0B0Cull
#define NSUBS 5

enum habit { BLOCKING, SLOW, LATEST, VIEW, VICTIM };

struct result {
    uint64_t delivered, missed, torn, order, stale, laps, timeouts, first, last_next;
    int rc, done, reclaimed;
};

struct control {
    uint64_t count;       /* messages in all */
    uint64_t pause_at;    /* the publisher stops in the middle of this message */
    uint64_t paused;      /* set by the publisher when it has stopped there */
    struct result res[NSUBS + 1]; /* [NSUBS]: the victim's replacement */
};

static struct shm__bcast B;
static struct control *C;

static uint64_t msg_len(uint64_t m)
{
    return 16 + ct_msg_len(SEED, m, MAXP - 16);
}

static long futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

/* A publisher process: takes over from pub_seq, publishes up to count, and either stops
 * forever in the middle of message pause_at (to be killed there) or closes at the end. */
static int publisher(void *arg)
{
    (void)arg;
    struct shm__bcast_pub p;
    if (shm__bcast_pub_attach(&B, &p) != 0)
        return 1;
    uint64_t pause_at = __atomic_load_n(&C->pause_at, __ATOMIC_ACQUIRE);
    for (uint64_t m = p.seq + 1; m <= C->count; m++) {
        uint64_t len = msg_len(m);
        void *ptr;
        if (shm__bcast_reserve(&B, &p, len, &ptr) != 0)
            return 2;
        if (m == pause_at) {
            /* half the message, then garbage where the rest should be */
            ct_msg_fill(ptr, SEED, m, len);
            memset((uint8_t *)ptr + len / 2, 0xEE, len - len / 2);
            __atomic_store_n(&C->paused, m, __ATOMIC_RELEASE);
            for (;;)
                pause();
        }
        ct_msg_fill(ptr, SEED, m, len);
        shm__bcast_commit(&B, &p, len);
        if (shm__bcast_publish(&B, &p))
            futex(&B.hdr->notify_seq, FUTEX_WAKE, INT_MAX, NULL);
    }
    if (shm__bcast_pub_close(&B, &p))
        futex(&B.hdr->notify_seq, FUTEX_WAKE, INT_MAX, NULL);
    return 0;
}

static int closed(void)
{
    return shm__bcast_publisher_state(&B) == SHM_CHANNEL_PEER_CLOSED;
}

/* Verify a delivered message: number and content. */
static void check(struct result *r, struct shm__bcast_sub *s, const uint8_t *buf, uint64_t len,
                  uint64_t missed, uint64_t *prev)
{
    uint64_t m = s->next - 1;
    if (len < 16 || ct_msg_seq(buf) != m || m != *prev + missed + 1)
        r->order++;
    else if (ct_msg_verify(buf, len, SEED, m, msg_len(m)) != 0)
        r->torn++;
    if (missed)
        r->laps++;
    *prev = m;
}

static int subscriber(void *arg)
{
    int idx = (int)(intptr_t)arg;
    enum habit habit = idx < NSUBS ? (enum habit)idx : BLOCKING;
    struct result *r = &C->res[idx];
    struct shm__bcast_sub s;
    uint32_t entry = idx < NSUBS ? (uint32_t)idx : VICTIM;
    int rc = shm__bcast_sub_join(&B, &s, entry, (uint32_t)getpid());
    if (rc < 0)
        return 1;
    r->reclaimed = rc;
    r->first = s.next;
    uint64_t prev = s.next - 1;
    uint8_t buf[MAXP];
    uint64_t len, missed;
    for (;;) {
        int was_closed = closed();
        if (habit == LATEST) {
            int is_new;
            rc = shm__bcast_latest(&B, &s, buf, MAXP, &len, &is_new, &missed);
            if (rc == 0 && is_new)
                check(r, &s, buf, len, missed, &prev);
            else if (rc == 0 && (len < 16 || ct_msg_seq(buf) != prev))
                r->order++;
            if (rc == 0 && !is_new && was_closed)
                break;
            if (rc == 0 && !is_new)
                sched_yield();
        } else if (habit == VIEW) {
            const void *p;
            rc = shm__bcast_peek(&B, &s, 0, &p, &len, &missed, NULL);
            if (rc == 0) {
                uint64_t m = s.next; /* the peeked message */
                int bad = len < 16 || ct_msg_seq(p) != m || m != prev + missed + 1 ||
                          ct_msg_verify(p, len, SEED, m, msg_len(m)) != 0;
                if (missed)
                    r->laps++;
                if (shm__bcast_release(&B, &s) == -ESTALE)
                    r->stale++;
                else
                    r->torn += bad;
                prev = m;
            }
        } else {
            rc = shm__bcast_next(&B, &s, buf, MAXP, &len, &missed);
            if (rc == 0) {
                check(r, &s, buf, len, missed, &prev);
                if (habit == SLOW && s.delivered % 25 == 0) {
                    uint64_t target = s.next + 2 * B.g.depth;
                    while (__atomic_load_n(&B.hdr->pub_seq, __ATOMIC_ACQUIRE) < target &&
                           !closed())
                        sched_yield();
                }
            }
        }
        if (rc == -EAGAIN) {
            if (was_closed)
                break; /* drained after end-of-stream */
            if (habit == BLOCKING || habit == VICTIM) {
                uint32_t seen = shm__bcast_wait_prepare(&B, &s);
                if (shm__bcast_lag(&B, &s) == 0 && !closed()) {
                    struct timespec ts = {10, 0};
                    if (futex(&B.hdr->notify_seq, FUTEX_WAIT, seen, &ts) != 0 &&
                        errno == ETIMEDOUT)
                        r->timeouts++;
                }
                shm__bcast_wait_done(&B, &s);
            } else {
                sched_yield();
            }
        } else if (rc != 0) {
            r->rc = rc;
            break;
        }
    }
    r->delivered = s.delivered;
    r->missed = s.missed;
    r->last_next = s.next;
    shm__bcast_sub_leave(&B, &s);
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return 0;
}

static void wait_until_u64(uint64_t *p, uint64_t want)
{
    uint64_t t0 = ct_now_ns();
    while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != want) {
        cr_assert(ct_now_ns() - t0 < 60 * CT_SEC, "waited 60 s for %lu", (unsigned long)want);
        usleep(200);
    }
}

Test(bcast_proc, publishers_killed_mid_message_subscribers_killed_asleep)
{
    struct shm__bcast_geom g;
    cr_assert_eq(shm__bcast_geometry(&g, MAXP, 4, 16, NULL), 0);
    void *mem = mmap(NULL, g.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    C = mmap(NULL, sizeof *C, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(mem != MAP_FAILED && C != MAP_FAILED);
    shm__bcast_format(mem, &g, (uint32_t)getpid(), ct_now_ns());
    cr_assert_eq(shm__bcast_validate(mem, g.segment_size, &g), 0);
    shm__bcast_bind(&B, mem, &g);
    const uint64_t count = ct_scaled(10000000, 200000);
    const int kills = 20;
    C->count = count;

    pid_t subs[NSUBS + 1];
    for (int i = 0; i < NSUBS; i++)
        subs[i] = ct_fork(subscriber, (void *)(intptr_t)i);
    uint64_t t0 = ct_now_ns();
    while (__atomic_load_n(&B.hdr->subscribers, __ATOMIC_ACQUIRE) != NSUBS) {
        cr_assert(ct_now_ns() - t0 < 60 * CT_SEC, "subscribers did not join");
        usleep(200);
    }

    for (int k = 1; k <= kills; k++) {
        uint64_t at = count * (uint64_t)k / (kills + 1);
        __atomic_store_n(&C->pause_at, at, __ATOMIC_RELEASE);
        pid_t pub = ct_fork(publisher, NULL);
        wait_until_u64(&C->paused, at);
        /* stopped in the middle of message `at`: its slot says "being written" */
        struct shm__bcast_slot *sl =
            (struct shm__bcast_slot *)(void *)(B.slots + (at % g.depth) * g.slot_stride);
        cr_assert_eq(__atomic_load_n(&sl->stamp, __ATOMIC_ACQUIRE), 2 * at + 1);
        cr_assert_eq(__atomic_load_n(&B.hdr->pub_seq, __ATOMIC_ACQUIRE), at - 1);
        if (k == kills / 2) {
            /* the victim drains and sleeps (observable: its entry's flag); kill it there */
            t0 = ct_now_ns();
            while (!__atomic_load_n(&B.subs[VICTIM].sleeping, __ATOMIC_ACQUIRE)) {
                cr_assert(ct_now_ns() - t0 < 60 * CT_SEC, "victim never slept");
                usleep(200);
            }
            kill(subs[VICTIM], SIGKILL);
            cr_assert_eq(ct_wait(subs[VICTIM]), 128 + SIGKILL);
            cr_assert(__atomic_load_n(&B.hdr->waiting, __ATOMIC_ACQUIRE) >> 1 >= 1);
            subs[NSUBS] = ct_fork(subscriber, (void *)(intptr_t)NSUBS);
            t0 = ct_now_ns();
            while (__atomic_load_n(&B.subs[VICTIM].epoch, __ATOMIC_ACQUIRE) != 2) {
                cr_assert(ct_now_ns() - t0 < 60 * CT_SEC, "replacement did not join");
                usleep(200);
            }
        }
        kill(pub, SIGKILL);
        cr_assert_eq(ct_wait(pub), 128 + SIGKILL);
        __atomic_store_n(&C->paused, 0, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&C->pause_at, 0, __ATOMIC_RELEASE);
    pid_t last = ct_fork(publisher, NULL);
    cr_assert_eq(ct_wait(last), 0);
    for (int i = 0; i <= NSUBS; i++)
        if (i != VICTIM)
            cr_assert_eq(ct_wait(subs[i]), 0, "subscriber %d", i);

    cr_assert_eq(B.hdr->pub_seq, count);
    cr_assert_eq(B.hdr->publisher_epoch, (uint32_t)kills + 1);
    cr_assert_eq(B.hdr->waiting >> 1, 0, "the dead sleeper was uncounted when its entry was reclaimed");
    cr_assert_eq(B.hdr->subscribers, 0);
    cr_assert_eq(B.hdr->reclaims, 1);
    for (int i = 0; i <= NSUBS; i++) {
        if (i == VICTIM)
            continue;
        struct result *r = &C->res[i];
        fprintf(stderr, "  subscriber %d: delivered %lu missed %lu stale %lu laps %lu\n", i,
                (unsigned long)r->delivered, (unsigned long)r->missed, (unsigned long)r->stale,
                (unsigned long)r->laps);
        cr_assert(r->done, "subscriber %d finished", i);
        cr_assert_eq(r->rc, 0, "subscriber %d: error %d", i, r->rc);
        cr_assert_eq(r->torn, 0, "subscriber %d: %lu torn deliveries", i, (unsigned long)r->torn);
        cr_assert_eq(r->order, 0, "subscriber %d: %lu out of order", i, (unsigned long)r->order);
        cr_assert_eq(r->timeouts, 0, "subscriber %d: lost wake-ups", i);
        cr_assert_eq(r->last_next, count + 1, "subscriber %d read to the end", i);
        cr_assert_eq(r->delivered + r->missed, count + 1 - r->first,
                     "subscriber %d: delivered + missed == published since it joined", i);
    }
    cr_assert_eq(C->res[NSUBS].reclaimed, 1, "the replacement reclaimed the dead entry");
    cr_assert(C->res[SLOW].laps >= 1, "the slow subscriber was lapped");
    munmap(mem, g.segment_size);
    munmap(C, sizeof *C);
}
