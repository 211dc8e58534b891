/* A consumer killed (SIGKILL) mid-stream and restarted, several times, while a live producer
 * keeps writing: each new consumer resumes after the last message the dead one released.
 * Nothing is lost; the only duplicate is the message the dead one had peeked but not yet
 * released. The producer, finding the ring full with the consumer dead, gets -EOWNERDEAD and
 * retries until a new consumer attaches. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ct.h"

TestSuite(restart, .init = ct_setup, .fini = ct_teardown, .timeout = 100);

#define WAIT (30 * CT_SEC)
#define SEED 99
#define CAP 1024

/* Every message carries its sequence number (length >= 8). */
static uint64_t msg_len(uint64_t seq)
{
    return 8 + ct_msg_len(SEED, seq, CAP / 2 - 16);
}

struct shared {
    char name[64];
    uint64_t total;
    uint64_t peeked;      /* seq of the message being read (set before its release) */
    uint64_t delivered;   /* messages this consumer has released */
    uint64_t first;       /* seq of the first message this consumer got */
    uint64_t owner_dead;  /* producer: times it found the consumer dead */
    uint64_t stopped;     /* the consumer reached its stop point and waits to be killed */
};

static struct shared *sh;

static int produce_all(void *arg)
{
    (void)arg;
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, sh->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, CAP, 0);
    if (rc)
        return 1;
    uint8_t buf[CAP];
    for (uint64_t seq = 0; seq < sh->total;) {
        uint64_t len = msg_len(seq);
        ct_msg_fill(buf, SEED, seq, len);
        rc = shm_channel_write(ch, buf, len, WAIT);
        if (rc == -EOWNERDEAD) {
            /* ring full, consumer dead (killed, never closed: never -EPIPE): messages
             * wait for the next consumer */
            __atomic_add_fetch(&sh->owner_dead, 1, __ATOMIC_SEQ_CST);
            ct_sleep_ms(1);
            continue;
        }
        if (rc) {
            fprintf(stderr, "producer: message %llu: %s\n", (unsigned long long)seq,
                    shm_channel_strerror(rc));
            return 2;
        }
        seq++;
    }
    shm_channel_close(ch);
    return 0;
}

/* Read from the first message on, checking order; the first must be lo or lo + 1.
 * Runs to end-of-stream if `to_end`. Otherwise, after releasing `stop_at` messages it waits
 * to be killed, first peeking the next message if `hold_peek` (so the kill lands at a known
 * point: with a peeked, unreleased message, or with none). Returns 0 or an error code. */
static int consume(uint64_t lo, int allow_dup, int to_end, uint64_t stop_at, int hold_peek)
{
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, sh->name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, CAP, 0);
    if (rc) {
        fprintf(stderr, "consumer open: %s\n", shm_channel_strerror(rc));
        return 10;
    }
    uint64_t expect = lo;
    int first = 1;
    for (;;) {
        const void *p;
        uint64_t len;
        rc = shm_channel_peek(ch, &p, &len, WAIT);
        if (rc == -EPIPE && to_end)
            break;
        if (rc) {
            fprintf(stderr, "consumer: peek after %llu: %s\n", (unsigned long long)expect,
                    shm_channel_strerror(rc));
            return 11;
        }
        if (len < 8)
            return 12;
        uint64_t seq = ct_msg_seq(p);
        if (first) {
            if (!(seq == lo || (allow_dup && seq == lo + 1))) {
                fprintf(stderr, "consumer resumed at %llu, expected %llu%s\n",
                        (unsigned long long)seq, (unsigned long long)lo,
                        allow_dup ? " or one more" : "");
                return 13;
            }
            __atomic_store_n(&sh->first, seq, __ATOMIC_RELAXED);
            expect = seq;
            first = 0;
        }
        if (seq != expect || ct_msg_verify(p, len, SEED, seq, msg_len(seq)) != 0) {
            fprintf(stderr, "consumer: got %llu, expected %llu\n", (unsigned long long)seq,
                    (unsigned long long)expect);
            return 14;
        }
        __atomic_store_n(&sh->peeked, seq, __ATOMIC_SEQ_CST);
        if ((rc = shm_channel_release(ch)) != 0)
            return 15;
        expect++;
        if (!to_end && __atomic_add_fetch(&sh->delivered, 1, __ATOMIC_SEQ_CST) == stop_at) {
            if (hold_peek && shm_channel_peek(ch, &p, &len, WAIT) == 0 && len >= 8)
                __atomic_store_n(&sh->peeked, ct_msg_seq(p), __ATOMIC_SEQ_CST);
            __atomic_store_n(&sh->stopped, 1, __ATOMIC_SEQ_CST);
            for (;;)
                pause(); /* until the parent's SIGKILL */
        }
    }
    if (expect != sh->total) {
        fprintf(stderr, "end-of-stream after %llu of %llu\n", (unsigned long long)expect,
                (unsigned long long)sh->total);
        return 16;
    }
    shm_channel_close(ch);
    return 0;
}

static uint64_t next_lo;
static int next_dup;
static uint64_t next_stop;
static int next_hold;

static int consumer_child(void *arg)
{
    (void)arg;
    return consume(next_lo, next_dup, 0, next_stop, next_hold);
}

Test(restart, consumer_killed_and_restarted_loses_nothing)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(sh, MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    ct_name(sh->name, "restart");
    sh->total = ct_scaled(400000, 20000);
    pid_t producer = ct_fork(produce_all, NULL);
    const int rounds = 5;
    next_lo = 0;
    next_dup = 0;
    uint64_t duplicates = 0;
    for (int r = 0; r < rounds; r++) {
        __atomic_store_n(&sh->delivered, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&sh->stopped, 0, __ATOMIC_SEQ_CST);
        next_stop = sh->total / (rounds + 3) + (ct_mix((uint64_t)r) % 997);
        next_hold = r % 2 == 0; /* alternate: killed holding a peeked message, or not */
        pid_t c = ct_fork(consumer_child, NULL);
        uint64_t t0 = ct_now_ns();
        while (!__atomic_load_n(&sh->stopped, __ATOMIC_SEQ_CST)) {
            int st;
            pid_t w = waitpid(c, &st, WNOHANG);
            cr_assert_eq(w, 0, "round %d: consumer exited early (status %d)", r, st);
            cr_assert_lt(ct_now_ns() - t0, (uint64_t)WAIT, "round %d: no progress", r);
            ct_sleep_ms(1);
        }
        uint64_t dead_before = __atomic_load_n(&sh->owner_dead, __ATOMIC_SEQ_CST);
        cr_assert_eq(kill(c, SIGKILL), 0);
        cr_assert_eq(ct_wait(c), 128 + SIGKILL, "round %d", r);
        if (r % 2) {
            /* No consumer for a while: the producer fills the ring and must be told, with
             * -EOWNERDEAD, that the consumer died (the header's promise). */
            t0 = ct_now_ns();
            while (__atomic_load_n(&sh->owner_dead, __ATOMIC_SEQ_CST) == dead_before) {
                int st;
                cr_assert_eq(waitpid(producer, &st, WNOHANG), 0,
                             "round %d: producer exited (status %d)", r, st);
                cr_assert_lt(ct_now_ns() - t0, (uint64_t)WAIT,
                             "round %d: the producer, on a full ring, never got -EOWNERDEAD", r);
                ct_sleep_ms(1);
            }
        }
        /* The next consumer resumes exactly after the last released message: the one this
         * consumer held peeked, delivered again (the spec's only duplicate), or the next. */
        uint64_t peeked = __atomic_load_n(&sh->peeked, __ATOMIC_SEQ_CST);
        next_lo = next_hold ? peeked : peeked + 1;
        next_dup = 0;
        duplicates += next_hold;
    }
    /* The last consumer is this process: it reads to end-of-stream. */
    int rc = consume(next_lo, next_dup, 1, 0, 0);
    cr_assert_eq(rc, 0, "final consumer: %d", rc);
    cr_assert_eq(ct_wait(producer), 0, "producer exit");
    cr_assert(!ct_exists(sh->name), "the finished stream was removed by its last closer");
    cr_assert_geq(sh->owner_dead, (uint64_t)rounds / 2,
                  "every round without a consumer ended the producer's wait with -EOWNERDEAD");
    fprintf(stderr, "restart: %llu messages, %d kills, %llu redelivered, %llu producer "
            "EOWNERDEAD retries\n", (unsigned long long)sh->total, rounds,
            (unsigned long long)duplicates, (unsigned long long)sh->owner_dead);
    munmap(sh, sizeof *sh);
}

Test(restart, peeked_but_unreleased_message_is_delivered_again)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(sh, MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    ct_name(sh->name, "redeliver");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, sh->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, CAP, 0), 0);
    for (uint64_t seq = 0; seq < 3; seq++) {
        uint8_t buf[CAP];
        ct_msg_fill(buf, SEED, seq, msg_len(seq));
        cr_assert_eq(shm_channel_write(p, buf, msg_len(seq), 0), 0);
    }
    shm_channel_close(p);
    sh->total = 3;
    /* a consumer process that releases message 0, peeks message 1, and dies */
    pid_t c = fork();
    cr_assert_geq(c, 0);
    if (c == 0) {
        shm_channel_t *ch;
        const void *ptr;
        uint64_t len;
        if (shm_channel_open(&ch, sh->name, SHM_CHANNEL_CONSUMER, 0, 0, 0) != 0 ||
            shm_channel_peek(ch, &ptr, &len, 0) != 0 || shm_channel_release(ch) != 0 ||
            shm_channel_peek(ch, &ptr, &len, 0) != 0)
            _exit(1);
        raise(SIGKILL);
        _exit(2);
    }
    cr_assert_eq(ct_wait(c), 128 + SIGKILL);
    cr_assert_eq(consume(1, 0, 1, 0, 0), 0, "resumes exactly at the peeked message 1");
    munmap(sh, sizeof *sh);
}
