/* The ring algorithm over a plain malloc'd buffer (no shared memory, no system calls):
 * format/validate, attach, reserve/commit/abort/publish, peek/release, padding at the wrap,
 * exact full, max payload, free-running positions across 2^64, and every corruption check. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"
#include "layout.h"
#include "ring.h"

struct t {
    uint8_t *mem;
    struct shm__header *h;
    struct shm__ring r;
    struct shm__ring_producer p;
    struct shm__ring_consumer c;
    uint64_t cap;
};

static uint8_t *new_segment(uint64_t cap)
{
    void *v = NULL;
    cr_assert_eq(posix_memalign(&v, 4096, SHM_CHANNEL_HEADER_SIZE + cap), 0);
    uint8_t *m = v;
    memset(m, 0, SHM_CHANNEL_HEADER_SIZE + cap);
    shm__ring_format((struct shm__header *)(void *)m, cap, 1234, 5678);
    return m;
}

/* A formatted, validated, bound ring with both positions at `pos`, and both sides attached. */
static void setup_at(struct t *t, uint64_t cap, uint64_t pos)
{
    t->cap = cap;
    t->mem = new_segment(cap);
    t->h = (struct shm__header *)(void *)t->mem;
    t->h->write_pos = t->h->read_pos = pos;
    uint64_t seg = 0;
    cr_assert_eq(shm__ring_validate(t->h, SHM_CHANNEL_HEADER_SIZE + cap, &seg), 0);
    cr_assert_eq(seg, SHM_CHANNEL_HEADER_SIZE + cap);
    shm__ring_bind(&t->r, t->mem, cap);
    cr_assert_eq(shm__ring_producer_attach(&t->r, &t->p), 0);
    cr_assert_eq(shm__ring_consumer_attach(&t->r, &t->c), 0);
}

static void done(struct t *t)
{
    free(t->mem);
}

/* Write one message of `len` bytes of `fill` and publish it. */
static int put(struct t *t, uint64_t len, uint8_t fill)
{
    void *p;
    int rc = shm__ring_reserve(&t->r, &t->p, len, &p);
    if (rc)
        return rc;
    memset(p, fill, len);
    cr_assert_eq(shm__ring_commit(&t->r, &t->p, len), 0);
    shm__ring_publish(&t->r, &t->p);
    return 0;
}

/* Read one message, check it is `len` bytes of `fill`, release and publish the release. */
static int get(struct t *t, uint64_t len, uint8_t fill)
{
    const void *p;
    uint64_t n;
    int rc = shm__ring_peek(&t->r, &t->c, &p, &n);
    if (rc)
        return rc;
    cr_assert_eq(n, len, "length %lu, expected %lu", (unsigned long)n, (unsigned long)len);
    uint64_t i = 0;
    while (i < n && ((const uint8_t *)p)[i] == fill)
        i++;
    cr_assert_eq(i, n, "byte %lu of the payload is wrong", (unsigned long)i);
    cr_assert_eq(shm__ring_release(&t->c), 0);
    shm__ring_publish_release(&t->r, &t->c);
    return 0;
}

static uint64_t rec_word(struct t *t, uint64_t pos)
{
    uint64_t w;
    memcpy(&w, t->mem + SHM_CHANNEL_HEADER_SIZE + (pos & (t->cap - 1)), 8);
    return w;
}

static void set_rec(struct t *t, uint64_t pos, uint32_t len, uint32_t type)
{
    uint64_t w = (uint64_t)len | ((uint64_t)type << 32);
    memcpy(t->mem + SHM_CHANNEL_HEADER_SIZE + (pos & (t->cap - 1)), &w, 8);
}

/* ---- format and validate ------------------------------------------------------------ */

Test(ring_format, writes_every_identity_field)
{
    uint8_t *m = new_segment(4096);
    struct shm__header *h = (struct shm__header *)(void *)m;
    cr_assert_eq(memcmp(m, "SHM_CHAN", 8), 0);
    cr_assert_eq(h->layout_major, 1);
    cr_assert_eq(h->layout_minor, 1); /* 1.1: the handshake words (spec §5.10) */
    cr_assert_eq(h->kind, 1);
    cr_assert_eq(h->flags, 0);
    cr_assert_eq(h->header_size, 4096);
    cr_assert_eq(h->capacity, 4096);
    cr_assert_eq(h->max_payload, 2048 - 8);
    cr_assert_eq(h->segment_size, 4096 + 4096);
    cr_assert_eq(h->created_ns, 5678);
    cr_assert_eq(h->creator_pid, 1234);
    /* Everything else is zero: positions, states, counters, reserved bytes. */
    for (size_t i = 64; i < 4096; i++)
        cr_assert_eq(m[i], 0, "byte %zu", i);
    free(m);
}

static int validate_with(void (*mutate)(struct shm__header *), uint64_t file_size)
{
    uint8_t *m = new_segment(1024);
    struct shm__header *h = (struct shm__header *)(void *)m;
    if (mutate)
        mutate(h);
    uint64_t seg = 0;
    int rc = shm__ring_validate(h, file_size, &seg);
    free(m);
    return rc;
}

static void zero_magic(struct shm__header *h) { memset(h->magic, 0, 8); }
static void bad_magic(struct shm__header *h) { h->magic[7] = 'X'; }
static void major2(struct shm__header *h) { h->layout_major = 2; }
static void major0(struct shm__header *h) { h->layout_major = 0; }
static void kind2(struct shm__header *h) { h->kind = 2; }
static void kind0(struct shm__header *h) { h->kind = 0; }
static void hdrsize(struct shm__header *h) { h->header_size = 8192; }
static void cap_small(struct shm__header *h)
{
    h->capacity = 512;
    h->max_payload = 512 / 2 - 8;
    h->segment_size = 4096 + 512;
}
static void cap_npow2(struct shm__header *h)
{
    h->capacity = 1000;
    h->max_payload = 1000 / 2 - 8;
    h->segment_size = 4096 + 1000;
}
static void cap_huge(struct shm__header *h)
{
    h->capacity = 1ull << 41;
    h->max_payload = (1ull << 40) - 8;
    h->segment_size = 4096 + (1ull << 41);
}
static void cap_zero(struct shm__header *h) { h->capacity = 0; }
static void maxpl(struct shm__header *h) { h->max_payload = 1024; }
static void segsize(struct shm__header *h) { h->segment_size = 4096 + 2048; }
static void minor9(struct shm__header *h)
{
    h->layout_minor = 9;
    h->flags = 0;
    h->reserved0 = 0xdead;
    h->reserved2[5] = 1;
    h->reserved9[100] = 0x77;
}

Test(ring_validate, accepts_a_fresh_segment)
{
    cr_assert_eq(validate_with(NULL, 4096 + 1024), 0);
    cr_assert_eq(validate_with(NULL, 4096 + 1024 + 4096), 0, "a longer file is fine");
}

Test(ring_validate, not_ready_is_eagain)
{
    cr_assert_eq(validate_with(zero_magic, 4096 + 1024), -EAGAIN);
    cr_assert_eq(validate_with(NULL, 100), -EAGAIN, "shorter than the header");
    cr_assert_eq(validate_with(NULL, 0), -EAGAIN);
}

Test(ring_validate, identity_errors)
{
    cr_assert_eq(validate_with(bad_magic, 5120), -EPROTO);
    cr_assert_eq(validate_with(major2, 5120), -EPROTONOSUPPORT);
    cr_assert_eq(validate_with(major0, 5120), -EPROTONOSUPPORT);
    cr_assert_eq(validate_with(kind2, 5120), -EPROTOTYPE);
    cr_assert_eq(validate_with(kind0, 5120), -EPROTOTYPE);
}

Test(ring_validate, size_errors_are_ebadmsg)
{
    cr_assert_eq(validate_with(hdrsize, 5120), -EBADMSG);
    cr_assert_eq(validate_with(cap_small, 5120), -EBADMSG);
    cr_assert_eq(validate_with(cap_npow2, 5120), -EBADMSG);
    cr_assert_eq(validate_with(cap_huge, 5120), -EBADMSG);
    cr_assert_eq(validate_with(cap_zero, 5120), -EBADMSG);
    cr_assert_eq(validate_with(maxpl, 5120), -EBADMSG);
    cr_assert_eq(validate_with(segsize, 5120), -EBADMSG);
    cr_assert_eq(validate_with(NULL, 5119), -EBADMSG, "file shorter than segment_size");
    cr_assert_eq(validate_with(NULL, 4096), -EBADMSG, "header only");
}

Test(ring_validate, accepts_newer_minor_and_nonzero_reserved)
{
    cr_assert_eq(validate_with(minor9, 5120), 0);
}

/* ---- attach -------------------------------------------------------------------------- */

static void attach_expect(uint64_t wpos, uint64_t rpos, int want)
{
    struct t t;
    setup_at(&t, 1024, 0);
    t.h->write_pos = wpos;
    t.h->read_pos = rpos;
    cr_assert_eq(shm__ring_producer_attach(&t.r, &t.p), want, "producer w=%lu r=%lu",
                 (unsigned long)wpos, (unsigned long)rpos);
    cr_assert_eq(shm__ring_consumer_attach(&t.r, &t.c), want, "consumer w=%lu r=%lu",
                 (unsigned long)wpos, (unsigned long)rpos);
    done(&t);
}

Test(ring_attach, checks_positions)
{
    attach_expect(0, 0, 0);
    attach_expect(1024, 0, 0);               /* exactly full */
    attach_expect(5000 * 8, 5000 * 8 - 1024, 0);
    attach_expect(1032, 0, -EBADMSG);        /* more than capacity apart */
    attach_expect(0, 8, -EBADMSG);           /* read ahead of write */
    attach_expect(12, 8, -EBADMSG);          /* write_pos misaligned */
    attach_expect(16, 4, -EBADMSG);          /* read_pos misaligned */
    attach_expect(8, UINT64_MAX - 7, 0);     /* 16 bytes apart across 2^64 */
}

Test(ring_attach, takes_over_positions)
{
    struct t t;
    setup_at(&t, 1024, 0);
    t.h->write_pos = 2048 + 64;
    t.h->read_pos = 2048;
    cr_assert_eq(shm__ring_producer_attach(&t.r, &t.p), 0);
    cr_assert_eq(shm__ring_consumer_attach(&t.r, &t.c), 0);
    cr_assert_eq(t.p.wpos, 2048 + 64, "the producer continues from write_pos");
    cr_assert_eq(t.c.rpos, 2048, "the consumer continues from read_pos");
    cr_assert_eq(t.p.reserving, 0);
    cr_assert_eq(t.c.peeking, 0);
    done(&t);
}

/* ---- producer and consumer ---------------------------------------------------------- */

Test(ring_io, message_visible_only_after_publish)
{
    struct t t;
    setup_at(&t, 1024, 0);
    void *w;
    const void *r;
    uint64_t n;
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 5, &w), 0);
    cr_assert_eq((uintptr_t)w % 8, 0, "payload is 8-byte aligned");
    cr_assert_eq((uint8_t *)w, t.mem + 4096 + 8, "payload right after the record header");
    memcpy(w, "hello", 5);
    cr_assert_eq(shm__ring_peek(&t.r, &t.c, &r, &n), -EAGAIN, "reserved is invisible");
    cr_assert_eq(shm__ring_commit(&t.r, &t.p, 5), 0);
    cr_assert_eq(rec_word(&t, 0), 5 | (1ull << 32), "record header {5, message}");
    cr_assert_eq(shm__ring_peek(&t.r, &t.c, &r, &n), -EAGAIN, "committed is invisible");
    cr_assert_eq(t.h->write_pos, 0);
    cr_assert_eq(shm__ring_publish(&t.r, &t.p), 0, "no consumer waiting: no wake");
    cr_assert_eq(t.h->write_pos, 16, "8 + align8(5)");
    cr_assert_eq(t.h->msgs_written, 1);
    cr_assert_eq(t.h->bytes_written, 5);
    cr_assert_eq(shm__ring_peek(&t.r, &t.c, &r, &n), 0);
    cr_assert_eq(n, 5);
    cr_assert_eq(memcmp(r, "hello", 5), 0);
    cr_assert_eq((uintptr_t)r % 8, 0);
    const void *r2;
    uint64_t n2;
    cr_assert_eq(shm__ring_peek(&t.r, &t.c, &r2, &n2), 0, "peek again");
    cr_assert_eq(r2, r, "peeking again returns the same message");
    cr_assert_eq(n2, 5);
    cr_assert_eq(shm__ring_release(&t.c), 0);
    cr_assert_eq(t.h->read_pos, 0, "release is local until published");
    cr_assert_eq(shm__ring_publish_release(&t.r, &t.c), 0, "no producer waiting: no wake");
    cr_assert_eq(t.h->read_pos, 16);
    cr_assert_eq(t.h->msgs_read, 1);
    cr_assert_eq(t.h->bytes_read, 5);
    cr_assert_eq(shm__ring_peek(&t.r, &t.c, &r, &n), -EAGAIN);
    done(&t);
}

Test(ring_io, publish_reports_a_waiting_peer)
{
    struct t t;
    setup_at(&t, 1024, 0);
    t.h->consumer_waiting = 1;
    cr_assert_eq(put(&t, 1, 1), 0);
    cr_assert_neq(shm__ring_publish(&t.r, &t.p), 0, "consumer asleep: the caller must wake it");
    t.h->consumer_waiting = 0;
    cr_assert_eq(shm__ring_publish(&t.r, &t.p), 0);
    t.h->producer_waiting = 1;
    const void *p;
    uint64_t n;
    cr_assert_eq(shm__ring_peek(&t.r, &t.c, &p, &n), 0);
    cr_assert_eq(shm__ring_release(&t.c), 0);
    cr_assert_neq(shm__ring_publish_release(&t.r, &t.c), 0);
    t.h->producer_waiting = 0;
    cr_assert_eq(shm__ring_publish_release(&t.r, &t.c), 0);
    done(&t);
}

Test(ring_io, zero_length_message)
{
    struct t t;
    setup_at(&t, 1024, 0);
    cr_assert_eq(put(&t, 0, 0), 0);
    cr_assert_eq(t.h->write_pos, 8, "a zero-length record is its header");
    cr_assert_eq(get(&t, 0, 0), 0);
    cr_assert_eq(t.h->read_pos, 8);
    done(&t);
}

Test(ring_io, commit_shorter_than_reserved)
{
    struct t t;
    setup_at(&t, 1024, 0);
    void *w;
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 100, &w), 0);
    memset(w, 7, 100);
    cr_assert_eq(shm__ring_commit(&t.r, &t.p, 101), -EINVAL, "longer than reserved");
    cr_assert_eq(shm__ring_commit(&t.r, &t.p, 9), 0, "the reservation survived the refusal");
    shm__ring_publish(&t.r, &t.p);
    cr_assert_eq(t.h->write_pos, 8 + 16);
    cr_assert_eq(t.h->bytes_written, 9);
    cr_assert_eq(get(&t, 9, 7), 0);
    done(&t);
}

Test(ring_io, misuse_of_reservations)
{
    struct t t;
    setup_at(&t, 1024, 0);
    void *w;
    cr_assert_eq(shm__ring_commit(&t.r, &t.p, 0), -EINVAL, "commit without reserve");
    cr_assert_eq(shm__ring_abort(&t.p), -EINVAL, "abort without reserve");
    cr_assert_eq(shm__ring_release(&t.c), -EINVAL, "release without peek");
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 8, &w), 0);
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 8, &w), -EBUSY, "second reservation");
    cr_assert_eq(shm__ring_abort(&t.p), 0);
    cr_assert_eq(shm__ring_abort(&t.p), -EINVAL, "abort twice");
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, t.r.max_payload + 1, &w), -EMSGSIZE);
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, UINT64_MAX, &w), -EMSGSIZE);
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, UINT32_MAX + 1ull, &w), -EMSGSIZE);
    cr_assert_eq(t.p.reserving, 0, "a refused reserve leaves nothing outstanding");
    done(&t);
}

Test(ring_io, abort_publishes_nothing)
{
    struct t t;
    setup_at(&t, 1024, 0);
    void *w;
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 40, &w), 0);
    memset(w, 1, 40);
    cr_assert_eq(shm__ring_abort(&t.p), 0);
    shm__ring_publish(&t.r, &t.p);
    cr_assert_eq(t.h->write_pos, 0);
    cr_assert_eq(t.h->msgs_written, 0);
    const void *r;
    uint64_t n;
    cr_assert_eq(shm__ring_peek(&t.r, &t.c, &r, &n), -EAGAIN);
    cr_assert_eq(put(&t, 3, 3), 0, "the next record reuses the aborted space");
    cr_assert_eq(t.h->write_pos, 16);
    cr_assert_eq(get(&t, 3, 3), 0);
    done(&t);
}

Test(ring_wrap, padding_record_at_the_wrap)
{
    struct t t;
    uint64_t start = 5 * 1024 + 1024 - 16; /* data offset 1008: 16 bytes before the end */
    setup_at(&t, 1024, start);
    void *w;
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 16, &w), 0, "24-byte record, 16 contiguous");
    cr_assert_eq((uint8_t *)w, t.mem + 4096 + 8, "placed at data offset 0");
    cr_assert_eq(rec_word(&t, start), 8 | (2ull << 32), "padding {16 - 8, padding}");
    memset(w, 0x42, 16);
    cr_assert_eq(shm__ring_commit(&t.r, &t.p, 16), 0);
    shm__ring_publish(&t.r, &t.p);
    cr_assert_eq(t.h->write_pos, start + 16 + 24);
    cr_assert_eq(get(&t, 16, 0x42), 0, "the consumer skips the padding");
    cr_assert_eq(t.h->read_pos, start + 16 + 24);
    cr_assert_eq(t.h->msgs_read, 1, "padding is not a message");
    done(&t);
}

Test(ring_wrap, record_ending_exactly_at_the_end_needs_no_padding)
{
    struct t t;
    uint64_t start = 1024 - 24;
    setup_at(&t, 1024, start);
    void *w;
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 16, &w), 0);
    cr_assert_eq((uint8_t *)w, t.mem + 4096 + 1024 - 16);
    memset(w, 9, 16);
    cr_assert_eq(shm__ring_commit(&t.r, &t.p, 16), 0);
    shm__ring_publish(&t.r, &t.p);
    cr_assert_eq(t.h->write_pos, 1024);
    cr_assert_eq(put(&t, 0, 0), 0);
    cr_assert_eq(rec_word(&t, 1024), 1ull << 32, "next record at data offset 0");
    cr_assert_eq(get(&t, 16, 9), 0);
    cr_assert_eq(get(&t, 0, 0), 0);
    done(&t);
}

Test(ring_wrap, abort_at_the_wrap_drops_the_padding)
{
    struct t t;
    uint64_t start = 1024 - 16;
    setup_at(&t, 1024, start);
    void *w;
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 100, &w), 0);
    cr_assert_eq(shm__ring_abort(&t.p), 0);
    cr_assert_eq(t.p.wpos, start, "the padding is dropped with the reservation");
    cr_assert_eq(put(&t, 8, 5), 0, "16-byte record still fits before the end");
    cr_assert_eq(t.h->write_pos, 1024);
    cr_assert_eq(get(&t, 8, 5), 0);
    done(&t);
}

Test(ring_full, exactly_full_then_room_after_release)
{
    struct t t;
    setup_at(&t, 1024, 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(put(&t, 120, (uint8_t)i), 0, "record %d of 128 bytes", i);
    cr_assert_eq(t.h->write_pos - t.h->read_pos, 1024, "exactly full");
    void *w;
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 0, &w), -EAGAIN, "not even 8 bytes");
    cr_assert_eq(get(&t, 120, 0), 0);
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 121, &w), -EAGAIN, "136 > 128 free");
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 120, &w), 0, "exactly the freed 128 bytes");
    memset(w, 8, 120);
    cr_assert_eq(shm__ring_commit(&t.r, &t.p, 120), 0);
    shm__ring_publish(&t.r, &t.p);
    for (int i = 1; i <= 8; i++)
        cr_assert_eq(get(&t, 120, (uint8_t)i), 0);
    const void *r;
    uint64_t n;
    cr_assert_eq(shm__ring_peek(&t.r, &t.c, &r, &n), -EAGAIN);
    done(&t);
}

Test(ring_full, padding_counts_against_free_space)
{
    struct t t;
    setup_at(&t, 1024, 0);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(put(&t, 120, 1), 0);
    cr_assert_eq(put(&t, 104, 2), 0); /* 112 bytes: write_pos 1008, 16 left before the end */
    cr_assert_eq(get(&t, 120, 1), 0);
    cr_assert_eq(get(&t, 120, 1), 0); /* free: 16 at the end + 256 at the start = 272 */
    void *w;
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 250, &w), -EAGAIN,
                 "264-byte record fits in 272 but not with its 16 bytes of padding");
    cr_assert_eq(t.p.wpos, 1008, "a refused reserve writes no padding");
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 248, &w), 0, "16 + 256 = 272 exactly");
    cr_assert_eq((uint8_t *)w, t.mem + 4096 + 8);
    memset(w, 3, 248);
    cr_assert_eq(shm__ring_commit(&t.r, &t.p, 248), 0);
    shm__ring_publish(&t.r, &t.p);
    cr_assert_eq(t.h->write_pos - t.h->read_pos, 1024);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(get(&t, 120, 1), 0);
    cr_assert_eq(get(&t, 104, 2), 0);
    cr_assert_eq(get(&t, 248, 3), 0);
    done(&t);
}

Test(ring_full, max_payload_fits_an_empty_ring_at_every_offset)
{
    for (uint64_t cap = 1024; cap <= 8192; cap *= 2) {
        for (uint64_t off = 0; off < cap; off += 8) {
            struct t t;
            setup_at(&t, cap, 7 * cap + off);
            uint64_t max = cap / 2 - 8;
            cr_assert_eq(t.r.max_payload, max);
            cr_assert_eq(put(&t, max, 0xEE), 0, "cap %lu off %lu", (unsigned long)cap,
                         (unsigned long)off);
            cr_assert_eq(get(&t, max, 0xEE), 0);
            void *w;
            cr_assert_eq(shm__ring_reserve(&t.r, &t.p, max + 1, &w), -EMSGSIZE);
            done(&t);
        }
    }
}

Test(ring_positions, free_running_across_2_pow_64)
{
    struct t t;
    setup_at(&t, 1024, (uint64_t)0 - 2048 - 8); /* two laps before 2^64 */
    uint64_t seq_w = 0, seq_r = 0;
    uint8_t buf[512];
    while (seq_r < 2000) {
        uint64_t len = ct_msg_len(11, seq_w, t.r.max_payload);
        void *w;
        int rc = shm__ring_reserve(&t.r, &t.p, len, &w);
        if (rc == 0) {
            ct_msg_fill(w, 11, seq_w, len);
            cr_assert_eq(shm__ring_commit(&t.r, &t.p, len), 0);
            shm__ring_publish(&t.r, &t.p);
            seq_w++;
            continue;
        }
        cr_assert_eq(rc, -EAGAIN);
        const void *p;
        uint64_t n;
        while (shm__ring_peek(&t.r, &t.c, &p, &n) == 0) {
            memcpy(buf, p, n);
            cr_assert_eq(ct_msg_check(buf, n, 11, seq_r, t.r.max_payload), 0, "seq %lu",
                         (unsigned long)seq_r);
            seq_r++;
            shm__ring_release(&t.c);
            shm__ring_publish_release(&t.r, &t.c);
        }
    }
    cr_assert_lt(t.h->write_pos, 1ull << 20, "write_pos wrapped past 2^64");
    done(&t);
}

/* A randomized run against a FIFO model: random sizes, commits shorter than reserved,
 * aborts, batched publishes and releases, peeks repeated. */
static void model_run(uint64_t cap, uint64_t start, uint64_t seed, int steps)
{
    struct t t;
    setup_at(&t, cap, start);
    uint64_t max = t.r.max_payload;
    uint64_t committed = 0, published = 0, consumed = 0;
    uint64_t *lens = calloc((size_t)steps + 1, sizeof *lens);
    cr_assert_not_null(lens);
    uint64_t rnd = seed;
    void *w = NULL;
    uint64_t wlen = 0;
    for (int i = 0; i < steps; i++) {
        rnd = ct_mix(rnd);
        unsigned op = (unsigned)(rnd % 16);
        if (op < 6) { /* producer: reserve, or finish the outstanding reservation */
            if (!t.p.reserving) {
                uint64_t len = ct_msg_len(seed, committed, max);
                if ((rnd >> 20) & 1) /* reserve more than will be committed */
                    len = len + (rnd >> 24) % 100 > max ? max : len + (rnd >> 24) % 100;
                uint64_t before = t.p.wpos;
                uint64_t off = before & (cap - 1), total = 8 + shm__align8(len);
                uint64_t need = total <= cap - off ? total : cap - off + total;
                int rc = shm__ring_reserve(&t.r, &t.p, len, &w);
                uint64_t used = before - t.h->read_pos;
                if (rc == -EAGAIN) {
                    cr_assert_gt(used + need, cap, "EAGAIN with room: step %d", i);
                    cr_assert_eq(t.p.wpos, before);
                    continue;
                }
                cr_assert_eq(rc, 0);
                cr_assert_leq(used + need, cap, "reserved without room: step %d", i);
                cr_assert_eq((uintptr_t)w % 8, 0);
                cr_assert_geq((uint8_t *)w, t.mem + 4096 + 8);
                cr_assert_leq((uint8_t *)w + len, t.mem + 4096 + cap);
                wlen = len;
            } else if ((rnd >> 8) % 8 == 0) {
                cr_assert_eq(shm__ring_abort(&t.p), 0);
            } else {
                /* the committed length may be shorter: the model's length is fixed */
                uint64_t len = ct_msg_len(seed, committed, max);
                cr_assert_leq(len, wlen);
                ct_msg_fill(w, seed, committed, len);
                cr_assert_eq(shm__ring_commit(&t.r, &t.p, len), 0);
                lens[committed++] = len;
            }
        } else if (op < 8) {
            if (t.p.reserving)
                continue; /* the channel publishes only between reservations */
            shm__ring_publish(&t.r, &t.p);
            published = committed;
            cr_assert_eq(t.h->msgs_written, published);
        } else if (op < 14) {
            const void *p;
            uint64_t n;
            int rc = shm__ring_peek(&t.r, &t.c, &p, &n);
            if (consumed == published) {
                cr_assert_eq(rc, -EAGAIN, "step %d: nothing published is left", i);
                continue;
            }
            cr_assert_eq(rc, 0, "step %d: published message %lu not found", i,
                         (unsigned long)consumed);
            cr_assert_eq((uintptr_t)p % 8, 0);
            cr_assert_eq(ct_msg_check(p, n, seed, consumed, max), 0, "step %d msg %lu", i,
                         (unsigned long)consumed);
            if ((rnd >> 8) % 4 == 0)
                continue; /* keep it peeked: the next peek returns it again */
            cr_assert_eq(shm__ring_release(&t.c), 0);
            consumed++;
        } else {
            shm__ring_publish_release(&t.r, &t.c);
            cr_assert_eq(t.h->msgs_read, consumed);
        }
        cr_assert_leq(t.h->write_pos - t.h->read_pos, cap);
        cr_assert_eq(t.h->write_pos % 8, 0);
    }
    cr_assert_gt(consumed, (uint64_t)steps / 20, "the run made progress");
    free(lens);
    done(&t);
}

Test(ring_model, random_operations_1k)
{
    model_run(1024, 0, 1, 200000);
}

Test(ring_model, random_operations_4k_high_positions)
{
    model_run(4096, (uint64_t)0 - 10 * 4096 - 24, 2, 200000);
}

/* ---- corruption: every check of peek and reserve ------------------------------------- */

static int peek_rc(struct t *t)
{
    const void *p;
    uint64_t n;
    return shm__ring_peek(&t->r, &t->c, &p, &n);
}

Test(ring_corrupt, write_pos_too_far_ahead)
{
    struct t t;
    setup_at(&t, 1024, 0);
    t.h->write_pos = 1032;
    cr_assert_eq(peek_rc(&t), -EBADMSG);
    t.h->write_pos = UINT64_MAX - 7; /* "behind" read_pos */
    cr_assert_eq(peek_rc(&t), -EBADMSG);
    done(&t);
}

Test(ring_corrupt, write_pos_misaligned)
{
    struct t t;
    setup_at(&t, 1024, 0);
    t.h->write_pos = 12;
    cr_assert_eq(peek_rc(&t), -EBADMSG);
    done(&t);
}

Test(ring_corrupt, bad_record_type)
{
    uint32_t types[] = {0, 3, 0xffffffffu};
    for (size_t i = 0; i < 3; i++) {
        struct t t;
        setup_at(&t, 1024, 0);
        set_rec(&t, 0, 0, types[i]);
        t.h->write_pos = 8;
        cr_assert_eq(peek_rc(&t), -EBADMSG, "type %u", types[i]);
        done(&t);
    }
}

Test(ring_corrupt, length_above_max_payload)
{
    struct t t;
    setup_at(&t, 1024, 0);
    set_rec(&t, 0, 505, 1);
    t.h->write_pos = 8 + 512;
    cr_assert_eq(peek_rc(&t), -EBADMSG);
    set_rec(&t, 0, UINT32_MAX, 1);
    cr_assert_eq(peek_rc(&t), -EBADMSG);
    done(&t);
}

Test(ring_corrupt, record_past_write_pos)
{
    struct t t;
    setup_at(&t, 1024, 0);
    cr_assert_eq(put(&t, 4, 4), 0);
    set_rec(&t, 16, 100, 1);
    t.h->write_pos = 32; /* the record needs 112 */
    cr_assert_eq(get(&t, 4, 4), 0, "the valid message before the corruption is delivered");
    cr_assert_eq(peek_rc(&t), -EBADMSG);
    cr_assert_eq(peek_rc(&t), -EBADMSG, "and stays reported");
    done(&t);
}

Test(ring_corrupt, record_across_the_end)
{
    struct t t;
    setup_at(&t, 1024, 1024 - 32);
    set_rec(&t, 1024 - 32, 100, 1);
    t.h->write_pos = 1024 - 32 + 112 + 32;
    cr_assert_eq(peek_rc(&t), -EBADMSG);
    done(&t);
}

Test(ring_corrupt, padding_of_wrong_length)
{
    uint32_t lens[] = {0, 16, 32, 1000};
    for (size_t i = 0; i < 4; i++) {
        struct t t;
        setup_at(&t, 1024, 1024 - 32);
        set_rec(&t, 1024 - 32, lens[i], 2); /* must be 24 */
        set_rec(&t, 1024, 0, 1);
        t.h->write_pos = 1024 + 8;
        cr_assert_eq(peek_rc(&t), -EBADMSG, "padding length %u", lens[i]);
        done(&t);
    }
}

Test(ring_corrupt, padding_past_write_pos)
{
    struct t t;
    setup_at(&t, 1024, 1024 - 32);
    set_rec(&t, 1024 - 32, 24, 2); /* correct length, but write_pos is inside it */
    t.h->write_pos = 1024 - 16;
    cr_assert_eq(peek_rc(&t), -EBADMSG);
    done(&t);
}

Test(ring_corrupt, ring_of_padding_terminates)
{
    struct t t;
    setup_at(&t, 1024, 0);
    set_rec(&t, 0, 1024 - 8, 2);
    t.h->write_pos = 1024;
    cr_assert_eq(peek_rc(&t), -EAGAIN, "one padding record, then nothing");
    done(&t);
}

Test(ring_corrupt, producer_sees_bad_read_pos)
{
    struct t t;
    setup_at(&t, 1024, 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(put(&t, 120, 1), 0);
    void *w;
    t.h->read_pos = 1032; /* ahead of write_pos */
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 8, &w), -EBADMSG);
    t.h->read_pos = 4; /* misaligned */
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 8, &w), -EBADMSG);
    cr_assert_eq(t.p.reserving, 0);
    done(&t);
}

Test(ring_corrupt, bound_capacity_is_private)
{
    struct t t;
    setup_at(&t, 1024, 0);
    t.h->capacity = 1ull << 30; /* a stray writer enlarges the ring after validation */
    t.h->write_pos = 4096;
    cr_assert_eq(peek_rc(&t), -EBADMSG, "positions are checked against the bound capacity");
    void *w;
    cr_assert_eq(shm__ring_reserve(&t.r, &t.p, 600, &w), -EMSGSIZE, "max payload stays 504");
    done(&t);
}
