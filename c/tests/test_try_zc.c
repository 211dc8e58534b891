/* shm_channel_try_reserve / shm_channel_try_peek (issue 14): the one-try, few-argument
 * zero-copy calls that the Python binding makes first. Each is reserve/peek with timeout 0,
 * returning the view's offset in the handle's mapping instead of a pointer. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "ct.h"

TestSuite(try_zc, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

#define CAP 4096
#define SEED 43

static shm_channel_t *open_role(const char *name, uint32_t role)
{
    shm_channel_t *ch;
    cr_assert_eq(shm_channel_open(&ch, name, role, SHM_CHANNEL_CREATE, CAP, 0600), 0);
    return ch;
}

static uint8_t *base_of(shm_channel_t *ch, uint64_t *map_len)
{
    void *base;
    cr_assert_eq(shm_channel_mapping(ch, &base, map_len), 0);
    return base;
}

Test(try_zc, offsets_are_the_views_of_reserve_and_peek_across_wraps)
{
    char name[64];
    ct_name(name, "tz");
    shm_channel_t *p = open_role(name, SHM_CHANNEL_PRODUCER);
    shm_channel_t *c = open_role(name, SHM_CHANNEL_CONSUMER);
    uint64_t plen, clen;
    uint8_t *pbase = base_of(p, &plen), *cbase = base_of(c, &clen);
    /* 200 messages of up to 300 B through a 4 KiB ring: many wraps. */
    for (uint64_t s = 0; s < 200; s++) {
        uint64_t len = ct_msg_len(SEED, s, 300);
        int64_t off = shm_channel_try_reserve(p, len);
        cr_assert_geq(off, 0, "message %llu: %lld", (unsigned long long)s, (long long)off);
        cr_assert_leq((uint64_t)off + len, plen, "the space lies inside the mapping");
        ct_msg_fill(pbase + off, SEED, s, len);
        cr_assert_eq(shm_channel_commit(p, len), 0);
        uint64_t got = 12345;
        int64_t coff = shm_channel_try_peek(c, &got);
        cr_assert_geq(coff, 0);
        cr_assert_eq(got, len);
        cr_assert_leq((uint64_t)coff + got, clen);
        cr_assert_eq(ct_msg_verify(cbase + coff, got, SEED, s, len), 0);
        /* Peeking again (the pointer call) gives the same message at the same place. */
        const void *ptr;
        uint64_t len2;
        cr_assert_eq(shm_channel_peek(c, &ptr, &len2, 0), 0);
        cr_assert_eq((const uint8_t *)ptr, cbase + coff);
        cr_assert_eq(len2, len);
        cr_assert_eq(shm_channel_release(c), 0);
    }
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_eq(st.msgs_written, 200);
    cr_assert_eq(st.msgs_read, 200);
    shm_channel_close(c);
    shm_channel_close(p);
}

Test(try_zc, never_waits_and_reserves_or_takes_nothing_it_cannot_finish)
{
    char name[64];
    ct_name(name, "tz");
    shm_channel_t *p = open_role(name, SHM_CHANNEL_PRODUCER);
    shm_channel_t *c = open_role(name, SHM_CHANNEL_CONSUMER);
    uint64_t len = 0;
    cr_assert_eq(shm_channel_try_peek(c, &len), -EAGAIN, "empty");
    cr_assert_eq(shm_channel_release(c), -EINVAL, "nothing is held after -EAGAIN");
    uint64_t n = 0;
    int64_t off;
    while ((off = shm_channel_try_reserve(p, 1000)) >= 0) {
        cr_assert_eq(shm_channel_commit(p, 1000), 0);
        n++;
    }
    cr_assert_eq(off, -EAGAIN);
    cr_assert_gt(n, 0);
    cr_assert_eq(shm_channel_commit(p, 8), -EINVAL, "nothing is reserved after -EAGAIN");
    /* A held peek stays held: try_peek again returns the same offset. */
    int64_t a = shm_channel_try_peek(c, &len), b = shm_channel_try_peek(c, &len);
    cr_assert_geq(a, 0);
    cr_assert_eq(a, b);
    cr_assert_eq(len, 1000);
    cr_assert_eq(shm_channel_release(c), 0);
    /* Room again: a reservation can be aborted and then nothing is published. */
    cr_assert_geq(shm_channel_try_reserve(p, 16), 0);
    cr_assert_eq(shm_channel_abort(p), 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(p, &st), 0);
    cr_assert_eq(st.msgs_written, n);
    shm_channel_close(c);
    shm_channel_close(p);
}

Test(try_zc, reports_the_errors_of_the_waiting_calls)
{
    char name[64];
    ct_name(name, "tz");
    shm_channel_t *p = open_role(name, SHM_CHANNEL_PRODUCER);
    shm_channel_t *c = open_role(name, SHM_CHANNEL_CONSUMER);
    uint64_t len;
    cr_assert_eq(shm_channel_try_reserve(NULL, 8), -EINVAL);
    cr_assert_eq(shm_channel_try_peek(NULL, &len), -EINVAL);
    cr_assert_eq(shm_channel_try_peek(c, NULL), -EINVAL);
    cr_assert_eq(shm_channel_try_reserve(c, 8), -EBADF, "a consumer cannot reserve");
    cr_assert_eq(shm_channel_try_peek(p, &len), -EBADF, "a producer cannot peek");
    cr_assert_eq(shm_channel_try_reserve(p, CAP), -EMSGSIZE);
    int64_t off = shm_channel_try_reserve(p, 8);
    cr_assert_geq(off, 0);
    cr_assert_eq(shm_channel_try_reserve(p, 8), -EBUSY, "one reservation at a time");
    cr_assert_eq(shm_channel_commit(p, 8), 0);
    shm_channel_close(p); /* end of stream: what was written is read first */
    cr_assert_geq(shm_channel_try_peek(c, &len), 0);
    cr_assert_eq(len, 8);
    cr_assert_eq(shm_channel_release(c), 0);
    cr_assert_eq(shm_channel_try_peek(c, &len), -EPIPE);
    shm_channel_close(c);
}
