/* Closing, end-of-stream, unlinking (with and without FORCE, by the last closer), stat()
 * counters and states, and the informational calls: strerror, version, dir. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ct.h"

TestSuite(life, .init = ct_setup, .fini = ct_teardown, .timeout = 30);

static shm_channel_t *must_open(const char *name, uint32_t role, uint32_t flags, uint64_t cap)
{
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open(&ch, name, role, flags, cap, 0);
    cr_assert_eq(rc, 0, "open %s role %u: %s", name, role, shm_channel_strerror(rc));
    return ch;
}

static int rd(shm_channel_t *c, int64_t timeout)
{
    uint8_t buf[1024];
    uint64_t len;
    return shm_channel_read(c, buf, sizeof buf, &len, timeout);
}

Test(life, close_null_is_a_no_op)
{
    shm_channel_close(NULL);
}

Test(life, end_of_stream_after_the_drain)
{
    char n[64];
    ct_name(n, "eos");
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, 0, 0);
    cr_assert_eq(rd(c, 0), -EAGAIN, "producer attached, ring empty: not end-of-stream");
    cr_assert_eq(shm_channel_write(p, "a", 1, 0), 0);
    cr_assert_eq(shm_channel_write(p, "b", 1, 0), 0);
    shm_channel_close(p);
    cr_assert(ct_exists(n), "unread messages keep the segment");
    cr_assert_eq(rd(c, 0), 0, "messages committed before close are delivered");
    cr_assert_eq(rd(c, -1), 0, "even with a blocking read");
    uint64_t t0 = ct_now_ns();
    cr_assert_eq(rd(c, -1), -EPIPE, "then end-of-stream, without waiting");
    cr_assert_lt(ct_now_ns() - t0, 5 * CT_SEC);
    cr_assert_eq(rd(c, 0), -EPIPE, "and it stays");
    const void *ptr;
    uint64_t len, lens[2];
    uint8_t buf[8];
    cr_assert_eq(shm_channel_peek(c, &ptr, &len, 0), -EPIPE);
    cr_assert_eq(shm_channel_read_batch(c, buf, sizeof buf, lens, 2, 10 * CT_MS), -EPIPE);
    /* A later producer resumes the stream; the consumer may keep reading. */
    p = must_open(n, SHM_CHANNEL_PRODUCER, 0, 0);
    cr_assert_eq(rd(c, 0), -EAGAIN, "a new producer is attached");
    cr_assert_eq(shm_channel_write(p, "c", 1, 0), 0);
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(buf[0], 'c');
    shm_channel_close(p);
    cr_assert_eq(rd(c, 0), -EPIPE);
    shm_channel_close(c);
    cr_assert(!ct_exists(n), "the last closer removed the finished stream");
}

Test(life, close_aborts_an_outstanding_reservation)
{
    char n[64];
    ct_name(n, "closeres");
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, 0, 0);
    cr_assert_eq(shm_channel_write(p, "kept", 4, 0), 0);
    void *w;
    cr_assert_eq(shm_channel_reserve(p, 16, &w, 0), 0);
    memcpy(w, "never published!", 16);
    shm_channel_close(p);
    uint8_t buf[32];
    uint64_t len;
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(rd(c, 0), -EPIPE, "the reservation was dropped");
    shm_channel_close(c);
}

Test(life, a_peeked_message_stays_for_the_next_consumer)
{
    char n[64];
    ct_name(n, "peekclose");
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    cr_assert_eq(shm_channel_write(p, "one", 3, 0), 0);
    cr_assert_eq(shm_channel_write(p, "two", 3, 0), 0);
    uint8_t buf[8];
    uint64_t len;
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
    const void *ptr;
    cr_assert_eq(shm_channel_peek(c, &ptr, &len, 0), 0);
    shm_channel_close(c);
    c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(buf, "two", 3), 0, "released messages are gone, the peeked one is not");
    cr_assert_eq(rd(c, 0), -EAGAIN);
    shm_channel_close(c);
    shm_channel_close(p);
}

Test(life, producer_sees_the_consumer_close_only_when_full)
{
    char n[64];
    ct_name(n, "consclose");
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    shm_channel_close(c);
    uint8_t buf[128] = {0};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(shm_channel_write(p, buf, 120, 0), 0, "room: messages wait");
    cr_assert_eq(shm_channel_write(p, buf, 120, 0), -EPIPE, "full, and the consumer closed");
    cr_assert_eq(shm_channel_write(p, buf, 120, -1), -EPIPE, "without waiting");
    c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    cr_assert_eq(shm_channel_write(p, buf, 120, 0), -EAGAIN, "a new consumer is attached");
    cr_assert_eq(rd(c, 0), 0);
    cr_assert_eq(shm_channel_write(p, buf, 120, 0), 0);
    shm_channel_close(p);
    shm_channel_close(c);
    cr_assert(ct_exists(n), "unread messages: the stream is not finished");
}

Test(life, last_closer_removes_a_finished_stream)
{
    char n[64];
    /* consumer closes last */
    ct_name(n, "fin1");
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    cr_assert_eq(shm_channel_write(p, "m", 1, 0), 0);
    shm_channel_close(p);
    cr_assert(ct_exists(n));
    cr_assert_eq(rd(c, 0), 0);
    cr_assert(ct_exists(n), "open handles keep the name");
    shm_channel_close(c);
    cr_assert(!ct_exists(n));

    /* producer closes last, after the consumer drained and left */
    ct_name(n, "fin2");
    p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    cr_assert_eq(shm_channel_write(p, "m", 1, 0), 0);
    cr_assert_eq(rd(c, 0), 0);
    shm_channel_close(c);
    cr_assert(ct_exists(n), "the producer has not closed: not finished");
    shm_channel_close(p);
    cr_assert(!ct_exists(n));

    /* an observer does not keep a finished stream alive, and keeps working */
    ct_name(n, "fin3");
    p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_t *o = must_open(n, SHM_CHANNEL_OBSERVER, 0, 0);
    shm_channel_close(p);
    cr_assert(!ct_exists(n), "nothing written, producer closed: finished");
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(o, &st), 0);
    cr_assert_eq(st.producer_state, SHM_CHANNEL_PEER_CLOSED);
    shm_channel_close(o);

    /* unfinished: the producer never closed */
    ct_name(n, "unfin");
    c = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_close(c);
    cr_assert(ct_exists(n), "a consumer alone never removes the channel");
    cr_assert_eq(shm_channel_unlink(n, 0), 0);
}

Test(life, unlink)
{
    char n[64];
    ct_name(n, "unlink");
    cr_assert_eq(shm_channel_unlink(n, 0), -ENOENT);
    cr_assert_eq(shm_channel_unlink(n, SHM_CHANNEL_FORCE), -ENOENT);
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    cr_assert_eq(shm_channel_write(p, "x", 1, 0), 0); /* unread: never removed by a closer */
    cr_assert_eq(shm_channel_unlink(n, 2), -EINVAL, "unknown flag");
    cr_assert_eq(shm_channel_unlink(n, 0), -EBUSY, "a producer is attached");
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    shm_channel_close(p);
    cr_assert_eq(shm_channel_unlink(n, 0), -EBUSY, "a consumer is attached");
    shm_channel_t *o = must_open(n, SHM_CHANNEL_OBSERVER, 0, 0);
    shm_channel_close(c);
    cr_assert(ct_exists(n));
    cr_assert_eq(shm_channel_unlink(n, 0), 0, "observers do not count");
    cr_assert(!ct_exists(n));
    shm_channel_close(o);
    cr_assert_eq(shm_channel_unlink(n, 0), -ENOENT);
    cr_assert_eq(shm_channel_unlink("/does-not-exist-ct", 0), -ENOENT);
}

Test(life, forced_unlink_under_live_handles)
{
    char n[64];
    ct_name(n, "force");
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    cr_assert_eq(shm_channel_unlink(n, SHM_CHANNEL_FORCE), 0);
    cr_assert(!ct_exists(n));
    /* live handles keep working on the unlinked segment */
    cr_assert_eq(shm_channel_write(p, "still", 5, 0), 0);
    uint8_t buf[8];
    uint64_t len;
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 5);
    /* a new opener gets a new segment */
    shm_channel_t *none;
    cr_assert_eq(shm_channel_open(&none, n, SHM_CHANNEL_PRODUCER, 0, 0, 0), -ENOENT);
    shm_channel_t *p2 = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    cr_assert_eq(shm_channel_write(p2, "new", 3, 0), 0);
    cr_assert_eq(rd(c, 0), -EAGAIN, "the old consumer does not see the new segment");
    shm_channel_close(p);
    cr_assert_eq(rd(c, 0), -EPIPE);
    shm_channel_close(c);
    cr_assert(ct_exists(n), "closing the old segment does not remove the new one");
    shm_channel_close(p2);
    cr_assert_eq(shm_channel_unlink(n, 0), 0);
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

Test(life, stat_counters_and_states)
{
    char n[64];
    ct_name(n, "stat");
    uint64_t before = realtime_ns();
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    uint64_t after = realtime_ns();
    shm_channel_stat_t st;
    memset(&st, 0xff, sizeof st);
    cr_assert_eq(shm_channel_stat(p, &st), 0);
    cr_assert_eq(st.kind, SHM_CHANNEL_KIND_STREAM);
    cr_assert_eq(st.layout_major, SHM_CHANNEL_LAYOUT_MAJOR);
    cr_assert_eq(st.layout_minor, 1); /* streams: 1.1 (spec §5.10) */
    cr_assert_eq(st.capacity, 1024);
    cr_assert_eq(st.max_payload, 504);
    cr_assert_eq(st.write_pos, 0);
    cr_assert_eq(st.read_pos, 0);
    cr_assert_eq(st.used, 0);
    cr_assert_eq(st.msgs_written + st.bytes_written + st.msgs_read + st.bytes_read, 0);
    cr_assert_eq(st.full_events + st.empty_events, 0);
    cr_assert_eq(st.producer_state, SHM_CHANNEL_PEER_ATTACHED);
    cr_assert_eq(st.consumer_state, SHM_CHANNEL_PEER_NONE);
    cr_assert_eq(st.producer_epoch, 1);
    cr_assert_eq(st.consumer_epoch, 0);
    cr_assert_eq(st.producer_alive, 1);
    cr_assert_eq(st.consumer_alive, 0);
    cr_assert_eq(st.in_use, 1, "the producer itself is attached");
    cr_assert_eq(st.creator_pid, (uint32_t)getpid());
    cr_assert(st.created_ns >= before && st.created_ns <= after, "created_ns is CLOCK_REALTIME");
    for (int i = 0; i < 8; i++)
        cr_assert_eq(st.reserved[i], 0);

    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    uint8_t buf[512] = {0};
    cr_assert_eq(rd(c, 0), -EAGAIN);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(shm_channel_write(p, buf, 100 + i, 0), 0); /* 112 or 120 bytes each */
    cr_assert_eq(shm_channel_write(p, buf, 300, 0), -EAGAIN);
    cr_assert_eq(shm_channel_write(p, buf, 300, 0), -EAGAIN);
    cr_assert_eq(rd(c, 0), 0);
    cr_assert_eq(rd(c, 0), 0);
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_eq(st.msgs_written, 8);
    cr_assert_eq(st.bytes_written, 800 + 28);
    cr_assert_eq(st.msgs_read, 2);
    cr_assert_eq(st.bytes_read, 201);
    cr_assert_eq(st.write_pos, 5 * 112 + 3 * 120);
    cr_assert_eq(st.read_pos, 224);
    cr_assert_eq(st.used, st.write_pos - st.read_pos);
    cr_assert_eq(st.full_events, 2);
    cr_assert_eq(st.empty_events, 1);
    cr_assert_eq(st.producer_wakes + st.consumer_wakes, 0, "nobody slept: no wake calls");
    cr_assert_eq(st.producer_sleeps + st.consumer_sleeps, 0);
    cr_assert_eq(st.consumer_state, SHM_CHANNEL_PEER_ATTACHED);
    cr_assert_eq(st.consumer_epoch, 1);
    cr_assert_eq(st.producer_alive, 1);
    cr_assert_eq(st.consumer_alive, 1);
    cr_assert_eq(st.in_use, 1);

    /* An observer sees the same, and the closed states afterwards. */
    shm_channel_t *o = must_open(n, SHM_CHANNEL_OBSERVER, 0, 0);
    shm_channel_stat_t so;
    cr_assert_eq(shm_channel_stat(o, &so), 0);
    cr_assert_eq(so.msgs_written, 8);
    cr_assert_eq(so.producer_alive, 1);
    cr_assert_eq(so.consumer_alive, 1);
    cr_assert_eq(so.in_use, 1);
    shm_channel_close(c);
    cr_assert_eq(shm_channel_stat(o, &so), 0);
    cr_assert_eq(so.consumer_state, SHM_CHANNEL_PEER_CLOSED);
    cr_assert_eq(so.consumer_alive, 0);
    cr_assert_eq(so.in_use, 1, "the producer is still attached");
    shm_channel_close(p);
    cr_assert_eq(shm_channel_stat(o, &so), 0);
    cr_assert_eq(so.producer_state, SHM_CHANNEL_PEER_CLOSED);
    cr_assert_eq(so.producer_alive, 0);
    cr_assert_eq(so.in_use, 0);
    shm_channel_close(o);
    cr_assert(ct_exists(n), "6 messages unread");
}

Test(life, strerror_covers_every_documented_code)
{
    int codes[] = {EINVAL, ENOENT, EEXIST, EBUSY, EACCES, ENOSPC, ENOMEM, EPROTO,
                   EPROTONOSUPPORT, EPROTOTYPE, EBADMSG, ETIMEDOUT, EAGAIN, EINTR, EMSGSIZE,
                   EPIPE, EOWNERDEAD, EBADF};
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = shm_channel_strerror(-codes[i]);
        cr_assert_not_null(s);
        cr_assert_gt(strlen(s), 5, "code %d", codes[i]);
        cr_assert_str_neq(s, "unknown error", "code %d", codes[i]);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(s, shm_channel_strerror(-codes[j]), "codes %d and %d", codes[i],
                              codes[j]);
    }
    cr_assert_str_eq(shm_channel_strerror(0), "success");
    cr_assert_not_null(shm_channel_strerror(-ENOTDIR), "other errno values");
    cr_assert_not_null(shm_channel_strerror(-1000000));
    cr_assert_not_null(shm_channel_strerror(INT32_MIN));
    cr_assert_not_null(shm_channel_strerror(12345));
}

Test(life, version)
{
    uint32_t v = shm_channel_version();
    cr_assert_eq(v, (SHM_CHANNEL_VERSION_MAJOR << 16) | (SHM_CHANNEL_VERSION_MINOR << 8) |
                        SHM_CHANNEL_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SHM_CHANNEL_VERSION_MAJOR, SHM_CHANNEL_VERSION_MINOR,
             SHM_CHANNEL_VERSION_PATCH);
    cr_assert_str_eq(shm_channel_version_string(), want);
    cr_assert_eq(SHM_CHANNEL_LAYOUT_MAJOR, 1);
}

Test(life, segment_directory)
{
    cr_assert_str_eq(shm_channel_dir(), ct_dir());
    unsetenv("SHM_CHANNEL_DIR");
    cr_assert_str_eq(shm_channel_dir(), "/dev/shm");
    setenv("SHM_CHANNEL_DIR", "", 1);
    cr_assert_str_eq(shm_channel_dir(), "/dev/shm", "empty means unset");
    setenv("SHM_CHANNEL_DIR", ct_dir(), 1);
}

Test(life, detach_ends_the_role_and_keeps_views_readable)
{
    char n[64];
    ct_name(n, "detach");
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, 0, 0);
    cr_assert_eq(shm_channel_write(p, "first", 5, 0), 0);
    void *w;
    cr_assert_eq(shm_channel_reserve(p, 16, &w, 0), 0);
    memcpy(w, "unpublished", 11);
    cr_assert_eq(shm_channel_detach(p), 0, "a producer detaches with a reservation out");
    cr_assert_eq(shm_channel_detach(p), 0, "twice is a no-op");
    memcpy(w, "stale write!", 12); /* still mapped: must not crash, must not reach the ring */
    cr_assert_eq(shm_channel_write(p, "x", 1, 0), -EBADF, "no role after detach");
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(p, &st), -EBADF);
    cr_assert_eq(shm_channel_capacity(p), 1024);

    const void *ptr;
    uint64_t len;
    cr_assert_eq(shm_channel_peek(c, &ptr, &len, 0), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(shm_channel_detach(c), 0, "a consumer detaches with a message peeked");
    cr_assert_eq(memcmp(ptr, "first", 5), 0, "the peeked view stays readable and intact");
    /* Both roles are free at once, while the handles (and their mappings) live on. */
    shm_channel_t *c2 = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    uint8_t buf[64];
    cr_assert_eq(shm_channel_read(c2, buf, sizeof buf, &len, 0), 0,
                 "the unreleased message is delivered to the next consumer");
    cr_assert_eq(len, 5);
    cr_assert_eq(shm_channel_read(c2, buf, sizeof buf, &len, 0), -EPIPE,
                 "end-of-stream: the aborted reservation and the stale write are invisible");
    shm_channel_close(c2);
    cr_assert(!ct_exists(n), "the last closer of the finished stream unlinked it");
    cr_assert_eq(memcmp(ptr, "first", 5), 0, "views outlive the unlink until close");
    shm_channel_close(p);
    shm_channel_close(c);
}

/* The header's message and byte counters are each side's to write, and a side keeps its own
 * copy of them (it stores, never loads, the shared words on its hot path): a successor must
 * go on from its predecessor's counts, not from zero. */
Test(life, counters_go_on_across_a_successor_of_each_side)
{
    char n[64];
    ct_name(n, "ctrsucc");
    uint8_t buf[512] = {0};
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 4096);
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(shm_channel_write(p, buf, 10, 0), 0);
    cr_assert_eq(rd(c, 0), 0);
    cr_assert_eq(rd(c, 0), 0);
    shm_channel_close(c); /* one written message left for the successor */
    c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    cr_assert_eq(rd(c, 0), 0);
    shm_channel_close(p);
    p = must_open(n, SHM_CHANNEL_PRODUCER, 0, 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(shm_channel_write(p, buf, 20, 0), 0);
    cr_assert_eq(rd(c, 0), 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_eq(st.msgs_written, 5);
    cr_assert_eq(st.bytes_written, 3 * 10 + 2 * 20);
    cr_assert_eq(st.msgs_read, 4);
    cr_assert_eq(st.bytes_read, 3 * 10 + 20);
    shm_channel_close(p);
    shm_channel_close(c);
}
