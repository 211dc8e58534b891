/* The asymmetric wake handshake (spec §5.10) under stress: two real processes, a producer
 * and a consumer on a 1 KiB ring, run hundreds of thousands of sleep/wake cycles (millions
 * with SHM_CHANNEL_STRESS=1), each switching at random between sleeping at once (spin 0),
 * short spins and the default spin, and pausing at random so that the other side fills or
 * drains the ring and sleeps too. Every pairing of handshakes runs: both membarrier, both
 * fence (as a layout-1.0 side or one whose membarrier registration failed: the knob
 * shm__hook_handshake_fence_only), and each mixed pairing.
 *
 * A lost wake-up is detected by state, not by time bounds on the transport: the liveness
 * slice is one hour (shm__hook_liveness_slice_ns), so a missed wake leaves a side asleep
 * for good. The test's own process watches the header: a side whose waiting flag is set
 * while what it waits for is there (consumer: write_pos != read_pos; producer: the ring is
 * empty) and whose peer is itself waiting or finished, with neither position moving for 10
 * s, is a lost wake-up (both sides asleep at once, each waiting for the other, is a state no
 * correct run can hold for long: a publish or release that precedes a sleep is followed by
 * a wake, or seen by the sleeper's re-check). The watcher counts it, wakes the sleeper with
 * a FUTEX_WAKE of its own so the run goes on, and the test requires the count to be 0.
 * Every message is checked (sequence, length, content).
 *
 * A one-way stream masks most lost wake-ups (the producer's next publish sees the flag and
 * wakes the sleeper). The ping-pong tests do not: each side publishes one message and then
 * waits for the reply, so a missed wake-up leaves both asleep for good; and each side spins a
 * random time before sleeping (0 to 20 us, about one round trip), so its sleep step often
 * meets the peer's publish at the same moment, the race the handshake must win. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomics.h"
#include "ct.h"
#include "handshake.h"
#include "hooks.h"
#include "layout.h"

TestSuite(handshake, .init = ct_setup, .fini = ct_teardown, .timeout = 1800);

#define CAP 1024u
#define MAXLEN 120u
#define BIGLEN 504u /* CAP / 2 - 8 */
#define STALL_NS (10 * CT_SEC)

struct ctl {
    uint64_t p_done, c_done, stop;
    uint64_t bad;     /* first bad message's sequence + 1 */
    int rc_p, rc_c;
    char msg[160];
};
static struct ctl *ctl;

struct cfg {
    const char *name;
    int p_knob, c_knob; /* shm__hook_handshake_fence_only of each side */
    uint64_t count;
    uint64_t seed;
    int handover; /* the consumer closes halfway and takes the role again as a 1.0 side */
    int big;      /* 8 B and 504 B messages in turn (big_len) */
};

/* 8 B and 504 B (the largest) in turn: a 504 B record then starts 16 bytes past a multiple
 * of 512 and the next one needs padding, so the producer finds the ring full while it holds
 * a single big message and sleeps until the consumer has released nearly everything: the
 * consumer's last release before it sleeps itself is the one wake the producer gets. */
static uint64_t big_len(uint64_t i)
{
    return (i & 1) ? BIGLEN : 8;
}

/* A random wait-behaviour switch every few dozen messages, and random pauses. */
static void vary(shm_channel_t *ch, uint64_t r)
{
    static const uint64_t spins[4] = {0, 0, 2000, SHM_CHANNEL_DEFAULT_SPIN_NS};
    shm_channel_set_spin(ch, spins[r & 3]);
}

static void pause_a_little(uint64_t r)
{
    unsigned n = (unsigned)(r % 1000);
    for (unsigned i = 0; i < n; i++)
        shm__cpu_relax();
}

static void wait_stop(void)
{
    while (!ct_ld(&ctl->stop))
        ct_sleep_ms(1);
}

static int producer_main(void *arg)
{
    const struct cfg *c = arg;
    shm__hook_handshake_fence_only = c->p_knob;
    shm__hook_liveness_slice_ns = 3600ull * CT_SEC;
    ct_pin(0);
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open(&ch, c->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, CAP, 0);
    if (rc) {
        ctl->rc_p = rc;
        return 1;
    }
    uint8_t buf[BIGLEN];
    for (uint64_t i = 0; i < c->count; i++) {
        uint64_t r = ct_mix(c->seed ^ (i * 2 + 1));
        if ((i & 31) == 0)
            vary(ch, r >> 8);
        if ((r & 0xff) < 64)
            pause_a_little(r >> 16);
        uint64_t len = c->big ? big_len(i) : ct_msg_len(c->seed, i, MAXLEN);
        ct_msg_fill(buf, c->seed, i, len);
        while ((rc = shm_channel_write(ch, buf, len, -1)) == -EPIPE && c->handover)
            ct_sleep_ms(1); /* full while the consumer hands over: wait for its successor */
        if (rc != 0) {
            ctl->rc_p = rc;
            snprintf(ctl->msg, sizeof ctl->msg, "write %llu: %d", (unsigned long long)i, rc);
            return 1;
        }
    }
    ct_st(&ctl->p_done, 1);
    wait_stop(); /* no close (its wake would end a lost wake-up) until the watcher is done */
    shm_channel_close(ch);
    return 0;
}

static int consumer_main(void *arg)
{
    const struct cfg *c = arg;
    shm__hook_handshake_fence_only = c->c_knob;
    shm__hook_liveness_slice_ns = 3600ull * CT_SEC;
    ct_pin(1);
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open(&ch, c->name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, CAP, 0);
    if (rc) {
        ctl->rc_c = rc;
        return 1;
    }
    uint8_t buf[BIGLEN];
    for (uint64_t i = 0; i < c->count; i++) {
        if (c->handover && i == c->count / 2) {
            /* A clean close, then a successor that knows nothing of handshake words. */
            shm_channel_close(ch);
            shm__hook_handshake_fence_only = 1;
            if ((rc = shm_channel_open(&ch, c->name, SHM_CHANNEL_CONSUMER, 0, CAP, 0)) != 0) {
                ctl->rc_c = rc;
                return 1;
            }
        }
        uint64_t r = ct_mix(c->seed ^ (i * 2));
        if ((i & 31) == 0)
            vary(ch, r >> 8);
        if ((r & 0xff) < 64)
            pause_a_little(r >> 16);
        uint64_t len = 0;
        if ((rc = shm_channel_read(ch, buf, sizeof buf, &len, -1)) != 0) {
            ctl->rc_c = rc;
            snprintf(ctl->msg, sizeof ctl->msg, "read %llu: %d", (unsigned long long)i, rc);
            return 1;
        }
        if (c->big ? ct_msg_verify(buf, len, c->seed, i, big_len(i)) != 0
                   : ct_msg_check(buf, len, c->seed, i, MAXLEN) != 0) {
            ct_st(&ctl->bad, i + 1);
            return 1;
        }
    }
    ct_st(&ctl->c_done, 1);
    wait_stop();
    shm_channel_close(ch);
    return 0;
}

static void futex_wake_all(uint32_t *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

/* The header of channel `name`, once a child has created it. */
static struct shm__header *map_header(const char *name)
{
    return ct_map_segment(name, SHM_CHANNEL_HEADER_SIZE + CAP, SHM_CHANNEL_HEADER_SIZE);
}

struct outcome {
    uint64_t lost, p_sleeps, c_sleeps, wakes;
    uint32_t p_hs, c_hs;
};

/* Run one pairing; the watcher loop is this process. */
static struct outcome run(int p_knob, int c_knob, uint64_t count, uint64_t seed, int handover)
{
    char name[64];
    ct_name(name, "hs");
    memset(ctl, 0, sizeof *ctl);
    struct cfg c = {name, p_knob, c_knob, count, seed, handover & 1, handover >> 1};
    pid_t pp = ct_fork(producer_main, &c);
    pid_t pc = ct_fork(consumer_main, &c);
    struct shm__header *h = map_header(name); /* either child creates it */

    struct outcome o = {0};
    struct ct_stall stall = CT_STALL_INIT;
    while (!(ct_ld(&ctl->p_done) && ct_ld(&ctl->c_done))) {
        if (ctl->rc_p || ctl->rc_c || ct_ld(&ctl->bad))
            break;
        uint64_t w = shm__load_acquire(&h->write_pos), r = shm__load_acquire(&h->read_pos);
        uint32_t cw = shm__load_acquire(&h->consumer_waiting);
        uint32_t pw = shm__load_acquire(&h->producer_waiting);
        /* Each side waits for something that is there, and its peer cannot act for it. */
        int c_stuck = cw && w != r && (pw || ct_ld(&ctl->p_done));
        int p_stuck = pw && w == r && cw;
        if (ct_stalled(&stall, c_stuck || p_stuck, w, r, STALL_NS)) {
            o.lost++;
            fprintf(stderr, "lost wake-up: w=%llu r=%llu cw=%u pw=%u\n", (unsigned long long)w,
                    (unsigned long long)r, cw, pw);
            futex_wake_all(&h->write_seq);
            futex_wake_all(&h->read_seq);
        }
        o.p_hs = shm__load_relaxed(&h->producer_handshake);
        o.c_hs = shm__load_relaxed(&h->consumer_handshake);
        ct_sleep_ms(5);
    }
    o.p_sleeps = shm__load_relaxed(&h->producer_sleeps);
    o.c_sleeps = shm__load_relaxed(&h->consumer_sleeps);
    o.wakes = shm__load_relaxed(&h->producer_wakes) + shm__load_relaxed(&h->consumer_wakes);
    ct_st(&ctl->stop, 1);
    int sp = ct_wait(pp), sc = ct_wait(pc);
    munmap(h, SHM_CHANNEL_HEADER_SIZE);
    cr_assert_eq(ct_ld(&ctl->bad), 0, "message %llu corrupt or out of order",
                 (unsigned long long)ct_ld(&ctl->bad) - 1);
    cr_assert(sp == 0 && sc == 0, "producer %d, consumer %d (%d, %d): %s", sp, sc, ctl->rc_p,
              ctl->rc_c, ctl->msg);
    fprintf(stderr,
            "handshake p=%s c=%s: %llu msgs, sleeps p=%llu c=%llu, wakes %llu, lost %llu\n",
            p_knob ? "fence" : "auto", c_knob ? "fence" : "auto", (unsigned long long)count,
            (unsigned long long)o.p_sleeps, (unsigned long long)o.c_sleeps,
            (unsigned long long)o.wakes, (unsigned long long)o.lost);
    return o;
}

static uint64_t stress_count(void)
{
    return ct_stress() ? 2000000 : ct_scaled(16000, 4000);
}

static void setup_ctl(void)
{
    ctl = ct_shared(sizeof *ctl);
}

/* Whether this kernel lets us register (the words say membarrier only then). */
static uint32_t expected_hs(int knob)
{
    return knob ? SHM__HS_FENCE : shm__hs_register();
}

static void pairing(int p_knob, int c_knob, uint64_t seed)
{
    setup_ctl();
    struct outcome o = run(p_knob, c_knob, stress_count(), seed, 0);
    cr_assert_eq(o.lost, 0, "%llu lost wake-ups", (unsigned long long)o.lost);
    /* The producer sleeps on a full ring that only the consumer's last release frees. */
    o = run(p_knob, c_knob, stress_count() / 2, seed + 100, 2);
    cr_assert_eq(o.lost, 0, "%llu lost wake-ups", (unsigned long long)o.lost);
    cr_assert(o.p_sleeps > 0 && o.c_sleeps > 0, "both sides must sleep (p %llu, c %llu)",
              (unsigned long long)o.p_sleeps, (unsigned long long)o.c_sleeps);
    cr_assert_eq(o.p_hs, expected_hs(p_knob));
    cr_assert_eq(o.c_hs, expected_hs(c_knob));
}

Test(handshake, both_membarrier)
{
    pairing(0, 0, 11);
}

Test(handshake, both_fence)
{
    pairing(1, 1, 12);
}

Test(handshake, membarrier_producer_fence_consumer)
{
    pairing(0, 1, 13);
}

Test(handshake, fence_producer_membarrier_consumer)
{
    pairing(1, 0, 14);
}

/* A side whose membarrier fails altogether (knob 2) next to a registered peer: the peer
 * fences (the side's word is 0), and the side, unable to order the peer's unfenced publishes
 * that may still be in flight, bounds its sleeps (SHM__HS_UNSURE_SLICE_NS). No message lost,
 * no hang; lost wake-ups cannot be counted here (the bounded sleep hides them). */
Test(handshake, barrier_unavailable)
{
    setup_ctl();
    struct outcome o = run(0, 2, ct_scaled(8000, 3000), 15, 0);
    cr_assert_eq(o.c_hs, SHM__HS_FENCE);
    o = run(2, 0, ct_scaled(8000, 3000), 16, 0);
    cr_assert_eq(o.p_hs, SHM__HS_FENCE);
}

/* A membarrier consumer closes cleanly and a layout-1.0 consumer (which never touches the
 * words) takes the role: the close left the word at fence, so the registered producer fences
 * again, and the 1.0 consumer's sleeps (no membarrier) lose nothing. */
Test(handshake, successor_after_close)
{
    setup_ctl();
    struct outcome o = run(0, 0, stress_count(), 17, 1);
    cr_assert_eq(o.lost, 0, "%llu lost wake-ups", (unsigned long long)o.lost);
    cr_assert_eq(o.c_hs, SHM__HS_FENCE);
    cr_assert_eq(o.p_hs, expected_hs(0));
}

/* ---- ping-pong: every publish is the last before the publisher waits ------------------ */

struct pp_cfg {
    const char *ab, *ba; /* A -> B and B -> A */
    int knob_a, knob_b;
    uint64_t rounds;
    uint64_t seed;
};

static int pp_side(const struct pp_cfg *c, int a)
{
    shm__hook_handshake_fence_only = a ? c->knob_a : c->knob_b;
    shm__hook_liveness_slice_ns = 3600ull * CT_SEC;
    ct_pin(a ? 0 : 1);
    shm_channel_t *out = NULL, *in = NULL;
    int rc = shm_channel_open(&out, a ? c->ab : c->ba, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE,
                              CAP, 0);
    if (rc == 0)
        rc = shm_channel_open(&in, a ? c->ba : c->ab, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE,
                              CAP, 0);
    if (rc) {
        *(a ? &ctl->rc_p : &ctl->rc_c) = rc;
        return 1;
    }
    static const uint64_t spins[8] = {0, 300, 1000, 2000, 4000, 8000, 12000, 20000};
    uint64_t buf[4];
    for (uint64_t i = 0; i < c->rounds; i++) {
        uint64_t r = ct_mix(c->seed ^ (i * 4 + (uint64_t)a));
        shm_channel_set_spin(in, spins[r & 7]);
        uint64_t len = 0;
        if (a) {
            buf[0] = i;
            if ((rc = shm_channel_write(out, buf, 8 + (r >> 8) % 24, -1)) != 0)
                break;
            if ((rc = shm_channel_read(in, buf, sizeof buf, &len, -1)) != 0)
                break;
        } else {
            if ((rc = shm_channel_read(in, buf, sizeof buf, &len, -1)) != 0)
                break;
            if ((r & 0xf) == 0)
                pause_a_little(r >> 16);
            if ((rc = shm_channel_write(out, buf, len, -1)) != 0)
                break;
        }
        if (len < 8 || buf[0] != i) {
            ct_st(&ctl->bad, i + 1);
            return 1;
        }
    }
    if (rc) {
        *(a ? &ctl->rc_p : &ctl->rc_c) = rc;
        return 1;
    }
    ct_st(a ? &ctl->p_done : &ctl->c_done, 1);
    wait_stop();
    shm_channel_close(out);
    shm_channel_close(in);
    return 0;
}

static const struct pp_cfg *pp_arg;

static int pp_a(void *arg)
{
    (void)arg;
    return pp_side(pp_arg, 1);
}

static int pp_b(void *arg)
{
    (void)arg;
    return pp_side(pp_arg, 0);
}

/* Lost wake-ups of a ping-pong: a consumer flagged waiting with a message there, and no
 * position of either channel moving for STALL_NS (both sides are then asleep). */
static uint64_t pp_run(int knob_a, int knob_b, uint64_t rounds, uint64_t seed)
{
    setup_ctl();
    char ab[64], ba[64];
    ct_name(ab, "ab");
    ct_name(ba, "ba");
    struct pp_cfg c = {ab, ba, knob_a, knob_b, rounds, seed};
    pp_arg = &c;
    pid_t pa = ct_fork(pp_a, NULL), pb = ct_fork(pp_b, NULL);
    struct shm__header *h[2] = {map_header(ab), map_header(ba)};
    uint64_t lost = 0, sleeps = 0;
    struct ct_stall stall = CT_STALL_INIT;
    while (!(ct_ld(&ctl->p_done) && ct_ld(&ctl->c_done)) && !ctl->rc_p && !ctl->rc_c &&
           !ct_ld(&ctl->bad)) {
        uint64_t sig[2];
        int stuck = 0;
        for (int k = 0; k < 2; k++) {
            uint64_t w = shm__load_acquire(&h[k]->write_pos);
            uint64_t r = shm__load_acquire(&h[k]->read_pos);
            sig[k] = w * 3 + r;
            stuck |= shm__load_acquire(&h[k]->consumer_waiting) && w != r;
        }
        if (ct_stalled(&stall, stuck, sig[0], sig[1], STALL_NS)) {
            lost++;
            fprintf(stderr, "lost wake-up in a ping-pong\n");
            for (int k = 0; k < 2; k++)
                futex_wake_all(&h[k]->write_seq);
        }
        ct_sleep_ms(5);
    }
    for (int k = 0; k < 2; k++)
        sleeps += shm__load_relaxed(&h[k]->consumer_sleeps);
    ct_st(&ctl->stop, 1);
    int sa = ct_wait(pa), sb = ct_wait(pb);
    for (int k = 0; k < 2; k++)
        munmap(h[k], SHM_CHANNEL_HEADER_SIZE);
    cr_assert_eq(ct_ld(&ctl->bad), 0, "round %llu: wrong reply",
                 (unsigned long long)ct_ld(&ctl->bad) - 1);
    cr_assert(sa == 0 && sb == 0, "A %d, B %d (%d, %d)", sa, sb, ctl->rc_p, ctl->rc_c);
    fprintf(stderr, "ping-pong a=%s b=%s: %llu rounds, %llu sleeps, lost %llu\n",
            knob_a ? "fence" : "auto", knob_b ? "fence" : "auto", (unsigned long long)rounds,
            (unsigned long long)sleeps, (unsigned long long)lost);
    cr_assert(sleeps > 0, "nobody slept");
    return lost;
}

static uint64_t pp_rounds(void)
{
    return ct_stress() ? 1000000 : ct_scaled(30000, 4000);
}

Test(handshake, pingpong_both_membarrier)
{
    cr_assert_eq(pp_run(0, 0, pp_rounds(), 21), 0);
}

Test(handshake, pingpong_both_fence)
{
    cr_assert_eq(pp_run(1, 1, pp_rounds(), 22), 0);
}

Test(handshake, pingpong_mixed)
{
    cr_assert_eq(pp_run(0, 1, pp_rounds(), 23), 0);
}
