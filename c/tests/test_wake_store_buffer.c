/* The stream's wake handshake (spec/README.md §5.10) where x86 can break it: a store-load
 * reordering. Each side that publishes stores its position, then loads the peer's waiting
 * flag; a side about to sleep stores its flag, then re-loads the peer's position. One of the
 * two must see the other's store: a full fence on both sides (a fence side, layout 1.0), or
 * a membarrier issued by the sleeper for a publisher that runs none (both sides registered).
 * A missing fence lets the load pass the store, which waits in the store buffer until its
 * cache line arrives: tens of nanoseconds, which a delay cannot widen (time drains the
 * buffer), so earlier stress tests met it a few times in 40,000 rounds, or never.
 *
 * Two things make it meet here, every few rounds:
 *  - the side whose store must not be passed (the "stuffer") fills its store buffer with slow
 *    stores first: one word in each of 40 cache lines that are in no cache (a 64 MiB
 *    buffer, a new line each time: ct_sbuf.h), as a side copying a message to or from cold
 *    memory would.
 *    x86 commits stores in order, so the store of the handshake waits behind them for about a
 *    microsecond, while the load after it runs at once;
 *  - the other side starts its own step when the stuffer signals (on the test's control
 *    page) that it is about to take its step, so that the two steps overlap.
 * Steps (one test each, both sides pinned to their own CPU):
 *  - release: the consumer releases the older of two 504-byte messages that fill the 1 KiB
 *    ring, while the producer tries to write a third (spin 0): it sleeps at once (§5.5 step 5);
 *  - publish: the producer writes one message while the consumer, on the empty ring, starts
 *    to read (spin 0) and sleeps (§5.4 step 7);
 *  - sleep: the consumer, stuffed, starts to read on the empty ring and sleeps, while the
 *    producer writes one message (§5.6 step 2: the sleeper's own store of its flag);
 * with both sides fence sides, and the publish step also with a registered producer and a
 * fence consumer (it must fence: its peer issues no membarrier) and with both registered (no
 * fence: the consumer's membarrier drains the producer's store buffer; §5.10's design).
 * After each step the side that took it waits on the control page (not on the ring) for the
 * other to finish its call: a missed wake-up leaves the sleeper asleep for good (liveness
 * slice one hour) while what it waits for is there. The test's own process watches for that
 * state (a side flagged waiting, its condition met, no position moving for STALL_NS): no
 * correct run holds it for long.
 *
 * Measured on a 2-core AMD EPYC (Zen 3) KVM guest: each fence the mutations of
 * scripts/mutations (ring.c, channel.c, handshake.h) remove costs a lost wake-up within the
 * first few hundred rounds, most within ten (release step: 40 slow stores, the first or
 * second producer sleep; 8: after ~365 rounds; none: the producer never even sleeps, its
 * re-check always sees the release). The right code: 10-80% of rounds sleep, none lost in
 * 100,000. 600 rounds per test (300 at the sanitizer scale); SHM_CHANNEL_STRESS=1: a million.
 * Each round is a sleep and a wake-up: on a loaded machine the scheduler's latency, not the
 * CPU, sets the test's time. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomics.h"
#include "ct.h"
#include "ct_sbuf.h"
#include "handshake.h"
#include "hooks.h"
#include "layout.h"

TestSuite(wake_store_buffer, .init = ct_setup, .fini = ct_teardown, .timeout = 300);

#define CAP 1024u
#define LEN 504u /* CAP / 2 - 8: two records fill the ring */
#define STALL_NS (5 * CT_SEC)

enum step { RELEASE, PUBLISH, SLEEP };

static char name[64];
static uint64_t rounds;
static enum step step;
static int p_knob, c_knob; /* shm__hook_handshake_fence_only of each side */

static int write_msg(shm_channel_t *ch, uint64_t i)
{
    uint64_t buf[LEN / 8];
    for (unsigned k = 0; k < LEN / 8; k++)
        buf[k] = i * 1000 + k;
    return shm_channel_write(ch, buf, LEN, -1);
}

static int check_msg(const void *p, uint64_t len, uint64_t i)
{
    return len == LEN && ((const uint64_t *)p)[1] == i * 1000 + 1 ? 0 : -1;
}

static int read_msg(shm_channel_t *ch, uint64_t i)
{
    const void *p;
    uint64_t len;
    int rc = shm_channel_peek(ch, &p, &len, -1);
    if (rc)
        return rc;
    if (check_msg(p, len, i)) {
        ct_st(&ct_ctl->bad, i + 1);
        return -EBADMSG;
    }
    return shm_channel_release(ch);
}

static shm_channel_t *open_side(int role, int knob)
{
    shm__hook_handshake_fence_only = knob;
    ct_sbuf_side(role == SHM_CHANNEL_PRODUCER ? 0 : 1);
    shm_channel_t *ch = NULL;
    if (shm_channel_open(&ch, name, (uint32_t)role, SHM_CHANNEL_CREATE, CAP, 0) != 0)
        return NULL;
    shm_channel_set_spin(ch, 0); /* to the sleep step at once */
    return ch;
}

static int producer_main(void *arg)
{
    (void)arg;
    shm_channel_t *ch = open_side(SHM_CHANNEL_PRODUCER, p_knob);
    if (!ch || (step == PUBLISH && ct_sbuf_setup()))
        return 2;
    int rc = 0;
    if (step == RELEASE)
        for (uint64_t i = 0; rc == 0 && i < 2; i++)
            rc = write_msg(ch, i);
    for (uint64_t i = 1; rc == 0 && i <= rounds && !ct_ld(&ct_ctl->stop); i++) {
        if (step == RELEASE) {
            /* The ring holds i - 1 and i; i + 1 fits once the consumer releases i - 1. */
            ct_sbuf_await(&ct_ctl->go, i);
            ct_sbuf_jitter(i);
            if ((rc = write_msg(ch, i + 1)) == 0)
                ct_st(&ct_ctl->acked, i);
        } else if (step == PUBLISH) {
            ct_sbuf_await(&ct_ctl->acked, i - 1); /* the ring is empty */
            ct_st(&ct_ctl->go, i);
            ct_sbuf_stuff(i);
            rc = write_msg(ch, i);
        } else {
            ct_sbuf_await(&ct_ctl->go, i);
            ct_sbuf_jitter(i);
            rc = write_msg(ch, i);
            ct_sbuf_await(&ct_ctl->acked, i);
        }
    }
    return ct_sbuf_finish(ch, rc, 0);
}

static int consumer_main(void *arg)
{
    (void)arg;
    shm_channel_t *ch = open_side(SHM_CHANNEL_CONSUMER, c_knob);
    if (!ch || (step != PUBLISH && ct_sbuf_setup()))
        return 2;
    int rc = 0;
    for (uint64_t i = 1; rc == 0 && i <= rounds && !ct_ld(&ct_ctl->stop); i++) {
        if (step == RELEASE) {
            const void *p;
            uint64_t len;
            ct_sbuf_await(&ct_ctl->acked, i - 1); /* the ring holds i - 1 and i */
            if ((rc = shm_channel_peek(ch, &p, &len, -1)) != 0)
                break;
            if (check_msg(p, len, i - 1)) {
                ct_st(&ct_ctl->bad, i);
                break;
            }
            ct_st(&ct_ctl->go, i);
            ct_sbuf_stuff(i);
            rc = shm_channel_release(ch);
            ct_sbuf_await(&ct_ctl->acked, i);
        } else if (step == PUBLISH) {
            ct_sbuf_await(&ct_ctl->go, i);
            ct_sbuf_jitter(i);
            if ((rc = read_msg(ch, i)) == 0)
                ct_st(&ct_ctl->acked, i);
        } else {
            ct_st(&ct_ctl->go, i);
            ct_sbuf_stuff(i);
            if ((rc = read_msg(ch, i)) == 0)
                ct_st(&ct_ctl->acked, i);
        }
    }
    return ct_sbuf_finish(ch, rc, 1);
}

static void run(enum step s, int pk, int ck, const char *what)
{
    static const char *const names[] = {"release", "publish", "sleep"};
    rounds = ct_stress() ? 1000000 : ct_scaled(600, 300);
    step = s;
    p_knob = pk;
    c_knob = ck;
    ct_sbuf_ctl_map();
    ct_name(name, "sbuf");
    pid_t pp = ct_fork(producer_main, NULL), pc = ct_fork(consumer_main, NULL);
    /* The header, once either child has created the segment. */
    struct shm__header *h =
        ct_map_segment(name, SHM_CHANNEL_HEADER_SIZE + CAP, SHM_CHANNEL_HEADER_SIZE);
    uint64_t lost = 0;
    struct ct_stall stall = CT_STALL_INIT;
    while (ct_sbuf_running(rounds)) {
        uint64_t w = shm__load_acquire(&h->write_pos), r = shm__load_acquire(&h->read_pos);
        /* A side asleep although what it waits for is there. */
        int stuck = (shm__load_acquire(&h->producer_waiting) && w - r <= CAP - 512) ||
                    (shm__load_acquire(&h->consumer_waiting) && w != r);
        if (ct_stalled(&stall, stuck, w, r, STALL_NS)) {
            lost++;
            fprintf(stderr, "lost wake-up (%s): w=%llu r=%llu\n", names[s],
                    (unsigned long long)w, (unsigned long long)r);
            ct_st(&ct_ctl->stop, 1);
            syscall(SYS_futex, &h->read_seq, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
            syscall(SYS_futex, &h->write_seq, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
        }
        ct_sleep_ms(5);
    }
    uint64_t sleeps = shm__load_relaxed(s == RELEASE ? &h->producer_sleeps : &h->consumer_sleeps);
    uint64_t done = ct_ld(&ct_ctl->acked);
    uint32_t p_hs = shm__load_relaxed(&h->producer_handshake);
    ct_st(&ct_ctl->stop, 1);
    int sp = ct_wait(pp), sc = ct_wait(pc);
    munmap(h, SHM_CHANNEL_HEADER_SIZE);
    fprintf(stderr, "store buffer, %s step, %s: %llu of %llu rounds, %llu sleeps, lost %llu\n",
            names[s], what, (unsigned long long)done, (unsigned long long)rounds,
            (unsigned long long)sleeps, (unsigned long long)lost);
    cr_assert_eq(lost, 0, "%s step, %s: a wake-up was lost", names[s], what);
    cr_assert_eq(ct_ld(&ct_ctl->bad), 0, "round %llu: wrong message",
                 (unsigned long long)ct_ctl->bad);
    cr_assert(sp == 0 && sc == 0, "producer %d (%d), consumer %d (%d)", sp, ct_ctl->rc[0], sc,
              ct_ctl->rc[1]);
    cr_assert_eq(done, rounds);
    /* Both registered: the consumer's membarrier drains the producer's store buffer before
     * its re-check, which then finds the message: it hardly ever sleeps (without the
     * barrier, most rounds sleep and the first few lose their wake-up). */
    if (pk || ck)
        cr_assert(sleeps > 0, "nobody slept: the step was never raced");
    cr_assert_eq(p_hs, pk ? SHM__HS_FENCE : shm__hs_register());
    munmap(ct_ctl, sizeof *ct_ctl);
}

/* release_fence_removed (ring.c) */
Test(wake_store_buffer, release_both_fence)
{
    run(RELEASE, 1, 1, "both fence");
}

/* publish_fence_removed (ring.c), fast_publish_always (handshake.h) */
Test(wake_store_buffer, publish_both_fence)
{
    run(PUBLISH, 1, 1, "both fence");
}

/* fast_publish_against_fence_peer (handshake.h): a registered producer must fence when its
 * consumer issues no membarrier. */
Test(wake_store_buffer, publish_membarrier_producer_fence_consumer)
{
    run(PUBLISH, 0, 1, "membarrier producer, fence consumer");
}

/* Both registered: the producer publishes without a fence, by design; the consumer's
 * membarrier before it sleeps orders the producer's store (sleeper_membarrier_skipped). */
Test(wake_store_buffer, publish_both_membarrier)
{
    run(PUBLISH, 0, 0, "both membarrier");
}

/* wait_fence_removed (channel.c): the sleeper's own flag store must not be passed by its
 * re-check of the producer's position. */
Test(wake_store_buffer, sleep_both_fence)
{
    run(SLEEP, 1, 1, "both fence");
}
