/* Broadcast channels through the public API with real processes, real files, locks and
 * futexes: 64 subscriber processes of four habits (blocking, slow, in-place views, latest
 * value), some killed and restarted; at least 10^7 numbered, checksummed messages (plain
 * build) with subscribers lapped again and again and 0 torn deliveries; publishers killed
 * in the middle of a message (the half-written message is never seen, -EOWNERDEAD, a
 * successor continues the numbering), end-of-stream (-EPIPE) told apart from death. Every
 * subscriber checks delivered + missed == published since it joined, exactly. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ct.h"

TestSuite(bcast_proc_api, .init = ct_setup, .fini = ct_teardown, .timeout = 500);

#define SEED 0xB0CA57ull
#define MAXP 200u
#define MAXSUBS 72

enum habit { BLOCKING, SLOW, VIEW, LATEST };

struct result {
    uint64_t delivered, missed, torn, order, stale, laps, start, end_next;
    uint64_t deaths;
    uint64_t lib_delivered, lib_missed;
    int rc, ready, done;
};

struct control {
    char name[64];
    uint64_t count;           /* messages the publishers publish in all */
    uint64_t published;       /* pub_seq at the end, from the last publisher */
    int go;                   /* subscribers are ready: publish */
    int pause_round;          /* the publisher stops in the middle of a message */
    int paused;
    int final;                /* the last publisher closed cleanly: EPIPE ends a subscriber */
    int pub_done;             /* the publisher has published everything */
    struct result res[MAXSUBS];
};

static struct control *C;

static uint64_t msg_len(uint64_t m)
{
    return 16 + ct_msg_len(SEED, m, MAXP - 16);
}

static struct control *control_new(const char *tag, uint64_t count)
{
    struct control *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                             -1, 0);
    cr_assert_neq(c, MAP_FAILED);
    memset(c, 0, sizeof *c);
    ct_name(c->name, tag);
    c->count = count;
    return c;
}

/* ---- subscriber processes ------------------------------------------------------------ */

struct subarg {
    int index;
    enum habit habit;
    uint32_t depth;
};

/* Account for message `seq` delivered with `missed` skipped before it, in `buf`. */
static void account(struct result *r, uint64_t *next, uint64_t seq, uint64_t missed,
                    const void *buf, uint64_t len)
{
    if (seq != *next + missed)
        __atomic_fetch_add(&r->order, 1, __ATOMIC_RELAXED);
    if (missed)
        r->laps++;
    if (ct_msg_verify(buf, len, SEED, seq, msg_len(seq)) != 0)
        __atomic_fetch_add(&r->torn, 1, __ATOMIC_RELAXED);
    r->missed += missed;
    r->delivered++;
    *next = seq + 1;
    __atomic_store_n(&r->delivered, r->delivered, __ATOMIC_RELAXED);
}

static int subscriber(void *p)
{
    const struct subarg *a = p;
    struct result *r = &C->res[a->index];
    memset(r, 0, sizeof *r);
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_broadcast(&ch, C->name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0);
    if (rc) {
        r->rc = rc;
        __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
        return 1;
    }
    shm_channel_sub_stat_t ss;
    shm_channel_sub_stat(ch, -1, &ss);
    uint64_t next = ss.next_seq;
    r->start = next;
    __atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
    static uint8_t buf[MAXP];
    uint64_t len, missed;
    uint32_t dead_epoch = 0;
    for (uint64_t i = 0;; i++) {
        if (a->habit == SLOW && i % 1000 == 999)
            usleep(200); /* stands still: lapped */
        if (a->habit == VIEW) {
            const void *v;
            rc = shm_channel_peek(ch, &v, &len, -1);
            if (rc == 0) {
                static uint8_t copy[MAXP];
                uint64_t n = len <= MAXP ? len : MAXP;
                memcpy(copy, v, n);
                shm_channel_sub_stat(ch, -1, &ss);
                uint64_t seq = n >= 8 ? ct_msg_seq(copy) : 0;
                missed = ss.last_missed;
                if (shm_channel_release(ch) == -ESTALE) {
                    /* possibly torn: not delivered, counted as missed by the library */
                    r->stale++;
                    r->missed += missed + 1;
                    next += missed + 1;
                    continue;
                }
                account(r, &next, seq, missed, copy, len);
                continue;
            }
        } else if (a->habit == LATEST && i % 2 == 0) {
            int32_t is_new;
            rc = shm_channel_read_latest(ch, buf, sizeof buf, &len, &is_new, &missed);
            if (rc == 0) {
                if (is_new)
                    account(r, &next, ct_msg_seq(buf), missed, buf, len);
                continue;
            }
            if (rc != -EAGAIN)
                break;
            rc = shm_channel_recv(ch, buf, sizeof buf, &len, &missed, -1);
            if (rc == 0) {
                account(r, &next, ct_msg_seq(buf), missed, buf, len);
                continue;
            }
        } else {
            rc = shm_channel_recv(ch, buf, sizeof buf, &len, &missed, -1);
            if (rc == 0) {
                account(r, &next, ct_msg_seq(buf), missed, buf, len);
                continue;
            }
        }
        if (rc == -EOWNERDEAD) {
            shm_channel_stat_t st;
            shm_channel_stat(ch, &st);
            if (st.producer_epoch != dead_epoch) /* each death counted once */
                __atomic_store_n(&r->deaths, r->deaths + 1, __ATOMIC_RELAXED);
            dead_epoch = st.producer_epoch;
            usleep(500); /* until a successor attaches */
            continue;
        }
        if (rc == -EPIPE && !__atomic_load_n(&C->final, __ATOMIC_ACQUIRE)) {
            usleep(500);
            continue;
        }
        break;
    }
    r->rc = rc;
    shm_channel_sub_stat(ch, -1, &ss);
    r->end_next = ss.next_seq;
    r->lib_delivered = ss.delivered;
    r->lib_missed = ss.missed;
    shm_channel_close(ch);
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return 0;
}

/* ---- publisher processes ------------------------------------------------------------- */

struct pubarg {
    uint32_t depth;
    uint64_t upto;      /* publish until pub_seq reaches this */
    int die_mid;        /* then start one more message, half-write it, and wait to be killed */
};

static int publisher(void *p)
{
    const struct pubarg *a = p;
    shm_channel_broadcast_config_t cfg = {MAXP, a->depth, MAXSUBS, "ct-msg", {0}};
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_broadcast(&ch, C->name, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE,
                                        &cfg, 0);
    if (rc)
        return 10;
    while (!__atomic_load_n(&C->go, __ATOMIC_ACQUIRE))
        usleep(100);
    shm_channel_broadcast_stat_t bs;
    shm_channel_broadcast_stat(ch, &bs);
    static uint8_t buf[MAXP];
    for (uint64_t m = bs.pub_seq + 1; m <= a->upto; m++) {
        uint64_t len = msg_len(m);
        ct_msg_fill(buf, SEED, m, len);
        if (shm_channel_write(ch, buf, len, 0) != 0)
            return 11;
        if (m % 4096 == 0)
            sched_yield();
    }
    if (a->die_mid) {
        void *w;
        uint64_t m = a->upto + 1, len = msg_len(m);
        if (shm_channel_reserve(ch, MAXP, &w, 0) != 0)
            return 12;
        ct_msg_fill(buf, SEED, m, len);
        memcpy(w, buf, len / 2); /* half of it: never to be seen */
        __atomic_store_n(&C->paused, 1, __ATOMIC_RELEASE);
        for (;;)
            pause();
    }
    __atomic_store_n(&C->pub_done, 1, __ATOMIC_RELEASE);
    shm_channel_close(ch);
    return 0;
}

/* ---- checks ---------------------------------------------------------------------------- */

static void wait_ready(int n)
{
    for (int i = 0; i < n; i++)
        while (!__atomic_load_n(&C->res[i].ready, __ATOMIC_ACQUIRE) &&
               !__atomic_load_n(&C->res[i].done, __ATOMIC_ACQUIRE))
            usleep(200);
}

static void check_result(int i, uint64_t published, int want_rc)
{
    const struct result *r = &C->res[i];
    cr_expect_eq(r->rc, want_rc, "subscriber %d ended with %d (%s)", i, r->rc,
                 shm_channel_strerror(r->rc));
    cr_expect_eq(r->torn, 0, "subscriber %d: %lu torn deliveries", i, (unsigned long)r->torn);
    cr_expect_eq(r->order, 0, "subscriber %d: %lu out of order", i, (unsigned long)r->order);
    /* Exactly: every message from its join to the last published, delivered or missed. */
    cr_expect_eq(r->end_next, published + 1, "subscriber %d next %lu", i,
                 (unsigned long)r->end_next);
    cr_expect_eq(r->delivered + r->missed, published + 1 - r->start,
                 "subscriber %d: delivered %lu + missed %lu != %lu", i,
                 (unsigned long)r->delivered, (unsigned long)r->missed,
                 (unsigned long)(published + 1 - r->start));
    cr_expect_eq(r->lib_delivered, r->delivered, "subscriber %d delivered", i);
    cr_expect_eq(r->lib_missed, r->missed, "subscriber %d missed", i);
}

Test(bcast_proc_api, sixty_four_subscribers_slow_killed_and_restarted)
{
    enum { N = 64, VICTIMS = 8 };
    C = control_new("fan", ct_scaled(100000, 10000));
    struct pubarg pa = {8, C->count, 0};
    /* The publisher creates the channel (and waits for go). */
    pid_t pub = ct_fork(publisher, &pa);
    static struct subarg sa[N];
    pid_t pids[N];
    /* An observer for the end: the last subscriber to close unlinks the name. */
    shm_channel_t *obs = NULL;
    while (shm_channel_open(&obs, C->name, SHM_CHANNEL_OBSERVER, 0, 0, 0) != 0)
        usleep(1000);
    for (int i = 0; i < N; i++) {
        sa[i] = (struct subarg){i, (enum habit)(i % 4), 8};
        pids[i] = ct_fork(subscriber, &sa[i]);
    }
    wait_ready(N);
    __atomic_store_n(&C->go, 1, __ATOMIC_RELEASE);
    /* Kill the victims (one of each habit, twice over) once they have read something (or
     * the publisher is through: small counts under the sanitizers), and start each again:
     * the replacement joins at the newest message. */
    for (int v = 0; v < VICTIMS; v++) {
        int i = 1 + v * 7;
        while (__atomic_load_n(&C->res[i].delivered, __ATOMIC_RELAXED) < 100 &&
               !__atomic_load_n(&C->res[i].done, __ATOMIC_ACQUIRE) &&
               !__atomic_load_n(&C->pub_done, __ATOMIC_ACQUIRE))
            usleep(200);
        kill(pids[i], SIGKILL);
        cr_assert_eq(ct_wait(pids[i]), 128 + SIGKILL);
        /* The dead one's ready flag must not pass for its replacement's: cleared before
         * the fork (the replacement clears it too, but perhaps only after the test has
         * read it), or the test would go on, end the run, and the last subscriber to close
         * would unlink the finished channel before the replacement opens it (-ENOENT). */
        memset(&C->res[i], 0, sizeof C->res[i]);
        pids[i] = ct_fork(subscriber, &sa[i]);
        while (!__atomic_load_n(&C->res[i].ready, __ATOMIC_ACQUIRE) &&
               !__atomic_load_n(&C->res[i].done, __ATOMIC_ACQUIRE))
            usleep(200);
    }
    cr_assert_eq(ct_wait(pub), 0);
    __atomic_store_n(&C->final, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ct_wait(pids[i]), 0, "subscriber %d (rc %d: %s)", i, C->res[i].rc,
                     shm_channel_strerror(C->res[i].rc));
    uint64_t laps = 0;
    for (int i = 0; i < N; i++) {
        check_result(i, C->count, -EPIPE);
        laps += C->res[i].laps;
    }
    cr_expect_gt(laps, 0, "nobody was lapped: the test shows nothing about laps");
    /* The killed subscribers' entries: still counted, or reclaimed by a joiner. And the
     * channel is gone: its publisher closed and its last handle left. */
    cr_expect(!ct_exists(C->name));
    shm_channel_broadcast_stat_t bs;
    cr_assert_eq(shm_channel_broadcast_stat(obs, &bs), 0);
    cr_expect_eq(bs.subscribers + bs.reclaims, VICTIMS, "subscribers %u reclaims %lu",
                 bs.subscribers, (unsigned long)bs.reclaims);
    cr_expect_eq(bs.pub_seq, C->count);
    shm_channel_close(obs);
}

Test(bcast_proc_api, ten_million_messages_lapped_again_and_again_none_torn)
{
    enum { N = 4 };
    C = control_new("ten", ct_scaled(10000000, 200000));
    struct pubarg pa = {8, C->count, 0};
    static struct subarg sa[N];
    pid_t pids[N];
    /* The subscribers create the channel first this time (either side may). */
    shm_channel_broadcast_config_t cfg = {MAXP, 8, MAXSUBS, "ct-msg", {0}};
    shm_channel_t *keep = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&keep, C->name, SHM_CHANNEL_OBSERVER, 0, &cfg, 0),
                 -ENOENT);
    shm_channel_t *first = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&first, C->name, SHM_CHANNEL_SUBSCRIBER,
                                            SHM_CHANNEL_CREATE, &cfg, 0), 0);
    for (int i = 0; i < N; i++) {
        sa[i] = (struct subarg){i, (enum habit)i, 8};
        pids[i] = ct_fork(subscriber, &sa[i]);
    }
    wait_ready(N);
    shm_channel_close(first);
    pid_t pub = ct_fork(publisher, &pa);
    __atomic_store_n(&C->go, 1, __ATOMIC_RELEASE);
    cr_assert_eq(ct_wait(pub), 0);
    __atomic_store_n(&C->final, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ct_wait(pids[i]), 0);
    for (int i = 0; i < N; i++) {
        check_result(i, C->count, -EPIPE);
        cr_expect_eq(C->res[i].start, 1);
    }
    cr_expect_gt(C->res[SLOW].laps, 10, "the slow subscriber was lapped only %lu times",
                 (unsigned long)C->res[SLOW].laps);
}

Test(bcast_proc_api, publisher_killed_mid_message_never_half_seen)
{
    enum { N = 3, ROUNDS = 12 };
    uint64_t per = ct_scaled(20000, 2000);
    C = control_new("kill", per * ROUNDS);
    static struct subarg sa[N];
    pid_t pids[N];
    shm_channel_broadcast_config_t cfg = {MAXP, 16, MAXSUBS, "ct-msg", {0}};
    shm_channel_t *first = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&first, C->name, SHM_CHANNEL_SUBSCRIBER,
                                            SHM_CHANNEL_CREATE, &cfg, 0), 0);
    for (int i = 0; i < N; i++) {
        sa[i] = (struct subarg){i, (enum habit)(i == 2 ? VIEW : BLOCKING), 16};
        pids[i] = ct_fork(subscriber, &sa[i]);
    }
    wait_ready(N);
    shm_channel_close(first);
    __atomic_store_n(&C->go, 1, __ATOMIC_RELEASE);
    for (int round = 1; round <= ROUNDS; round++) {
        struct pubarg pa = {16, per * (uint64_t)round, round < ROUNDS};
        __atomic_store_n(&C->paused, 0, __ATOMIC_RELEASE);
        pid_t pub = ct_fork(publisher, &pa);
        if (round == ROUNDS) {
            cr_assert_eq(ct_wait(pub), 0);
            break;
        }
        while (!__atomic_load_n(&C->paused, __ATOMIC_ACQUIRE))
            usleep(200);
        kill(pub, SIGKILL);
        cr_assert_eq(ct_wait(pub), 128 + SIGKILL);
        /* Every subscriber sees the death (after everything published before it). */
        for (int i = 0; i < N; i++)
            while (__atomic_load_n(&C->res[i].deaths, __ATOMIC_RELAXED) < (uint64_t)round)
                usleep(200);
    }
    __atomic_store_n(&C->final, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ct_wait(pids[i]), 0);
    for (int i = 0; i < N; i++) {
        check_result(i, C->count, -EPIPE);
        cr_expect_geq(C->res[i].deaths, ROUNDS - 1);
    }
}
