/* The broadcast wake chain (spec/broadcast.md §5.7 S5, P5), with real processes and real
 * futexes: the publisher wakes one sleeper, every sleeper woken by a wake call wakes two more
 * before anything else.
 *
 * - 64 sleeping subscriber processes and 1000 publishes (x SHM_CHANNEL_TEST_SCALE, at least
 *   200), each made only once every subscriber is asleep in FUTEX_WAIT (observable: counted in
 *   as a sleeper, its last message read, and its process state 'S' in /proc): every publish
 *   must wake all 64. The liveness slice is an hour, so only the chain can wake them: a broken
 *   link is a subscriber that makes no progress; the publisher reports it by that state (no
 *   progress for LOST_BOUND while published, far beyond any scheduling delay) and fails.
 *   Counters: each subscriber delivers every message, in order, none missed; one wake call
 *   per publish.
 * - A dead link: the first woken subscriber stops itself before it passes the wake on
 *   (shm__hook_bcast_chain = 2), is seen stopped (waitpid WUNTRACED) and SIGKILLed; the
 *   others still get the message, at their backstop slice, and the chain works again after.
 * - Compatibility both ways with a "publisher wakes all" side (shm__hook_bcast_chain = 1).
 * - An idle sleeping subscriber costs under 2% of a core (as test_compat_api for compat). */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ct.h"
#include "hooks.h"

TestSuite(bcast_chain, .init = ct_setup, .fini = ct_teardown, .timeout = 600);

#define MAXS 64
#define LOST_BOUND (20 * CT_SEC)   /* no progress this long while published: a lost wake-up */
#define NO_BACKSTOP (3600 * CT_SEC) /* a slice that cannot mask a broken chain */
#define BACKSTOP (200 * CT_MS)      /* the slice of the dead-link test */

struct sub_res {
    uint64_t progress; /* last message read */
    uint64_t bad, sleeps;
    int knob; /* this subscriber's shm__hook_bcast_chain */
    int ready, rc;
};

struct ctl {
    char name[64];
    uint64_t count;
    uint64_t slice_ns;
    int nsubs;
    int knob_after_first; /* the knob a subscriber takes once it has read message 1; -1 keep */
    struct sub_res r[MAXS];
};

static struct ctl *C;

static int subscriber(void *arg)
{
    int i = (int)(intptr_t)arg;
    struct sub_res *r = &C->r[i];
    shm__hook_liveness_slice_ns = C->slice_ns;
    shm__hook_bcast_chain = r->knob;
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_broadcast(&ch, C->name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0);
    if (rc) {
        __atomic_store_n(&r->rc, rc, __ATOMIC_RELEASE);
        return 1;
    }
    shm_channel_set_spin(ch, 0); /* sleep at once: every message is a wake-up */
    __atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
    uint64_t v = 0, len, missed;
    for (uint64_t m = 1; m <= C->count; m++) {
        if ((rc = shm_channel_recv(ch, &v, 8, &len, &missed, -1)) != 0)
            break;
        if (len != 8 || v != m || missed != 0)
            r->bad++;
        if (m == 1 && C->knob_after_first >= 0)
            shm__hook_bcast_chain = C->knob_after_first;
        __atomic_store_n(&r->progress, m, __ATOMIC_RELEASE);
    }
    if (rc == 0)
        rc = shm_channel_recv(ch, &v, 8, &len, &missed, -1); /* end-of-stream */
    shm_channel_sub_stat_t ss;
    if (shm_channel_sub_stat(ch, -1, &ss) == 0)
        r->sleeps = ss.sleeps;
    shm_channel_close(ch);
    rc = rc == -EPIPE ? 0 : (rc ? rc : -EPROTO);
    __atomic_store_n(&r->rc, rc, __ATOMIC_RELEASE);
    return rc || r->bad ? 1 : 0;
}

/* The process state letter of /proc/<pid>/stat ('S': asleep in the kernel), or 0. */
static char proc_state(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

static int alive(int i, const int *dead)
{
    return !dead || !dead[i];
}

/* Every live subscriber has read message m and sleeps in FUTEX_WAIT for the next one:
 * counted in as a sleeper (the channel's count: sleepers ≥ live ones) and asleep. */
static int all_asleep(shm_channel_t *pub, const pid_t *pids, uint64_t m, const int *dead,
                      int live)
{
    shm_channel_broadcast_stat_t bs;
    cr_assert_eq(shm_channel_broadcast_stat(pub, &bs), 0);
    if (bs.sleepers < (uint32_t)live)
        return 0;
    for (int i = 0; i < C->nsubs; i++)
        if (alive(i, dead) &&
            (__atomic_load_n(&C->r[i].progress, __ATOMIC_ACQUIRE) != m ||
             proc_state(pids[i]) != 'S'))
            return 0;
    return 1;
}

/* Wait until every live subscriber has read message m; fail on no progress for LOST_BOUND. */
static void await_progress(const pid_t *pids, uint64_t m, const int *dead)
{
    uint64_t last = ct_now_ns(), sum = 0;
    for (;;) {
        uint64_t s = 0;
        int behind = -1;
        for (int i = 0; i < C->nsubs; i++) {
            if (!alive(i, dead))
                continue;
            uint64_t p = __atomic_load_n(&C->r[i].progress, __ATOMIC_ACQUIRE);
            s += p;
            if (p < m && behind < 0)
                behind = i;
            cr_assert_eq(__atomic_load_n(&C->r[i].rc, __ATOMIC_ACQUIRE), 0,
                         "subscriber %d failed: %d", i, C->r[i].rc);
        }
        if (behind < 0)
            return;
        if (s != sum) {
            sum = s;
            last = ct_now_ns();
        }
        cr_assert_lt(ct_now_ns() - last, (uint64_t)LOST_BOUND,
                     "lost wake-up: subscriber %d (pid %ld, state %c) still waits for message "
                     "%llu, no subscriber moved for 20 s",
                     behind, (long)pids[behind], proc_state(pids[behind]),
                     (unsigned long long)m);
        usleep(200);
    }
}

static shm_channel_t *start(int nsubs, uint64_t count, uint64_t slice_ns)
{
    C = mmap(NULL, sizeof *C, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(C != MAP_FAILED);
    memset(C, 0, sizeof *C);
    ct_name(C->name, "bchain");
    C->count = count;
    C->slice_ns = slice_ns;
    C->nsubs = nsubs;
    shm_channel_broadcast_config_t cfg = {8, 8, MAXS, NULL, {0}};
    shm_channel_t *pub = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&pub, C->name, SHM_CHANNEL_PUBLISHER,
                                            SHM_CHANNEL_CREATE, &cfg, 0600), 0);
    return pub;
}

static void spawn(pid_t *pids)
{
    for (int i = 0; i < C->nsubs; i++)
        pids[i] = ct_fork(subscriber, (void *)(intptr_t)i);
    for (int i = 0; i < C->nsubs; i++)
        while (!__atomic_load_n(&C->r[i].ready, __ATOMIC_ACQUIRE)) {
            cr_assert_eq(__atomic_load_n(&C->r[i].rc, __ATOMIC_ACQUIRE), 0);
            usleep(200);
        }
}

static void publish(shm_channel_t *pub, uint64_t m)
{
    cr_assert_eq(shm_channel_write(pub, &m, 8, 0), 0);
}

static void wait_asleep(shm_channel_t *pub, const pid_t *pids, uint64_t m, const int *dead,
                        int live)
{
    while (!all_asleep(pub, pids, m, dead, live))
        usleep(100);
}

/* Lock step: message m is published once every live subscriber sleeps for it. */
static uint64_t run_lockstep(shm_channel_t *pub, const pid_t *pids, uint64_t from,
                             const int *dead, int live)
{
    uint64_t t0 = ct_now_ns();
    for (uint64_t m = from; m <= C->count; m++) {
        wait_asleep(pub, pids, m - 1, dead, live);
        publish(pub, m);
        await_progress(pids, m, dead);
    }
    return ct_now_ns() - t0;
}

static void finish(shm_channel_t *pub, const pid_t *pids, const int *dead)
{
    shm_channel_close(pub);
    for (int i = 0; i < C->nsubs; i++) {
        if (!alive(i, dead))
            continue;
        cr_assert_eq(ct_wait(pids[i]), 0, "subscriber %d: rc %d, %llu bad", i, C->r[i].rc,
                     (unsigned long long)C->r[i].bad);
        cr_assert_eq(C->r[i].progress, C->count, "subscriber %d delivered %llu of %llu", i,
                     (unsigned long long)C->r[i].progress, (unsigned long long)C->count);
        cr_assert_eq(C->r[i].bad, 0);
    }
}

Test(bcast_chain, every_publish_wakes_all_64_sleeping_subscriber_processes)
{
    uint64_t count = ct_scaled(1000, 200);
    pid_t pids[MAXS];
    shm_channel_t *pub = start(MAXS, count, NO_BACKSTOP);
    spawn(pids);
    uint64_t ns = run_lockstep(pub, pids, 1, NULL, MAXS);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(pub, &st), 0);
    /* Every subscriber was counted in before each publish: one wake call each, no more. */
    cr_assert_eq(st.producer_wakes, count, "wake calls %llu for %llu publishes",
                 (unsigned long long)st.producer_wakes, (unsigned long long)count);
    finish(pub, pids, NULL);
    uint64_t sleeps = 0, delivered = 0;
    for (int i = 0; i < MAXS; i++) {
        sleeps += C->r[i].sleeps;
        delivered += C->r[i].progress;
    }
    cr_assert_eq(delivered, (uint64_t)MAXS * count, "0 lost: every subscriber, every message");
    fprintf(stderr, "  64 sleepers x %llu publishes: %llu deliveries, %llu sleeps (%.3f per "
                    "delivery), %.1f us per round\n",
            (unsigned long long)count, (unsigned long long)delivered,
            (unsigned long long)sleeps, (double)sleeps / (double)delivered,
            (double)ns / 1e3 / (double)count);
    munmap(C, sizeof *C);
}

Test(bcast_chain, a_link_killed_before_it_passes_the_wake_on_delays_the_rest_by_a_slice)
{
    enum { N = 8 };
    pid_t pids[MAXS];
    int dead[MAXS] = {0};
    shm_channel_t *pub = start(N, 30, BACKSTOP);
    for (int i = 0; i < N; i++)
        C->r[i].knob = 2; /* a subscriber woken by a wake call stops before passing it on */
    C->knob_after_first = 0; /* the chain as usual from message 2 */
    spawn(pids);
    wait_asleep(pub, pids, 0, NULL, N);
    uint64_t t0 = ct_now_ns();
    publish(pub, 1);
    /* The publisher's one wake woke one subscriber: it stops itself before passing the wake
     * on. Find it by its state, then kill it there: a dead link. */
    int stopped = -1;
    while (stopped < 0) {
        for (int i = 0; i < N && stopped < 0; i++) {
            int st;
            pid_t p = waitpid(pids[i], &st, WUNTRACED | WNOHANG);
            cr_assert_geq(p, 0);
            if (p == pids[i]) {
                cr_assert(WIFSTOPPED(st), "subscriber %d ended before it was killed", i);
                stopped = i;
            }
        }
        cr_assert_lt(ct_now_ns() - t0, (uint64_t)LOST_BOUND, "no woken subscriber stopped");
        usleep(100);
    }
    cr_assert_eq(kill(pids[stopped], SIGKILL), 0);
    cr_assert_eq(ct_wait(pids[stopped]), 128 + SIGKILL);
    dead[stopped] = 1;
    /* The others are asleep behind the dead link: they get message 1 at their slice. */
    await_progress(pids, 1, dead);
    uint64_t late = ct_now_ns() - t0;
    for (int i = 0; i < N; i++)
        if (i != stopped)
            cr_assert_eq(C->r[i].progress, 1, "subscriber %d", i);
    /* Only the one link stopped: the others woke at the end of their slice, no wake call. */
    for (int i = 0; i < N; i++) {
        int st;
        if (i != stopped)
            cr_assert_eq(waitpid(pids[i], &st, WUNTRACED | WNOHANG), 0, "subscriber %d", i);
    }
    /* The chain is whole again: the rest of the messages, every subscriber asleep. The dead
     * one stays counted in as a sleeper (spec §5.7 "Dead subscribers"). */
    run_lockstep(pub, pids, 2, dead, N - 1);
    finish(pub, pids, dead);
    fprintf(stderr, "  dead link: the %d others had message 1 after %.1f ms (slice %.0f ms)\n",
            N - 1, (double)late / 1e6, (double)BACKSTOP / 1e6);
    munmap(C, sizeof *C);
}

/* Both ways with a side that predates the chain (shm__hook_bcast_chain = 1: its publisher
 * wakes all, its subscribers pass nothing on). */
static void mixed(int pub_knob, int old_subs, uint64_t slice_ns)
{
    enum { N = 8 };
    pid_t pids[MAXS];
    int saved = shm__hook_bcast_chain;
    shm__hook_bcast_chain = pub_knob;
    shm_channel_t *pub = start(N, 40, slice_ns);
    for (int i = 0; i < N; i++)
        C->r[i].knob = i < old_subs ? 1 : 0;
    C->knob_after_first = -1; /* each keeps its side */
    spawn(pids);
    uint64_t ns = run_lockstep(pub, pids, 1, NULL, N);
    shm__hook_bcast_chain = saved;
    finish(pub, pids, NULL);
    fprintf(stderr, "  publisher knob %d, %d of %d subscribers wake-all: %.2f ms per round\n",
            pub_knob, old_subs, N, (double)ns / 1e6 / (double)C->count);
    munmap(C, sizeof *C);
}

Test(bcast_chain, a_wake_all_publisher_wakes_chain_subscribers)
{
    /* No backstop: the wake-all publisher alone must wake every chain subscriber. */
    mixed(1, 0, NO_BACKSTOP);
}

Test(bcast_chain, a_chain_publisher_wakes_wake_all_subscribers_within_their_slice)
{
    /* A wake-all subscriber woken as a link passes nothing on: the ones behind it wake at
     * their slice (the default 50 ms); never later, never lost. */
    mixed(0, 4, 50 * CT_MS);
}

/* An idle subscriber blocked forever on a channel nobody publishes to. */
static int idle_subscriber(void *arg)
{
    const char *name = arg;
    shm_channel_t *s = NULL;
    if (shm_channel_open_broadcast(&s, name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0) != 0)
        return 10;
    char buf[8];
    uint64_t n, missed;
    int rc = shm_channel_recv(s, buf, 8, &n, &missed, -1);
    shm_channel_close(s);
    return rc == 0 && n == 4 && memcmp(buf, "wake", 4) == 0 ? 0 : 11;
}

Test(bcast_chain, an_idle_sleeping_subscriber_costs_under_2_percent_of_a_core)
{
    char name[64];
    ct_name(name, "bidle");
    shm_channel_t *p = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&p, name, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE,
                                            NULL, 0600), 0);
    pid_t pid = ct_fork(idle_subscriber, name);
    /* Asleep: counted in as a sleeper and in the kernel. */
    shm_channel_broadcast_stat_t bs;
    for (;;) {
        cr_assert_eq(shm_channel_broadcast_stat(p, &bs), 0);
        if (bs.sleepers == 1 && proc_state(pid) == 'S')
            break;
        usleep(1000);
    }
    ct_sleep_ms(100); /* past the spin and the first sleep: the steady state */
    uint64_t w0 = ct_now_ns(), c0 = ct_cpu_ns(pid);
    ct_sleep_ms(2000);
    uint64_t c1 = ct_cpu_ns(pid), w1 = ct_now_ns();
    double share = (double)(c1 - c0) / (double)(w1 - w0);
    fprintf(stderr, "  idle broadcast subscriber: %.3f%% of a core over %.2f s\n",
            share * 100, (double)(w1 - w0) / 1e9);
    cr_assert_lt(share, 0.02, "an idle subscriber must stay under 2%% of a core (%.3f%%)",
                 share * 100);
    /* And it is a real sleeper: the message published now wakes it. */
    cr_assert_eq(shm_channel_write(p, "wake", 4, 0), 0);
    cr_assert_eq(ct_wait(pid), 0);
    shm_channel_close(p);
}
