/* Producer and consumer threads in one process, each with its own handle (the TSan target):
 * a million self-checking messages through a small ring, the futex path with spinning off,
 * racing creators (either side first, one segment), and racing closers (the later one
 * removes the finished stream). */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"

TestSuite(threads, .init = ct_setup, .fini = ct_teardown, .timeout = 500);

#define WAIT (30 * CT_SEC)

struct run {
    char name[64];
    uint64_t cap;
    uint64_t count;
    uint64_t seed;
    uint64_t spin;
    int batch;
    /* results */
    int rc;
    uint64_t at;
    char what[64];
};

static void *fail(struct run *r, const char *what, uint64_t at, int rc)
{
    r->rc = rc ? rc : -1;
    r->at = at;
    snprintf(r->what, sizeof r->what, "%s", what);
    return NULL;
}

static void *producer(void *arg)
{
    struct run *r = arg;
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, r->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, r->cap, 0);
    if (rc)
        return fail(r, "producer open", 0, rc);
    shm_channel_set_spin(ch, r->spin);
    uint64_t max = shm_channel_max_payload(ch);
    uint8_t *buf = malloc(16 * (max + 8));
    uint64_t lens[16];
    for (uint64_t seq = 0; seq < r->count;) {
        if (r->batch && seq % 3 == 0) {
            uint32_t k = (uint32_t)(seq % 16) + 1;
            if (seq + k > r->count)
                k = (uint32_t)(r->count - seq);
            uint64_t off = 0;
            for (uint32_t i = 0; i < k; i++) {
                lens[i] = ct_msg_len(r->seed, seq + i, max);
                ct_msg_fill(buf + off, r->seed, seq + i, lens[i]);
                off += lens[i];
            }
            rc = shm_channel_write_batch(ch, buf, lens, k, WAIT);
            if (rc <= 0)
                return fail(r, "write_batch", seq, rc);
            seq += (uint64_t)rc;
            continue;
        }
        uint64_t len = ct_msg_len(r->seed, seq, max);
        if (seq % 2) {
            void *p;
            if ((rc = shm_channel_reserve(ch, len, &p, WAIT)) != 0)
                return fail(r, "reserve", seq, rc);
            ct_msg_fill(p, r->seed, seq, len);
            if ((rc = shm_channel_commit(ch, len)) != 0)
                return fail(r, "commit", seq, rc);
        } else {
            ct_msg_fill(buf, r->seed, seq, len);
            if ((rc = shm_channel_write(ch, buf, len, WAIT)) != 0)
                return fail(r, "write", seq, rc);
        }
        seq++;
    }
    shm_channel_close(ch);
    free(buf);
    return NULL;
}

static void *consumer(void *arg)
{
    struct run *r = arg;
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, r->name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, r->cap, 0);
    if (rc)
        return fail(r, "consumer open", 0, rc);
    shm_channel_set_spin(ch, r->spin);
    uint64_t max = shm_channel_max_payload(ch);
    size_t bufsz = 16 * (max + 8);
    uint8_t *buf = malloc(bufsz);
    uint64_t lens[16];
    uint64_t seq = 0;
    for (;;) {
        if (r->batch && seq % 4 == 0) {
            rc = shm_channel_read_batch(ch, buf, bufsz, lens, 16, WAIT);
            if (rc == -EPIPE)
                break;
            if (rc <= 0)
                return fail(r, "read_batch", seq, rc);
            uint64_t off = 0;
            for (int i = 0; i < rc; i++, seq++) {
                if (ct_msg_check(buf + off, lens[i], r->seed, seq, max))
                    return fail(r, "corrupt (batch)", seq, 0);
                off += lens[i];
            }
            continue;
        }
        const void *p;
        uint64_t len;
        if (seq % 2) {
            rc = shm_channel_peek(ch, &p, &len, WAIT);
            if (rc == -EPIPE)
                break;
            if (rc)
                return fail(r, "peek", seq, rc);
            if (ct_msg_check(p, len, r->seed, seq, max))
                return fail(r, "corrupt (peek)", seq, 0);
            if ((rc = shm_channel_release(ch)) != 0)
                return fail(r, "release", seq, rc);
        } else {
            rc = shm_channel_read(ch, buf, max, &len, WAIT);
            if (rc == -EPIPE)
                break;
            if (rc)
                return fail(r, "read", seq, rc);
            if (ct_msg_check(buf, len, r->seed, seq, max))
                return fail(r, "corrupt (read)", seq, 0);
        }
        seq++;
    }
    if (seq != r->count)
        return fail(r, "end-of-stream early", seq, -EPIPE);
    shm_channel_close(ch);
    free(buf);
    return NULL;
}

static void run_pair(struct run *pr)
{
    struct run cr = *pr;
    pthread_t tp, tc;
    cr_assert_eq(pthread_create(&tc, NULL, consumer, &cr), 0);
    cr_assert_eq(pthread_create(&tp, NULL, producer, pr), 0);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    cr_assert_eq(pr->rc, 0, "producer: %s at %lu: %s", pr->what, (unsigned long)pr->at,
                 shm_channel_strerror(pr->rc));
    cr_assert_eq(cr.rc, 0, "consumer: %s at %lu: %s", cr.what, (unsigned long)cr.at,
                 shm_channel_strerror(cr.rc));
    cr_assert(!ct_exists(pr->name), "the finished stream was removed");
}

Test(threads, a_million_messages_through_1k)
{
    struct run r = {.cap = 1024, .count = ct_scaled(1000000, 20000), .seed = 7,
                    .spin = SHM_CHANNEL_DEFAULT_SPIN_NS};
    ct_name(r.name, "thr");
    run_pair(&r);
}

Test(threads, batches_through_4k)
{
    struct run r = {.cap = 4096, .count = ct_scaled(1000000, 20000), .seed = 8,
                    .spin = SHM_CHANNEL_DEFAULT_SPIN_NS, .batch = 1};
    ct_name(r.name, "thrb");
    run_pair(&r);
}

Test(threads, futex_only_no_spinning)
{
    struct run r = {.cap = 1024, .count = ct_scaled(100000, 5000), .seed = 9, .spin = 0,
                    .batch = 1};
    ct_name(r.name, "thrf");
    run_pair(&r);
}

/* ---- racing open and close ----------------------------------------------------------- */

struct racer {
    const char *name;
    uint32_t role;
    pthread_barrier_t *barrier;
    int rc;
};

static void *open_write_close(void *arg)
{
    struct racer *a = arg;
    shm_channel_t *ch = NULL;
    pthread_barrier_wait(a->barrier);
    a->rc = shm_channel_open(&ch, a->name, a->role, SHM_CHANNEL_CREATE, 1024, 0);
    if (a->rc == 0 && a->role == SHM_CHANNEL_PRODUCER) {
        a->rc = shm_channel_write(ch, "m", 1, WAIT);
    } else if (a->rc == 0) {
        uint8_t b[4];
        uint64_t len;
        a->rc = shm_channel_read(ch, b, sizeof b, &len, WAIT);
    }
    pthread_barrier_wait(a->barrier); /* close at the same time */
    if (ch)
        shm_channel_close(ch);
    return NULL;
}

Test(threads, racing_creators_and_closers)
{
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    int rounds = (int)ct_scaled(300, 30);
    for (int i = 0; i < rounds; i++) {
        char name[64];
        ct_name(name, "race");
        struct racer p = {name, SHM_CHANNEL_PRODUCER, &barrier, 0};
        struct racer c = {name, SHM_CHANNEL_CONSUMER, &barrier, 0};
        pthread_t tp, tc;
        pthread_create(&tp, NULL, open_write_close, &p);
        pthread_create(&tc, NULL, open_write_close, &c);
        pthread_join(tp, NULL);
        pthread_join(tc, NULL);
        cr_assert_eq(p.rc, 0, "round %d producer: %s", i, shm_channel_strerror(p.rc));
        cr_assert_eq(c.rc, 0, "round %d consumer: %s", i, shm_channel_strerror(c.rc));
        cr_assert(!ct_exists(name), "round %d: whichever closed last removed the stream", i);
    }
    cr_assert_eq(ct_count_files(), 0, "no segment or temporary left");
    pthread_barrier_destroy(&barrier);
}
