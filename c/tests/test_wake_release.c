/* The consumer's release step of the wake handshake (spec/README.md §5.5 step 5, §5.10): a
 * consumer stores read_pos, then (fence) loads producer_waiting, mirroring the producer's
 * sleep (store producer_waiting, fence, load read_pos), so that a producer asleep on a full
 * ring is never missed by the release that frees it.
 *
 * Without the consumer's fence (scripts/mutations/ring.c.txt: release_fence_removed) x86
 * lets the load of producer_waiting pass the read_pos store, which waits in the store buffer
 * until its cache line arrives: a store-load reordering, tens of nanoseconds, which a delay
 * cannot widen (time drains the buffer) and earlier tests never met. Two things make it
 * meet here:
 *  - the consumer's store buffer is full of slow stores when it releases: just before the
 *    call it writes one word in each of STUFF cache lines that are in no cache (a 64 MiB
 *    buffer, a new line each time), as a consumer copying a message out to cold memory
 *    would; x86 commits stores in order, so its read_pos store waits behind them for about
 *    a microsecond, while the load after it runs at once;
 *  - the producer (a fence side: it issues no membarrier, which would drain the consumer's
 *    buffer) starts its write, on a ring the release is about to free, when the consumer
 *    signals it is about to release, so its sleep step (flag, fence, re-check of read_pos)
 *    falls inside that microsecond.
 * Each round: the ring (1 KiB) holds two 504-byte messages; the consumer releases the older
 * one, and then waits (on the test's control page, not on the ring) until the producer has
 * written the next: a missed wake-up leaves the producer asleep for good (liveness slice one
 * hour) on a ring with room. The test's own process watches for that state (producer flagged
 * waiting, room for a message, no position moving for STALL_NS): no correct run holds it for
 * long. With the fence the consumer's load waits for its store, and the producer is woken.
 * Measured on a 2-core AMD EPYC (Zen 3) KVM guest: without the fence, the producer's first
 * or second sleep is a lost wake-up (40 slow stores; 8: after ~365 rounds; none: the producer
 * never even sleeps, its re-check always sees the release); with it, ~20% of rounds sleep
 * and none is lost (100,000 rounds). SHM_CHANNEL_STRESS=1: a million rounds. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomics.h"
#include "ct.h"
#include "hooks.h"
#include "layout.h"

TestSuite(wake_release, .init = ct_setup, .fini = ct_teardown, .timeout = 300);

#define CAP 1024u
#define LEN 504u /* CAP / 2 - 8: two records fill the ring */
#define STALL_NS (5 * CT_SEC)
#ifndef STUFF
#define STUFF 40 /* slow stores ahead of the release: fewer than a store queue holds */
#endif
#define COLD_BYTES (64u << 20)

struct ctl {
    uint64_t go;    /* round the consumer is releasing in */
    uint64_t acked; /* rounds whose next message the producer has written */
    uint64_t stop;
    int rc_p, rc_c;
    uint64_t bad;
};
static struct ctl *ctl;
static char name[64];
static uint64_t rounds;

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void st(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void spin(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        shm__cpu_relax();
}

static int write_msg(shm_channel_t *ch, uint64_t i)
{
    uint64_t buf[LEN / 8];
    for (unsigned k = 0; k < LEN / 8; k++)
        buf[k] = i * 1000 + k;
    return shm_channel_write(ch, buf, LEN, -1);
}

static int producer_main(void *arg)
{
    (void)arg;
    shm__hook_handshake_fence_only = 1; /* no membarrier before sleeping */
    shm__hook_liveness_slice_ns = 3600ull * CT_SEC;
    ct_pin(0);
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open(&ch, name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, CAP, 0);
    if (rc == 0)
        shm_channel_set_spin(ch, 0); /* a full ring: to the sleep step at once */
    for (uint64_t i = 0; rc == 0 && i < 2; i++)
        rc = write_msg(ch, i);
    for (uint64_t i = 1; rc == 0 && i <= rounds && !ld(&ctl->stop); i++) {
        while (ld(&ctl->go) < i && !ld(&ctl->stop))
            shm__cpu_relax();
        spin(ct_mix(i) % 64); /* a little later or sooner into the consumer's window */
        if ((rc = write_msg(ch, i + 1)) == 0)
            st(&ctl->acked, i);
    }
    ctl->rc_p = rc;
    while (!ld(&ctl->stop))
        ct_sleep_ms(1);
    shm_channel_close(ch);
    return rc ? 1 : 0;
}

static int consumer_main(void *arg)
{
    (void)arg;
    shm__hook_handshake_fence_only = 1;
    shm__hook_liveness_slice_ns = 3600ull * CT_SEC;
    ct_pin(1);
    uint8_t *cold = mmap(NULL, COLD_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
    if (cold == MAP_FAILED)
        return 2;
    memset(cold, 1, COLD_BYTES); /* no page faults in the window */
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open(&ch, name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, CAP, 0);
    uint64_t line = 0;
    for (uint64_t i = 1; rc == 0 && i <= rounds && !ld(&ctl->stop); i++) {
        const void *p;
        uint64_t len;
        /* The ring holds messages i - 1 and i (the producer wrote i before acking i - 1). */
        while (ld(&ctl->acked) < i - 1 && !ld(&ctl->stop))
            shm__cpu_relax();
        if ((rc = shm_channel_peek(ch, &p, &len, -1)) != 0)
            break;
        if (len != LEN || ((const uint64_t *)p)[1] != (i - 1) * 1000 + 1) {
            st(&ctl->bad, i);
            break;
        }
        st(&ctl->go, i);
        /* STUFF stores to lines in no cache: the release's store queues behind them. A
         * prime stride over the buffer, so each line comes back only after 1 M others. */
        for (unsigned k = 0; k < STUFF; k++) {
            line = (line + 7919) % (COLD_BYTES / 64);
            __atomic_store_n((uint64_t *)(void *)(cold + line * 64), i, __ATOMIC_RELAXED);
        }
        if ((rc = shm_channel_release(ch)) != 0)
            break;
        while (ld(&ctl->acked) < i && !ld(&ctl->stop))
            shm__cpu_relax();
    }
    ctl->rc_c = rc;
    while (!ld(&ctl->stop))
        ct_sleep_ms(1);
    shm_channel_close(ch);
    return rc ? 1 : 0;
}

/* The header, once either child has created the segment. */
static struct shm__header *map_header(void)
{
    int fd = -1;
    for (uint64_t t0 = ct_now_ns(); fd < 0; ct_sleep_ms(1)) {
        fd = open(ct_path(name), O_RDWR | O_CLOEXEC);
        cr_assert(fd >= 0 || ct_now_ns() - t0 < 60 * CT_SEC, "segment never appeared");
    }
    struct stat sb;
    for (;; ct_sleep_ms(1)) {
        cr_assert_eq(fstat(fd, &sb), 0);
        if ((uint64_t)sb.st_size >= SHM_CHANNEL_HEADER_SIZE + CAP)
            break;
    }
    struct shm__header *h =
        mmap(NULL, SHM_CHANNEL_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert(h != MAP_FAILED);
    close(fd);
    return h;
}

Test(wake_release, producer_woken_by_the_release_that_frees_its_room)
{
    const char *s = getenv("SHM_CHANNEL_STRESS");
    rounds = s && *s && strcmp(s, "0") != 0 ? 1000000 : ct_scaled(3000, 300);
    ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(ctl != MAP_FAILED);
    memset(ctl, 0, sizeof *ctl);
    ct_name(name, "wrel");
    pid_t pp = ct_fork(producer_main, NULL), pc = ct_fork(consumer_main, NULL);
    struct shm__header *h = map_header();
    uint64_t lost = 0, last = ~0ull, since = 0;
    while (ld(&ctl->acked) < rounds && !ld(&ctl->stop) && !ctl->rc_p && !ctl->rc_c &&
           !ld(&ctl->bad)) {
        uint64_t w = shm__load_acquire(&h->write_pos), r = shm__load_acquire(&h->read_pos);
        int stuck = shm__load_acquire(&h->producer_waiting) && w - r <= CAP - 512;
        if (stuck && w * 3 + r == last) {
            uint64_t now = ct_now_ns();
            if (!since) {
                since = now;
            } else if (now - since > STALL_NS) {
                lost++;
                fprintf(stderr, "lost wake-up: producer asleep, ring has room (w=%llu r=%llu)\n",
                        (unsigned long long)w, (unsigned long long)r);
                st(&ctl->stop, 1);
                syscall(SYS_futex, &h->read_seq, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
            }
        } else {
            since = 0;
        }
        last = w * 3 + r;
        ct_sleep_ms(5);
    }
    uint64_t sleeps = shm__load_relaxed(&h->producer_sleeps);
    uint64_t done = ld(&ctl->acked);
    st(&ctl->stop, 1);
    int sp = ct_wait(pp), sc = ct_wait(pc);
    munmap(h, SHM_CHANNEL_HEADER_SIZE);
    fprintf(stderr, "release wake: %llu of %llu rounds, %llu producer sleeps, lost %llu\n",
            (unsigned long long)done, (unsigned long long)rounds, (unsigned long long)sleeps,
            (unsigned long long)lost);
    cr_assert_eq(lost, 0, "a release did not wake the producer it freed room for");
    cr_assert_eq(ld(&ctl->bad), 0, "round %llu: wrong message", (unsigned long long)ctl->bad);
    cr_assert(sp == 0 && sc == 0, "producer %d (%d), consumer %d (%d)", sp, ctl->rc_p, sc,
              ctl->rc_c);
    cr_assert_eq(done, rounds);
    cr_assert(sleeps > 0, "the producer never slept");
}
