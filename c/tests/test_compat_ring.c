/* The compat ring (spec/compat.md) over a plain malloc'd buffer: the peer's byte layout,
 * validation, records split at the wrap (a 1+3 split length prefix included), u32 wrap of
 * head and tail, torn-index injection, the -EBADMSG paths, 0-length refusal, the largest
 * record (capacity - 4), and the polling backoff. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "ct.h"

struct t {
    uint8_t *mem;
    size_t len;
    uint32_t cap;
    struct shm__compat r;
    struct shm__compat_producer p;
    struct shm__compat_consumer c;
};

static void setup_at(struct t *t, uint32_t cap, uint32_t start)
{
    t->cap = cap;
    t->len = (size_t)cap + 16;
    t->mem = malloc(t->len);
    cr_assert(t->mem);
    memset(t->mem, 0xA5, t->len);
    cr_assert_eq(shm__compat_format(t->mem, t->len, start), 0);
    cr_assert_eq(shm__compat_bind(&t->r, t->mem, t->len), 0);
    cr_assert_eq(shm__compat_producer_attach(&t->r, &t->p), 0);
    cr_assert_eq(shm__compat_consumer_attach(&t->r, &t->c), 0);
}

static void done(struct t *t)
{
    shm__compat_producer_fini(&t->p);
    shm__compat_consumer_fini(&t->c);
    free(t->mem);
}

static uint32_t u32_at(const struct t *t, size_t off)
{
    const uint8_t *b = t->mem + off;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void set_u32(struct t *t, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        t->mem[off + i] = (uint8_t)(v >> (8 * i));
}

static uint8_t data_at(const struct t *t, uint32_t pos)
{
    return t->mem[16 + (pos & (t->cap - 1))];
}

static void fill(uint8_t *b, uint32_t len, uint32_t seed)
{
    for (uint32_t i = 0; i < len; i++)
        b[i] = (uint8_t)(ct_mix(seed * 0x10001ull + i) >> 7);
}

/* Read one record with read() and check it is fill(len, seed). */
static void expect(struct t *t, uint32_t len, uint32_t seed)
{
    uint8_t got[70000], want[70000];
    uint32_t n = 0;
    cr_assert_eq(shm__compat_read(&t->r, &t->c, got, sizeof got, &n), 0);
    cr_assert_eq(n, len, "length %u, expected %u", n, len);
    fill(want, len, seed);
    cr_assert(memcmp(got, want, len) == 0, "payload of %u bytes differs", len);
}

Test(compat_ring, capacity_is_the_largest_power_of_two_that_fits)
{
    cr_assert_eq(shm__compat_capacity_for(16 + 1024), 1024);
    cr_assert_eq(shm__compat_capacity_for(16 + 1500), 1024);
    cr_assert_eq(shm__compat_capacity_for(16 + 2047), 1024);
    cr_assert_eq(shm__compat_capacity_for(16 + 8), 8);
    cr_assert_eq(shm__compat_capacity_for(16 + 7), 0);
    cr_assert_eq(shm__compat_capacity_for(16 + (1ull << 33)), 0x80000000u);
    uint8_t m[16 + 1500];
    memset(m, 0xEE, sizeof m);
    cr_assert_eq(shm__compat_format(m, sizeof m, 0), 0);
    struct t t = {.mem = m};
    cr_assert_eq(u32_at(&t, 0), 0);
    cr_assert_eq(u32_at(&t, 4), 0);
    cr_assert_eq(u32_at(&t, 8), 1024, "capacity is a u32 LE at offset 8");
    cr_assert_eq(shm__compat_format(m, 16 + 7, 0), -EINVAL);
}

Test(compat_ring, validation)
{
    struct shm__compat r;
    uint8_t *m = calloc(1, 16 + 4096 + 64);
    cr_assert_eq(shm__compat_bind(&r, m, 8), -EAGAIN, "shorter than the header");
    cr_assert_eq(shm__compat_bind(&r, m, 16 + 4096), -EAGAIN, "capacity still 0");
    struct t t = {.mem = m};
    set_u32(&t, 8, 4096);
    cr_assert_eq(shm__compat_bind(&r, m, 16 + 4096), 0);
    cr_assert_eq(r.capacity, 4096);
    cr_assert_eq(shm__compat_bind(&r, m, 16 + 4096 + 1), -EBADMSG, "size is exactly cap + 16");
    cr_assert_eq(shm__compat_bind(&r, m, 16 + 4095), -EBADMSG);
    set_u32(&t, 8, 3000);
    cr_assert_eq(shm__compat_bind(&r, m, 16 + 3000), -EBADMSG, "not a power of two");
    set_u32(&t, 8, 4);
    cr_assert_eq(shm__compat_bind(&r, m, 16 + 4), -EBADMSG, "below the minimum");
    /* Indices out of range at attach. */
    set_u32(&t, 8, 4096);
    cr_assert_eq(shm__compat_bind(&r, m, 16 + 4096), 0);
    set_u32(&t, 0, 5000);
    set_u32(&t, 4, 0);
    struct shm__compat_producer p;
    struct shm__compat_consumer c;
    cr_assert_eq(shm__compat_producer_attach(&r, &p), -EAGAIN, "out of range: retry");
    cr_assert_eq(shm__compat_consumer_attach(&r, &c), -EAGAIN);
    set_u32(&t, 0, 4096);
    cr_assert_eq(shm__compat_producer_attach(&r, &p), 0, "head - tail == capacity is full");
    cr_assert_eq(shm__compat_consumer_attach(&r, &c), 0);
    free(m);
}

Test(compat_ring, byte_layout_of_a_record)
{
    struct t t;
    setup_at(&t, 1024, 0);
    cr_assert_eq(shm__compat_write(&t.r, &t.p, "abc", 3), 0);
    static const uint8_t want[] = {3, 0, 0, 0, 'a', 'b', 'c'};
    cr_assert(memcmp(t.mem + 16, want, sizeof want) == 0, "[u32 LE length][payload] at 16");
    cr_assert_eq(u32_at(&t, 0), 7, "head advanced by 4 + len, no padding");
    cr_assert_eq(u32_at(&t, 4), 0);
    char buf[8];
    uint32_t n;
    cr_assert_eq(shm__compat_read(&t.r, &t.c, buf, sizeof buf, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert(memcmp(buf, "abc", 3) == 0);
    cr_assert_eq(u32_at(&t, 4), 7, "tail advanced by 4 + len");
    uint32_t empty;
    cr_assert_eq(shm__compat_read(&t.r, &t.c, buf, sizeof buf, &empty), -EAGAIN);
    done(&t);
}

Test(compat_ring, length_prefix_split_one_and_three)
{
    for (uint32_t before = 1; before <= 3; before++) {
        struct t t;
        setup_at(&t, 1024, 1024 - before);
        uint8_t msg[300];
        fill(msg, 300, 7);
        cr_assert_eq(shm__compat_write(&t.r, &t.p, msg, 300), 0);
        /* 300 = 0x012C: bytes 2C 01 00 00, the first `before` at the end of the data area. */
        static const uint8_t le[4] = {0x2C, 0x01, 0, 0};
        for (uint32_t i = 0; i < 4; i++)
            cr_assert_eq(data_at(&t, 1024 - before + i), le[i], "prefix byte %u", i);
        cr_assert_eq(t.mem[16 + 4 - before], msg[0], "payload follows the prefix at the front");
        const void *ptr;
        uint32_t n;
        cr_assert_eq(shm__compat_peek(&t.r, &t.c, &ptr, &n), 0);
        cr_assert_eq(n, 300);
        cr_assert_eq(ptr, t.mem + 16 + 4 - before, "the payload itself is contiguous: in place");
        cr_assert(memcmp(ptr, msg, 300) == 0);
        cr_assert_eq(shm__compat_release(&t.r, &t.c), 0);
        cr_assert_eq(u32_at(&t, 4), 1024 - before + 304);
        done(&t);
    }
}

Test(compat_ring, payload_split_at_the_wrap)
{
    struct t t;
    setup_at(&t, 1024, 1000);
    uint8_t msg[100];
    fill(msg, 100, 3);
    /* reserve of a record whose payload wraps: a bounce buffer, copied at commit. */
    void *w;
    cr_assert_eq(shm__compat_reserve(&t.r, &t.p, 100, &w), 0);
    cr_assert((uint8_t *)w < t.mem || (uint8_t *)w >= t.mem + t.len, "not in the ring");
    memcpy(w, msg, 100);
    cr_assert_eq(u32_at(&t, 0), 1000, "nothing published before commit");
    cr_assert_eq(shm__compat_commit(&t.r, &t.p, 100), 0);
    cr_assert_eq(u32_at(&t, 0), 1104);
    for (uint32_t i = 0; i < 100; i++)
        cr_assert_eq(data_at(&t, 1004 + i), msg[i], "byte %u split byte by byte", i);
    /* peek of a split payload: a copy in a handle-owned buffer. */
    const void *ptr;
    uint32_t n;
    cr_assert_eq(shm__compat_peek(&t.r, &t.c, &ptr, &n), 0);
    cr_assert_eq(n, 100);
    cr_assert((const uint8_t *)ptr < t.mem || (const uint8_t *)ptr >= t.mem + t.len);
    cr_assert(memcmp(ptr, msg, 100) == 0);
    const void *again;
    cr_assert_eq(shm__compat_peek(&t.r, &t.c, &again, &n), 0);
    cr_assert_eq(again, ptr, "peeking again returns the same record");
    cr_assert_eq(shm__compat_release(&t.r, &t.c), 0);
    cr_assert_eq(shm__compat_release(&t.r, &t.c), -EINVAL);
    /* write + read of a split payload, commit of a shorter length than reserved. */
    cr_assert_eq(shm__compat_write(&t.r, &t.p, msg, 100), 0);
    expect(&t, 100, 3);
    cr_assert_eq(shm__compat_reserve(&t.r, &t.p, 900, &w), 0);
    cr_assert_eq(shm__compat_reserve(&t.r, &t.p, 10, &w), -EBUSY);
    cr_assert_eq(shm__compat_write(&t.r, &t.p, msg, 10), -EBUSY);
    fill(w, 500, 9);
    cr_assert_eq(shm__compat_commit(&t.r, &t.p, 901), -EINVAL);
    cr_assert_eq(shm__compat_commit(&t.r, &t.p, 500), 0);
    expect(&t, 500, 9);
    cr_assert_eq(shm__compat_reserve(&t.r, &t.p, 10, &w), 0);
    cr_assert_eq(shm__compat_abort(&t.p), 0);
    cr_assert_eq(shm__compat_abort(&t.p), -EINVAL);
    uint32_t head = u32_at(&t, 0);
    cr_assert_eq(shm__compat_commit(&t.r, &t.p, 10), -EINVAL, "nothing reserved");
    cr_assert_eq(u32_at(&t, 0), head);
    done(&t);
}

Test(compat_ring, largest_record_and_full)
{
    struct t t;
    setup_at(&t, 1024, 500);
    static uint8_t msg[1024];
    fill(msg, 1021, 1);
    cr_assert_eq(shm__compat_write(&t.r, &t.p, msg, 1021), -EMSGSIZE, "capacity - 3");
    void *w;
    cr_assert_eq(shm__compat_reserve(&t.r, &t.p, 1021, &w), -EMSGSIZE);
    cr_assert_eq(shm__compat_write(&t.r, &t.p, msg, 1020), 0, "capacity - 4 fits");
    cr_assert_eq(u32_at(&t, 0) - u32_at(&t, 4), 1024);
    cr_assert_eq(shm__compat_write(&t.r, &t.p, msg, 1), -EAGAIN, "full: no overwrite");
    fill(msg, 1020, 1);
    expect(&t, 1020, 1);
    /* Fill with small records until full; exactly capacity / 8 records of 4 bytes fit. */
    int k = 0;
    while (shm__compat_write(&t.r, &t.p, "abcd", 4) == 0)
        k++;
    cr_assert_eq(k, 1024 / 8);
    done(&t);
}

Test(compat_ring, zero_length_is_refused_by_our_producer)
{
    struct t t;
    setup_at(&t, 1024, 0);
    void *w;
    cr_assert_eq(shm__compat_write(&t.r, &t.p, "", 0), -EINVAL);
    cr_assert_eq(shm__compat_reserve(&t.r, &t.p, 0, &w), -EINVAL);
    cr_assert_eq(shm__compat_reserve(&t.r, &t.p, 8, &w), 0);
    cr_assert_eq(shm__compat_commit(&t.r, &t.p, 0), -EINVAL);
    cr_assert_eq(u32_at(&t, 0), 0, "nothing published");
    /* A 0-length record from a peer's producer is delivered as an empty message. */
    set_u32(&t, 16, 0);
    set_u32(&t, 0, 4);
    uint32_t n = 99;
    cr_assert_eq(shm__compat_read(&t.r, &t.c, NULL, 0, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(u32_at(&t, 4), 4);
    done(&t);
}

Test(compat_ring, read_into_a_small_buffer_keeps_the_record)
{
    struct t t;
    setup_at(&t, 1024, 0);
    uint8_t msg[64];
    fill(msg, 64, 2);
    cr_assert_eq(shm__compat_write(&t.r, &t.p, msg, 64), 0);
    uint8_t buf[64];
    uint32_t n = 0;
    cr_assert_eq(shm__compat_read(&t.r, &t.c, buf, 63, &n), -EMSGSIZE);
    cr_assert_eq(n, 64, "the size needed");
    cr_assert_eq(u32_at(&t, 4), 0, "not skipped (the peer's C++ Read skips it)");
    expect(&t, 64, 2);
    done(&t);
}

Test(compat_ring, corrupt_length_prefix_is_ebadmsg)
{
    struct t t;
    setup_at(&t, 1024, 0);
    set_u32(&t, 16, 1021);
    set_u32(&t, 0, 1024);
    const void *ptr;
    uint32_t n;
    uint8_t buf[8];
    cr_assert_eq(shm__compat_peek(&t.r, &t.c, &ptr, &n), -EBADMSG);
    cr_assert_eq(shm__compat_read(&t.r, &t.c, buf, 8, &n), -EBADMSG);
    cr_assert_eq(u32_at(&t, 4), 0);
    done(&t);
}

Test(compat_ring, u32_wrap_of_head_and_tail)
{
    struct t t;
    uint32_t start = 0xFFFFFFFFu - 3000;
    setup_at(&t, 4096, start);
    uint64_t traffic = 0;
    uint32_t seed = 0;
    int wrapped = 0;
    while (traffic < 20000) {
        uint32_t len = 1 + (uint32_t)(ct_mix(seed) % 1500);
        uint8_t msg[1600];
        fill(msg, len, seed);
        cr_assert_eq(shm__compat_write(&t.r, &t.p, msg, len), 0);
        expect(&t, len, seed);
        traffic += 4 + len;
        seed++;
        if (u32_at(&t, 0) < start)
            wrapped = 1;
    }
    cr_assert(wrapped, "head wrapped past 2^32");
    cr_assert_eq(u32_at(&t, 0), (uint32_t)(start + traffic));
    cr_assert_eq(u32_at(&t, 4), (uint32_t)(start + traffic));
    /* Full and empty are still exact after the wrap. */
    static uint8_t big[4092];
    cr_assert_eq(shm__compat_write(&t.r, &t.p, big, 4092), 0);
    cr_assert_eq(shm__compat_write(&t.r, &t.p, big, 1), -EAGAIN);
    done(&t);
}

/* Every value a reader can see while a peer stores `new` over `old` byte by byte, low
 * byte first (what CPython's struct.pack_into('<I') does): k bytes new, 4 - k old. */
static uint32_t torn(uint32_t old, uint32_t nw, int k)
{
    uint32_t lowmask = k >= 4 ? 0xFFFFFFFFu : ((1u << (8 * k)) - 1);
    return (nw & lowmask) | (old & ~lowmask);
}

Test(compat_ring, torn_head_never_yields_unpublished_bytes)
{
    /* A Python producer publishes records; at each head store we inject every torn value
     * the byte-by-byte store can show. Our consumer must deliver exactly the records, in
     * order, and never read past the true head (it would read the 0xA5 fill). */
    struct t t;
    setup_at(&t, 1024, 0);
    uint32_t seed_w = 0, seed_r = 0, head = 0;
    for (int round = 0; round < 3000; round++) {
        uint32_t len = 1 + (uint32_t)(ct_mix(round) % 300);
        if (head + 4 + len - u32_at(&t, 4) > 1024) {
            /* Drain through a consumer read before the "peer" writes more. */
            uint8_t buf[1024];
            uint32_t n;
            while (shm__compat_read(&t.r, &t.c, buf, sizeof buf, &n) == 0) {
                uint8_t want[1024];
                fill(want, n, seed_r);
                cr_assert(memcmp(buf, want, n) == 0, "record %u corrupt", seed_r);
                seed_r++;
            }
            continue;
        }
        uint8_t msg[300];
        fill(msg, len, seed_w);
        uint8_t prefix[4] = {(uint8_t)len, (uint8_t)(len >> 8), 0, 0};
        for (uint32_t i = 0; i < 4; i++)
            t.mem[16 + ((head + i) & 1023)] = prefix[i];
        for (uint32_t i = 0; i < len; i++)
            t.mem[16 + ((head + 4 + i) & 1023)] = msg[i];
        uint32_t nw = head + 4 + len;
        for (int k = 1; k <= 4; k++) {
            set_u32(&t, 0, torn(head, nw, k));
            uint8_t buf[1024];
            uint32_t n;
            int rc;
            while ((rc = shm__compat_read(&t.r, &t.c, buf, sizeof buf, &n)) == 0) {
                uint8_t want[1024];
                fill(want, n, seed_r);
                cr_assert(memcmp(buf, want, n) == 0, "record %u corrupt", seed_r);
                cr_assert(u32_at(&t, 4) - 0 <= nw, "tail passed the true head");
                seed_r++;
            }
            cr_assert_eq(rc, -EAGAIN, "torn head %#x: %d", torn(head, nw, k), rc);
        }
        seed_w++;
        head = nw;
    }
    cr_assert_gt(seed_r, 1000);
    cr_assert_eq(t.c.bad_tries, 0, "a valid head reset the streak");
    done(&t);
}

/* Fill the ring with records seed_w, seed_w + 1, ... until full. */
static void fill_up(struct t *t, uint32_t *seed_w)
{
    for (;;) {
        uint8_t msg[200];
        uint32_t len = 1 + (uint32_t)(ct_mix(*seed_w) % 200);
        fill(msg, len, *seed_w);
        int rc = shm__compat_write(&t->r, &t->p, msg, len);
        if (rc == -EAGAIN)
            return;
        cr_assert_eq(rc, 0);
        (*seed_w)++;
    }
}

Test(compat_ring, torn_tail_never_lets_the_producer_overwrite)
{
    /* The peer's C++ producer reads a torn tail (often 0) as huge free space and overwrites
     * unread records. Ours: a torn tail is either out of range (re-read, then "no progress")
     * or an older tail (less room): the unread records stay intact. The indices start just
     * below a carry into the third byte, so the torn values differ widely. */
    struct t t;
    setup_at(&t, 1024, 0x12FFFF00u);
    static uint8_t snap[1024];
    uint32_t seed_w = 0, seed_r = 0;
    int refused = 0;
    for (int round = 0; round < 3000; round++) {
        fill_up(&t, &seed_w);
        /* The "Python consumer" reads one record, then stores its tail byte by byte. */
        uint32_t t0 = u32_at(&t, 4);
        expect(&t, 1 + (uint32_t)(ct_mix(seed_r) % 200), seed_r);
        seed_r++;
        uint32_t t1 = u32_at(&t, 4);
        for (int k = 1; k <= 3; k++) {
            uint32_t head = u32_at(&t, 0);
            uint32_t unread = head - t1;
            for (uint32_t i = 0; i < unread; i++)
                snap[i] = data_at(&t, t1 + i);
            set_u32(&t, 4, torn(t0, t1, k));
            uint8_t msg[200];
            uint32_t len = 1 + (uint32_t)(ct_mix(seed_w) % 200);
            fill(msg, len, seed_w);
            int rc = shm__compat_write(&t.r, &t.p, msg, len);
            if (rc == 0)
                seed_w++;
            else
                refused++;
            cr_assert(rc == 0 || rc == -EAGAIN, "rc %d", rc);
            cr_assert_leq(u32_at(&t, 0) - t1, 1024, "head passed the true tail + capacity");
            for (uint32_t i = 0; i < unread; i++)
                cr_assert_eq(data_at(&t, t1 + i), snap[i], "unread byte %u overwritten", i);
        }
        set_u32(&t, 4, t1);
    }
    cr_assert_gt(refused, 100, "torn tails were injected");
    /* Everything written is still readable, in order. */
    while (seed_r < seed_w) {
        expect(&t, 1 + (uint32_t)(ct_mix(seed_r) % 200), seed_r);
        seed_r++;
    }
    done(&t);
}

Test(compat_ring, index_out_of_range_is_ebadmsg_after_a_bounded_time)
{
    struct t t;
    setup_at(&t, 1024, 0);
    uint32_t seed_w = 0;
    fill_up(&t, &seed_w);
    uint32_t head = u32_at(&t, 0);
    /* Producer: a tail beyond our head is out of range. (A record of capacity - 4 bytes
     * needs the tail: it fits only in an empty ring.) Each try is "no progress" and counts;
     * the streak becomes -EBADMSG after SHM__COMPAT_BAD_NS, whatever the number of tries. */
    static uint8_t big[1020];
    set_u32(&t, 4, head + 5);
    uint64_t since = 0, now = 1000;
    for (uint32_t i = 1; i <= 1000; i++) {
        cr_assert_eq(shm__compat_write(&t.r, &t.p, big, 1020), -EAGAIN, "try %u", i);
        cr_assert_eq(t.p.bad_tries, i);
        cr_assert_eq(shm__compat_streak(t.p.bad_tries, &since, now), 0);
        now += SHM__COMPAT_BAD_NS / 1000 - 1;
    }
    cr_assert_eq(since, 1000, "the streak started at the first bad try");
    cr_assert_eq(shm__compat_write(&t.r, &t.p, big, 1020), -EAGAIN);
    cr_assert_eq(shm__compat_streak(t.p.bad_tries, &since, 1000 + SHM__COMPAT_BAD_NS),
                 -EBADMSG);
    cr_assert_eq(u32_at(&t, 0), head, "nothing written");
    set_u32(&t, 4, head);
    cr_assert_eq(shm__compat_write(&t.r, &t.p, big, 1020), 0, "a valid tail ends it");
    cr_assert_eq(t.p.bad_tries, 0);
    cr_assert_eq(shm__compat_streak(t.p.bad_tries, &since, 1ull << 40), 0);
    cr_assert_eq(since, 0);
    /* Consumer: a head behind our tail, or more than capacity ahead, is out of range. */
    struct t u;
    setup_at(&u, 1024, 5000);
    const void *ptr;
    uint32_t n;
    set_u32(&u, 0, 4999);
    cr_assert_eq(shm__compat_peek(&u.r, &u.c, &ptr, &n), -EAGAIN);
    cr_assert_eq(u.c.bad_tries, 1);
    set_u32(&u, 0, 5000 + 1025);
    cr_assert_eq(shm__compat_peek(&u.r, &u.c, &ptr, &n), -EAGAIN, "head - tail > capacity");
    cr_assert_eq(u.c.bad_tries, 2);
    cr_assert_gt(u.c.rereads, 2 * SHM__COMPAT_REREADS - 1, "each try re-read");
    since = 0;
    cr_assert_eq(shm__compat_streak(u.c.bad_tries, &since, 7), 0);
    cr_assert_eq(shm__compat_streak(u.c.bad_tries, &since, 7 + SHM__COMPAT_BAD_NS), -EBADMSG);
    set_u32(&u, 0, 5000);
    cr_assert_eq(shm__compat_peek(&u.r, &u.c, &ptr, &n), -EAGAIN, "valid and empty");
    cr_assert_eq(u.c.bad_tries, 0);
    done(&t);
    done(&u);
}

Test(compat_ring, polling_backoff)
{
    uint64_t st = 0;
    cr_assert_eq(shm__compat_backoff(&st, 0, 20000), 0, "spin first");
    cr_assert_eq(shm__compat_backoff(&st, 19999, 20000), 0);
    uint64_t prev = 0, s;
    int sleeps = 0;
    while ((s = shm__compat_backoff(&st, 20000, 20000)) < SHM__COMPAT_SLEEP_MAX_NS) {
        cr_assert(prev == 0 ? s == SHM__COMPAT_SLEEP_MIN_NS : s == 2 * prev);
        prev = s;
        sleeps++;
    }
    cr_assert_gt(sleeps, 3);
    cr_assert_eq(shm__compat_backoff(&st, 1ull << 40, 20000), SHM__COMPAT_SLEEP_MAX_NS,
                 "never above the bound");
}
