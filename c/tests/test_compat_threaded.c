/* The compat ring with real threads over one plain buffer (the TSan target): our producer and
 * our consumer; and each of ours against a thread that stores its index byte by byte, low byte
 * first (as the peer's Python side does through struct.pack_into), yielding inside one store
 * in 256. Every message is checked; indices start just below 2^32 so they wrap. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "compat.h"
#include "ct.h"

TestSuite(compat_threads, .timeout = 500);

#define CAP 1024u
#define MAXLEN (CAP - 4)
#define SEED 0xC0DA7ull
#define START (0xFFFFFFFFu - 200000u)

struct shared {
    uint8_t *mem;
    struct shm__compat r;
    uint64_t count;
    uint64_t torn_p, torn_c; /* rejected loads of the peer's index, by our producer, consumer */
    int fails;
};

/* A peer-style index store: four 1-byte stores, low byte first (release, so that TSan sees
 * the record bytes published; the peer's are plain stores ordered by x86). */
static void store_bytewise(uint32_t *word, uint32_t v, uint64_t n)
{
    uint8_t *b = (uint8_t *)word;
    for (int i = 0; i < 4; i++) {
        shm__store_release(&b[i], (uint8_t)(v >> (8 * i)));
        if (n % 256 == 0 && i < 3)
            sched_yield();
    }
}

static uint32_t len_of(uint64_t seq)
{
    return (uint32_t)ct_msg_len(SEED, seq, MAXLEN - 1) + 1; /* 1..MAXLEN */
}

static void *our_producer(void *arg)
{
    struct shared *sh = arg;
    struct shm__compat_producer p;
    if (shm__compat_producer_attach(&sh->r, &p)) {
        sh->fails++;
        return NULL;
    }
    uint8_t buf[CAP];
    for (uint64_t seq = 0; seq < sh->count; seq++) {
        uint32_t len = len_of(seq);
        int rc;
        if (seq % 2) {
            void *ptr;
            while ((rc = shm__compat_reserve(&sh->r, &p, len, &ptr)) == -EAGAIN)
                sched_yield();
            if (rc)
                break;
            ct_msg_fill(ptr, SEED, seq, len);
            rc = shm__compat_commit(&sh->r, &p, len);
        } else {
            ct_msg_fill(buf, SEED, seq, len);
            while ((rc = shm__compat_write(&sh->r, &p, buf, len)) == -EAGAIN)
                sched_yield();
        }
        if (rc) {
            fprintf(stderr, "producer: message %lu: %d\n", (unsigned long)seq, rc);
            sh->fails++;
            break;
        }
    }
    sh->torn_p = p.rereads;
    shm__compat_producer_fini(&p);
    return NULL;
}

static void *our_consumer(void *arg)
{
    struct shared *sh = arg;
    struct shm__compat_consumer c;
    if (shm__compat_consumer_attach(&sh->r, &c)) {
        sh->fails++;
        return NULL;
    }
    uint8_t buf[CAP];
    for (uint64_t seq = 0; seq < sh->count; seq++) {
        uint32_t n = 0;
        const void *got = buf;
        int rc;
        if (seq % 3 == 0) {
            while ((rc = shm__compat_peek(&sh->r, &c, &got, &n)) == -EAGAIN)
                sched_yield();
        } else {
            while ((rc = shm__compat_read(&sh->r, &c, buf, sizeof buf, &n)) == -EAGAIN)
                sched_yield();
        }
        if (rc || n != len_of(seq) || ct_msg_verify(got, n, SEED, seq, len_of(seq))) {
            fprintf(stderr, "consumer: message %lu: rc %d len %u\n", (unsigned long)seq, rc, n);
            sh->fails++;
            break;
        }
        if (seq % 3 == 0)
            shm__compat_release(&sh->r, &c);
    }
    sh->torn_c = c.rereads;
    shm__compat_consumer_fini(&c);
    return NULL;
}

/* The peer's producer, Python style: room from its own arithmetic, head stored byte-wise. */
static void *bytewise_producer(void *arg)
{
    struct shared *sh = arg;
    uint32_t *head = sh->r.head, *tail = sh->r.tail, h = shm__load_relaxed(head);
    uint8_t buf[CAP];
    for (uint64_t seq = 0; seq < sh->count; seq++) {
        uint32_t len = len_of(seq);
        ct_msg_fill(buf, SEED, seq, len);
        while (4 + len > CAP - (h - shm__load_acquire(tail)))
            sched_yield();
        uint8_t rec[CAP + 4] = {(uint8_t)len, (uint8_t)(len >> 8), 0, 0};
        memcpy(rec + 4, buf, len);
        for (uint32_t i = 0; i < 4 + len; i++)
            sh->r.data[(h + i) & (CAP - 1)] = rec[i];
        h += 4 + len;
        store_bytewise(head, h, seq);
    }
    return NULL;
}

/* The peer's consumer, Python style: tail stored byte-wise; checks every message. */
static void *bytewise_consumer(void *arg)
{
    struct shared *sh = arg;
    uint32_t *head = sh->r.head, *tail = sh->r.tail, t = shm__load_relaxed(tail);
    uint8_t buf[CAP];
    for (uint64_t seq = 0; seq < sh->count; seq++) {
        while (shm__load_acquire(head) - t < 4)
            sched_yield();
        uint32_t n = 0;
        for (int i = 0; i < 4; i++)
            n |= (uint32_t)sh->r.data[(t + i) & (CAP - 1)] << (8 * i);
        for (uint32_t i = 0; i < n && i < CAP; i++)
            buf[i] = sh->r.data[(t + 4 + i) & (CAP - 1)];
        if (n != len_of(seq) || ct_msg_verify(buf, n, SEED, seq, n)) {
            fprintf(stderr, "peer consumer: message %lu corrupt (len %u)\n", (unsigned long)seq,
                    n);
            sh->fails++;
            return NULL;
        }
        t += 4 + n;
        store_bytewise(tail, t, seq);
    }
    return NULL;
}

static void run(void *(*prod)(void *), void *(*cons)(void *), uint64_t count)
{
    struct shared sh = {.count = count};
    sh.mem = malloc(CAP + 16);
    cr_assert(sh.mem);
    cr_assert_eq(shm__compat_format(sh.mem, CAP + 16, START), 0);
    cr_assert_eq(shm__compat_bind(&sh.r, sh.mem, CAP + 16), 0);
    pthread_t a, b;
    cr_assert_eq(pthread_create(&a, NULL, prod, &sh), 0);
    cr_assert_eq(pthread_create(&b, NULL, cons, &sh), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    cr_assert_eq(sh.fails, 0);
    uint32_t head = shm__load_relaxed(sh.r.head);
    cr_assert(head < START, "the indices wrapped past 2^32");
    cr_assert_eq(head, shm__load_relaxed(sh.r.tail));
    printf("compat_threads: %lu messages, %lu torn loads refused\n", (unsigned long)count,
           (unsigned long)(sh.torn_p + sh.torn_c));
    free(sh.mem);
}

Test(compat_threads, ours_to_ours)
{
    run(our_producer, our_consumer, ct_scaled(100000, 20000));
}

Test(compat_threads, bytewise_peer_producer_to_our_consumer)
{
    run(bytewise_producer, our_consumer, ct_scaled(100000, 20000));
}

Test(compat_threads, our_producer_to_bytewise_peer_consumer)
{
    run(our_producer, bytewise_consumer, ct_scaled(100000, 20000));
}
