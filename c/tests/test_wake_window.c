/* The waiting-flag window (spec §5.11, issue 14): a woken side keeps its waiting flag set until
 * its call returns, and while it waits for a CPU its peer must not make a wake system call per
 * publish. Real processes, real futexes. The window is made wide and certain with SIGSTOP: the
 * sleeper is stopped once it is seen asleep (its sleep counter moved, which it stores after its
 * flag and fence), so it stays "woken but not yet running" while the peer publishes or releases
 * many times. Layout 1.0's waker made one FUTEX_WAKE per publish there; 1.1's makes one.
 *
 * And rule 3 of §5.11: a producer that takes over after a predecessor died between its
 * increment of write_seq and its FUTEX_WAKE wakes the sleeper once at attach; without that, a
 * consumer asleep on the old value would sleep through the new producer's publishes (here for
 * a 30 s slice). Every state is established by counters and waitpid(), never by sleeping. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomics.h"
#include "ct.h"
#include "handshake.h"
#include "hooks.h"
#include "layout.h"

TestSuite(wake_window, .init = ct_setup, .fini = ct_teardown, .timeout = 120);

#define CALL_TIMEOUT (20 * CT_SEC)
#define WAIT_STATE (30 * CT_SEC)
#define BURST 2000u /* publishes (or releases) while the woken peer is stopped */

static void stop_and_wait(pid_t pid)
{
    cr_assert_eq(kill(pid, SIGSTOP), 0);
    int st;
    pid_t r;
    while ((r = waitpid(pid, &st, WUNTRACED)) < 0 && errno == EINTR)
        ;
    cr_assert_eq(r, pid);
    cr_assert(WIFSTOPPED(st), "the sleeper is stopped");
}

struct args {
    char name[64];
    uint64_t count;
};

/* Consumer: blocking reads (no spin: it sleeps at once) of count messages, then end-of-stream. */
static int reader(void *arg)
{
    const struct args *a = arg;
    shm_channel_t *c;
    if (shm_channel_open(&c, a->name, SHM_CHANNEL_CONSUMER, 0, 0, 0) != 0)
        return 1;
    shm_channel_set_spin(c, 0);
    for (uint64_t k = 0;; k++) {
        uint8_t buf[16];
        uint64_t len = 0;
        int rc = shm_channel_read(c, buf, sizeof buf, &len, CALL_TIMEOUT);
        if (k == a->count)
            return rc == -EPIPE ? 0 : 2;
        if (rc != 0 || len != 8 || ct_msg_seq(buf) != k)
            return 3;
    }
}

Test(wake_window, a_woken_reader_not_yet_running_costs_one_wake_call)
{
    struct args a = {.count = BURST + 1};
    ct_name(a.name, "wwr");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE,
                                  1u << 20, 0600), 0);
    const struct shm__header *h = ct_map_header(a.name, 0);
    cr_assert(h);
    pid_t pid = ct_fork(reader, &a);
    /* The reader asleep on the current write_seq, with the value in its flag. */
    cr_assert_eq(ct_await_geq(&h->consumer_sleeps, 1, WAIT_STATE), 0,
                 "the reader never slept");
    stop_and_wait(pid);
    uint32_t flag = shm__load_relaxed(&h->consumer_waiting);
    cr_assert(flag & SHM__WAITING_SEQ, "a 1.1 sleeper stores 0x80000000 | seen (%#x)", flag);
    cr_assert_eq(flag & ~SHM__WAITING_SEQ, shm__load_relaxed(&h->write_seq) & ~SHM__WAITING_SEQ);
    uint64_t wakes0 = shm__load_relaxed(&h->producer_wakes);
    uint8_t msg[8];
    for (uint64_t k = 0; k < BURST; k++) {
        ct_msg_fill(msg, 0, k, 8);
        cr_assert_eq(shm_channel_write(p, msg, 8, 0), 0);
    }
    /* Woken by the first publish, stopped before it could run: its flag is still up. */
    cr_assert_neq(shm__load_relaxed(&h->consumer_waiting), 0);
    uint64_t wakes = shm__load_relaxed(&h->producer_wakes) - wakes0;
    cr_assert_eq(wakes, 1, "%lu wake calls for one sleep (1.0: one per publish, %u)",
                 (unsigned long)wakes, BURST);
    cr_assert_eq(kill(pid, SIGCONT), 0);
    /* One more message after it runs again: it is still woken when it sleeps again. */
    ct_msg_fill(msg, 0, BURST, 8);
    cr_assert_eq(shm_channel_write(p, msg, 8, CALL_TIMEOUT), 0);
    shm_channel_close(p);
    cr_assert_eq(ct_wait(pid), 0, "the reader got every message, then end-of-stream");
    ct_unmap_header(h);
}

/* Producer: blocking writes (no spin) of count messages into a ring that holds far fewer. */
static int writer(void *arg)
{
    const struct args *a = arg;
    shm_channel_t *p;
    if (shm_channel_open(&p, a->name, SHM_CHANNEL_PRODUCER, 0, 0, 0) != 0)
        return 1;
    shm_channel_set_spin(p, 0);
    uint8_t msg[8];
    for (uint64_t k = 0; k < a->count; k++) {
        ct_msg_fill(msg, 0, k, 8);
        if (shm_channel_write(p, msg, 8, CALL_TIMEOUT) != 0)
            return 2;
    }
    shm_channel_close(p);
    return 0;
}

Test(wake_window, a_woken_writer_not_yet_running_costs_one_wake_call)
{
    struct args a;
    ct_name(a.name, "www");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, a.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE,
                                  SHM_CHANNEL_MIN_CAPACITY, 0600), 0);
    uint64_t per_ring = SHM_CHANNEL_MIN_CAPACITY / 16; /* 16-byte records */
    a.count = 4 * per_ring;
    const struct shm__header *h = ct_map_header(a.name, 0);
    cr_assert(h);
    pid_t pid = ct_fork(writer, &a);
    cr_assert_eq(ct_await_geq(&h->producer_sleeps, 1, WAIT_STATE), 0,
                 "the writer never slept");
    stop_and_wait(pid);
    uint32_t flag = shm__load_relaxed(&h->producer_waiting);
    cr_assert(flag & SHM__WAITING_SEQ, "a 1.1 sleeper stores 0x80000000 | seen (%#x)", flag);
    uint64_t wakes0 = shm__load_relaxed(&h->consumer_wakes);
    uint64_t k = 0;
    uint8_t buf[16];
    uint64_t len;
    for (; shm_channel_read(c, buf, sizeof buf, &len, 0) == 0; k++)
        cr_assert(len == 8 && ct_msg_seq(buf) == k);
    cr_assert_geq(k, per_ring / 2, "the ring was full: %lu messages", (unsigned long)k);
    cr_assert_neq(shm__load_relaxed(&h->producer_waiting), 0);
    uint64_t wakes = shm__load_relaxed(&h->consumer_wakes) - wakes0;
    cr_assert_eq(wakes, 1, "%lu wake calls for one sleep (1.0: one per release, %lu)",
                 (unsigned long)wakes, (unsigned long)k);
    cr_assert_eq(kill(pid, SIGCONT), 0);
    for (int rc; (rc = shm_channel_read(c, buf, sizeof buf, &len, CALL_TIMEOUT)) != -EPIPE; k++)
        cr_assert(rc == 0 && len == 8 && ct_msg_seq(buf) == k, "message %lu: %s",
                  (unsigned long)k, shm_channel_strerror(rc));
    cr_assert_eq(k, a.count);
    cr_assert_eq(ct_wait(pid), 0);
    shm_channel_close(c);
    ct_unmap_header(h);
}

/* Rule 3: the consumer sleeps (30 s slices) on write_seq = s with flag s; a predecessor
 * producer "died" right after its increment (s + 1, no FUTEX_WAKE: done here by hand, with
 * no producer attached, as a crash would leave it). A new producer's publish then finds a flag
 * naming an older value: only its attach wake gets the reader to see the message in time. */
static int one_read(void *arg)
{
    const struct args *a = arg;
    shm_channel_t *c;
    if (shm_channel_open(&c, a->name, SHM_CHANNEL_CONSUMER, 0, 0, 0) != 0)
        return 1;
    shm_channel_set_spin(c, 0);
    uint8_t buf[16];
    uint64_t len = 0;
    uint64_t t0 = ct_now_ns();
    int rc = shm_channel_read(c, buf, sizeof buf, &len, CALL_TIMEOUT);
    if (rc != 0 || len != 8 || ct_msg_seq(buf) != 0)
        return 2;
    /* Far below the 30 s slice, far above any scheduling delay. */
    if (ct_now_ns() - t0 > 10 * CT_SEC)
        return 3;
    shm_channel_close(c);
    return 0;
}

Test(wake_window, a_new_producer_wakes_a_reader_its_dead_predecessor_did_not)
{
    shm__hook_liveness_slice_ns = 30 * CT_SEC; /* before the fork: the child copies it */
    struct args a;
    ct_name(a.name, "wwn");
    /* A segment whose producer never attached (state 0: a reader waits, no verdict), made
     * by a consumer that then closes. */
    shm_channel_t *p, *c;
    cr_assert_eq(shm_channel_open(&c, a.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 0, 0600),
                 0);
    shm_channel_close(c);
    struct shm__header *h = ct_map_header(a.name, 1);
    cr_assert(h);
    cr_assert_eq(shm__load_relaxed(&h->producer_state), 0);
    uint64_t sleeps0 = shm__load_relaxed(&h->consumer_sleeps);
    pid_t pid = ct_fork(one_read, &a);
    cr_assert_eq(ct_await_geq(&h->consumer_sleeps, sleeps0 + 1, WAIT_STATE), 0,
                 "the reader never slept");
    uint32_t seq = shm__load_relaxed(&h->write_seq);
    uint32_t flag = shm__load_relaxed(&h->consumer_waiting);
    cr_assert_eq(flag, shm__hs_waiting_flag(seq));
    shm__store_relaxed(&h->write_seq, seq + 1); /* the predecessor's increment, no wake */
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0);
    uint8_t msg[8];
    ct_msg_fill(msg, 0, 0, 8);
    cr_assert_eq(shm_channel_write(p, msg, 8, 0), 0);
    cr_assert_eq(ct_wait(pid), 0, "the reader got the message at once (rule 3's attach wake)");
    shm_channel_close(p);
    ct_unmap_header(h);
    shm__hook_liveness_slice_ns = 50000000ull;
}
