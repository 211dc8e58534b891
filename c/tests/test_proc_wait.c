/* Waiting across processes: a blocked write is woken when the consumer frees space, a
 * blocked read when the producer publishes (both through the futex, with the wake counted);
 * timeouts with a live but idle peer; -EINTR when a signal handler runs during the wait. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ct.h"

TestSuite(wait, .init = ct_setup, .fini = ct_teardown, .timeout = 100);

#define WAIT (30 * CT_SEC)

static char chan[64];

/* Wait (bounded) until the peer's sleep counter moves, as seen through handle ch. */
static int wait_for_sleep(shm_channel_t *ch, int producer_sleeps)
{
    uint64_t t0 = ct_now_ns();
    for (;;) {
        shm_channel_stat_t st;
        if (shm_channel_stat(ch, &st) != 0)
            return -1;
        if ((producer_sleeps ? st.producer_sleeps : st.consumer_sleeps) > 0)
            return 0;
        if (ct_now_ns() - t0 > 20 * CT_SEC)
            return -1;
        ct_sleep_ms(1);
    }
}

static int free_one_when_producer_sleeps(void *arg)
{
    (void)arg;
    shm_channel_t *c;
    if (shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, 0, 0, 0) != 0)
        return 1;
    if (wait_for_sleep(c, 1) != 0)
        return 2;
    uint8_t buf[512];
    uint64_t len;
    if (shm_channel_read(c, buf, sizeof buf, &len, 0) != 0 || len != 120 || buf[0] != 0)
        return 3;
    shm_channel_stat_t st;
    shm_channel_stat(c, &st);
    if (st.consumer_wakes < 1)
        return 4; /* the producer was asleep: the release had to wake it */
    /* stay attached until the parent has checked */
    pause();
    return 0;
}

Test(wait, blocked_write_is_woken_when_space_is_freed)
{
    ct_name(chan, "wakew");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, chan, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    cr_assert_eq(shm_channel_set_spin(p, 0), 0);
    uint8_t buf[128];
    uint8_t i = 0;
    for (;; i++) {
        memset(buf, i, sizeof buf);
        if (shm_channel_write(p, buf, 120, 0) != 0)
            break;
    }
    cr_assert_eq(i, 8);
    pid_t pid = ct_fork(free_one_when_producer_sleeps, NULL);
    memset(buf, 0xee, sizeof buf);
    int rc = shm_channel_write(p, buf, 120, WAIT);
    cr_assert_eq(rc, 0, "the write waited for room and got it: %s", shm_channel_strerror(rc));
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(p, &st), 0);
    cr_assert_geq(st.producer_sleeps, 1);
    cr_assert_geq(st.full_events, 1);
    cr_assert_eq(st.msgs_written, 9);
    kill(pid, SIGKILL);
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL, "the consumer's checks passed");
    shm_channel_close(p);
}

static int write_when_consumer_sleeps(void *arg)
{
    (void)arg;
    shm_channel_t *p;
    if (shm_channel_open(&p, chan, SHM_CHANNEL_PRODUCER, 0, 0, 0) != 0)
        return 1;
    if (wait_for_sleep(p, 0) != 0)
        return 2;
    if (shm_channel_write(p, "wake up", 7, 0) != 0)
        return 3;
    shm_channel_stat_t st;
    shm_channel_stat(p, &st);
    if (st.producer_wakes < 1)
        return 4;
    shm_channel_close(p);
    return 0;
}

Test(wait, blocked_read_is_woken_by_a_write)
{
    ct_name(chan, "waker");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    pid_t pid = ct_fork(write_when_consumer_sleeps, NULL);
    uint8_t buf[16];
    uint64_t len;
    int rc = shm_channel_read(c, buf, sizeof buf, &len, -1);
    cr_assert_eq(rc, 0, "%s", shm_channel_strerror(rc));
    cr_assert_eq(len, 7);
    cr_assert_eq(memcmp(buf, "wake up", 7), 0);
    cr_assert_eq(ct_wait(pid), 0, "producer checks");
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, -1), -EPIPE);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_geq(st.consumer_sleeps, 1);
    shm_channel_close(c);
    cr_assert(!ct_exists(chan));
}

static int hold_role_idle(void *arg)
{
    shm_channel_t *ch;
    if (shm_channel_open(&ch, chan, (uint32_t)(uintptr_t)arg, 0, 0, 0) != 0)
        return 1;
    pause();
    return 0;
}

Test(wait, timeouts_with_a_live_idle_peer)
{
    ct_name(chan, "timeout");
    shm_channel_t *c, *p;
    cr_assert_eq(shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    pid_t prod = ct_fork(hold_role_idle, (void *)(uintptr_t)SHM_CHANNEL_PRODUCER);
    /* wait for the idle producer to attach */
    shm_channel_stat_t st;
    for (int i = 0; i < 20000; i++) {
        shm_channel_stat(c, &st);
        if (st.producer_alive)
            break;
        ct_sleep_ms(1);
    }
    cr_assert_eq(st.producer_alive, 1);
    uint8_t buf[128];
    uint64_t len;
    int64_t timeouts[] = {1, 1000, 20 * CT_MS, 120 * CT_MS};
    for (int i = 0; i < 4; i++) {
        uint64_t t0 = ct_now_ns();
        int rc = shm_channel_read(c, buf, sizeof buf, &len, timeouts[i]);
        cr_assert_eq(rc, -ETIMEDOUT, "read, timeout %lld ns: %s", (long long)timeouts[i],
                     shm_channel_strerror(rc));
        cr_assert_geq(ct_now_ns() - t0, (uint64_t)timeouts[i], "did not return early");
    }
    kill(prod, SIGKILL);
    cr_assert_eq(ct_wait(prod), 128 + SIGKILL);
    shm_channel_close(c);

    /* the producer side: full ring, live idle consumer */
    cr_assert_eq(shm_channel_unlink(chan, 0), 0);
    cr_assert_eq(shm_channel_open(&p, chan, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    pid_t cons = ct_fork(hold_role_idle, (void *)(uintptr_t)SHM_CHANNEL_CONSUMER);
    memset(buf, 1, sizeof buf);
    while (shm_channel_write(p, buf, 120, 0) == 0)
        ;
    for (int i = 0; i < 20000; i++) {
        shm_channel_stat(p, &st);
        if (st.consumer_alive)
            break;
        ct_sleep_ms(1);
    }
    cr_assert_eq(st.consumer_alive, 1);
    uint64_t t0 = ct_now_ns();
    int rc = shm_channel_write(p, buf, 120, 120 * CT_MS);
    cr_assert_eq(rc, -ETIMEDOUT, "write: %s", shm_channel_strerror(rc));
    cr_assert_geq(ct_now_ns() - t0, 120 * CT_MS);
    kill(cons, SIGKILL);
    cr_assert_eq(ct_wait(cons), 128 + SIGKILL);
    shm_channel_close(p);
}

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
    (void)sig;
    handled++;
}

static int pester_parent(void *arg)
{
    (void)arg;
    pid_t parent = getppid();
    for (;;) {
        kill(parent, SIGUSR1);
        ct_sleep_ms(20);
    }
    return 0;
}

Test(wait, signal_during_a_blocking_call_gives_eintr)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = 0; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, &old), 0);

    ct_name(chan, "eintr");
    shm_channel_t *c, *p;
    cr_assert_eq(shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    cr_assert_eq(shm_channel_open(&p, chan, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0);
    pid_t pid = ct_fork(pester_parent, NULL);
    uint8_t buf[128];
    uint64_t len;
    int rc = shm_channel_read(c, buf, sizeof buf, &len, -1);
    cr_assert_eq(rc, -EINTR, "blocked read: %s", shm_channel_strerror(rc));
    cr_assert_gt(handled, 0, "the handler ran");
    const void *ptr;
    rc = shm_channel_peek(c, &ptr, &len, WAIT);
    cr_assert_eq(rc, -EINTR, "blocked peek: %s", shm_channel_strerror(rc));
    /* the handle still works */
    cr_assert_eq(shm_channel_write(p, "ok", 2, 0), 0);
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 2);
    /* and the producer side */
    memset(buf, 0, sizeof buf);
    while (shm_channel_write(p, buf, 120, 0) == 0)
        ;
    rc = shm_channel_write(p, buf, 120, -1);
    cr_assert_eq(rc, -EINTR, "blocked write: %s", shm_channel_strerror(rc));
    kill(pid, SIGKILL);
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
    sigaction(SIGUSR1, &old, NULL);
    shm_channel_close(p);
    shm_channel_close(c);
}

/* ---- a spinning consumer looks at the next record before it may read it (issue 14) ----
 * While it spins, the consumer prefetches the lines of the record at its read position
 * (ring.h, shm__ring_look_ahead): a hint. What it reads is decided by its acquire load of
 * write_pos after each look (spec §5.5): here the record's slot holds, while the consumer
 * looks, a complete and valid-looking record of the previous lap (same length: with 64-byte
 * records in a 1024-byte ring each lap reuses the same positions, the last one's second line
 * wrapping to the start) under a payload being rewritten; the producer writes the real payload
 * and commits only once the consumer has counted its miss (empty_events, observable state).
 * A consumer that trusted what it saw before the acquire returns an old message. */
#define LOOK_MSGS 400
#define LOOK_LEN 56 /* a 64-byte record */

static void look_fill(uint8_t *p, uint64_t k)
{
    memset(p, (int)(k & 0xff), LOOK_LEN);
    memcpy(p, &k, sizeof k);
}

static int spin_reader(void *arg)
{
    (void)arg;
    shm_channel_t *c;
    if (shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, 0, 0, 0) != 0)
        return 1;
    if (shm_channel_set_spin(c, 10000000000ull) != 0) /* spin, look, never sleep at once */
        return 2;
    uint8_t buf[LOOK_LEN], want[LOOK_LEN];
    for (uint64_t k = 0; k < LOOK_MSGS; k++) {
        uint64_t len = 0;
        if (shm_channel_read(c, buf, sizeof buf, &len, WAIT) != 0)
            return 3;
        look_fill(want, k);
        if (len != LOOK_LEN || memcmp(buf, want, LOOK_LEN) != 0)
            return 4; /* an old record, or a payload seen before it was committed */
    }
    shm_channel_close(c);
    return 0;
}

Test(wait, a_spinning_consumer_reads_only_what_write_pos_covers)
{
    ct_name(chan, "look");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, chan, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    pid_t pid = ct_fork(spin_reader, NULL);
    for (uint64_t k = 0; k < LOOK_MSGS; k++) {
        void *slot;
        int rc = shm_channel_reserve(p, LOOK_LEN, &slot, WAIT);
        cr_assert_eq(rc, 0, "reserve %llu: %s", (unsigned long long)k, shm_channel_strerror(rc));
        /* The consumer is waiting for message k once it has counted its (k+1)-th miss. */
        uint64_t t0 = ct_now_ns();
        for (;;) {
            shm_channel_stat_t st;
            cr_assert_eq(shm_channel_stat(p, &st), 0);
            if (st.empty_events >= k + 1)
                break;
            cr_assert_lt(ct_now_ns() - t0, 30 * CT_SEC, "the consumer never waited for %llu",
                         (unsigned long long)k);
            int status = 0;
            cr_assert_eq(waitpid(pid, &status, WNOHANG), 0,
                         "the consumer left before message %llu (exit %d: 4 = an old record)",
                         (unsigned long long)k, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            memset(slot, 0xa5, LOOK_LEN); /* stale bytes under its looks */
        }
        look_fill(slot, k);
        cr_assert_eq(shm_channel_commit(p, LOOK_LEN), 0);
    }
    cr_assert_eq(ct_wait(pid), 0, "the consumer read every message as committed");
    shm_channel_close(p);
}
