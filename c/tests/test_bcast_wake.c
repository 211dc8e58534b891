/* Broadcast sleep and wake, made visible (spec/broadcast.md §5.7): no lost wake-up, one wake
 * call per sleep episode at most, none while nobody is counted in.
 *
 * One publisher and many subscribers through the public API, in lock step: the publisher
 * publishes message m as soon as every subscriber has read m - 1, so each publish races with
 * the subscribers' registration (count in, mark a wake owed, fence, re-check, FUTEX_WAIT).
 * Each subscriber picks a habit per message: sleep at once (spin 0), spin then sleep, poll
 * (timeout 0) or wait with a short timeout that expires again and again (it must register
 * again after every return). Every few messages the publisher first waits until the
 * sleepers are counted in (observable: shm_channel_broadcast_stat().sleepers), so the real
 * FUTEX_WAIT path is taken, not only the re-check.
 *
 * The liveness slice (shm__hook_liveness_slice_ns) is an hour here: a lost wake-up is a
 * subscriber that stays behind the published message, counted in as a sleeper. The
 * publisher detects it by that state (no progress of a subscriber for LOST_BOUND while it
 * has published, far longer than any scheduling delay), reports it and fails.
 *
 * Peers are processes here, threads in test_bcast_wake_threads.c (same source, for TSan:
 * all handles share the publisher's mapping). Default: a short real run; with
 * SHM_CHANNEL_STRESS=1: millions of sleep/wake cycles. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broadcast.h"
#include "handle.h"
#include "handshake.h"
#include "ct.h"
#include "hooks.h"

#ifdef CT_BWAKE_THREADS
#define SUITE bcast_wake_threads
#else
#define SUITE bcast_wake
#endif

TestSuite(SUITE, .init = ct_setup, .fini = ct_teardown, .timeout = 3000);

#define MAXS 64
#define LOST_BOUND (20 * CT_SEC) /* no progress this long while published: a lost wake-up */
#define SLICE_NS (3600 * CT_SEC)  /* so the safety slice cannot mask a lost wake-up */

enum habit { SLEEP, SPIN_SLEEP, POLL, SHORT_TIMEOUT, HABITS };

struct sub_res {
    uint64_t progress; /* last message read */
    uint32_t habit;    /* the habit for the next message (to count expected sleepers) */
    uint32_t ready;
    uint64_t sleeps, timeouts, bad;
    int rc, done;
};

struct ctl {
    char name[64];
    uint64_t count;
    int nsubs;
    int stretched; /* the injected-delay round: see stretched_round() */
    int pub_knob, sub_knob; /* shm__hook_handshake_fence_only of each side (processes) */
    shm_channel_t *anchor; /* threads only: its mapping is the one every handle shares */
    struct sub_res r[MAXS];
};

static struct ctl *C;

static uint32_t habit_of(int i, uint64_t m)
{
    return (uint32_t)(ct_mix(((uint64_t)i << 40) ^ m ^ 0xB3A4E) % HABITS);
}

static int subscriber(void *arg)
{
    int i = (int)(intptr_t)arg;
    struct sub_res *r = &C->r[i];
    shm_channel_t *ch = NULL;
#ifndef CT_BWAKE_THREADS
    shm__hook_handshake_fence_only = C->sub_knob; /* this process only */
#endif
    int orc = shm_channel_open_broadcast(&ch, C->name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0);
#ifdef CT_BWAKE_THREADS
    if (orc == 0)
        orc = shm__hook_share_mapping(ch, C->anchor);
#endif
    if (orc) {
        __atomic_store_n(&r->rc, orc, __ATOMIC_RELEASE);
        return 1;
    }
    __atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
    uint64_t v = 0, len, missed;
    int rc = 0;
    for (uint64_t m = 1; m <= C->count; m++) {
        uint32_t h = C->stretched ? SPIN_SLEEP : habit_of(i, m);
        __atomic_store_n(&r->habit, h, __ATOMIC_RELAXED);
        shm_channel_set_spin(ch, h == SLEEP ? 0 : C->stretched ? 1000000 : 20000);
        if (h == POLL) {
            while ((rc = shm_channel_recv(ch, &v, 8, &len, &missed, 0)) == -EAGAIN)
                sched_yield();
        } else if (h == SHORT_TIMEOUT) {
            /* each timeout returns from FUTEX_WAIT on the slice: register again every time */
            while ((rc = shm_channel_recv(ch, &v, 8, &len, &missed, 30000)) == -ETIMEDOUT)
                r->timeouts++;
        } else {
            rc = shm_channel_recv(ch, &v, 8, &len, &missed, -1);
        }
        if (rc)
            break;
        if (len != 8 || v != m || missed != 0)
            r->bad++;
        __atomic_store_n(&r->progress, m, __ATOMIC_RELEASE);
    }
    if (rc == 0)
        rc = shm_channel_recv(ch, &v, 8, &len, &missed, -1); /* end-of-stream wakes too */
    shm_channel_sub_stat_t ss;
    if (shm_channel_sub_stat(ch, -1, &ss) == 0)
        r->sleeps = ss.sleeps;
    shm_channel_close(ch);
    rc = rc == -EPIPE ? 0 : (rc ? rc : -EPROTO);
    __atomic_store_n(&r->rc, rc, __ATOMIC_RELEASE);
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return rc || r->bad ? 1 : 0;
}

#ifdef CT_BWAKE_THREADS
static void *thread_main(void *arg)
{
    subscriber(arg);
    return NULL;
}
#endif

static uint64_t min_progress(int *who)
{
    uint64_t lo = UINT64_MAX;
    for (int i = 0; i < C->nsubs; i++) {
        uint64_t p = __atomic_load_n(&C->r[i].progress, __ATOMIC_ACQUIRE);
        if (p < lo) {
            lo = p;
            *who = i;
        }
    }
    return lo;
}

/* Injected delays (spec §5.7): the publisher pauses 2 ms between its pub_seq store and its
 * look at `waiting` (P1..P2); a sleeper pauses 5 ms after registering (S2..S3). Odd
 * messages are published at once (the subscribers are still spinning: they read the message
 * during the publisher's pause and register, and the publisher then takes that registration
 * for a message they already have); even ones only once the subscribers are counted in and
 * have had time to reach FUTEX_WAIT. A sleeper that compares the futex against a value
 * loaded after its registration (or re-sleeps without registering again) then sleeps
 * through the even message: a lost wake-up this test sees. */
static void pause_2ms(void *arg)
{
    (void)arg;
    usleep(2000);
}

static void pause_5ms(void *arg)
{
    (void)arg;
    usleep(5000);
}

static void run_hs(int nsubs, uint64_t count, int stretched, int pub_knob, int sub_knob)
{
    C = mmap(NULL, sizeof *C, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(C != MAP_FAILED);
    memset(C, 0, sizeof *C);
    ct_name(C->name, "bwake");
    C->count = count;
    C->nsubs = nsubs;
    C->stretched = stretched;
    C->pub_knob = pub_knob;
    C->sub_knob = sub_knob;
    int saved_knob = shm__hook_handshake_fence_only;
    shm__hook_handshake_fence_only = pub_knob; /* read by the publisher's open only */
    shm__bcast_hook_membarrier_publisher = !pub_knob; /* off by default in the library */
    if (stretched) {
        shm__bcast_hook_before_wake_check = pause_2ms;
        shm__bcast_hook_after_register = pause_5ms;
    }
    uint64_t saved_slice = shm__hook_liveness_slice_ns;
    shm__hook_liveness_slice_ns = SLICE_NS;
    shm_channel_broadcast_config_t cfg = {8, 4, MAXS, NULL, {0}};
    shm_channel_t *pub = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&pub, C->name, SHM_CHANNEL_PUBLISHER,
                                            SHM_CHANNEL_CREATE, &cfg, 0600), 0);
    /* The publisher's handshake word (spec/broadcast.md §3.2): 1 exactly when it registered
     * for membarrier and publishes without a fence. */
    uint32_t want_hs = pub_knob ? SHM__HS_FENCE : shm__hs_register();
    shm__hook_handshake_fence_only = saved_knob;
    shm__bcast_hook_membarrier_publisher = 0;
    {
        shm_channel_broadcast_stat_t bs0;
        cr_assert_eq(shm_channel_broadcast_stat(pub, &bs0), 0);
        const struct shm__bcast_header *hh = pub->bc.hdr;
        cr_assert_eq(hh->publisher_handshake, want_hs, "publisher_handshake");
    }
#ifdef CT_BWAKE_THREADS
    /* One mapping for every handle, so TSan sees both sides' accesses; its owner (a
     * subscriber that never reads) is closed last. */
    cr_assert_eq(shm_channel_open_broadcast(&C->anchor, C->name, SHM_CHANNEL_SUBSCRIBER, 0,
                                            NULL, 0), 0);
    cr_assert_eq(shm__hook_share_mapping(pub, C->anchor), 0);
    pthread_t th[MAXS];
    for (int i = 0; i < nsubs; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i), 0);
#else
    pid_t pids[MAXS];
    for (int i = 0; i < nsubs; i++)
        pids[i] = ct_fork(subscriber, (void *)(intptr_t)i);
#endif
    uint64_t t0 = ct_now_ns();
    for (int i = 0; i < nsubs; i++)
        while (!__atomic_load_n(&C->r[i].ready, __ATOMIC_ACQUIRE)) {
            cr_assert(ct_now_ns() - t0 < 60 * CT_SEC, "subscriber %d did not join", i);
            int orc = __atomic_load_n(&C->r[i].rc, __ATOMIC_ACQUIRE);
            cr_assert_eq(orc, 0, "subscriber %d: open: %d", i, orc);
            usleep(200);
        }
    int lost = -1;
    uint64_t lost_at = 0;
    for (uint64_t m = 1; m <= count && lost < 0; m++) {
        if (stretched && m % 2 == 0) {
            shm_channel_broadcast_stat_t bs;
            uint64_t t1 = ct_now_ns();
            while (shm_channel_broadcast_stat(pub, &bs) == 0 && bs.sleepers < (uint32_t)nsubs &&
                   ct_now_ns() - t1 < 2 * CT_SEC)
                sched_yield();
            usleep(20000); /* the injected delay: let them reach FUTEX_WAIT */
        } else if (!stretched && m % 8 == 0) {
            /* let the sleepers get into FUTEX_WAIT first (not a failure if they do not) */
            int want = 0;
            for (int i = 0; i < nsubs; i++)
                want += habit_of(i, m) == SLEEP;
            uint64_t t1 = ct_now_ns();
            shm_channel_broadcast_stat_t bs;
            while (shm_channel_broadcast_stat(pub, &bs) == 0 && bs.sleepers < (uint32_t)want &&
                   ct_now_ns() - t1 < 2 * CT_MS)
                sched_yield();
        }
        cr_assert_eq(shm_channel_write(pub, &m, 8, 0), 0);
        /* lock step: every subscriber reads m before m + 1 is published */
        int who = 0;
        uint64_t last = min_progress(&who), since = ct_now_ns();
        while (last < m) {
            sched_yield();
            uint64_t p = min_progress(&who);
            if (p != last) {
                last = p;
                since = ct_now_ns();
            } else if (ct_now_ns() - since > LOST_BOUND) {
                shm_channel_sub_stat_t ss;
                shm_channel_broadcast_stat_t bs;
                shm_channel_broadcast_stat(pub, &bs);
                fprintf(stderr, "LOST WAKE-UP: subscriber %d stuck at %lu (habit %u) while "
                        "message %lu is published; sleepers counted in: %u\n", who,
                        (unsigned long)last, C->r[who].habit, (unsigned long)m, bs.sleepers);
                (void)ss;
                lost = who;
                lost_at = m;
                /* fail here: the stuck subscriber sleeps on (its wake was taken), so the
                 * close below would not end it; the subscribers die with the test */
                cr_assert_fail("a lost wake-up: subscriber %d never read message %lu", lost,
                               (unsigned long)lost_at);
            }
        }
    }
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(pub, &st), 0);
    shm_channel_close(pub); /* end-of-stream: wakes everyone (also a stuck subscriber) */
#ifdef CT_BWAKE_THREADS
    for (int i = 0; i < nsubs; i++)
        pthread_join(th[i], NULL);
    shm_channel_close(C->anchor);
#else
    for (int i = 0; i < nsubs; i++)
        ct_wait(pids[i]);
#endif
    shm__hook_liveness_slice_ns = saved_slice;
    shm__bcast_hook_before_wake_check = NULL;
    shm__bcast_hook_after_register = NULL;
    cr_assert_eq(lost, -1, "a lost wake-up: subscriber %d never read message %lu", lost,
                 (unsigned long)lost_at);
    uint64_t sleeps = 0, timeouts = 0;
    for (int i = 0; i < nsubs; i++) {
        struct sub_res *r = &C->r[i];
        cr_assert(r->done, "subscriber %d finished", i);
        cr_assert_eq(r->rc, 0, "subscriber %d: %s", i, shm_channel_strerror(r->rc));
        cr_assert_eq(r->bad, 0, "subscriber %d: %lu wrong messages", i, (unsigned long)r->bad);
        cr_assert_eq(r->progress, count, "subscriber %d read every message", i);
        sleeps += r->sleeps;
        timeouts += r->timeouts;
    }
    fprintf(stderr, "  %d subscribers, %lu messages: %lu sleep episodes (%lu timed out and "
            "slept again), %lu wake calls, 0 lost\n", nsubs, (unsigned long)count,
            (unsigned long)sleeps, (unsigned long)timeouts, (unsigned long)st.producer_wakes);
    cr_assert(sleeps > count / 4, "the subscribers really slept");
    cr_assert(stretched || timeouts > 0, "a timed-out wait was followed by another one");
    /* One wake call per sleep episode at most: a wake is made only when one is owed, and
     * each owed wake is the mark of one registration (the +1: the close's). */
    cr_assert(st.producer_wakes <= sleeps + 1, "wake calls %lu > sleep episodes %lu",
                  (unsigned long)st.producer_wakes, (unsigned long)sleeps);
    munmap(C, sizeof *C);
}

/* The library's default: a fence-only publisher (shm__bcast_hook_membarrier_publisher 0). */
static void run(int nsubs, uint64_t count, int stretched)
{
    run_hs(nsubs, count, stretched, 1, 0);
}

Test(SUITE, many_subscribers_switching_spin_and_sleep_lose_no_wakeup)
{
#ifdef CT_BWAKE_THREADS
    if (ct_stress())
        run(16, 400000, 0);
    else
        run(6, ct_scaled(4000, 1000), 0);
#else
    if (ct_stress())
        run(32, 200000, 0);
    else
        run(8, ct_scaled(3000, 1000), 0);
#endif
}

Test(SUITE, a_wake_that_takes_a_registration_for_an_older_message_is_not_lost)
{
    run(2, ct_stress() ? 2000 : 60, 1);
}

#ifndef CT_BWAKE_THREADS
/* The handshake pairings (spec §5.7): a membarrier publisher (no fence per publish) with
 * subscribers that cannot issue the barrier (they sleep in 1 ms slices), and a fence-only
 * publisher (word 0) with subscribers that could issue it (they need not). */
Test(SUITE, membarrier_publisher_with_fence_only_subscribers_loses_no_wakeup)
{
    run_hs(6, ct_stress() ? 100000 : ct_scaled(1500, 500), 0, 0, 1);
    run_hs(2, ct_stress() ? 2000 : 30, 1, 0, 2);
}

Test(SUITE, fence_only_publisher_with_membarrier_subscribers_loses_no_wakeup)
{
    run_hs(6, ct_stress() ? 100000 : ct_scaled(1500, 500), 0, 1, 0);
    run_hs(2, ct_stress() ? 2000 : 30, 1, 1, 0);
}
#endif

#ifndef CT_BWAKE_THREADS
/* The handshake word across publishers (spec §3.2, §5.2, §5.8): a membarrier publisher
 * advertises 1; its clean close resets it to 0, so a successor that does not advertise
 * (a fence-only side leaves the word as it finds it) is never taken for a membarrier
 * publisher; a membarrier successor advertises 1 again. */
Test(SUITE, a_clean_close_resets_the_publisher_handshake_word)
{
    char name[64];
    ct_name(name, "bwhs");
    shm_channel_t *pub = NULL, *sub = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE,
                                            NULL, 0600), 0);
    cr_assert_eq(shm_channel_open_broadcast(&sub, name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0), 0);
    const struct shm__bcast_header *h = sub->bc.hdr;
    uint32_t mine = shm__hs_register();
    cr_assert_eq(h->publisher_handshake, SHM__HS_FENCE, "the library's default: fence");
    shm_channel_close(pub);
    shm__bcast_hook_membarrier_publisher = 1;
    cr_assert_eq(shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER, 0, NULL, 0), 0);
    cr_assert_eq(h->publisher_handshake, mine);
    shm_channel_close(pub);
    cr_assert_eq(h->publisher_handshake, SHM__HS_FENCE, "reset at the clean close");
    int saved = shm__hook_handshake_fence_only;
    shm__hook_handshake_fence_only = 1; /* a successor that knows no such word */
    cr_assert_eq(shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER, 0, NULL, 0), 0);
    shm__hook_handshake_fence_only = saved;
    cr_assert_eq(h->publisher_handshake, SHM__HS_FENCE);
    shm_channel_close(pub);
    cr_assert_eq(shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER, 0, NULL, 0), 0);
    cr_assert_eq(h->publisher_handshake, mine);
    shm__bcast_hook_membarrier_publisher = 0;
    shm_channel_close(pub);
    shm_channel_close(sub);
}
#endif
