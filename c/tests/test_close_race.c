/* A clean close is never reported as the peer's death (spec §5.7), whatever the timing:
 * thousands of clean closes by a peer process while this process is blocked in a read (or
 * on a full ring), with every liveness lock check slowed down (hooks.h) so that the window
 * between reading the peer's state and checking its lock is wide. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ct.h"
#include "hooks.h"
#include "layout.h"

TestSuite(close_race, .init = ct_setup, .fini = ct_teardown, .timeout = 120);

#define CLOSES 2000
#define LOCK_CHECK_DELAY_NS 200000 /* 200 µs after every F_OFD_GETLK */

static char chan[64];
/* Shared with the child (MAP_SHARED before fork): [0] how many blocking calls the parent
 * has started, [1] how many have returned. The child closes only while a call is inside
 * its wait loop, and attaches again only after it returned. */
static volatile uint32_t *started;

static void pause_briefly(void)
{
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
}

/* Poll until *word == want, or give up after 20 s. 0 or -1. */
static int await_u32(const volatile uint32_t *word, uint32_t want)
{
    uint64_t t0 = ct_now_ns();
    while (__atomic_load_n(word, __ATOMIC_ACQUIRE) != want) {
        if (ct_now_ns() - t0 > 20 * CT_SEC)
            return -1;
        pause_briefly();
    }
    return 0;
}

/* Wait until a waiting flag says its side sleeps (§5.11: 0x80000000 | the futex value). */
static int await_asleep(const volatile uint32_t *flag)
{
    uint64_t t0 = ct_now_ns();
    while (!(__atomic_load_n(flag, __ATOMIC_ACQUIRE) & 0x80000000u)) {
        if (ct_now_ns() - t0 > 20 * CT_SEC)
            return -1;
        pause_briefly();
    }
    return 0;
}

/* The child: attach in `role`, wait until the parent is blocked (its waiting flag is set
 * during the call the parent announced), close cleanly; CLOSES times. */
static int close_while_blocked(uint32_t role)
{
    const struct shm__header *h = ct_map_header(chan, 0);
    cr_assert_not_null(h);
    const uint32_t *waiting = role == SHM_CHANNEL_PRODUCER ? &h->consumer_waiting
                                                          : &h->producer_waiting;
    for (uint32_t i = 0; i < CLOSES; i++) {
        shm_channel_t *ch;
        /* Attach only after the parent's last call returned: a close followed at once by
         * a new attach may rightly be seen by a waiter as no change at all. */
        if (await_u32(&started[1], i) != 0)
            return 9;
        if (shm_channel_open(&ch, chan, role, 0, 0, 0) != 0)
            return 10;
        if (await_u32(started, i + 1) != 0 || await_asleep(waiting) != 0) {
            shm_channel_close(ch);
            return 11;
        }
        shm_channel_close(ch);
    }
    return 0;
}

static int producer_child(void *arg)
{
    (void)arg;
    return close_while_blocked(SHM_CHANNEL_PRODUCER);
}

static int consumer_child(void *arg)
{
    (void)arg;
    return close_while_blocked(SHM_CHANNEL_CONSUMER);
}

/* Wait until the peer's i-th attach (epoch > seen_epoch, state 1) is visible. */
static void await_attach(const uint32_t *state, const uint32_t *epoch, uint32_t seen_epoch)
{
    uint64_t t0 = ct_now_ns();
    while (__atomic_load_n(epoch, __ATOMIC_ACQUIRE) == seen_epoch ||
           __atomic_load_n(state, __ATOMIC_ACQUIRE) != SHM_CHANNEL_PEER_ATTACHED) {
        cr_assert_lt(ct_now_ns() - t0, 20 * CT_SEC, "the peer attaches again");
        pause_briefly();
    }
}

static void setup_shared(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    started = p;
    shm__hook_lock_check_delay_ns = LOCK_CHECK_DELAY_NS;
}

Test(close_race, consumer_blocked_in_read_sees_end_of_stream_not_death)
{
    setup_shared();
    ct_name(chan, "race-c");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    shm_channel_set_spin(c, 0);
    const struct shm__header *h = ct_map_header(chan, 0);
    cr_assert_not_null(h);
    pid_t pid = ct_fork(producer_child, NULL);
    unsigned eos = 0, deaths = 0, other = 0;
    uint32_t epoch = 0;
    for (uint32_t i = 0; i < CLOSES; i++) {
        await_attach(&h->producer_state, &h->producer_epoch, epoch);
        epoch = __atomic_load_n(&h->producer_epoch, __ATOMIC_ACQUIRE);
        __atomic_store_n(started, i + 1, __ATOMIC_RELEASE);
        uint8_t buf[64];
        uint64_t len;
        int rc = shm_channel_read(c, buf, sizeof buf, &len, 30 * CT_SEC);
        __atomic_store_n(&started[1], i + 1, __ATOMIC_RELEASE);
        if (rc == -EPIPE)
            eos++;
        else if (rc == -EOWNERDEAD)
            deaths++;
        else
            other++;
    }
    cr_assert_eq(ct_wait(pid), 0, "the producer process closed %d times", CLOSES);
    shm__hook_lock_check_delay_ns = 0;
    shm_channel_close(c);
    cr_assert_eq(deaths, 0, "%u of %d clean closes were reported as the producer's death", deaths,
                 CLOSES);
    cr_assert_eq(other, 0);
    cr_assert_eq(eos, CLOSES, "every clean close is end-of-stream");
}

Test(close_race, producer_blocked_on_full_ring_sees_close_not_death)
{
    setup_shared();
    ct_name(chan, "race-p");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, chan, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    shm_channel_set_spin(p, 0);
    static uint8_t msg[200];
    int rc;
    while ((rc = shm_channel_write(p, msg, sizeof msg, 0)) == 0)
        ;
    cr_assert_eq(rc, -EAGAIN, "the ring is full (and no consumer ever attached)");
    const struct shm__header *h = ct_map_header(chan, 0);
    cr_assert_not_null(h);
    pid_t pid = ct_fork(consumer_child, NULL);
    unsigned closed = 0, deaths = 0, other = 0;
    uint32_t epoch = 0;
    for (uint32_t i = 0; i < CLOSES; i++) {
        await_attach(&h->consumer_state, &h->consumer_epoch, epoch);
        epoch = __atomic_load_n(&h->consumer_epoch, __ATOMIC_ACQUIRE);
        __atomic_store_n(started, i + 1, __ATOMIC_RELEASE);
        rc = shm_channel_write(p, msg, sizeof msg, 30 * CT_SEC);
        __atomic_store_n(&started[1], i + 1, __ATOMIC_RELEASE);
        if (rc == -EPIPE)
            closed++;
        else if (rc == -EOWNERDEAD)
            deaths++;
        else
            other++;
    }
    cr_assert_eq(ct_wait(pid), 0, "the consumer process closed %d times", CLOSES);
    shm__hook_lock_check_delay_ns = 0;
    shm_channel_close(p);
    cr_assert_eq(deaths, 0, "%u of %d clean closes were reported as the consumer's death", deaths,
                 CLOSES);
    cr_assert_eq(other, 0);
    cr_assert_eq(closed, CLOSES, "every clean close is -EPIPE on the full ring");
}
