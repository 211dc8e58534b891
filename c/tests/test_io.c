/* The data calls of both roles in one process: write/read, reserve/commit/abort, peek/release,
 * the batch calls, and every documented error: EMSGSIZE, EAGAIN, ETIMEDOUT, EBADF, EBUSY,
 * EINVAL. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ct.h"

TestSuite(io, .init = ct_setup, .fini = ct_teardown, .timeout = 30);

struct pair {
    char name[64];
    shm_channel_t *p, *c;
};

static void pair_open(struct pair *x, uint64_t cap)
{
    ct_name(x->name, "io");
    cr_assert_eq(shm_channel_open(&x->p, x->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, cap, 0), 0);
    cr_assert_eq(shm_channel_open(&x->c, x->name, SHM_CHANNEL_CONSUMER, 0, cap, 0), 0);
}

static void pair_close(struct pair *x)
{
    shm_channel_close(x->p);
    shm_channel_close(x->c);
    shm_channel_unlink(x->name, SHM_CHANNEL_FORCE);
}

Test(io, write_then_read_in_order)
{
    struct pair x;
    pair_open(&x, 4096);
    uint8_t buf[4096];
    uint64_t len = 12345;
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), -EAGAIN, "empty");
    cr_assert_eq(len, 12345, "*len untouched on EAGAIN");
    for (uint64_t i = 0; i < 10; i++) {
        uint64_t n = ct_msg_len(1, i, 400); /* 10 records of at most 408 bytes fit */
        ct_msg_fill(buf, 1, i, n);
        cr_assert_eq(shm_channel_write(x.p, buf, n, 0), 0);
    }
    for (uint64_t i = 0; i < 10; i++) {
        cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
        cr_assert_eq(ct_msg_check(buf, len, 1, i, 400), 0, "msg %lu",
                     (unsigned long)i);
    }
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), -EAGAIN);
    pair_close(&x);
}

Test(io, zero_length_messages)
{
    struct pair x;
    pair_open(&x, 1024);
    cr_assert_eq(shm_channel_write(x.p, NULL, 0, 0), 0, "NULL data is fine for 0 bytes");
    cr_assert_eq(shm_channel_write(x.p, "x", 0, 0), 0);
    uint64_t len = 99;
    cr_assert_eq(shm_channel_read(x.c, NULL, 0, &len, 0), 0, "NULL buffer, 0 capacity");
    cr_assert_eq(len, 0);
    const void *p;
    cr_assert_eq(shm_channel_peek(x.c, &p, &len, 0), 0);
    cr_assert_eq(len, 0);
    cr_assert_not_null(p);
    cr_assert_eq(shm_channel_release(x.c), 0);
    cr_assert_eq(shm_channel_read(x.c, NULL, 0, &len, 0), -EAGAIN);
    pair_close(&x);
}

Test(io, max_payload_and_emsgsize_on_write)
{
    struct pair x;
    pair_open(&x, 1024);
    uint64_t max = shm_channel_max_payload(x.p);
    cr_assert_eq(max, 504);
    cr_assert_eq(shm_channel_max_payload(x.c), 504);
    cr_assert_eq(shm_channel_capacity(x.c), 1024);
    uint8_t buf[1024];
    memset(buf, 0x5a, sizeof buf);
    cr_assert_eq(shm_channel_write(x.p, buf, max + 1, 0), -EMSGSIZE);
    cr_assert_eq(shm_channel_write(x.p, buf, UINT64_MAX, 0), -EMSGSIZE);
    void *w;
    cr_assert_eq(shm_channel_reserve(x.p, max + 1, &w, 0), -EMSGSIZE);
    cr_assert_eq(shm_channel_write(x.p, buf, max, 0), 0);
    cr_assert_eq(shm_channel_write(x.p, buf, max, 0), 0, "two max-size records fill the ring");
    cr_assert_eq(shm_channel_write(x.p, buf, 0, 0), -EAGAIN, "exactly full");
    uint64_t len;
    uint8_t out[1024];
    cr_assert_eq(shm_channel_read(x.c, out, sizeof out, &len, 0), 0);
    cr_assert_eq(len, max);
    cr_assert_eq(memcmp(out, buf, max), 0);
    pair_close(&x);
}

Test(io, emsgsize_on_read_keeps_the_message)
{
    struct pair x;
    pair_open(&x, 1024);
    cr_assert_eq(shm_channel_write(x.p, "0123456789", 10, 0), 0);
    cr_assert_eq(shm_channel_write(x.p, "next", 4, 0), 0);
    char buf[16];
    uint64_t len = 0;
    cr_assert_eq(shm_channel_read(x.c, buf, 9, &len, 0), -EMSGSIZE);
    cr_assert_eq(len, 10, "*len tells the size needed");
    cr_assert_eq(shm_channel_read(x.c, NULL, 0, &len, 0), -EMSGSIZE);
    cr_assert_eq(len, 10);
    cr_assert_eq(shm_channel_read(x.c, buf, 10, &len, 0), 0, "the message stayed");
    cr_assert_eq(len, 10);
    cr_assert_eq(memcmp(buf, "0123456789", 10), 0);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(buf, "next", 4), 0);
    pair_close(&x);
}

Test(io, full_and_empty_eagain_and_timeouts)
{
    struct pair x;
    pair_open(&x, 1024);
    uint8_t buf[128] = {0};
    int n = 0;
    while (shm_channel_write(x.p, buf, 120, 0) == 0)
        n++;
    cr_assert_eq(n, 8, "1024 / 128-byte records");
    cr_assert_eq(shm_channel_write(x.p, buf, 120, 0), -EAGAIN);
    uint64_t t0 = ct_now_ns();
    cr_assert_eq(shm_channel_write(x.p, buf, 120, 30 * CT_MS), -ETIMEDOUT);
    cr_assert_geq(ct_now_ns() - t0, 30 * CT_MS, "waited the whole timeout");
    void *w;
    cr_assert_eq(shm_channel_reserve(x.p, 1, &w, 10 * CT_MS), -ETIMEDOUT);
    uint64_t lens[2] = {1, 1};
    cr_assert_eq(shm_channel_write_batch(x.p, buf, lens, 2, 0), -EAGAIN);
    cr_assert_eq(shm_channel_write_batch(x.p, buf, lens, 2, 10 * CT_MS), -ETIMEDOUT);
    uint64_t len;
    for (int i = 0; i < 8; i++)
        cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), -EAGAIN);
    t0 = ct_now_ns();
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 30 * CT_MS), -ETIMEDOUT);
    cr_assert_geq(ct_now_ns() - t0, 30 * CT_MS);
    const void *p;
    cr_assert_eq(shm_channel_peek(x.c, &p, &len, 10 * CT_MS), -ETIMEDOUT);
    cr_assert_eq(shm_channel_read_batch(x.c, buf, sizeof buf, lens, 2, 0), -EAGAIN);
    cr_assert_eq(shm_channel_read_batch(x.c, buf, sizeof buf, lens, 2, 10 * CT_MS), -ETIMEDOUT);
    /* With spinning disabled the call sleeps at once, and still times out. */
    cr_assert_eq(shm_channel_set_spin(x.c, 0), 0);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 10 * CT_MS), -ETIMEDOUT);
    pair_close(&x);
}

Test(io, zero_copy_reserve_commit_peek_release)
{
    struct pair x;
    pair_open(&x, 1024);
    void *w;
    cr_assert_eq(shm_channel_reserve(x.p, 100, &w, 0), 0);
    cr_assert_eq((uintptr_t)w % 8, 0, "8-byte aligned");
    memset(w, 0x11, 100);
    const void *r;
    uint64_t len;
    cr_assert_eq(shm_channel_peek(x.c, &r, &len, 0), -EAGAIN, "nothing visible before commit");
    cr_assert_eq(shm_channel_commit(x.p, 60), 0, "commit fewer bytes than reserved");
    cr_assert_eq(shm_channel_peek(x.c, &r, &len, 0), 0);
    cr_assert_eq(len, 60);
    cr_assert_eq((uintptr_t)r % 8, 0);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(((const uint8_t *)r)[i], 0x11);
    const void *r2;
    uint64_t len2;
    cr_assert_eq(shm_channel_peek(x.c, &r2, &len2, 0), 0);
    cr_assert_eq(r2, r, "peeking again gives the same message");
    cr_assert_eq(len2, 60);
    cr_assert_eq(shm_channel_release(x.c), 0);
    cr_assert_eq(shm_channel_release(x.c), -EINVAL, "nothing peeked");
    cr_assert_eq(shm_channel_peek(x.c, &r, &len, 0), -EAGAIN);

    /* abort: nothing published, the space is reused */
    cr_assert_eq(shm_channel_reserve(x.p, 200, &w, 0), 0);
    memset(w, 0x22, 200);
    cr_assert_eq(shm_channel_abort(x.p), 0);
    cr_assert_eq(shm_channel_peek(x.c, &r, &len, 0), -EAGAIN);
    cr_assert_eq(shm_channel_write(x.p, "after", 5, 0), 0);
    cr_assert_eq(shm_channel_peek(x.c, &r, &len, 0), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(r, "after", 5), 0);
    cr_assert_eq(shm_channel_release(x.c), 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(x.p, &st), 0);
    cr_assert_eq(st.msgs_written, 2, "the aborted reservation is not counted");
    pair_close(&x);
}

Test(io, reservation_misuse)
{
    struct pair x;
    pair_open(&x, 1024);
    void *w;
    cr_assert_eq(shm_channel_commit(x.p, 0), -EINVAL, "commit without reservation");
    cr_assert_eq(shm_channel_abort(x.p), -EINVAL, "abort without reservation");
    cr_assert_eq(shm_channel_reserve(x.p, 8, NULL, 0), -EINVAL);
    cr_assert_eq(shm_channel_reserve(x.p, 8, &w, 0), 0);
    void *w2 = NULL;
    cr_assert_eq(shm_channel_reserve(x.p, 8, &w2, 0), -EBUSY, "reserve twice");
    cr_assert_eq(shm_channel_write(x.p, "x", 1, 0), -EBUSY, "write while reserving");
    uint64_t lens[1] = {1};
    cr_assert_eq(shm_channel_write_batch(x.p, "x", lens, 1, 0), -EBUSY);
    cr_assert_eq(shm_channel_commit(x.p, 9), -EINVAL, "more than reserved");
    memcpy(w, "12345678", 8);
    cr_assert_eq(shm_channel_commit(x.p, 8), 0, "the reservation survived the errors");
    cr_assert_eq(shm_channel_commit(x.p, 8), -EINVAL, "commit twice");
    uint8_t buf[16];
    uint64_t len;
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 8);
    cr_assert_eq(memcmp(buf, "12345678", 8), 0);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), -EAGAIN);
    pair_close(&x);
}

Test(io, wrong_role_is_ebadf)
{
    struct pair x;
    pair_open(&x, 1024);
    shm_channel_t *o;
    cr_assert_eq(shm_channel_open(&o, x.name, SHM_CHANNEL_OBSERVER, 0, 0, 0), 0);
    shm_channel_t *not_producer[] = {x.c, o};
    shm_channel_t *not_consumer[] = {x.p, o};
    uint8_t buf[16];
    uint64_t len, lens[1] = {1};
    void *w;
    const void *r;
    for (int i = 0; i < 2; i++) {
        shm_channel_t *h = not_producer[i];
        cr_assert_eq(shm_channel_write(h, "x", 1, 0), -EBADF);
        cr_assert_eq(shm_channel_write_batch(h, "x", lens, 1, 0), -EBADF);
        cr_assert_eq(shm_channel_reserve(h, 1, &w, 0), -EBADF);
        cr_assert_eq(shm_channel_commit(h, 0), -EBADF);
        cr_assert_eq(shm_channel_abort(h), -EBADF);
        h = not_consumer[i];
        cr_assert_eq(shm_channel_read(h, buf, sizeof buf, &len, 0), -EBADF);
        cr_assert_eq(shm_channel_read_batch(h, buf, sizeof buf, lens, 1, 0), -EBADF);
        cr_assert_eq(shm_channel_peek(h, &r, &len, 0), -EBADF);
        cr_assert_eq(shm_channel_release(h), -EBADF);
    }
    shm_channel_close(o);
    pair_close(&x);
}

Test(io, null_handles_and_pointers_are_einval)
{
    uint8_t buf[8];
    uint64_t len, lens[1] = {1};
    void *w;
    const void *r;
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_write(NULL, "x", 1, 0), -EINVAL);
    cr_assert_eq(shm_channel_write_batch(NULL, "x", lens, 1, 0), -EINVAL);
    cr_assert_eq(shm_channel_reserve(NULL, 1, &w, 0), -EINVAL);
    cr_assert_eq(shm_channel_commit(NULL, 0), -EINVAL);
    cr_assert_eq(shm_channel_abort(NULL), -EINVAL);
    cr_assert_eq(shm_channel_read(NULL, buf, 8, &len, 0), -EINVAL);
    cr_assert_eq(shm_channel_read_batch(NULL, buf, 8, lens, 1, 0), -EINVAL);
    cr_assert_eq(shm_channel_peek(NULL, &r, &len, 0), -EINVAL);
    cr_assert_eq(shm_channel_release(NULL), -EINVAL);
    cr_assert_eq(shm_channel_stat(NULL, &st), -EINVAL);
    cr_assert_eq(shm_channel_set_spin(NULL, 0), -EINVAL);
    cr_assert_eq(shm_channel_max_payload(NULL), 0);
    cr_assert_eq(shm_channel_capacity(NULL), 0);

    struct pair x;
    pair_open(&x, 1024);
    cr_assert_eq(shm_channel_write(x.p, NULL, 1, 0), -EINVAL, "NULL data with len > 0");
    cr_assert_eq(shm_channel_read(x.c, buf, 8, NULL, 0), -EINVAL, "NULL len");
    cr_assert_eq(shm_channel_read(x.c, NULL, 8, &len, 0), -EINVAL, "NULL buf with cap > 0");
    cr_assert_eq(shm_channel_peek(x.c, NULL, &len, 0), -EINVAL);
    cr_assert_eq(shm_channel_peek(x.c, &r, NULL, 0), -EINVAL);
    cr_assert_eq(shm_channel_stat(x.c, NULL), -EINVAL);
    cr_assert_eq(shm_channel_write_batch(x.p, "x", NULL, 1, 0), -EINVAL, "NULL lens");
    cr_assert_eq(shm_channel_write_batch(x.p, NULL, lens, 1, 0), -EINVAL, "NULL data, len 1");
    cr_assert_eq(shm_channel_read_batch(x.c, buf, 8, NULL, 1, 0), -EINVAL);
    cr_assert_eq(shm_channel_read_batch(x.c, NULL, 8, lens, 1, 0), -EINVAL);
    cr_assert_eq(shm_channel_read(x.c, buf, 8, &len, 0), -EAGAIN, "nothing was written");
    cr_assert_eq(shm_channel_set_spin(x.c, 10000000001ull), -EINVAL, "more than 10 s");
    cr_assert_eq(shm_channel_set_spin(x.c, 10000000000ull), 0);
    cr_assert_eq(shm_channel_set_spin(x.c, 0), 0);
    pair_close(&x);
}

Test(io, write_batch)
{
    struct pair x;
    pair_open(&x, 1024);
    uint8_t data[2048];
    for (int i = 0; i < 2048; i++)
        data[i] = (uint8_t)i;
    uint64_t lens[8] = {0, 1, 7, 8, 9, 100, 0, 3};
    cr_assert_eq(shm_channel_write_batch(x.p, data, lens, 0, 0), 0, "count 0");
    cr_assert_eq(shm_channel_write_batch(x.p, data, lens, 8, 0), 8);
    uint64_t off = 0, len;
    uint8_t buf[512];
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
        cr_assert_eq(len, lens[i], "message %d", i);
        cr_assert_eq(memcmp(buf, data + off, len), 0, "message %d", i);
        off += len;
    }
    /* A too-large first message fails the batch; a later one stops it before itself. */
    uint64_t big[3] = {505, 1, 1};
    cr_assert_eq(shm_channel_write_batch(x.p, data, big, 3, 0), -EMSGSIZE);
    uint64_t later[3] = {1, 2, 505};
    cr_assert_eq(shm_channel_write_batch(x.p, data, later, 3, 0), 2);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 1);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 2);
    cr_assert_eq(memcmp(buf, data + 1, 2), 0);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), -EAGAIN);
    pair_close(&x);

    /* A partial batch: as many as fit, without waiting. */
    pair_open(&x, 1024);
    uint64_t fill[10];
    for (int i = 0; i < 10; i++)
        fill[i] = 120; /* 128-byte records: 8 fit */
    cr_assert_eq(shm_channel_write_batch(x.p, data, fill, 10, 0), 8);
    cr_assert_eq(shm_channel_write_batch(x.p, data + 8 * 120, fill, 2, 0), -EAGAIN);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
        cr_assert_eq(len, 120);
        cr_assert_eq(memcmp(buf, data + i * 120, 120), 0);
    }
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(x.c, &st), 0);
    cr_assert_eq(st.msgs_written, 8);
    pair_close(&x);
}

Test(io, read_batch)
{
    struct pair x;
    pair_open(&x, 1024);
    uint8_t buf[1024];
    uint64_t lens[16];
    cr_assert_eq(shm_channel_read_batch(x.c, buf, sizeof buf, lens, 0, 0), 0, "max_count 0");
    for (uint64_t i = 0; i < 6; i++) {
        uint8_t m[64];
        memset(m, (int)i, sizeof m);
        cr_assert_eq(shm_channel_write(x.p, m, 10 * i, 0), 0);
    }
    /* up to max_count */
    cr_assert_eq(shm_channel_read_batch(x.c, buf, sizeof buf, lens, 2, 0), 2);
    cr_assert_eq(lens[0], 0);
    cr_assert_eq(lens[1], 10);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(buf[i], 1, "stored back to back");
    /* first does not fit: EMSGSIZE with the size needed, nothing consumed */
    lens[0] = 0;
    cr_assert_eq(shm_channel_read_batch(x.c, buf, 19, lens, 16, 0), -EMSGSIZE);
    cr_assert_eq(lens[0], 20);
    /* as many as fit the buffer: 20 + 30 = 50 <= 60 < 90; the rest stays */
    cr_assert_eq(shm_channel_read_batch(x.c, buf, 60, lens, 16, 0), 2);
    cr_assert_eq(lens[0], 20);
    cr_assert_eq(lens[1], 30);
    cr_assert_eq(buf[0], 2);
    cr_assert_eq(buf[19], 2);
    cr_assert_eq(buf[20], 3);
    cr_assert_eq(buf[49], 3);
    /* as many as are ready */
    cr_assert_eq(shm_channel_read_batch(x.c, buf, sizeof buf, lens, 16, 0), 2);
    cr_assert_eq(lens[0], 40);
    cr_assert_eq(lens[1], 50);
    cr_assert_eq(buf[40], 5);
    cr_assert_eq(shm_channel_read_batch(x.c, buf, sizeof buf, lens, 16, 0), -EAGAIN);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(x.c, &st), 0);
    cr_assert_eq(st.msgs_read, 6);
    cr_assert_eq(st.bytes_read, 150);
    cr_assert_eq(st.used, 0);
    pair_close(&x);
}

Test(io, batch_after_a_peek_returns_the_peeked_message_first)
{
    struct pair x;
    pair_open(&x, 1024);
    cr_assert_eq(shm_channel_write(x.p, "aa", 2, 0), 0);
    cr_assert_eq(shm_channel_write(x.p, "bbb", 3, 0), 0);
    const void *r;
    uint64_t len, lens[4];
    cr_assert_eq(shm_channel_peek(x.c, &r, &len, 0), 0);
    uint8_t buf[64];
    cr_assert_eq(shm_channel_read_batch(x.c, buf, sizeof buf, lens, 4, 0), 2);
    cr_assert_eq(lens[0], 2);
    cr_assert_eq(memcmp(buf, "aabbb", 5), 0);
    cr_assert_eq(shm_channel_release(x.c), -EINVAL, "the batch released the peeked message");
    pair_close(&x);
}

/* write/read take a fused path when nothing is held (issue 14, session 5): a peek, a batch
 * peek or a reservation held must send them to the general path, and the header counters
 * must come out the same whichever path each message took. */
Test(io, read_after_a_peek_and_counters_across_paths)
{
    struct pair x;
    pair_open(&x, 1024);
    cr_assert_eq(shm_channel_write(x.p, "aa", 2, 0), 0);
    cr_assert_eq(shm_channel_write(x.p, "bbb", 3, 0), 0);
    const void *r;
    uint64_t len;
    char buf[64];
    cr_assert_eq(shm_channel_peek(x.c, &r, &len, 0), 0);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 2, "read returns the peeked message");
    cr_assert_eq(memcmp(buf, "aa", 2), 0);
    cr_assert_eq(shm_channel_release(x.c), -EINVAL, "the read released it");
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(buf, "bbb", 3), 0);

    /* a batch peek held: read returns its first message */
    uint64_t lens[4] = {4, 5};
    cr_assert_eq(shm_channel_write_batch(x.p, "ccccddddd", lens, 2, 0), 2);
    const void *ptrs[4];
    uint64_t plens[4];
    cr_assert_eq(shm_channel_peek_batch(x.c, ptrs, plens, 4, 0), 2);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(buf, "cccc", 4), 0);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(buf, "ddddd", 5), 0);

    /* a reservation held: write is -EBUSY and counts nothing */
    void *w;
    cr_assert_eq(shm_channel_reserve(x.p, 8, &w, 0), 0);
    cr_assert_eq(shm_channel_write(x.p, "e", 1, 0), -EBUSY);
    memcpy(w, "ffffffff", 8);
    cr_assert_eq(shm_channel_commit(x.p, 8), 0);
    cr_assert_eq(shm_channel_write(x.p, "g", 1, 0), 0);
    uint64_t rlens[4];
    cr_assert_eq(shm_channel_read_batch(x.c, buf, sizeof buf, rlens, 4, 0), 2);
    cr_assert_eq(rlens[0], 8);
    cr_assert_eq(rlens[1], 1);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), -EAGAIN);

    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(x.p, &st), 0);
    cr_assert_eq(st.msgs_written, 6);
    cr_assert_eq(st.bytes_written, 2 + 3 + 4 + 5 + 8 + 1);
    cr_assert_eq(st.msgs_read, 6);
    cr_assert_eq(st.bytes_read, 2 + 3 + 4 + 5 + 8 + 1);
    pair_close(&x);
}

Test(io, many_laps_through_a_small_ring)
{
    /* Single-threaded: interleave writes and reads so the ring wraps thousands of times,
     * every record shape at every offset. */
    struct pair x;
    pair_open(&x, 1024);
    uint64_t max = shm_channel_max_payload(x.p);
    uint8_t buf[1024];
    uint64_t w = 0, r = 0, len;
    const uint64_t total = 200000;
    while (r < total) {
        while (w < total) {
            uint64_t n = ct_msg_len(5, w, max);
            ct_msg_fill(buf, 5, w, n);
            int rc = shm_channel_write(x.p, buf, n, 0);
            if (rc == -EAGAIN)
                break;
            cr_assert_eq(rc, 0);
            w++;
        }
        int rc;
        while ((rc = shm_channel_read(x.c, buf, sizeof buf, &len, 0)) == 0) {
            cr_assert_eq(ct_msg_check(buf, len, 5, r, max), 0, "message %lu", (unsigned long)r);
            r++;
        }
        cr_assert_eq(rc, -EAGAIN);
    }
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(x.c, &st), 0);
    cr_assert_gt(st.write_pos / 1024, 1000, "more than a thousand laps");
    cr_assert_eq(st.msgs_read, total);
    cr_assert_eq(st.msgs_written, total);
    pair_close(&x);
}

/* A stray writer scribbles on the shared positions or records: the calls report -EBADMSG,
 * never read or write outside the mapping, never loop. */
Test(io, corruption_by_a_stray_writer_is_ebadmsg)
{
    struct pair x;
    pair_open(&x, 1024);
    int fd = open(ct_path(x.name), O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t *seg = mmap(NULL, 4096 + 1024, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(seg, MAP_FAILED);
    close(fd);
    uint64_t *write_pos = (uint64_t *)(void *)(seg + 128);
    uint64_t *read_pos = (uint64_t *)(void *)(seg + 256);
    uint8_t buf[512] = {0};
    uint64_t len;

    /* a record header with an unknown type, where the consumer reads next */
    cr_assert_eq(shm_channel_write(x.p, "ok", 2, 0), 0);
    cr_assert_eq(shm_channel_write(x.p, "bad", 3, 0), 0);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), 0, "the valid one first");
    uint64_t word = 3 | (9ull << 32);
    memcpy(seg + 4096 + 16, &word, 8);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), -EBADMSG);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, CT_MS), -EBADMSG, "blocking too");
    const void *p;
    cr_assert_eq(shm_channel_peek(x.c, &p, &len, 0), -EBADMSG);
    uint64_t lens[4];
    cr_assert_eq(shm_channel_read_batch(x.c, buf, sizeof buf, lens, 4, 0), -EBADMSG);

    /* write_pos moved beyond the capacity */
    pair_close(&x);
    pair_open(&x, 1024);
    fd = open(ct_path(x.name), O_RDWR);
    munmap(seg, 4096 + 1024);
    seg = mmap(NULL, 4096 + 1024, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    write_pos = (uint64_t *)(void *)(seg + 128);
    read_pos = (uint64_t *)(void *)(seg + 256);
    __atomic_store_n(write_pos, 1ull << 40, __ATOMIC_RELEASE);
    cr_assert_eq(shm_channel_read(x.c, buf, sizeof buf, &len, 0), -EBADMSG);

    /* read_pos moved ahead of the producer, seen when the producer needs room */
    __atomic_store_n(write_pos, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(shm_channel_write(x.p, buf, 120, 0), 0);
    __atomic_store_n(read_pos, 4096 + 8, __ATOMIC_RELEASE);
    cr_assert_eq(shm_channel_write(x.p, buf, 120, 0), -EBADMSG);
    cr_assert_eq(shm_channel_write(x.p, buf, 120, 10 * CT_MS), -EBADMSG);
    void *w;
    cr_assert_eq(shm_channel_reserve(x.p, 1, &w, 0), -EBADMSG);
    munmap(seg, 4096 + 1024);
    pair_close(&x);
}
