/* Producer and consumer threads over ONE mapping of the segment (the ThreadSanitizer target).
 * TSan tracks addresses: when each handle maps the segment at its own address, it cannot see
 * that the producer's payload stores and the consumer's payload loads touch the same bytes, so
 * a missing release/acquire between them goes unreported. Here the consumer handle uses the
 * producer handle's mapping (shm__hook_share_mapping), so every access of both sides is at
 * one address: the ring's publish (write_pos release / acquire) and release (read_pos release /
 * acquire) are what order the plain payload copies, and TSan checks exactly that.
 *
 * Covered: write/read, reserve/commit (and abort), peek/release, both batches; blocking and
 * non-blocking calls; spin 0 (every wait goes through the waiting flags and the futex) and the
 * default spin. And the bare algorithm: ring.c's functions over a plain malloc'd buffer.
 *
 * Note on fences: the sleep handshake's seq_cst fence orders the waiting flag (atomic) against
 * the positions (atomic); no plain data depends on it, so TSan's weak model of standalone
 * fences cannot produce false reports here, and none are suppressed. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "ct.h"
#include "hooks.h"
#include "layout.h"
#include "ring.h"

TestSuite(onemap, .init = ct_setup, .fini = ct_teardown, .timeout = 500);

#define WAIT (60 * CT_SEC)

struct side {
    shm_channel_t *ch;
    uint64_t count;
    uint64_t seed;
    int nonblocking; /* every call with timeout 0, retried on -EAGAIN */
    int rc;
    uint64_t at;
    char what[48];
};

static void *fail(struct side *s, const char *what, uint64_t at, int rc)
{
    s->rc = rc ? rc : -1;
    s->at = at;
    snprintf(s->what, sizeof s->what, "%s", what);
    /* End the role now, so that the peer gets -EPIPE instead of waiting for us. */
    shm_channel_detach(s->ch);
    return NULL;
}

/* timeout 0 (retried) or blocking: both reach the same data through the same publish */
static int64_t tmo(const struct side *s)
{
    return s->nonblocking ? 0 : WAIT;
}

static void *producer(void *arg)
{
    struct side *s = arg;
    shm_channel_t *ch = s->ch;
    uint64_t max = shm_channel_max_payload(ch);
    uint8_t *buf = malloc(8 * (max + 8));
    uint64_t lens[8];
    for (uint64_t seq = 0; seq < s->count;) {
        int rc;
        unsigned kind = (unsigned)(seq % 5);
        if (kind == 0) { /* batch of up to 8 */
            uint32_t k = (uint32_t)(ct_mix(seq) % 8) + 1;
            if (seq + k > s->count)
                k = (uint32_t)(s->count - seq);
            uint64_t off = 0;
            for (uint32_t i = 0; i < k; i++) {
                lens[i] = ct_msg_len(s->seed, seq + i, max);
                ct_msg_fill(buf + off, s->seed, seq + i, lens[i]);
                off += lens[i];
            }
            rc = shm_channel_write_batch(ch, buf, lens, k, tmo(s));
            if (rc > 0) {
                seq += (uint64_t)rc;
                continue;
            }
        } else if (kind == 1 || kind == 2) { /* reserve, fill in place, commit */
            uint64_t len = ct_msg_len(s->seed, seq, max);
            void *p;
            rc = shm_channel_reserve(ch, len, &p, tmo(s));
            if (rc == 0) {
                if (kind == 2) { /* scribble, abort, reserve again: nothing of it may show */
                    memset(p, 0xa5, len);
                    if ((rc = shm_channel_abort(ch)) != 0)
                        return fail(s, "abort", seq, rc);
                    if ((rc = shm_channel_reserve(ch, len, &p, 0)) != 0)
                        return fail(s, "reserve after abort", seq, rc);
                }
                ct_msg_fill(p, s->seed, seq, len);
                if ((rc = shm_channel_commit(ch, len)) != 0)
                    return fail(s, "commit", seq, rc);
                seq++;
                continue;
            }
        } else {
            uint64_t len = ct_msg_len(s->seed, seq, max);
            ct_msg_fill(buf, s->seed, seq, len);
            rc = shm_channel_write(ch, buf, len, tmo(s));
            if (rc == 0) {
                seq++;
                continue;
            }
        }
        if (rc != -EAGAIN || !s->nonblocking)
            return fail(s, "write", seq, rc);
        sched_yield();
    }
    free(buf);
    return NULL;
}

static void *consumer(void *arg)
{
    struct side *s = arg;
    shm_channel_t *ch = s->ch;
    uint64_t max = shm_channel_max_payload(ch);
    size_t bufsz = 8 * (max + 8);
    uint8_t *buf = malloc(bufsz);
    uint64_t lens[8];
    for (uint64_t seq = 0; seq < s->count;) {
        int rc;
        unsigned kind = (unsigned)(seq % 3);
        if (kind == 0) {
            rc = shm_channel_read_batch(ch, buf, bufsz, lens, 8, tmo(s));
            if (rc > 0) {
                uint64_t off = 0;
                for (int i = 0; i < rc; i++, seq++) {
                    if (ct_msg_check(buf + off, lens[i], s->seed, seq, max))
                        return fail(s, "corrupt (read_batch)", seq, 0);
                    off += lens[i];
                }
                continue;
            }
        } else if (kind == 1) {
            const void *p;
            uint64_t len;
            rc = shm_channel_peek(ch, &p, &len, tmo(s));
            if (rc == 0) {
                if (ct_msg_check(p, len, s->seed, seq, max))
                    return fail(s, "corrupt (peek)", seq, 0);
                if ((rc = shm_channel_release(ch)) != 0)
                    return fail(s, "release", seq, rc);
                seq++;
                continue;
            }
        } else {
            uint64_t len;
            rc = shm_channel_read(ch, buf, max, &len, tmo(s));
            if (rc == 0) {
                if (ct_msg_check(buf, len, s->seed, seq, max))
                    return fail(s, "corrupt (read)", seq, 0);
                seq++;
                continue;
            }
        }
        if (rc != -EAGAIN || !s->nonblocking)
            return fail(s, "read", seq, rc);
        sched_yield();
    }
    free(buf);
    return NULL;
}

static void run_one_mapping(uint64_t cap, uint64_t count, uint64_t spin, int nonblocking,
                            uint64_t seed)
{
    char name[64];
    ct_name(name, "onemap");
    shm_channel_t *p, *c;
    cr_assert_eq(shm_channel_open(&p, name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, cap, 0), 0);
    cr_assert_eq(shm_channel_open(&c, name, SHM_CHANNEL_CONSUMER, 0, 0, 0), 0);
    /* From here on both handles access the segment at the producer's address. */
    cr_assert_eq(shm__hook_share_mapping(c, p), 0);
    cr_assert_eq(shm_channel_set_spin(p, spin), 0);
    cr_assert_eq(shm_channel_set_spin(c, spin), 0);
    struct side ps = {.ch = p, .count = count, .seed = seed, .nonblocking = nonblocking};
    struct side cs = ps;
    cs.ch = c;
    pthread_t tp, tc;
    cr_assert_eq(pthread_create(&tc, NULL, consumer, &cs), 0);
    cr_assert_eq(pthread_create(&tp, NULL, producer, &ps), 0);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    cr_assert(ps.rc == 0 && cs.rc == 0, "producer: %s at %lu: %s; consumer: %s at %lu: %s",
              ps.what, (unsigned long)ps.at, shm_channel_strerror(ps.rc), cs.what,
              (unsigned long)cs.at, shm_channel_strerror(cs.rc));
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(p, &st), 0);
    cr_assert_eq(st.msgs_written, count);
    cr_assert_eq(st.msgs_read, count);
    cr_assert_eq(st.write_pos, st.read_pos);
    if (spin == 0 && !nonblocking)
        cr_assert(st.consumer_sleeps + st.producer_sleeps > 0, "the futex path was used");
    /* The consumer uses the producer's mapping: it goes first. */
    shm_channel_close(c);
    shm_channel_close(p);
    cr_assert(!ct_exists(name), "the finished stream was removed");
}

Test(onemap, blocking_default_spin)
{
    run_one_mapping(1024, ct_scaled(300000, 20000), SHM_CHANNEL_DEFAULT_SPIN_NS, 0, 21);
}

Test(onemap, blocking_spin0_futex_every_wait)
{
    run_one_mapping(1024, ct_scaled(100000, 5000), 0, 0, 22);
}

Test(onemap, nonblocking_polling)
{
    run_one_mapping(2048, ct_scaled(300000, 20000), 0, 1, 23);
}

Test(onemap, large_ring_default_spin)
{
    run_one_mapping(1u << 16, ct_scaled(300000, 20000), SHM_CHANNEL_DEFAULT_SPIN_NS, 0, 24);
}

/* ---- ring.c alone, over a plain buffer ------------------------------------------------ */

struct rside {
    struct shm__ring *r;
    int *stop; /* set by a side that failed: the other one stops waiting */
    uint64_t count;
    uint64_t seed;
    int rc;
    uint64_t at;
};

static void *ring_producer(void *arg)
{
    struct rside *s = arg;
    struct shm__ring_producer p;
    if ((s->rc = shm__ring_producer_attach(s->r, &p)) != 0)
        return NULL;
    for (uint64_t seq = 0; seq < s->count;) {
        uint64_t len = ct_msg_len(s->seed, seq, s->r->max_payload);
        void *ptr;
        int rc = shm__ring_reserve(s->r, &p, len, &ptr);
        if (rc == -EAGAIN && !__atomic_load_n(s->stop, __ATOMIC_RELAXED)) {
            shm__ring_publish(s->r, &p); /* whatever is committed must reach the consumer */
            sched_yield();
            continue;
        }
        if (rc) {
            __atomic_store_n(s->stop, 1, __ATOMIC_RELAXED);
            s->rc = rc;
            s->at = seq;
            return NULL;
        }
        if (seq % 7 == 3) { /* abort a scribbled reservation: it must never be seen */
            memset(ptr, 0x5a, len);
            shm__ring_abort(&p);
            /* the abort gave back exactly the room the reservation took */
            if ((rc = shm__ring_reserve(s->r, &p, len, &ptr)) != 0) {
                __atomic_store_n(s->stop, 1, __ATOMIC_RELAXED);
                s->rc = rc;
                s->at = seq;
                return NULL;
            }
        }
        ct_msg_fill(ptr, s->seed, seq, len);
        shm__ring_commit(s->r, &p, len);
        seq++;
        if (seq % 4 == 0 || seq == s->count) /* several commits per publish */
            shm__ring_publish(s->r, &p);
    }
    return NULL;
}

static void *ring_consumer(void *arg)
{
    struct rside *s = arg;
    struct shm__ring_consumer c;
    if ((s->rc = shm__ring_consumer_attach(s->r, &c)) != 0)
        return NULL;
    for (uint64_t seq = 0; seq < s->count;) {
        const void *ptr;
        uint64_t len;
        int rc = shm__ring_peek(s->r, &c, &ptr, &len);
        if (rc == -EAGAIN && !__atomic_load_n(s->stop, __ATOMIC_RELAXED)) {
            shm__ring_publish_release(s->r, &c);
            sched_yield();
            continue;
        }
        if (rc || ct_msg_check(ptr, len, s->seed, seq, s->r->max_payload)) {
            __atomic_store_n(s->stop, 1, __ATOMIC_RELAXED);
            s->rc = rc ? rc : -EBADMSG;
            s->at = seq;
            return NULL;
        }
        shm__ring_release(&c);
        seq++;
        if (seq % 3 == 0 || seq == s->count)
            shm__ring_publish_release(s->r, &c);
    }
    return NULL;
}

Test(onemap, ring_functions_over_a_plain_buffer)
{
    static const uint64_t caps[] = {1024, 4096, 1u << 16};
    for (unsigned i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        uint64_t cap = caps[i];
        void *base = NULL;
        cr_assert_eq(posix_memalign(&base, 4096, SHM_CHANNEL_HEADER_SIZE + cap), 0);
        memset(base, 0, SHM_CHANNEL_HEADER_SIZE + cap);
        shm__ring_format(base, cap, 1, 1);
        struct shm__ring r;
        shm__ring_bind(&r, base, cap);
        int stop = 0;
        struct rside ps = {.r = &r, .stop = &stop, .count = ct_scaled(300000, 20000), .seed = 30 + i};
        struct rside cs = ps;
        pthread_t tp, tc;
        cr_assert_eq(pthread_create(&tc, NULL, ring_consumer, &cs), 0);
        cr_assert_eq(pthread_create(&tp, NULL, ring_producer, &ps), 0);
        pthread_join(tp, NULL);
        pthread_join(tc, NULL);
        cr_assert(ps.rc == 0 && cs.rc == 0, "cap %lu: producer at %lu: %s; consumer at %lu: %s",
                  (unsigned long)cap, (unsigned long)ps.at, shm_channel_strerror(ps.rc),
                  (unsigned long)cs.at, shm_channel_strerror(cs.rc));
        cr_assert_eq(shm__load_relaxed(&r.hdr->msgs_read), ps.count);
        free(base);
    }
}
