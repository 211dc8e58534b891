/* Real producer and consumer processes (fork): millions of self-checking messages of random
 * sizes (0..max payload) through a small ring, blocking and non-blocking, copying and
 * zero-copy, single and batched; either side first; end-of-stream after the drain; the
 * finished stream's segment removed by whichever side closes last. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct.h"

TestSuite(stream, .init = ct_setup, .fini = ct_teardown, .timeout = 500);

#define WAIT (30 * CT_SEC) /* a blocking call that waits this long means a lost wake-up */

struct job {
    char name[64];
    uint64_t cap;
    uint64_t count;
    uint64_t seed;
    int create;
    int close_fd;  /* producer: wait for a byte on this fd before closing (or -1) */
    int pin;       /* pin producer and consumer to different CPUs */
};

static int fail(const char *what, uint64_t seq, int rc)
{
    fprintf(stderr, "%s at message %llu: %d (%s)\n", what, (unsigned long long)seq, rc,
            rc < 0 ? shm_channel_strerror(rc) : "mismatch");
    return 1;
}

/* Producer, blocking: write() for most messages, reserve()/commit() in place for every
 * fourth, reserving more than it commits for some. */
static int produce_blocking(void *arg)
{
    const struct job *j = arg;
    if (j->pin)
        ct_pin(1);
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, j->name, SHM_CHANNEL_PRODUCER,
                              j->create ? SHM_CHANNEL_CREATE : 0, j->cap, 0);
    if (rc)
        return fail("producer open", 0, rc);
    uint64_t max = shm_channel_max_payload(ch);
    uint8_t *buf = malloc(max + 8);
    for (uint64_t seq = 0; seq < j->count; seq++) {
        uint64_t len = ct_msg_len(j->seed, seq, max);
        if (seq % 4 == 3) {
            uint64_t want = seq % 8 == 7 && len + 64 <= max ? len + 64 : len;
            void *p;
            if ((rc = shm_channel_reserve(ch, want, &p, WAIT)) != 0)
                return fail("reserve", seq, rc);
            ct_msg_fill(p, j->seed, seq, len);
            if ((rc = shm_channel_commit(ch, len)) != 0)
                return fail("commit", seq, rc);
        } else {
            ct_msg_fill(buf, j->seed, seq, len);
            if ((rc = shm_channel_write(ch, buf, len, WAIT)) != 0)
                return fail("write", seq, rc);
        }
    }
    if (j->close_fd >= 0) {
        char b;
        if (read(j->close_fd, &b, 1) != 1)
            return fail("close signal", j->count, -EIO);
    }
    shm_channel_close(ch);
    free(buf);
    return 0;
}

/* Consumer, blocking, in the test process: read() and peek()/release() alternately. */
static void consume_blocking(const struct job *j, shm_channel_t *ch)
{
    uint64_t max = shm_channel_max_payload(ch);
    uint8_t *buf = malloc(max + 8);
    for (uint64_t seq = 0; seq < j->count; seq++) {
        uint64_t len;
        int rc;
        if (seq % 3 == 0) {
            const void *p;
            rc = shm_channel_peek(ch, &p, &len, WAIT);
            cr_assert_eq(rc, 0, "peek message %lu: %s", (unsigned long)seq, shm_channel_strerror(rc));
            cr_assert_eq((uintptr_t)p % 8, 0);
            rc = ct_msg_check(p, len, j->seed, seq, max);
            cr_assert_eq(rc, 0, "message %lu corrupt (%d), len %lu", (unsigned long)seq, rc,
                         (unsigned long)len);
            cr_assert_eq(shm_channel_release(ch), 0);
        } else {
            rc = shm_channel_read(ch, buf, max, &len, WAIT);
            cr_assert_eq(rc, 0, "read message %lu: %s", (unsigned long)seq, shm_channel_strerror(rc));
            rc = ct_msg_check(buf, len, j->seed, seq, max);
            cr_assert_eq(rc, 0, "message %lu corrupt (%d), len %lu", (unsigned long)seq, rc,
                         (unsigned long)len);
        }
    }
    free(buf);
}

static void expect_end_of_stream(shm_channel_t *ch)
{
    uint8_t b[8];
    uint64_t len;
    int rc = shm_channel_read(ch, b, sizeof b, &len, WAIT);
    cr_assert_eq(rc, -EPIPE, "after the last message: %s", shm_channel_strerror(rc));
}

Test(stream, ten_million_blocking_through_1k)
{
    struct job j = {.cap = 1024, .count = ct_scaled(10000000, 20000), .seed = 101,
                    .create = 1, .close_fd = -1, .pin = 1};
    ct_name(j.name, "blk");
    pid_t pid = ct_fork(produce_blocking, &j);
    ct_pin(0);
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, j.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, j.cap, 0), 0);
    consume_blocking(&j, c);
    expect_end_of_stream(c);
    cr_assert_eq(ct_wait(pid), 0, "producer exit");
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_eq(st.msgs_read, j.count);
    cr_assert_eq(st.msgs_written, j.count);
    cr_assert_eq(st.bytes_read, st.bytes_written);
    cr_assert_gt(st.write_pos / j.cap, j.count / 20, "thousands of wraps");
    cr_assert_eq(st.used, 0);
    shm_channel_close(c);
    cr_assert(!ct_exists(j.name), "the consumer closed last and removed the finished stream");
    fprintf(stderr, "blocking: %llu messages, %llu laps, %llu full / %llu empty events, "
            "%llu + %llu sleeps\n", (unsigned long long)j.count,
            (unsigned long long)(st.write_pos / j.cap), (unsigned long long)st.full_events,
            (unsigned long long)st.empty_events, (unsigned long long)st.producer_sleeps,
            (unsigned long long)st.consumer_sleeps);
}

/* Producer, non-blocking: write_batch() and write() with timeout 0, retrying on EAGAIN. */
static int produce_nonblocking(void *arg)
{
    const struct job *j = arg;
    if (j->pin)
        ct_pin(1);
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, j->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, j->cap, 0);
    if (rc)
        return fail("producer open", 0, rc);
    uint64_t max = shm_channel_max_payload(ch);
    uint8_t *stage = malloc(32 * (max + 8));
    uint64_t lens[32];
    uint64_t seq = 0, spins = 0;
    while (seq < j->count) {
        /* stage a batch of 1..32 messages */
        uint32_t k = (uint32_t)(ct_mix(seq) % 32) + 1;
        if (seq + k > j->count)
            k = (uint32_t)(j->count - seq);
        uint64_t off = 0;
        for (uint32_t i = 0; i < k; i++) {
            lens[i] = ct_msg_len(j->seed, seq + i, max);
            ct_msg_fill(stage + off, j->seed, seq + i, lens[i]);
            off += lens[i];
        }
        /* write it, in as many calls as it takes */
        uint32_t done = 0;
        off = 0;
        while (done < k) {
            if (k - done == 1)
                rc = shm_channel_write(ch, stage + off, lens[done], 0) == 0 ? 1 : -EAGAIN;
            else
                rc = shm_channel_write_batch(ch, stage + off, lens + done, k - done, 0);
            if (rc == -EAGAIN) {
                if (++spins % 128 == 0)
                    sched_yield(); /* the peer may share this core */
                continue;
            }
            if (rc <= 0 || (uint32_t)rc > k - done)
                return fail("write_batch", seq + done, rc);
            for (int i = 0; i < rc; i++)
                off += lens[done + (uint32_t)i];
            done += (uint32_t)rc;
        }
        seq += k;
    }
    shm_channel_close(ch);
    free(stage);
    return 0;
}

Test(stream, ten_million_nonblocking_batched_through_2k)
{
    struct job j = {.cap = 2048, .count = ct_scaled(10000000, 20000), .seed = 202,
                    .create = 1, .close_fd = -1, .pin = 1};
    ct_name(j.name, "nonblk");
    pid_t pid = ct_fork(produce_nonblocking, &j);
    ct_pin(0);
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, j.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, j.cap, 0), 0);
    uint64_t max = shm_channel_max_payload(c);
    uint8_t *buf = malloc(16384);
    uint64_t lens[64];
    uint64_t seq = 0, spins = 0, batches = 0, last_seq = 0, last_progress = ct_now_ns();
    int rc;
    for (;;) {
        if (seq % 5 == 0) {
            rc = shm_channel_read(c, buf, max, &lens[0], 0);
            rc = rc == 0 ? 1 : rc;
        } else {
            rc = shm_channel_read_batch(c, buf, 16384, lens, 64, 0);
        }
        if (rc == -EAGAIN) {
            if (++spins % 128 == 0) {
                sched_yield(); /* the peer may share this core */
                /* never spin forever: the producer must make progress */
                uint64_t now = ct_now_ns();
                if (seq != last_seq) {
                    last_seq = seq;
                    last_progress = now;
                }
                cr_assert_lt(now - last_progress, (uint64_t)WAIT, "stuck at message %lu",
                             (unsigned long)seq);
            }
            continue;
        }
        if (rc == -EPIPE)
            break;
        cr_assert_gt(rc, 0, "read at message %lu: %s", (unsigned long)seq, shm_channel_strerror(rc));
        batches++;
        uint64_t off = 0;
        for (int i = 0; i < rc; i++, seq++) {
            int bad = ct_msg_check(buf + off, lens[i], j.seed, seq, max);
            cr_assert_eq(bad, 0, "message %lu corrupt (%d)", (unsigned long)seq, bad);
            off += lens[i];
        }
    }
    cr_assert_eq(seq, j.count, "every message, then end-of-stream");
    cr_assert_lt(batches, seq, "batches returned several messages");
    cr_assert_eq(ct_wait(pid), 0, "producer exit");
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_eq(st.msgs_written, j.count);
    cr_assert_eq(st.msgs_read, j.count);
    cr_assert_eq(st.producer_sleeps + st.consumer_sleeps, 0, "non-blocking calls never sleep");
    shm_channel_close(c);
    free(buf);
    cr_assert(!ct_exists(j.name));
}

Test(stream, sleeping_on_every_wait)
{
    /* Spinning off: every wait goes to the futex, so every wake-up is exercised. */
    struct job j = {.cap = 1024, .count = ct_scaled(100000, 5000), .seed = 303, .create = 1,
                    .close_fd = -1};
    ct_name(j.name, "nospin");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, j.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, j.cap, 0), 0);
    cr_assert_eq(shm_channel_set_spin(c, 0), 0);
    pid_t pid = ct_fork(produce_blocking, &j);
    consume_blocking(&j, c);
    expect_end_of_stream(c);
    cr_assert_eq(ct_wait(pid), 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_gt(st.consumer_sleeps, 0, "the consumer slept");
    cr_assert_gt(st.producer_wakes, 0, "and the producer woke it");
    shm_channel_close(c);
    cr_assert(!ct_exists(j.name));
}

Test(stream, consumer_first_and_producer_closes_last)
{
    struct job j = {.cap = 2048, .count = ct_scaled(200000, 5000), .seed = 404, .create = 0};
    ct_name(j.name, "cfirst");
    shm_channel_t *c;
    /* The consumer creates the channel; the producer opens it without CREATE. */
    cr_assert_eq(shm_channel_open(&c, j.name, SHM_CHANNEL_CONSUMER,
                                  SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, 2048, 0), 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    j.close_fd = fds[0];
    pid_t pid = ct_fork(produce_blocking, &j);
    consume_blocking(&j, c);
    uint8_t b[8];
    uint64_t len;
    cr_assert_eq(shm_channel_read(c, b, sizeof b, &len, 0), -EAGAIN,
                 "drained, the producer lives: empty, not end-of-stream");
    shm_channel_close(c);
    cr_assert(ct_exists(j.name), "the producer is still attached");
    cr_assert_eq(write(fds[1], "x", 1), 1);
    cr_assert_eq(ct_wait(pid), 0);
    cr_assert(!ct_exists(j.name), "the producer closed last and removed the finished stream");
    close(fds[0]);
    close(fds[1]);
}

static int produce_then_exit(void *arg)
{
    const struct job *j = arg;
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, j->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, j->cap, 0);
    if (rc)
        return fail("producer open", 0, rc);
    uint8_t buf[64];
    for (uint64_t seq = 0; seq < j->count; seq++) {
        ct_msg_fill(buf, j->seed, seq, ct_msg_len(j->seed, seq, 56));
        if ((rc = shm_channel_write(ch, buf, ct_msg_len(j->seed, seq, 56), 0)) != 0)
            return fail("write", seq, rc);
    }
    shm_channel_close(ch);
    return 0;
}

Test(stream, producer_first_and_gone_before_the_consumer_starts)
{
    struct job j = {.cap = 65536, .count = 500, .seed = 505};
    ct_name(j.name, "pfirst");
    pid_t pid = ct_fork(produce_then_exit, &j);
    cr_assert_eq(ct_wait(pid), 0);
    cr_assert(ct_exists(j.name), "unread messages keep the segment after the producer left");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, j.name, SHM_CHANNEL_CONSUMER, 0, 0, 0), 0);
    uint8_t buf[64];
    uint64_t len;
    for (uint64_t seq = 0; seq < j.count; seq++) {
        cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
        cr_assert_eq(ct_msg_check(buf, len, j.seed, seq, 56), 0, "message %lu", (unsigned long)seq);
    }
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), -EPIPE);
    shm_channel_close(c);
    cr_assert(!ct_exists(j.name));
}
