/* The broadcast algorithm (spec/broadcast.md) over a plain malloc'd buffer, one thread, no
 * system calls: geometry and format/validate, every publish and read step, lapping with
 * exact missed counts, reads raced by an overwrite at a chosen moment (a hook between the
 * copy and the re-check), zero-copy views overwritten while held, the sleeper count and the
 * wake decision, subscriber entries (256 at once, a dead one reclaimed), and invalid input. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broadcast.h"
#include "ring.h"

struct t {
    uint8_t *mem;
    struct shm__bcast_geom g;
    struct shm__bcast b;
    struct shm__bcast_pub p;
};

static void setup(struct t *t, uint64_t max_payload, uint32_t depth, uint32_t subs,
                  const char *tag)
{
    memset(t, 0, sizeof(*t));
    cr_assert_eq(shm__bcast_geometry(&t->g, max_payload, depth, subs, tag), 0);
    void *v = NULL;
    cr_assert_eq(posix_memalign(&v, 4096, t->g.segment_size), 0);
    t->mem = v;
    memset(t->mem, 0, t->g.segment_size);
    shm__bcast_format(t->mem, &t->g, 1234, 5678);
    struct shm__bcast_geom g2;
    cr_assert_eq(shm__bcast_validate(t->mem, t->g.segment_size, &g2), 0);
    cr_assert_eq(memcmp(&g2, &t->g, sizeof g2), 0, "validate reads back the geometry");
    shm__bcast_bind(&t->b, t->mem, &g2);
    cr_assert_eq(shm__bcast_pub_attach(&t->b, &t->p), 0);
}

static void done(struct t *t)
{
    shm__bcast_hook_after_copy = NULL;
    free(t->mem);
}

static struct shm__bcast_header *H(struct t *t)
{
    return t->b.hdr;
}

/* Message m: 8 + m % 25 bytes (at most 32): m itself, then a pattern of m. */
static uint64_t mlen(uint64_t m)
{
    return 8 + m % 25;
}

static void mfill(uint8_t *p, uint64_t m)
{
    memcpy(p, &m, 8);
    for (uint64_t i = 8; i < mlen(m); i++)
        p[i] = (uint8_t)(m * 7 + i);
}

/* 0 if buf/len is exactly message m. */
static int mcheck(const uint8_t *p, uint64_t len, uint64_t m)
{
    uint8_t want[64];
    if (len != mlen(m))
        return 1;
    mfill(want, m);
    return memcmp(p, want, len) != 0;
}

/* Publish the next message (its number is pub_seq + 1), through reserve/commit/publish or
 * write. Returns what publish returned (1: wake needed). */
static int put(struct t *t)
{
    uint64_t m = t->p.seq + 1;
    uint8_t buf[64];
    mfill(buf, m);
    if (m % 2)
        return shm__bcast_write(&t->b, &t->p, buf, mlen(m));
    void *ptr;
    cr_assert_eq(shm__bcast_reserve(&t->b, &t->p, mlen(m), &ptr), 0);
    memcpy(ptr, buf, mlen(m));
    cr_assert_eq(shm__bcast_commit(&t->b, &t->p, mlen(m)), 0);
    return shm__bcast_publish(&t->b, &t->p);
}

static void put_n(struct t *t, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        put(t);
}

/* Read the next message and check it is message `want`, with `want_missed` skipped. */
static void expect_next(struct t *t, struct shm__bcast_sub *s, uint64_t want,
                        uint64_t want_missed)
{
    uint8_t buf[64];
    uint64_t len = 0, missed = 99;
    int rc = shm__bcast_next(&t->b, s, buf, sizeof buf, &len, &missed);
    cr_assert_eq(rc, 0, "next: %d, expected message %lu", rc, (unsigned long)want);
    cr_assert_eq(len >= 8 ? memcmp(buf, &want, 8) : 1, 0, "got message %lu, expected %lu",
                 len >= 8 ? (unsigned long)*(uint64_t *)(void *)buf : 0ul, (unsigned long)want);
    cr_assert_eq(mcheck(buf, len, want), 0, "message %lu is torn", (unsigned long)want);
    cr_assert_eq(missed, want_missed, "missed %lu, expected %lu", (unsigned long)missed,
                 (unsigned long)want_missed);
}

static void expect_empty(struct t *t, struct shm__bcast_sub *s)
{
    uint8_t buf[64];
    uint64_t len, missed;
    cr_assert_eq(shm__bcast_next(&t->b, s, buf, sizeof buf, &len, &missed), -EAGAIN);
}

static struct shm__bcast_slot *slot(struct t *t, uint64_t m)
{
    return (struct shm__bcast_slot *)(void *)(t->b.slots + (m % t->g.depth) * t->g.slot_stride);
}

/* ---- geometry, format, validate ----------------------------------------------------- */

Test(bcast_format, geometry_defaults_and_limits)
{
    struct shm__bcast_geom g;
    cr_assert_eq(shm__bcast_geometry(&g, 0, 0, 0, NULL), 0);
    cr_assert_eq(g.max_payload, 64);
    cr_assert_eq(g.depth, 8);
    cr_assert_eq(g.max_subscribers, 256);
    cr_assert_eq(g.slot_stride, 128); /* align64(16 + 64) */
    cr_assert_eq(g.slots_offset, 4096 + 256 * 128);
    cr_assert_eq(g.capacity, 8 * 128);
    cr_assert_eq(g.segment_size, 4096 + 256 * 128 + 8 * 128);
    cr_assert_eq(g.type_len, 0);
    cr_assert_eq(shm__bcast_geometry(&g, 8, 3, 1, "<f8"), 0);
    cr_assert_eq(g.slot_stride, 64);
    cr_assert_eq(g.slots_offset, 8192);
    cr_assert_eq(g.type_len, 3);
    cr_assert_str_eq(g.type_tag, "<f8");
    cr_assert_eq(shm__bcast_geometry(&g, 1920 * 1080 * 3, 4, 0, NULL), 0);
    cr_assert_eq(g.slot_stride, 6220800 + 64);
    /* refused */
    cr_assert_eq(shm__bcast_geometry(&g, 64, 1, 0, NULL), -EINVAL);
    cr_assert_eq(shm__bcast_geometry(&g, 64, (1u << 24) + 1, 0, NULL), -EINVAL);
    cr_assert_eq(shm__bcast_geometry(&g, (1ull << 31) + 1, 2, 0, NULL), -EINVAL);
    cr_assert_eq(shm__bcast_geometry(&g, 64, 2, 65537, NULL), -EINVAL);
    cr_assert_eq(shm__bcast_geometry(&g, 1ull << 31, 1u << 24, 0, NULL), -EINVAL); /* > 2^40 */
    char tag[130];
    memset(tag, 'a', sizeof tag);
    tag[121] = 0;
    cr_assert_eq(shm__bcast_geometry(&g, 64, 2, 0, tag), -EINVAL);
    tag[120] = 0;
    cr_assert_eq(shm__bcast_geometry(&g, 64, 2, 0, tag), 0);
    cr_assert_eq(shm__bcast_geometry(&g, 64, 2, 0, "a\nb"), -EINVAL);
}

Test(bcast_format, writes_every_identity_field)
{
    struct t t;
    setup(&t, 100, 5, 300, "u8(480,640,3)");
    struct shm__bcast_header *h = H(&t);
    cr_assert_eq(memcmp(t.mem, "SHM_CHAN", 8), 0);
    cr_assert_eq(h->layout_major, 1);
    cr_assert_eq(h->layout_minor, SHM__BCAST_LAYOUT_MINOR);
    cr_assert_eq(h->kind, 2);
    cr_assert_eq(h->header_size, 4096);
    cr_assert_eq(h->max_payload, 100);
    cr_assert_eq(h->slot_stride, 128);
    cr_assert_eq(h->depth, 5);
    cr_assert_eq(h->max_subscribers, 300);
    cr_assert_eq(h->subs_offset, 4096);
    cr_assert_eq(h->slots_offset, 4096 + 40960);
    cr_assert_eq(h->capacity, 5 * 128);
    cr_assert_eq(h->segment_size, 4096 + 40960 + 640);
    cr_assert_eq(h->created_ns, 5678);
    cr_assert_eq(h->creator_pid, 1234);
    cr_assert_eq(h->type_len, 13);
    cr_assert_eq(memcmp(h->type_tag, "u8(480,640,3)", 13), 0);
    /* publisher attached (setup attaches one) */
    cr_assert_eq(h->publisher_state, 1);
    cr_assert_eq(h->publisher_epoch, 1);
    /* everything else zero */
    for (size_t i = 96; i < 4096; i++)
        if (i != 140 && i != 144 && (i < 640 || i >= 648 + 13))
            cr_assert_eq(t.mem[i], 0, "byte %zu", i);
    for (size_t i = 4096; i < h->segment_size; i++)
        cr_assert_eq(t.mem[i], 0, "byte %zu", i);
    done(&t);
}

/* Validate a fresh segment after `mutate`. */
static int validate_with(void (*mutate)(struct shm__bcast_header *), int64_t size_delta)
{
    struct shm__bcast_geom g, out;
    cr_assert_eq(shm__bcast_geometry(&g, 64, 4, 16, "<i4"), 0);
    uint8_t *m = calloc(1, g.segment_size);
    shm__bcast_format(m, &g, 1, 2);
    if (mutate)
        mutate((struct shm__bcast_header *)(void *)m);
    int rc = shm__bcast_validate(m, (uint64_t)((int64_t)g.segment_size + size_delta), &out);
    free(m);
    return rc;
}

static void zero_magic(struct shm__bcast_header *h) { memset(h->magic, 0, 8); }
static void bad_magic(struct shm__bcast_header *h) { h->magic[0] = 'X'; }
static void major2(struct shm__bcast_header *h) { h->layout_major = 2; }
static void kind1(struct shm__bcast_header *h) { h->kind = 1; }
static void kind3(struct shm__bcast_header *h) { h->kind = 3; }
static void hdrsize(struct shm__bcast_header *h) { h->header_size = 8192; }
static void depth1(struct shm__bcast_header *h)
{
    h->depth = 1;
    h->capacity = h->slot_stride;
    h->segment_size -= 3 * h->slot_stride;
}
static void depth5(struct shm__bcast_header *h) { h->depth = 5; }
static void stride(struct shm__bcast_header *h) { h->slot_stride = 64; }
static void maxp0(struct shm__bcast_header *h) { h->max_payload = 0; }
static void maxp_big(struct shm__bcast_header *h) { h->max_payload = 200; }
static void subs0(struct shm__bcast_header *h) { h->max_subscribers = 0; }
static void subs_off(struct shm__bcast_header *h) { h->subs_offset = 0; }
static void slots_off(struct shm__bcast_header *h) { h->slots_offset = 4096; }
static void capacity(struct shm__bcast_header *h) { h->capacity += 64; }
static void segsize(struct shm__bcast_header *h) { h->segment_size += 4096; }
static void tag_long(struct shm__bcast_header *h) { h->type_len = 121; }
static void tag_ctrl(struct shm__bcast_header *h) { h->type_tag[1] = 7; }
static void reserved(struct shm__bcast_header *h)
{
    h->reserved2[3] = 9;
    h->flags = 1;
    h->reserved9[5] = 1;
}

Test(bcast_format, validate_refuses_every_bad_field)
{
    cr_assert_eq(validate_with(NULL, 0), 0);
    cr_assert_eq(validate_with(reserved, 0), 0, "reserved bytes are not interpreted");
    cr_assert_eq(validate_with(NULL, 1 << 20), 0, "a longer file is fine");
    cr_assert_eq(validate_with(zero_magic, 0), -EAGAIN);
    struct shm__bcast_geom g;
    uint8_t *m = calloc(1, 4096);
    cr_assert_eq(shm__bcast_validate(m, 4095, &g), -EAGAIN, "shorter than the header");
    free(m);
    cr_assert_eq(validate_with(bad_magic, 0), -EPROTO);
    cr_assert_eq(validate_with(major2, 0), -EPROTONOSUPPORT);
    cr_assert_eq(validate_with(kind1, 0), -EPROTOTYPE);
    cr_assert_eq(validate_with(kind3, 0), -EPROTOTYPE);
    cr_assert_eq(validate_with(hdrsize, 0), -EBADMSG);
    cr_assert_eq(validate_with(depth1, 0), -EBADMSG);
    cr_assert_eq(validate_with(depth5, 0), -EBADMSG);
    cr_assert_eq(validate_with(stride, 0), -EBADMSG);
    cr_assert_eq(validate_with(maxp0, 0), -EBADMSG);
    cr_assert_eq(validate_with(maxp_big, 0), -EBADMSG);
    cr_assert_eq(validate_with(subs0, 0), -EBADMSG);
    cr_assert_eq(validate_with(subs_off, 0), -EBADMSG);
    cr_assert_eq(validate_with(slots_off, 0), -EBADMSG);
    cr_assert_eq(validate_with(capacity, 0), -EBADMSG);
    cr_assert_eq(validate_with(segsize, 0), -EBADMSG);
    cr_assert_eq(validate_with(tag_long, 0), -EBADMSG);
    cr_assert_eq(validate_with(tag_ctrl, 0), -EBADMSG);
    cr_assert_eq(validate_with(NULL, -1), -EBADMSG, "file shorter than segment_size");
}

Test(bcast_format, stream_and_broadcast_refuse_each_other)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    uint64_t seg;
    cr_assert_eq(shm__ring_validate((const struct shm__header *)(const void *)t.mem,
                                    t.g.segment_size, &seg), -EPROTOTYPE);
    done(&t);
    uint8_t *m = calloc(1, 4096 + 1024);
    shm__ring_format((struct shm__header *)(void *)m, 1024, 1, 2);
    struct shm__bcast_geom g;
    cr_assert_eq(shm__bcast_validate(m, 4096 + 1024, &g), -EPROTOTYPE);
    free(m);
}

Test(bcast_format, type_tag_must_match_when_required)
{
    struct t t;
    setup(&t, 64, 4, 4, "<f4(3,)");
    cr_assert_eq(shm__bcast_check_type(&t.b.g, NULL), 0);
    cr_assert_eq(shm__bcast_check_type(&t.b.g, ""), 0);
    cr_assert_eq(shm__bcast_check_type(&t.b.g, "<f4(3,)"), 0);
    cr_assert_eq(shm__bcast_check_type(&t.b.g, "<f8(3,)"), -EMEDIUMTYPE);
    cr_assert_eq(shm__bcast_check_type(&t.b.g, "<f4(3,"), -EMEDIUMTYPE);
    cr_assert_eq(shm__bcast_check_type(&t.b.g, "<f4(3,)x"), -EMEDIUMTYPE);
    done(&t);
    setup(&t, 64, 4, 4, NULL);
    cr_assert_eq(shm__bcast_check_type(&t.b.g, "<f4"), -EMEDIUMTYPE, "untyped is not any type");
    done(&t);
}

/* ---- publish and read ---------------------------------------------------------------- */

Test(bcast_io, empty_then_every_message_in_order)
{
    struct t t;
    setup(&t, 64, 8, 4, NULL);
    struct shm__bcast_sub s;
    cr_assert_eq(shm__bcast_sub_join(&t.b, &s, 0, 42), 0);
    expect_empty(&t, &s);
    uint8_t buf[64];
    uint64_t len, missed;
    int is_new;
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, sizeof buf, &len, &is_new, &missed), -EAGAIN);
    for (uint64_t round = 0; round < 50; round++) {
        put_n(&t, 5);
        for (uint64_t i = 1; i <= 5; i++)
            expect_next(&t, &s, round * 5 + i, 0);
        expect_empty(&t, &s);
    }
    cr_assert_eq(s.delivered, 250);
    cr_assert_eq(s.missed, 0);
    cr_assert_eq(H(&t)->pub_seq, 250);
    cr_assert_eq(H(&t)->msgs_written, 250);
    done(&t);
}

/* A message is read only once published (spec §5.4 step 0, §5.2 step 2): a subscriber that
 * has caught up does not read a slot whose stamp says complete before pub_seq says so (a
 * publisher killed between its commit and its publish has its successor write that number
 * again, so a subscriber that had read it would have read a message that never was). */
Test(bcast_io, a_committed_message_is_not_read_before_it_is_published)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 2);
    expect_next(&t, &s, 1, 0);
    expect_next(&t, &s, 2, 0);
    uint8_t buf[64];
    mfill(buf, 3);
    void *ptr;
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, mlen(3), &ptr), 0);
    memcpy(ptr, buf, mlen(3));
    cr_assert_eq(shm__bcast_commit(&t.b, &t.p, mlen(3)), 0);
    cr_assert_eq(slot(&t, 3)->stamp, 6, "complete in its slot");
    expect_empty(&t, &s);
    shm__bcast_publish(&t.b, &t.p);
    expect_next(&t, &s, 3, 0);
    done(&t);
}

Test(bcast_io, late_joiner_starts_at_the_latest)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    put_n(&t, 10);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 1, 1);
    expect_next(&t, &s, 10, 0);
    expect_empty(&t, &s);
    put(&t);
    expect_next(&t, &s, 11, 0);
    done(&t);
}

Test(bcast_io, lapped_subscriber_skips_to_oldest_with_exact_count)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 10); /* holds 7..10 */
    expect_next(&t, &s, 7, 6);
    expect_next(&t, &s, 8, 0);
    put_n(&t, 100); /* holds 107..110 */
    expect_next(&t, &s, 107, 98);
    expect_next(&t, &s, 108, 0);
    expect_next(&t, &s, 109, 0);
    expect_next(&t, &s, 110, 0);
    expect_empty(&t, &s);
    cr_assert_eq(s.delivered + s.missed, 110, "delivered + missed == published");
    cr_assert_eq(s.missed, 104);
    cr_assert_eq(s.entry->missed, 104);
    cr_assert_eq(s.entry->delivered, 6);
    cr_assert_eq(s.entry->next_seq, 111);
    done(&t);
}

Test(bcast_io, non_power_of_two_depth)
{
    struct t t;
    setup(&t, 64, 3, 4, NULL); /* seed 000's default buffer_num */
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    for (uint64_t m = 1; m <= 30; m++) {
        put(&t);
        expect_next(&t, &s, m, 0);
    }
    put_n(&t, 7); /* 31..37 published, holds 35..37 */
    expect_next(&t, &s, 35, 4);
    expect_next(&t, &s, 36, 0);
    cr_assert_eq(t.b.depth_mask, 0);
    done(&t);
}

Test(bcast_io, slot_being_written_is_skipped_never_read)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 4); /* holds 1..4 */
    void *ptr;
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, 8, &ptr), 0); /* message 5 overwrites 1 */
    memset(ptr, 0xEE, 8);
    cr_assert_eq(slot(&t, 5)->stamp, 2 * 5 + 1);
    expect_next(&t, &s, 2, 1);
    expect_next(&t, &s, 3, 0);
    expect_next(&t, &s, 4, 0);
    expect_empty(&t, &s); /* 5 is not published */
    cr_assert_eq(shm__bcast_abort(&t.p), 0);
    expect_empty(&t, &s);
    put(&t); /* 5 again, complete this time */
    expect_next(&t, &s, 5, 0);
    cr_assert_eq(s.delivered + s.missed, 5);
    done(&t);
}

Test(bcast_io, latest_value_and_is_new)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    uint8_t buf[64];
    uint64_t len, missed;
    int is_new;
    put(&t);
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, sizeof buf, &len, &is_new, &missed), 0);
    cr_assert_eq(mcheck(buf, len, 1), 0);
    cr_assert_eq(is_new, 1);
    cr_assert_eq(missed, 0);
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, sizeof buf, &len, &is_new, &missed), 0);
    cr_assert_eq(mcheck(buf, len, 1), 0, "the same value again");
    cr_assert_eq(is_new, 0);
    put_n(&t, 6); /* 2..7 */
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, sizeof buf, &len, &is_new, &missed), 0);
    cr_assert_eq(mcheck(buf, len, 7), 0);
    cr_assert_eq(is_new, 1);
    cr_assert_eq(missed, 5, "2..6 skipped");
    expect_empty(&t, &s); /* next continues after the latest */
    put(&t);
    expect_next(&t, &s, 8, 0);
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, sizeof buf, &len, &is_new, &missed), 0);
    cr_assert_eq(is_new, 0, "8 was delivered by next");
    cr_assert_eq(s.delivered + s.missed, 8);
    /* a late joiner gets the latest value at once, as new */
    struct shm__bcast_sub s2;
    shm__bcast_sub_join(&t.b, &s2, 1, 1);
    cr_assert_eq(shm__bcast_latest(&t.b, &s2, buf, sizeof buf, &len, &is_new, &missed), 0);
    cr_assert_eq(mcheck(buf, len, 8), 0);
    cr_assert_eq(is_new, 1);
    done(&t);
}

Test(bcast_io, buffer_too_small_keeps_the_message)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 3); /* message 1 is 9 bytes */
    uint8_t buf[64];
    uint64_t len = 0, missed;
    int is_new;
    cr_assert_eq(shm__bcast_next(&t.b, &s, buf, 8, &len, &missed), -EMSGSIZE);
    cr_assert_eq(len, 9);
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, 8, &len, &is_new, &missed), -EMSGSIZE);
    cr_assert_eq(len, 11);
    expect_next(&t, &s, 1, 0);
    done(&t);
}

/* ---- publisher calls ----------------------------------------------------------------- */

Test(bcast_pub, reserve_commit_abort_rules)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    void *ptr, *ptr2;
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, 65, &ptr), -EMSGSIZE);
    cr_assert_eq(shm__bcast_commit(&t.b, &t.p, 0), -EINVAL);
    cr_assert_eq(shm__bcast_abort(&t.p), -EINVAL);
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, 64, &ptr), 0);
    cr_assert_eq((uintptr_t)ptr % 8, 0, "payload 8-byte aligned");
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, 8, &ptr2), -EBUSY);
    cr_assert_eq(shm__bcast_commit(&t.b, &t.p, 65), -EINVAL);
    cr_assert_eq(shm__bcast_commit(&t.b, &t.p, 10), 0);
    cr_assert_eq(H(&t)->pub_seq, 0, "not visible before publish");
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, 8, &ptr2), -EBUSY, "one message in flight");
    cr_assert_eq(shm__bcast_publish(&t.b, &t.p), 0);
    cr_assert_eq(H(&t)->pub_seq, 1);
    cr_assert_eq(H(&t)->bytes_written, 10);
    cr_assert_eq(slot(&t, 1)->length, 10);
    cr_assert_eq(slot(&t, 1)->stamp, 2);
    cr_assert_eq(shm__bcast_publish(&t.b, &t.p), 0, "nothing committed: no-op");
    cr_assert_eq(H(&t)->pub_seq, 1);
    done(&t);
}

Test(bcast_pub, takeover_after_death_mid_write)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 6);
    void *ptr;
    /* dies in the middle of message 7: half written, then committed but not published */
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, 20, &ptr), 0);
    memset(ptr, 0xAB, 10);
    struct shm__bcast_pub p2;
    cr_assert_eq(shm__bcast_pub_attach(&t.b, &p2), 0);
    cr_assert_eq(p2.seq, 6);
    cr_assert_eq(H(&t)->publisher_epoch, 2);
    expect_next(&t, &s, 4, 3); /* 3 is gone (7 was begun over it) */
    uint8_t buf[64];
    mfill(buf, 7);
    cr_assert_eq(shm__bcast_write(&t.b, &p2, buf, mlen(7)), 0);
    expect_next(&t, &s, 5, 0);
    expect_next(&t, &s, 6, 0);
    expect_next(&t, &s, 7, 0);
    cr_assert_eq(s.delivered + s.missed, 7);
    done(&t);
}

Test(bcast_pub, free_running_numbers_near_2_to_62)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    H(&t)->pub_seq = (1ull << 62) - 3;
    cr_assert_eq(shm__bcast_pub_attach(&t.b, &t.p), 0);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 9);
    /* joined at the latest, 2^62 - 3; 2^62 + 6 published; 2^62 + 3.. held */
    expect_next(&t, &s, (1ull << 62) + 3, 6);
    expect_next(&t, &s, (1ull << 62) + 4, 0);
    cr_assert_eq(s.delivered + s.missed, 8);
    /* the last number a stamp can hold */
    H(&t)->pub_seq = SHM__BCAST_MAX_SEQ - 1;
    cr_assert_eq(shm__bcast_pub_attach(&t.b, &t.p), 0);
    put(&t);
    cr_assert_eq(slot(&t, SHM__BCAST_MAX_SEQ)->stamp, 2 * SHM__BCAST_MAX_SEQ);
    void *ptr;
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, 8, &ptr), -EOVERFLOW);
    H(&t)->pub_seq = SHM__BCAST_MAX_SEQ + 1;
    cr_assert_eq(shm__bcast_pub_attach(&t.b, &t.p), -EBADMSG);
    done(&t);
}

/* ---- reads raced by an overwrite ------------------------------------------------------- */

struct race {
    struct t *t;
    int publishes; /* how many messages to publish at the hook */
    int reserve;   /* then start (and leave) one more reservation */
    int fired;
    int times;     /* fire on this many hook calls */
};

static void race_hook(void *arg)
{
    struct race *r = arg;
    if (r->fired >= r->times)
        return;
    r->fired++;
    put_n(r->t, (uint64_t)r->publishes);
    if (r->reserve) {
        void *ptr;
        cr_assert_eq(shm__bcast_reserve(&r->t->b, &r->t->p, 32, &ptr), 0);
        memset(ptr, 0xFF, 32); /* a half-written message over the slot */
    }
}

Test(bcast_race, overwrite_during_copy_is_not_delivered)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 4); /* 1..4 */
    /* while message 1 is copied, the publisher begins message 5 over it */
    struct race r = {&t, 0, 1, 0, 1};
    shm__bcast_hook_after_copy = race_hook;
    shm__bcast_hook_arg = &r;
    expect_next(&t, &s, 2, 1);
    cr_assert_eq(r.fired, 1);
    shm__bcast_abort(&t.p);
    /* while message 2 is copied, 4 more messages lap the reader: 5..8 held */
    r = (struct race){&t, 4, 0, 0, 1};
    uint8_t buf[64];
    uint64_t len, missed;
    shm__bcast_hook_arg = &r;
    cr_assert_eq(shm__bcast_next(&t.b, &s, buf, sizeof buf, &len, &missed), 0);
    cr_assert_eq(mcheck(buf, len, 5), 0, "the oldest held, intact");
    cr_assert_eq(missed, 2, "3 and 4 skipped (2 was delivered already)");
    cr_assert_eq(s.delivered + s.missed, 5);
    done(&t);
}

Test(bcast_race, torn_copy_detected_every_time_until_give_up)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 4);
    /* every copy is overwritten: the read gives up after a bounded number of tries,
     * having delivered nothing */
    struct race r = {&t, 4, 0, 0, 1000000};
    shm__bcast_hook_after_copy = race_hook;
    shm__bcast_hook_arg = &r;
    uint8_t buf[64];
    uint64_t len, missed;
    cr_assert_eq(shm__bcast_next(&t.b, &s, buf, sizeof buf, &len, &missed), -EAGAIN);
    cr_assert_eq(r.fired, SHM__BCAST_MAX_TRIES);
    cr_assert_eq(s.delivered, 0);
    shm__bcast_hook_after_copy = NULL;
    expect_next(&t, &s, t.p.seq - 3, t.p.seq - 4);
    cr_assert_eq(s.delivered + s.missed, t.p.seq - 3);
    done(&t);
}

Test(bcast_race, latest_retries_when_overwritten)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 5);
    struct race r = {&t, 4, 0, 0, 1}; /* 6..9 published while 5 is copied: 9 reuses 5's slot */
    shm__bcast_hook_after_copy = race_hook;
    shm__bcast_hook_arg = &r;
    uint8_t buf[64];
    uint64_t len, missed;
    int is_new;
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, sizeof buf, &len, &is_new, &missed), 0);
    cr_assert_eq(mcheck(buf, len, 9), 0);
    cr_assert_eq(is_new, 1);
    cr_assert_eq(missed, 8, "1..8 skipped (5 was never delivered: its copy was torn)");
    done(&t);
}

/* ---- zero-copy views ----------------------------------------------------------------- */

Test(bcast_view, intact_view_is_delivered)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 2);
    const void *p, *p2;
    uint64_t len, len2, missed;
    int is_new;
    cr_assert_eq(shm__bcast_peek(&t.b, &s, 0, &p, &len, &missed, &is_new), 0);
    cr_assert_eq((uintptr_t)p % 8, 0);
    cr_assert_eq(mcheck(p, len, 1), 0);
    cr_assert_eq(is_new, 1);
    cr_assert_eq(shm__bcast_peek(&t.b, &s, 0, &p2, &len2, &missed, NULL), 0);
    cr_assert_eq(p2, p, "peeking again: the same view");
    uint8_t buf[64];
    cr_assert_eq(shm__bcast_next(&t.b, &s, buf, sizeof buf, &len, &missed), -EBUSY);
    put_n(&t, 2); /* 3, 4: slot of 1 untouched (depth 4) */
    cr_assert_eq(shm__bcast_release(&t.b, &s), 0);
    cr_assert_eq(shm__bcast_release(&t.b, &s), -EINVAL);
    cr_assert_eq(s.delivered, 1);
    expect_next(&t, &s, 2, 0);
    done(&t);
}

Test(bcast_view, view_overwritten_while_held_is_stale)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 1);
    const void *p;
    uint64_t len, missed;
    cr_assert_eq(shm__bcast_peek(&t.b, &s, 0, &p, &len, &missed, NULL), 0);
    put_n(&t, 3); /* 2..4: 1 is still intact: a view lasts depth - 1 publishes */
    void *w;
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, 8, &w), 0); /* 5 begins over 1 */
    cr_assert_eq(shm__bcast_release(&t.b, &s), -ESTALE);
    cr_assert_eq(s.delivered, 0);
    cr_assert_eq(s.missed, 1);
    cr_assert_eq(s.entry->missed, 1);
    shm__bcast_abort(&t.p);
    expect_next(&t, &s, 2, 0);
    done(&t);
}

Test(bcast_view, peek_latest)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub s;
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 6);
    const void *p;
    uint64_t len, missed;
    int is_new;
    cr_assert_eq(shm__bcast_peek(&t.b, &s, 1, &p, &len, &missed, &is_new), 0);
    cr_assert_eq(mcheck(p, len, 6), 0);
    cr_assert_eq(is_new, 1);
    cr_assert_eq(missed, 5);
    const void *p2;
    uint64_t len2, missed2 = 0;
    int is_new2 = 0;
    cr_assert_eq(shm__bcast_peek(&t.b, &s, 1, &p2, &len2, &missed2, &is_new2), 0);
    cr_assert(p2 == p && len2 == len && missed2 == 5 && is_new2 == 1, "peek again: same report");
    cr_assert_eq(s.missed, 5, "counted once");
    cr_assert_eq(shm__bcast_release(&t.b, &s), 0);
    cr_assert_eq(shm__bcast_peek(&t.b, &s, 1, &p, &len, &missed, &is_new), 0);
    cr_assert_eq(is_new, 0);
    put_n(&t, 4); /* overwrites 6 */
    cr_assert_eq(shm__bcast_release(&t.b, &s), -ESTALE);
    cr_assert_eq(s.delivered + s.missed, 6, "an old view going stale changes no count");
    done(&t);
}

/* ---- waiting and waking ---------------------------------------------------------------- */

/* waiting = count << 1 | owed (spec §3.3, §5.7) */
#define WAITING(t) (H(t)->waiting >> 1)
#define OWED(t) (H(t)->waiting & 1u)

Test(bcast_wait, wake_only_while_someone_sleeps)
{
    struct t t;
    setup(&t, 64, 4, 4, NULL);
    struct shm__bcast_sub a, b;
    shm__bcast_sub_join(&t.b, &a, 0, 1);
    shm__bcast_sub_join(&t.b, &b, 1, 1);
    cr_assert_eq(put(&t), 0, "no sleeper: no wake");
    cr_assert_eq(H(&t)->notify_seq, 0);
    uint32_t seen = shm__bcast_wait_prepare(&t.b, &a);
    cr_assert_eq(seen, 0);
    cr_assert_eq(WAITING(&t), 1);
    cr_assert_eq(OWED(&t), 1);
    cr_assert_eq(a.entry->sleeping, 1);
    shm__bcast_wait_prepare(&t.b, &b);
    cr_assert_eq(WAITING(&t), 2);
    cr_assert_eq(put(&t), 1, "sleepers: the caller must wake");
    cr_assert_eq(H(&t)->notify_seq, 1, "the futex word moved: a FUTEX_WAIT on 0 returns");
    cr_assert_eq(H(&t)->publisher_wakes, 1);
    cr_assert_eq(OWED(&t), 0, "the publisher took the owed wake");
    cr_assert_eq(WAITING(&t), 2);
    cr_assert_eq(put(&t), 0, "one wake per sleep episode: both were woken already");
    shm__bcast_wait_done(&t.b, &a);
    /* a comes back from FUTEX_WAIT and sleeps again: it must register again */
    cr_assert_eq(shm__bcast_wait_prepare(&t.b, &a), 1);
    cr_assert_eq(OWED(&t), 1);
    cr_assert_eq(put(&t), 1, "a re-registered: woken again");
    shm__bcast_wait_done(&t.b, &a);
    shm__bcast_wait_done(&t.b, &b);
    cr_assert_eq(H(&t)->waiting, 0);
    cr_assert_eq(b.entry->sleeping, 0);
    cr_assert_eq(put(&t), 0);
    cr_assert_eq(H(&t)->notify_seq, 2);
    cr_assert_eq(H(&t)->publisher_wakes, 2);
    /* a sleeper that times out and leaves, the last one out: it clears what was owed, so no
     * wake call follows for nobody */
    shm__bcast_wait_prepare(&t.b, &a);
    shm__bcast_wait_prepare(&t.b, &b);
    shm__bcast_wait_done(&t.b, &a);
    cr_assert_eq(H(&t)->waiting, 3, "b still counted in: the wake stays owed");
    shm__bcast_wait_done(&t.b, &b);
    cr_assert_eq(H(&t)->waiting, 0, "the last one out clears the owed wake");
    cr_assert_eq(put(&t), 0);
    cr_assert_eq(H(&t)->publisher_wakes, 2);
    /* end-of-stream wakes sleepers too */
    cr_assert_eq(shm__bcast_publisher_state(&t.b), 1);
    shm__bcast_wait_prepare(&t.b, &a);
    void *ptr;
    cr_assert_eq(shm__bcast_reserve(&t.b, &t.p, 8, &ptr), 0);
    cr_assert_eq(shm__bcast_pub_close(&t.b, &t.p), 1);
    cr_assert_eq(shm__bcast_publisher_state(&t.b), 2);
    cr_assert_eq(H(&t)->notify_seq, 3);
    cr_assert_eq(H(&t)->pub_seq, 6, "the reservation was aborted");
    /* a publisher that takes over while someone is counted in wakes once (its predecessor
     * may have died between taking a wake and making it) */
    __atomic_and_fetch(&H(&t)->waiting, ~1u, __ATOMIC_SEQ_CST); /* taken, never made */
    struct shm__bcast_pub p2;
    cr_assert_eq(shm__bcast_pub_attach(&t.b, &p2), 0);
    cr_assert_eq(p2.attach_wake, 1);
    cr_assert_eq(H(&t)->notify_seq, 4);
    shm__bcast_wait_done(&t.b, &a);
    cr_assert_eq(shm__bcast_pub_attach(&t.b, &p2), 0);
    cr_assert_eq(p2.attach_wake, 0, "nobody counted in: no wake at attach");
    cr_assert_eq(H(&t)->notify_seq, 4);
    done(&t);
}

/* ---- subscriber entries ----------------------------------------------------------------- */

Test(bcast_subs, dead_subscriber_is_reclaimed)
{
    struct t t;
    setup(&t, 64, 4, 8, NULL);
    struct shm__bcast_sub a, b;
    cr_assert_eq(shm__bcast_sub_join(&t.b, &a, 3, 100), 0);
    cr_assert_eq(shm__bcast_sub_join(&t.b, &b, 4, 101), 0);
    cr_assert_eq(H(&t)->subscribers, 2);
    shm__bcast_wait_prepare(&t.b, &a); /* a dies asleep: its handle is simply dropped */
    cr_assert_eq(WAITING(&t), 1);
    cr_assert_eq(shm__bcast_reclaim(&t.b, 4 + 1), 0, "an entry never used: nothing to do");
    struct shm__bcast_sub c;
    cr_assert_eq(shm__bcast_sub_join(&t.b, &c, 3, 102), 1, "reclaimed");
    cr_assert_eq(H(&t)->waiting, 0, "uncounted, and the last one out cleared the owed wake");
    cr_assert_eq(H(&t)->subscribers, 2);
    cr_assert_eq(H(&t)->reclaims, 1);
    cr_assert_eq(H(&t)->joins, 3);
    cr_assert_eq(c.entry->epoch, 2);
    cr_assert_eq(c.entry->pid, 102);
    cr_assert_eq(put(&t), 0, "no wake call for the dead sleeper");
    shm__bcast_wait_prepare(&t.b, &b); /* b leaves while counted as a sleeper */
    cr_assert_eq(WAITING(&t), 1);
    shm__bcast_sub_leave(&t.b, &b);
    cr_assert_eq(H(&t)->waiting, 0);
    cr_assert_eq(H(&t)->subscribers, 1);
    cr_assert_eq(b.entry->state, 2);
    cr_assert_eq(shm__bcast_sub_join(&t.b, &b, 8, 1), -EINVAL);
    done(&t);
}

Test(bcast_subs, many_subscribers_each_read_everything)
{
    struct t t;
    setup(&t, 64, 16, 300, NULL);
    static struct shm__bcast_sub s[300];
    for (uint32_t i = 0; i < 300; i++)
        shm__bcast_sub_join(&t.b, &s[i], i, i);
    cr_assert_eq(H(&t)->subscribers, 300);
    for (uint64_t m = 1; m <= 40; m++) {
        put(&t);
        for (uint32_t i = 0; i < 300; i++)
            if (i % 2 == 0 || m % 20 == 0) /* odd ones read in bursts of 20: lapped */
                while (s[i].next <= m) {
                    uint8_t buf[64];
                    uint64_t len, missed;
                    cr_assert_eq(shm__bcast_next(&t.b, &s[i], buf, sizeof buf, &len, &missed), 0);
                    cr_assert_eq(mcheck(buf, len, s[i].next - 1), 0);
                }
    }
    for (uint32_t i = 0; i < 300; i++) {
        cr_assert_eq(s[i].delivered + s[i].missed, 40);
        cr_assert_eq(s[i].missed, i % 2 ? 8 : 0, "subscriber %u missed %lu", i,
                     (unsigned long)s[i].missed);
        cr_assert_eq(shm__bcast_lag(&t.b, &s[i]), 0);
    }
    done(&t);
}

/* ---- invalid input --------------------------------------------------------------------- */

static int next_rc(struct t *t, struct shm__bcast_sub *s)
{
    uint8_t buf[64];
    uint64_t len, missed;
    return shm__bcast_next(&t->b, s, buf, sizeof buf, &len, &missed);
}

Test(bcast_bad, corrupt_shared_words_are_ebadmsg_never_out_of_bounds)
{
    struct t t;
    struct shm__bcast_sub s;
    /* pub_seq going back */
    setup(&t, 64, 4, 4, NULL);
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 3);
    expect_next(&t, &s, 1, 0);
    /* Read by its stamp, a message needs no pub_seq (spec §5.4 step 0); every read that
     * loads pub_seq finds it went back below what it saw: the latest value, and a lapped
     * next read. */
    {
        uint8_t b0[64];
        uint64_t l0, m0;
        int n0;
        cr_assert_eq(shm__bcast_latest(&t.b, &s, b0, sizeof b0, &l0, &n0, &m0), 0);
        cr_assert(n0 == 1 && mcheck(b0, l0, 3) == 0, "sees pub_seq = 3");
        H(&t)->pub_seq = 1;
        cr_assert_eq(shm__bcast_latest(&t.b, &s, b0, sizeof b0, &l0, &n0, &m0), -EBADMSG);
    }
    slot(&t, 4)->stamp = 2 * 8; /* message 8 over 4: a lap, decided with pub_seq */
    cr_assert_eq(next_rc(&t, &s), -EBADMSG);
    done(&t);
    /* a published message's stamp below its number */
    setup(&t, 64, 4, 4, NULL);
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 4);
    slot(&t, 1)->stamp = 0;
    cr_assert_eq(next_rc(&t, &s), -EBADMSG);
    slot(&t, 1)->stamp = 3; /* "being written" for a published message */
    cr_assert_eq(next_rc(&t, &s), -EBADMSG);
    slot(&t, 1)->stamp = 2 * 6; /* not of this slot (6 % 4 != 1) */
    cr_assert_eq(next_rc(&t, &s), -EBADMSG);
    slot(&t, 1)->stamp = 2 * 9; /* this slot, but more than one past pub_seq (4) */
    cr_assert_eq(next_rc(&t, &s), -EBADMSG);
    slot(&t, 1)->stamp = 2 * 5 + 1; /* 5 being written: legitimate, 1 is skipped */
    expect_next(&t, &s, 2, 1);
    slot(&t, 3)->length = 65; /* longer than max_payload */
    cr_assert_eq(next_rc(&t, &s), -EBADMSG);
    done(&t);
    setup(&t, 64, 4, 4, NULL);
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 3);
    slot(&t, 1)->length = 65;
    cr_assert_eq(next_rc(&t, &s), -EBADMSG);
    slot(&t, 1)->length = 0xFFFFFFFFu;
    cr_assert_eq(next_rc(&t, &s), -EBADMSG);
    uint8_t buf[64];
    uint64_t len, missed;
    int is_new;
    slot(&t, 3)->length = 1000;
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, sizeof buf, &len, &is_new, &missed), -EBADMSG);
    done(&t);
    /* a huge pub_seq: skips, reads within bounds, counts what it skipped */
    setup(&t, 64, 4, 4, NULL);
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    put_n(&t, 3);
    H(&t)->pub_seq = 1ull << 62;
    /* the latest value loads pub_seq: the slots do not hold such numbers */
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, sizeof buf, &len, &is_new, &missed), -EBADMSG);
    /* next reads by the stamps (§5.4 step 0): messages 1..3 are intact, then nothing */
    expect_next(&t, &s, 1, 0);
    slot(&t, 2)->stamp = 2 * 6; /* a lap: decided with pub_seq */
    cr_assert_eq(next_rc(&t, &s), -EBADMSG);
    done(&t);
    setup(&t, 64, 4, 4, NULL);
    shm__bcast_sub_join(&t.b, &s, 0, 1);
    H(&t)->pub_seq = UINT64_MAX - 1; /* 2m would not fit in a stamp */
    cr_assert_eq(shm__bcast_latest(&t.b, &s, buf, sizeof buf, &len, &is_new, &missed), -EBADMSG);
    done(&t);
}
