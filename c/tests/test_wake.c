/* Sleep and wake, made visible. Every futex sleep of a blocked call is cut into liveness
 * slices (50 ms by default), so a lost wake-up normally costs at most a slice and nothing
 * notices. Here the slice is 30 s (shm__hook_liveness_slice_ns): a waiter must be woken by
 * its peer's publish, release or close, promptly (far below the slice), or the round fails.
 *
 * Peers are processes (fork) in test_wake, threads in test_wake_threads (same source). Each
 * state a round depends on is established by counters, never by sleeping: the waiter writes
 * its own sleep (or empty-event) counter into a small shared area before it waits, and the
 * waker acts only once the counter in the segment has moved past it.
 *
 * Counter invariants (spec §5.6; the C library's counters):
 *  - A wake is a system call made only when the peer's waiting flag was seen set. The flag is
 *    set before the waiter's final re-check, so a wake can also hit a waiter that then found
 *    the message and did not sleep; but with one publish per round and the flag cleared before
 *    the waiter's call returns, wakes <= rounds, and == rounds when every round's waiter was
 *    seen asleep (its fence precedes its sleep-counter store, the waker's fence follows its
 *    load of that counter, so the waker sees the flag).
 *  - Every sleep ends by a wake, a timeout, a signal or a verdict. A wake is one bump of the
 *    futex word and one FUTEX_WAKE: the bump can end the sleep that loaded the old word, the
 *    FUTEX_WAKE a later one. With no timeouts (30 s slice), no signals, and no verdict but a
 *    final close (one more bump and FUTEX_WAKE): sleeps <= 2 * (wakes + 1).
 *  - A side that is busy (not in a blocking call) is never woken: producer_wakes stays put
 *    while the producer writes thousands of messages to a busy consumer, and the waiting flag
 *    is 0 whenever a blocking call has returned.
 * And the spin phase: with the default spin, a ping-pong between two processes almost never
 * sleeps; with spin 0 it sleeps nearly every round. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atomics.h"
#include "ct.h"
#include "hooks.h"
#include "layout.h"

TestSuite(wake, .init = ct_setup, .fini = ct_teardown, .timeout = 300);

#define SLICE_NS (30 * CT_SEC) /* a lost wake-up would cost this */
#define LATENCY_BOUND (10 * CT_SEC) /* generous (a loaded VM stalls a process for seconds) */
#define CALL_TIMEOUT (25 * CT_SEC) /* a lost wake-up ends the call only at this deadline */
#define WAIT_STATE (40 * CT_SEC) /* bound on waiting for a peer's state (> CALL_TIMEOUT) */

/* Shared by the test and its peer (MAP_SHARED anonymous, so across fork() too). */
struct side {
    uint64_t round;   /* the waiter: k + 1 when it is about to wait in round k */
    uint64_t base;    /* the waiter's own counter just before that wait */
    uint64_t t_ns;    /* the waker: when its publish, release or close returned */
    uint64_t t_round; /* ... in round t_round - 1 */
    uint64_t go;      /* phase control */
    uint64_t max_lat; /* the waiter's slowest wake-up */
    char msg[200];    /* the peer's failure */
};
static struct side *side;

static void side_map(void)
{
    side = ct_shared(sizeof *side);
}

/* Wait until *p >= v (bounded). busy: spin (the racing test wants to act at once). */
static int wait_geq(const void *p, int is32, uint64_t v, int busy)
{
    uint64_t t0 = ct_now_ns();
    for (unsigned i = 1;; i++) {
        uint64_t x = is32 ? __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE)
                          : __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
        if (x >= v)
            return 0;
        if ((i & 255) == 0 && ct_now_ns() - t0 > WAIT_STATE)
            return -1;
        if (!busy)
            usleep(50);
        else if ((i & 1023) == 0)
            sched_yield();
        else
            shm__cpu_relax();
    }
}
#define WAIT_GEQ(p, v, busy) wait_geq((p), sizeof(*(p)) == 4, (v), (busy))

/* A peer's failure: a message for the test, and a nonzero exit code. */
static int note(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(side->msg, sizeof side->msg, fmt, ap);
    va_end(ap);
    return code;
}

static void note_latency(uint64_t lat)
{
    if (lat > side->max_lat)
        side->max_lat = lat;
}

/* The waker: its call of round k (publish, release or close, wake included) has returned. */
static void waker_done(uint64_t k)
{
    ct_st(&side->t_ns, ct_now_ns());
    ct_st(&side->t_round, k + 1);
}

/* The waiter, whose call of round k returned at t_ret: how long after the waker's call
 * returned (0 if before). Measured from the end of the waker's call, so that a waker that is
 * descheduled between its publish and its stamp cannot pass for a lost wake-up. */
static uint64_t wake_latency(uint64_t k, uint64_t t_ret)
{
    if (WAIT_GEQ(&side->t_round, k + 1, 0) != 0)
        return UINT64_MAX;
    uint64_t t = ct_ld(&side->t_ns);
    return t_ret > t ? t_ret - t : 0;
}

/* ---- peers: processes or threads ---------------------------------------------------- */

#ifdef CT_WAKE_THREADS
struct peer {
    pthread_t t;
    int (*fn)(void *);
    void *arg;
    int rc;
};
static void *peer_main(void *a)
{
    struct peer *p = a;
    p->rc = p->fn(p->arg);
    return NULL;
}
static void peer_start(struct peer *p, int (*fn)(void *), void *arg)
{
    p->fn = fn;
    p->arg = arg;
    cr_assert_eq(pthread_create(&p->t, NULL, peer_main, p), 0);
}
static int peer_join(struct peer *p)
{
    pthread_join(p->t, NULL);
    return p->rc;
}
#else
struct peer {
    pid_t pid;
};
static void peer_start(struct peer *p, int (*fn)(void *), void *arg)
{
    p->pid = ct_fork(fn, arg);
}
static int peer_join(struct peer *p)
{
    return ct_wait(p->pid);
}
#endif

struct wargs {
    char name[64];
    uint64_t rounds;
};

static void slice_long(void)
{
    shm__hook_liveness_slice_ns = SLICE_NS; /* before any peer starts: fork() copies it */
}

static void slice_default(void)
{
    shm__hook_liveness_slice_ns = 50000000ull;
}

/* ---- a blocked reader is woken by each publish, and by the close ------------------------ */

static int slow_reader(void *arg)
{
    const struct wargs *a = arg;
    shm_channel_t *c;
    int rc = shm_channel_open(&c, a->name, SHM_CHANNEL_CONSUMER, 0, 0, 0);
    if (rc)
        return note(1, "consumer open: %s", shm_channel_strerror(rc));
    shm_channel_set_spin(c, 0);
    const struct shm__header *h = ct_map_header(a->name, 0);
    if (!h)
        return note(1, "map header");
    for (uint64_t k = 0; k <= a->rounds; k++) {
        ct_st(&side->base, shm__load_relaxed(&h->consumer_sleeps)); /* our own counter */
        ct_st(&side->round, k + 1);
        uint8_t buf[16];
        uint64_t len = 0;
        rc = shm_channel_read(c, buf, sizeof buf, &len, CALL_TIMEOUT);
        uint64_t lat = wake_latency(k, ct_now_ns());
        int last = k == a->rounds;
        if (last ? rc != -EPIPE : (rc != 0 || len != 8 || ct_msg_seq(buf) != k))
            return note(2, "round %lu: read: %s", (unsigned long)k, shm_channel_strerror(rc));
        if (lat > LATENCY_BOUND)
            return note(3, "round %lu: the reader was woken %.1f s after the %s (lost wake-up)",
                        (unsigned long)k, (double)lat / 1e9, last ? "close" : "publish");
        note_latency(lat);
        if (shm__load_relaxed(&h->consumer_waiting) != 0)
            return note(4, "round %lu: consumer_waiting still set after the read returned",
                        (unsigned long)k);
    }
    ct_unmap_header(h);
    shm_channel_close(c);
    return 0;
}

Test(wake, blocked_reader_is_woken_by_each_publish_and_by_close)
{
    side_map();
    slice_long();
    struct wargs a = {.rounds = ct_scaled(300, 100)};
    ct_name(a.name, "wr");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 4096, 0),
                 0);
    const struct shm__header *h = ct_map_header(a.name, 0);
    cr_assert(h != NULL);
    struct peer peer;
    peer_start(&peer, slow_reader, &a);
    for (uint64_t k = 0; k <= a.rounds; k++) {
        cr_assert_eq(WAIT_GEQ(&side->round, k + 1, 0), 0, "round %lu: reader never came", k);
        uint64_t base = ct_ld(&side->base);
        /* the reader is asleep in this round: its sleep counter moved */
        cr_assert_eq(WAIT_GEQ(&h->consumer_sleeps, base + 1, 0), 0,
                     "round %lu: the reader never slept (%s)", k, side->msg);
        if (k < a.rounds)
            cr_assert_eq(shm_channel_write(p, &k, 8, 0), 0);
        else
            shm_channel_close(p);
        waker_done(k);
    }
    int rc = peer_join(&peer);
    cr_assert_eq(rc, 0, "reader: %s", side->msg);
    uint64_t wakes = shm__load_relaxed(&h->producer_wakes);
    uint64_t sleeps = shm__load_relaxed(&h->consumer_sleeps);
    cr_assert_eq(wakes, a.rounds, "one wake per publish, each to a sleeping reader: %lu of %lu",
                 (unsigned long)wakes, (unsigned long)a.rounds);
    cr_assert(sleeps >= a.rounds + 1 && sleeps <= 2 * (wakes + 1),
              "every sleep ended by a wake or the close: %lu sleeps, %lu wakes",
              (unsigned long)sleeps, (unsigned long)wakes);
    cr_assert_eq(shm__load_relaxed(&h->consumer_wakes), 0, "the producer never waited");
    ct_unmap_header(h);
    slice_default();
}

/* ---- a blocked writer is woken by each release, and by the close ------------------------ */

#define WMSG 120 /* 8 of them fill a 1 KiB ring */

static int slow_writer(void *arg)
{
    const struct wargs *a = arg;
    shm_channel_t *p;
    int rc = shm_channel_open(&p, a->name, SHM_CHANNEL_PRODUCER, 0, 0, 0);
    if (rc)
        return note(1, "producer open: %s", shm_channel_strerror(rc));
    shm_channel_set_spin(p, 0);
    const struct shm__header *h = ct_map_header(a->name, 0);
    if (!h)
        return note(1, "map header");
    uint8_t buf[WMSG] = {0};
    while ((rc = shm_channel_write(p, buf, WMSG, 0)) == 0)
        ;
    if (rc != -EAGAIN)
        return note(1, "fill: %s", shm_channel_strerror(rc));
    for (uint64_t k = 0; k <= a->rounds; k++) {
        ct_st(&side->base, shm__load_relaxed(&h->producer_sleeps));
        ct_st(&side->round, k + 1);
        rc = shm_channel_write(p, buf, WMSG, CALL_TIMEOUT);
        uint64_t lat = wake_latency(k, ct_now_ns());
        int last = k == a->rounds;
        if (last ? rc != -EPIPE : rc != 0)
            return note(2, "round %lu: write: %s", (unsigned long)k, shm_channel_strerror(rc));
        if (lat > LATENCY_BOUND)
            return note(3, "round %lu: the writer was woken %.1f s after the %s (lost wake-up)",
                        (unsigned long)k, (double)lat / 1e9, last ? "close" : "release");
        note_latency(lat);
        if (shm__load_relaxed(&h->producer_waiting) != 0)
            return note(4, "round %lu: producer_waiting still set after the write returned",
                        (unsigned long)k);
    }
    ct_unmap_header(h);
    shm_channel_close(p);
    return 0;
}

Test(wake, blocked_writer_is_woken_by_each_release_and_by_close)
{
    side_map();
    slice_long();
    struct wargs a = {.rounds = ct_scaled(300, 100)};
    ct_name(a.name, "ww");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, a.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0),
                 0);
    const struct shm__header *h = ct_map_header(a.name, 0);
    cr_assert(h != NULL);
    struct peer peer;
    peer_start(&peer, slow_writer, &a);
    for (uint64_t k = 0; k <= a.rounds; k++) {
        cr_assert_eq(WAIT_GEQ(&side->round, k + 1, 0), 0, "round %lu: writer never came (%s)", k,
                     side->msg);
        uint64_t base = ct_ld(&side->base);
        cr_assert_eq(WAIT_GEQ(&h->producer_sleeps, base + 1, 0), 0,
                     "round %lu: the writer never slept (%s)", k, side->msg);
        if (k < a.rounds) {
            uint8_t buf[WMSG];
            uint64_t len;
            cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
        } else {
            shm_channel_close(c);
        }
        waker_done(k);
    }
    int rc = peer_join(&peer);
    cr_assert_eq(rc, 0, "writer: %s", side->msg);
    uint64_t wakes = shm__load_relaxed(&h->consumer_wakes);
    uint64_t sleeps = shm__load_relaxed(&h->producer_sleeps);
    cr_assert_eq(wakes, a.rounds, "one wake per release, each to a sleeping writer: %lu of %lu",
                 (unsigned long)wakes, (unsigned long)a.rounds);
    cr_assert(sleeps >= a.rounds + 1 && sleeps <= 2 * (wakes + 1),
              "every sleep ended by a wake or the close: %lu sleeps, %lu wakes",
              (unsigned long)sleeps, (unsigned long)wakes);
    cr_assert_eq(shm__load_relaxed(&h->producer_wakes), 0,
                 "the consumer only read a full ring: it never waited, so it was never woken");
    ct_unmap_header(h);
    slice_default();
}

/* ---- racing the sleep handshake ------------------------------------------------------ */

/* The publish lands while the reader is going to sleep: right after its empty-event counter
 * moves (it found the ring empty, and with spin 0 goes straight to: load the futex word, set
 * its waiting flag, full fence, re-check write_pos, sleep). Without the fence (or with the
 * flag set after the re-check), the store of the flag can be delayed past the re-check while
 * the producer's publish reads the flag still 0: nobody wakes the reader, which then sleeps
 * the whole slice. */
static int racing_reader(void *arg)
{
    const struct wargs *a = arg;
    shm_channel_t *c;
    int rc = shm_channel_open(&c, a->name, SHM_CHANNEL_CONSUMER, 0, 0, 0);
    if (rc)
        return note(1, "consumer open: %s", shm_channel_strerror(rc));
    shm_channel_set_spin(c, 0);
    const struct shm__header *h = ct_map_header(a->name, 0);
    if (!h)
        return note(1, "map header");
    for (uint64_t k = 0; k < a->rounds; k++) {
        ct_st(&side->base, shm__load_relaxed(&h->empty_events));
        ct_st(&side->round, k + 1);
        /* a little way still to go: the producer's publish lands before, in or after our
         * way to sleep */
        for (unsigned i = 0; i < 512; i++)
            (void)ct_ld(&side->round);
        uint8_t buf[16];
        uint64_t len = 0;
        rc = shm_channel_read(c, buf, sizeof buf, &len, CALL_TIMEOUT);
        uint64_t lat = wake_latency(k, ct_now_ns());
        if (rc != 0 || len != 8 || ct_msg_seq(buf) != k)
            return note(2, "round %lu: read: %s", (unsigned long)k, shm_channel_strerror(rc));
        if (lat > LATENCY_BOUND)
            return note(3, "round %lu: the reader was woken %.1f s after the publish (lost "
                        "wake-up)", (unsigned long)k, (double)lat / 1e9);
        note_latency(lat);
        if (shm__load_relaxed(&h->consumer_waiting) != 0)
            return note(4, "round %lu: consumer_waiting still set after the read returned",
                        (unsigned long)k);
    }
    ct_unmap_header(h);
    shm_channel_close(c);
    return 0;
}

Test(wake, publish_racing_the_readers_way_to_sleep_is_never_lost)
{
    side_map();
    slice_long();
    struct wargs a = {.rounds = ct_scaled(50000, 20000)};
    ct_name(a.name, "wrace");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 4096, 0),
                 0);
    const struct shm__header *h = ct_map_header(a.name, 0);
    cr_assert(h != NULL);
    struct peer peer;
    peer_start(&peer, racing_reader, &a);
    for (uint64_t k = 0; k < a.rounds; k++) {
        cr_assert_eq(WAIT_GEQ(&side->round, k + 1, 1), 0, "round %lu: reader never came (%s)", k,
                     side->msg);
        uint64_t r = ct_mix(k);
        if (r & 1) {
            /* Act once the reader found the ring empty, after 0 to 15 pauses (0 in a quarter
             * of the rounds). */
            uint64_t base = ct_ld(&side->base);
            cr_assert_eq(WAIT_GEQ(&h->empty_events, base + 1, 1), 0,
                         "round %lu: the reader never found the ring empty (%s)", k, side->msg);
            unsigned d = (unsigned)((r >> 8) % 64);
            for (unsigned i = 0; i < (d < 16 ? 0 : d % 16); i++)
                shm__cpu_relax();
        } else {
            /* Act 0 to 2047 loads of the reader's waiting flag (a few ns each) after the
             * reader said it is entering the read: spread over its way to sleep. Reading
             * that line keeps it shared here, so the reader's store of the flag waits longest
             * for ownership (in its store buffer: without the fence, past its re-check). */
            unsigned d = (unsigned)((r >> 8) % 2048);
            for (unsigned i = 0; i < d; i++)
                (void)shm__load_relaxed(&h->consumer_waiting);
        }
        cr_assert_eq(shm_channel_write(p, &k, 8, 0), 0);
        waker_done(k);
    }
    int rc = peer_join(&peer);
    cr_assert_eq(rc, 0, "reader: %s", side->msg);
    uint64_t wakes = shm__load_relaxed(&h->producer_wakes);
    uint64_t sleeps = shm__load_relaxed(&h->consumer_sleeps);
    fprintf(stderr, "racing: %lu rounds, %lu sleeps, %lu wakes, slowest wake-up %.0f us\n",
            (unsigned long)a.rounds, (unsigned long)sleeps, (unsigned long)wakes,
            (double)side->max_lat / 1e3);
    cr_assert(wakes <= a.rounds, "at most one wake per publish: %lu", (unsigned long)wakes);
    cr_assert(sleeps <= 2 * wakes, "every sleep ended by a wake: %lu sleeps, %lu wakes",
              (unsigned long)sleeps, (unsigned long)wakes);
    shm_channel_close(p);
    ct_unmap_header(h);
    slice_default();
}

/* ---- a busy side is never woken; the flag is down after every blocked call ---------------- */

#define BUSY_N 1000

static int busy_reader(void *arg)
{
    const struct wargs *a = arg;
    shm_channel_t *c;
    int rc = shm_channel_open(&c, a->name, SHM_CHANNEL_CONSUMER, 0, 0, 0);
    if (rc)
        return note(1, "consumer open: %s", shm_channel_strerror(rc));
    const struct shm__header *h = ct_map_header(a->name, 0);
    if (!h)
        return note(1, "map header");
    uint8_t buf[64];
    uint64_t len;
    uint64_t seq = 0;
    for (int phase = 0; phase < 2; phase++) {
        ct_st(&side->round, 2 * (uint64_t)phase + 1); /* attached, and busy elsewhere */
        if (WAIT_GEQ(&side->go, (uint64_t)phase + 1, 0))
            return note(1, "no go");
        for (int i = 0; i < BUSY_N; i++, seq++) {
            if ((rc = shm_channel_read(c, buf, sizeof buf, &len, CALL_TIMEOUT)) != 0 ||
                ct_msg_seq(buf) != seq)
                return note(2, "read %lu: %s", (unsigned long)seq, shm_channel_strerror(rc));
            if (shm__load_relaxed(&h->consumer_waiting) != 0)
                return note(4, "consumer_waiting set after a read returned");
        }
        if (phase == 1)
            break;
        /* one read that really sleeps, woken by one publish */
        shm_channel_set_spin(c, 0);
        ct_st(&side->base, shm__load_relaxed(&h->consumer_sleeps));
        ct_st(&side->round, 2);
        rc = shm_channel_read(c, buf, sizeof buf, &len, CALL_TIMEOUT);
        if (rc != 0 || ct_msg_seq(buf) != seq)
            return note(2, "blocked read: %s", shm_channel_strerror(rc));
        seq++;
        if (shm__load_relaxed(&h->consumer_waiting) != 0)
            return note(4, "consumer_waiting still set after the blocked read returned");
        shm_channel_set_spin(c, SHM_CHANNEL_DEFAULT_SPIN_NS);
    }
    ct_unmap_header(h);
    shm_channel_close(c);
    return 0;
}

static void write_n(shm_channel_t *p, uint64_t *seq, int n)
{
    uint8_t buf[64] = {0};
    for (int i = 0; i < n; i++, (*seq)++) {
        memcpy(buf, seq, 8);
        cr_assert_eq(shm_channel_write(p, buf, sizeof buf, 0), 0);
    }
}

Test(wake, a_busy_reader_is_never_woken)
{
    side_map();
    slice_long();
    struct wargs a = {.rounds = 0};
    ct_name(a.name, "wbusy");
    shm_channel_t *p;
    cr_assert_eq(
        shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1u << 20, 0), 0);
    const struct shm__header *h = ct_map_header(a.name, 0);
    cr_assert(h != NULL);
    struct peer peer;
    peer_start(&peer, busy_reader, &a);
    uint64_t seq = 0;
    cr_assert_eq(WAIT_GEQ(&side->round, 1, 0), 0, "reader never came (%s)", side->msg);
    write_n(p, &seq, BUSY_N);
    cr_assert_eq(shm__load_relaxed(&h->producer_wakes), 0,
                 "%d publishes to a busy reader made no wake call", BUSY_N);
    ct_st(&side->go, 1);
    cr_assert_eq(WAIT_GEQ(&side->round, 2, 0), 0, "(%s)", side->msg);
    uint64_t base = ct_ld(&side->base);
    cr_assert_eq(WAIT_GEQ(&h->consumer_sleeps, base + 1, 0), 0, "reader never slept (%s)",
                 side->msg);
    write_n(p, &seq, 1);
    cr_assert_eq(shm__load_relaxed(&h->producer_wakes), 1, "the sleeping reader was woken");
    cr_assert_eq(WAIT_GEQ(&side->round, 3, 0), 0, "(%s)", side->msg);
    write_n(p, &seq, BUSY_N);
    cr_assert_eq(shm__load_relaxed(&h->producer_wakes), 1,
                 "after its wait, the reader is busy again: no more wake calls");
    ct_st(&side->go, 2);
    int rc = peer_join(&peer);
    cr_assert_eq(rc, 0, "reader: %s", side->msg);
    shm_channel_close(p);
    ct_unmap_header(h);
    slice_default();
}

/* ---- the spin phase ----------------------------------------------------------------- */

#ifndef CT_WAKE_THREADS
#include <signal.h>

/* A waiter that dies asleep leaves its flag up; its successor clears it when it attaches,
 * so the peer makes no wake calls for a waiter that no longer exists. */
static int sleep_in_call(void *arg)
{
    const struct wargs *a = arg;
    uint32_t role = (uint32_t)a->rounds;
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, a->name, role, 0, 0, 0);
    if (rc)
        return note(1, "open: %s", shm_channel_strerror(rc));
    shm_channel_set_spin(ch, 0);
    uint8_t buf[WMSG] = {0};
    uint64_t len;
    if (role == SHM_CHANNEL_PRODUCER)
        while ((rc = shm_channel_write(ch, buf, WMSG, 0)) == 0)
            ;
    ct_st(&side->round, 1);
    if (role == SHM_CHANNEL_PRODUCER)
        rc = shm_channel_write(ch, buf, WMSG, CALL_TIMEOUT);
    else
        rc = shm_channel_read(ch, buf, sizeof buf, &len, CALL_TIMEOUT);
    return note(2, "the call returned (%s), yet it was to be killed asleep",
                shm_channel_strerror(rc));
}

static void dead_waiter(uint32_t role)
{
    side_map();
    slice_long();
    int producer = role == SHM_CHANNEL_PRODUCER;
    struct wargs a = {.rounds = role};
    ct_name(a.name, "wdead");
    uint32_t other = producer ? SHM_CHANNEL_CONSUMER : SHM_CHANNEL_PRODUCER;
    shm_channel_t *peer_ch, *succ;
    cr_assert_eq(shm_channel_open(&peer_ch, a.name, other, SHM_CHANNEL_CREATE, 1024, 0), 0);
    const struct shm__header *h = ct_map_header(a.name, 0);
    cr_assert(h != NULL);
    const uint32_t *flag = producer ? &h->producer_waiting : &h->consumer_waiting;
    const uint64_t *sleeps = producer ? &h->producer_sleeps : &h->consumer_sleeps;
    const uint64_t *wakes = producer ? &h->consumer_wakes : &h->producer_wakes;
    struct peer peer;
    peer_start(&peer, sleep_in_call, &a);
    cr_assert_eq(WAIT_GEQ(&side->round, 1, 0), 0, "(%s)", side->msg);
    cr_assert_eq(WAIT_GEQ(sleeps, 1, 0), 0, "the waiter never slept (%s)", side->msg);
    kill(peer.pid, SIGKILL);
    cr_assert_eq(peer_join(&peer), 128 + SIGKILL, "(%s)", side->msg);
    const uint32_t *seq = producer ? &h->read_seq : &h->write_seq;
    /* §5.11: a 1.1 sleeper's flag is 0x80000000 | the futex value it sleeps on. */
    cr_assert_eq(shm__load_relaxed(flag), 0x80000000u | shm__load_relaxed(seq),
                 "the dead waiter's flag is still up");
    cr_assert_eq(shm_channel_open(&succ, a.name, role, 0, 0, 0), 0);
    cr_assert_eq(shm__load_relaxed(flag), 0, "its successor cleared it when it attached");
    uint8_t buf[WMSG] = {0};
    uint64_t len;
    for (int i = 0; i < 100; i++) { /* the successor is busy; the peer keeps publishing */
        if (producer) {
            cr_assert_eq(shm_channel_read(peer_ch, buf, sizeof buf, &len, 0), 0);
            cr_assert_eq(shm_channel_write(succ, buf, WMSG, 0), 0);
        } else {
            cr_assert_eq(shm_channel_write(peer_ch, buf, WMSG, 0), 0);
            cr_assert_eq(shm_channel_read(succ, buf, sizeof buf, &len, 0), 0);
        }
    }
    cr_assert_eq(shm__load_relaxed(wakes), 0, "no wake call for a waiter that died");
    shm_channel_close(succ);
    shm_channel_close(peer_ch);
    ct_unmap_header(h);
    slice_default();
}

Test(wake, no_wake_calls_for_a_dead_sleeping_reader)
{
    dead_waiter(SHM_CHANNEL_CONSUMER);
}

Test(wake, no_wake_calls_for_a_dead_sleeping_writer)
{
    dead_waiter(SHM_CHANNEL_PRODUCER);
}

struct pp {
    char req[64];
    char resp[64];
    uint64_t rounds;
    uint64_t spin;
    int after_sleep; /* the peer answers request k only once the reader slept in round k */
};

static int pong(void *arg)
{
    const struct pp *a = arg;
    shm_channel_t *in, *out;
    int rc = shm_channel_open(&in, a->req, SHM_CHANNEL_CONSUMER, 0, 0, 0);
    if (rc == 0)
        rc = shm_channel_open(&out, a->resp, SHM_CHANNEL_PRODUCER, 0, 0, 0);
    if (rc)
        return note(1, "open: %s", shm_channel_strerror(rc));
    shm_channel_set_spin(in, a->spin);
    shm_channel_set_spin(out, a->spin);
    const struct shm__header *h = a->after_sleep ? ct_map_header(a->resp, 0) : NULL;
    if (a->after_sleep && !h)
        return note(1, "map header");
    for (;;) {
        uint64_t k, len;
        rc = shm_channel_read(in, &k, sizeof k, &len, CALL_TIMEOUT);
        if (rc == -EPIPE)
            break;
        /* The reader's sleep counter, moved past what it was before the request was
         * written (side->base, stored before the write that our read acquired). */
        if (rc == 0 && h && k > 0 && WAIT_GEQ(&h->consumer_sleeps, ct_ld(&side->base) + 1, 1))
            return note(3, "round %lu: the reader (spin 0) never slept", (unsigned long)k);
        if (rc || (rc = shm_channel_write(out, &k, sizeof k, CALL_TIMEOUT)) != 0)
            return note(2, "pong: %s", shm_channel_strerror(rc));
    }
    if (h)
        ct_unmap_header(h);
    shm_channel_close(out);
    shm_channel_close(in);
    return 0;
}

struct pp_result {
    uint64_t sleeps;      /* both waiting sides */
    uint64_t main_slept;  /* rounds in which our read slept */
    uint64_t fast_slept;  /* ... and yet returned within the spin time */
    uint64_t slow_rounds; /* rounds that took longer than the spin time */
};

/* A stream's positions, futex words, waiting flags and counters, for a failure message. */
static const char *ring_state(char *buf, size_t n, const struct shm__header *h)
{
    snprintf(buf, n, "write_pos %lu read_pos %lu write_seq %u read_seq %u consumer_waiting %#x "
             "producer_waiting %#x consumer_sleeps %lu producer_wakes %lu",
             (unsigned long)shm__load_acquire(&h->write_pos),
             (unsigned long)shm__load_acquire(&h->read_pos), shm__load_acquire(&h->write_seq),
             shm__load_acquire(&h->read_seq), shm__load_acquire(&h->consumer_waiting),
             shm__load_acquire(&h->producer_waiting),
             (unsigned long)shm__load_relaxed(&h->consumer_sleeps),
             (unsigned long)shm__load_relaxed(&h->producer_wakes));
    return buf;
}

/* One request/response at a time, `rounds` times, both sides with `spin`. */
static struct pp_result ping_pong(uint64_t spin, uint64_t rounds, int after_sleep)
{
    struct pp a = {.rounds = rounds, .spin = spin, .after_sleep = after_sleep};
    ct_name(a.req, "req");
    ct_name(a.resp, "resp");
    shm_channel_t *out, *in;
    cr_assert_eq(shm_channel_open(&out, a.req, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), 0);
    cr_assert_eq(shm_channel_open(&in, a.resp, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 0, 0), 0);
    shm_channel_set_spin(out, spin);
    shm_channel_set_spin(in, spin);
    const struct shm__header *hin = ct_map_header(a.resp, 0), *hout = ct_map_header(a.req, 0);
    cr_assert(hin && hout);
    struct peer peer;
    peer_start(&peer, pong, &a);
    uint64_t k = 0, len;
    /* first round trip: the peer has attached and is running */
    cr_assert_eq(shm_channel_write(out, &k, sizeof k, CALL_TIMEOUT), 0);
    cr_assert_eq(shm_channel_read(in, &k, sizeof k, &len, CALL_TIMEOUT), 0);
    struct pp_result r = {0};
    uint64_t before = shm__load_relaxed(&hin->consumer_sleeps) +
                      shm__load_relaxed(&hout->consumer_sleeps);
    for (uint64_t i = 1; i <= rounds; i++) {
        uint64_t s0 = shm__load_relaxed(&hin->consumer_sleeps); /* our own counter */
        ct_st(&side->base, s0);
        uint64_t t0 = ct_now_ns();
        cr_assert_eq(shm_channel_write(out, &i, sizeof i, CALL_TIMEOUT), 0);
        int rc = shm_channel_read(in, &k, sizeof k, &len, CALL_TIMEOUT);
        char sq[256], sp[256];
        cr_assert_eq(rc, 0, "round %lu: read: %s%s (pong: %s); requests: %s; answers: %s",
                     (unsigned long)i, shm_channel_strerror(rc), after_sleep ? ", and the peer "
                     "answers only once the reader's sleep counter moved" : "", side->msg,
                     ring_state(sq, sizeof sq, hout), ring_state(sp, sizeof sp, hin));
        uint64_t dt = ct_now_ns() - t0;
        cr_assert_eq(k, i);
        int slept = shm__load_relaxed(&hin->consumer_sleeps) != s0;
        r.main_slept += slept;
        r.fast_slept += slept && dt < spin;
        r.slow_rounds += dt >= spin;
    }
    r.sleeps = shm__load_relaxed(&hin->consumer_sleeps) +
               shm__load_relaxed(&hout->consumer_sleeps) - before;
    shm_channel_close(out);
    cr_assert_eq(peer_join(&peer), 0, "pong: %s", side->msg);
    shm_channel_close(in);
    ct_unmap_header(hin);
    ct_unmap_header(hout);
    return r;
}

/* A waiter sleeps only after spinning for its whole spin time. So in a ping-pong, a read that
 * slept took at least the spin time (exactly true, whatever the load), and the reads sleep at
 * most in the rounds in which the peer was slower than that: on an idle machine, almost never.
 * The control, with spin 0: the peer answers only once the reader's sleep counter has moved
 * (a state, not a race: how often a free-running reader with spin 0 sleeps depends on whether
 * the answer beats the reader's own way to sleep, ~60% of rounds here, fewer under some
 * loads), so the reader sleeps in every round, and the counter this test reads counts it. */
Test(wake, the_spin_phase_keeps_a_ping_pong_awake)
{
    side_map();
    uint64_t rounds = 2000;
    struct pp_result r0 = ping_pong(0, rounds, 1);
    cr_assert_eq(r0.main_slept, rounds, "spin 0: the reader sleeps in every round it has to "
                 "wait (%lu of %lu)", (unsigned long)r0.main_slept, (unsigned long)rounds);
    static const uint64_t spins[] = {SHM_CHANNEL_DEFAULT_SPIN_NS, 1000000};
    for (unsigned i = 0; i < 2; i++) {
        struct pp_result r = ping_pong(spins[i], rounds, 0);
        fprintf(stderr, "ping-pong, %lu rounds, spin %lu ns: the reader slept in %lu rounds (spin "
                "0: %lu), %lu rounds were slower than the spin; %lu sleeps on both sides (spin "
                "0: %lu)\n", (unsigned long)rounds, (unsigned long)spins[i],
                (unsigned long)r.main_slept, (unsigned long)r0.main_slept,
                (unsigned long)r.slow_rounds, (unsigned long)r.sleeps, (unsigned long)r0.sleeps);
        cr_assert_eq(r.fast_slept, 0, "spin %lu ns: %lu reads slept, yet returned sooner than "
                     "the spin time: no spin phase", (unsigned long)spins[i],
                     (unsigned long)r.fast_slept);
        cr_assert(r.main_slept <= r.slow_rounds, "sleeps only in rounds slower than the spin");
    }
}
#endif
