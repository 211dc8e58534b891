/* A hostile writer: while a producer and a consumer process (this build: ASan + UBSan) use a
 * channel, a third process maps the segment file and scribbles random values on it: identity
 * fields, positions, states, futex words and flags, record headers at and after read_pos,
 * and payload bytes. The segment is shared memory any process of the user can write; the
 * library must treat it as untrusted.
 *
 * Checked: no sanitizer report, no crash (every process exits 0); no call blocks past its
 * timeout (plus 5 s for load; a watchdog alarm catches a hang outright); every call returns
 * one of the codes the public header lists for it, corruption being -EBADMSG, after which
 * the process closes its handle and opens a new one. The attack must have landed: some
 * -EBADMSG reports, and messages still flowed between the scribbles.
 * Now and then the writer heals the segment (restores the identity fields, puts read_pos
 * back at write_pos), as an operator re-creating a channel would, so the peers get going
 * again; it holds a shared attach lock so the segment is never removed under it.
 * Payload bytes are not protected by the format (no checksum in the spec), so corrupt
 * payloads are counted, not failed.
 *
 * Environment: SHM_CHANNEL_HOSTILE_SECONDS (default 20). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ct.h"

TestSuite(attack, .init = ct_setup, .fini = ct_teardown, .timeout = 1800);

#define CAP 16384u
#define MAXP (CAP / 2 - 8)
#define SEED 0x4057ull
#define HDR SHM_CHANNEL_HEADER_SIZE
#define HANG_NS (5 * CT_SEC)
#define MAX_BATCH 8u

struct shared {
    char name[64];
    uint64_t deadline_ns;
    uint64_t rng_seed;
    uint64_t scribbles, heals;
    uint64_t prod_badmsg, cons_badmsg, open_badmsg, open_other, peer_gone;
    uint64_t written, delivered, corrupt_payloads;
    uint64_t calls, max_over_ns;
    uint64_t failed;
    char error[512];
};

static struct shared *S;
static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state = ct_mix(rng_state);
    return rng_state;
}

static void fail(const char *fmt, ...)
{
    if (__atomic_exchange_n(&S->failed, 1, __ATOMIC_SEQ_CST) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(S->error, sizeof S->error, fmt, ap);
        va_end(ap);
    }
    _exit(3);
}

static void add(uint64_t *c, uint64_t n)
{
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

static int running(void)
{
    return ct_now_ns() < S->deadline_ns && !__atomic_load_n(&S->failed, __ATOMIC_RELAXED);
}

static int64_t pick_timeout(void)
{
    static const int64_t t[] = {0, CT_MS / 2, 2 * CT_MS, 10 * CT_MS};
    return t[rnd() % 4];
}

static void timed(uint64_t t0, int64_t timeout, const char *what)
{
    uint64_t el = ct_now_ns() - t0;
    uint64_t over = el > (uint64_t)timeout ? el - (uint64_t)timeout : 0;
    if (over > __atomic_load_n(&S->max_over_ns, __ATOMIC_RELAXED))
        __atomic_store_n(&S->max_over_ns, over, __ATOMIC_RELAXED);
    if (over > (uint64_t)HANG_NS)
        fail("%s blocked %" PRIu64 " ms past its timeout", what, over / 1000000);
    add(&S->calls, 1);
}

/* Open a role, retrying while the segment is unusable. Every failure must be one the header
 * lists for a damaged segment. NULL once the run is over. */
static shm_channel_t *open_role(uint32_t role)
{
    while (running()) {
        shm_channel_t *ch;
        int rc = shm_channel_open(&ch, S->name, role, 0, 0, 0);
        if (rc == 0)
            return ch;
        if (rc == -EBADMSG)
            add(&S->open_badmsg, 1);
        else if (rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -EPROTOTYPE ||
                 rc == -ETIMEDOUT)
            add(&S->open_other, 1);
        else
            fail("open (role %u): %s", role, shm_channel_strerror(rc));
        ct_sleep_ms(1);
    }
    return NULL;
}

/* After a call: 1 to carry on, 0 to reopen. */
static int after(int rc, uint64_t *badmsg, int consumer)
{
    if (rc >= 0 || rc == -EAGAIN || rc == -ETIMEDOUT || (consumer && rc == -EMSGSIZE))
        return 1;
    if (rc == -EBADMSG) {
        add(badmsg, 1);
        return 0;
    }
    if (rc == -EPIPE || rc == -EOWNERDEAD) {
        /* a scribbled peer state, or the peer is between two handles */
        add(&S->peer_gone, 1);
        ct_sleep_ms(1);
        return rnd() % 4 != 0;
    }
    fail("%s call: %s", consumer ? "consumer" : "producer", shm_channel_strerror(rc));
    return 0;
}

static uint8_t buf[MAX_BATCH * MAXP + 64];

static int producer(void *arg)
{
    (void)arg;
    rng_state = S->rng_seed ^ 0x1111;
    alarm((unsigned)((S->deadline_ns - ct_now_ns()) / CT_SEC) + 120);
    uint64_t seq = 1;
    shm_channel_t *ch = NULL;
    while (running()) {
        if (!ch && !(ch = open_role(SHM_CHANNEL_PRODUCER)))
            break;
        int64_t to = pick_timeout();
        uint64_t t0 = ct_now_ns();
        int rc;
        unsigned kind = (unsigned)(rnd() % 3);
        if (kind == 0) {
            uint64_t len = ct_msg_len(SEED, seq, MAXP);
            ct_msg_fill(buf, SEED, seq, len);
            rc = shm_channel_write(ch, buf, len, to);
            rc = rc == 0 ? 1 : rc;
        } else if (kind == 1) {
            uint64_t lens[MAX_BATCH], off = 0;
            uint32_t k = 1 + (uint32_t)(rnd() % MAX_BATCH);
            for (uint32_t i = 0; i < k; i++) {
                lens[i] = ct_msg_len(SEED, seq + i, MAXP);
                ct_msg_fill(buf + off, SEED, seq + i, lens[i]);
                off += lens[i];
            }
            rc = shm_channel_write_batch(ch, buf, lens, k, to);
            if (rc > (int)k)
                fail("write_batch of %u returned %d", k, rc);
        } else {
            uint64_t len = ct_msg_len(SEED, seq, MAXP);
            void *p;
            rc = shm_channel_reserve(ch, len, &p, to);
            if (rc == 0) {
                ct_msg_fill(p, SEED, seq, len);
                if ((rc = shm_channel_commit(ch, len)) != 0)
                    fail("commit: %s", shm_channel_strerror(rc));
                rc = 1;
            }
        }
        timed(t0, to, "producer call");
        if (rc > 0) {
            seq += (uint64_t)rc;
            add(&S->written, (uint64_t)rc);
        }
        if (!after(rc, &S->prod_badmsg, 0)) {
            shm_channel_close(ch);
            ch = NULL;
        }
    }
    shm_channel_close(ch);
    return 0;
}

static void check_payload(const uint8_t *p, uint64_t len)
{
    add(&S->delivered, 1);
    if (len < 8 || ct_msg_check(p, len, SEED, ct_msg_seq(p), MAXP) != 0)
        add(&S->corrupt_payloads, len >= 8);
}

static int consumer(void *arg)
{
    (void)arg;
    rng_state = S->rng_seed ^ 0x2222;
    alarm((unsigned)((S->deadline_ns - ct_now_ns()) / CT_SEC) + 120);
    shm_channel_t *ch = NULL;
    while (running()) {
        if (!ch && !(ch = open_role(SHM_CHANNEL_CONSUMER)))
            break;
        int64_t to = pick_timeout();
        uint64_t cap = rnd() % 16 == 0 ? 64 : sizeof buf, len = 0;
        uint64_t t0 = ct_now_ns();
        int rc;
        unsigned kind = (unsigned)(rnd() % 3);
        if (kind == 0) {
            rc = shm_channel_read(ch, buf, cap, &len, to);
            if (rc == 0) {
                if (len > cap || len > MAXP)
                    fail("read: length %" PRIu64 " beyond the buffer or max_payload", len);
                check_payload(buf, len);
            }
        } else if (kind == 1) {
            uint64_t lens[MAX_BATCH], off = 0;
            uint32_t k = 1 + (uint32_t)(rnd() % MAX_BATCH);
            rc = shm_channel_read_batch(ch, buf, cap, lens, k, to);
            if (rc > (int)k)
                fail("read_batch of %u returned %d", k, rc);
            for (int i = 0; i < rc; i++) {
                if (lens[i] > cap - off || lens[i] > MAXP)
                    fail("read_batch: sizes beyond the buffer or max_payload");
                check_payload(buf + off, lens[i]);
                off += lens[i];
            }
        } else {
            const void *p;
            rc = shm_channel_peek(ch, &p, &len, to);
            if (rc == 0) {
                if (len > MAXP || ((uintptr_t)p & 7))
                    fail("peek: length %" PRIu64 " or alignment", len);
                memcpy(buf, p, len); /* the whole payload lies in the mapping */
                check_payload(buf, len);
                if ((rc = shm_channel_release(ch)) != 0)
                    fail("release: %s", shm_channel_strerror(rc));
            }
        }
        timed(t0, to, "consumer call");
        if (rnd() % 64 == 0) {
            shm_channel_stat_t st;
            if (shm_channel_stat(ch, &st) != 0)
                fail("stat failed");
        }
        if (!after(rc, &S->cons_badmsg, 1)) {
            shm_channel_close(ch);
            ch = NULL;
        }
    }
    shm_channel_close(ch);
    return 0;
}

/* Header fields: offset and width (spec §3). */
static const struct {
    uint16_t off, width;
} fields[] = {
    {0, 8},   {8, 2},   {10, 2},  {12, 2},  {16, 4},  {24, 8},  {32, 8},  {40, 8},
    {128, 8}, {136, 4}, {140, 4}, {144, 4}, {152, 8}, {256, 8}, {264, 4}, {268, 4},
    {272, 4}, {280, 8}, {384, 4}, {512, 4},
};

static uint64_t interesting(uint64_t cur)
{
    switch (rnd() % 8) {
    case 0: return rnd();
    case 1: return rnd() % 4;
    case 2: return cur + 8 * (rnd() % 16) - 64;
    case 3: return cur ^ (1ull << (rnd() % 64));
    case 4: return cur + CAP;
    case 5: return cur - CAP - 8;
    case 6: return cur + 1 + rnd() % 7;
    default: return 0;
    }
}

static void put(uint8_t *at, uint64_t v, unsigned width)
{
    switch (width) {
    case 2: __atomic_store_n((uint16_t *)(void *)at, (uint16_t)v, __ATOMIC_RELAXED); break;
    case 4: __atomic_store_n((uint32_t *)(void *)at, (uint32_t)v, __ATOMIC_RELAXED); break;
    default: __atomic_store_n((uint64_t *)(void *)at, v, __ATOMIC_RELAXED); break;
    }
}

static uint64_t get(const uint8_t *at, unsigned width)
{
    switch (width) {
    case 2: return __atomic_load_n((const uint16_t *)(const void *)at, __ATOMIC_RELAXED);
    case 4: return __atomic_load_n((const uint32_t *)(const void *)at, __ATOMIC_RELAXED);
    default: return __atomic_load_n((const uint64_t *)(const void *)at, __ATOMIC_RELAXED);
    }
}

static int scribbler(void *arg)
{
    (void)arg;
    rng_state = S->rng_seed ^ 0x3333;
    alarm((unsigned)((S->deadline_ns - ct_now_ns()) / CT_SEC) + 120);
    int fd = open(ct_path(S->name), O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fail("scribbler open: %s", strerror(errno));
    /* A shared attach lock (spec §3.7): the segment is in use, nobody removes it. */
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 2, .l_len = 1};
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0)
        fail("scribbler lock: %s", strerror(errno));
    size_t size = HDR + CAP;
    uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        fail("scribbler mmap: %s", strerror(errno));
    uint8_t identity[64];
    memcpy(identity, m, sizeof identity);
    const size_t nf = sizeof fields / sizeof fields[0];
    uint64_t n = 0;
    while (running()) {
        unsigned what = (unsigned)(rnd() % 20);
        if (what < 7) {
            size_t i = rnd() % nf;
            uint8_t *at = m + fields[i].off;
            put(at, interesting(get(at, fields[i].width)), fields[i].width);
        } else if (what < 14) { /* a record header at or after read_pos */
            uint64_t pos = get(m + 256, 8) + (rnd() % 3 ? 0 : 8 * (rnd() % 32));
            unsigned l = (unsigned)(rnd() % 4);
            uint64_t len = l == 0   ? rnd() % 64
                           : l == 1 ? MAXP - 32 + rnd() % 64
                           : l == 2 ? rnd() % CAP
                                    : (uint32_t)rnd();
            uint64_t type = rnd() % 4 ? 1 + rnd() % 2 : rnd() % 8;
            put(m + HDR + (pos & (CAP - 1) & ~7ull), len | (type << 32), 8);
        } else { /* payload bytes */
            put(m + HDR + (rnd() % CAP & ~7ull), rnd(), 8);
        }
        add(&S->scribbles, 1);
        if (++n % 16 == 0) { /* heal: identity back, positions sane */
            for (size_t i = 0; i < sizeof identity; i += 8)
                put(m + i, get(identity + i, 8), 8);
            uint64_t w = get(m + 128, 8) & ~7ull;
            put(m + 128, w, 8);
            put(m + 256, w, 8);
            add(&S->heals, 1);
        }
        struct timespec ts = {0, (long)(rnd() % 2000) * 1000};
        nanosleep(&ts, NULL);
    }
    munmap(m, size);
    close(fd);
    return 0;
}

Test(attack, hostile_writer)
{
    const char *e = getenv("SHM_CHANNEL_HOSTILE_SECONDS");
    uint64_t secs = e && *e ? strtoull(e, NULL, 10) : 20;
    S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(S != MAP_FAILED);
    ct_name(S->name, "hostile");
    S->rng_seed = ct_now_ns();
    shm_channel_t *ch;
    cr_assert_eq(shm_channel_open(&ch, S->name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, CAP, 0),
                 0);
    shm_channel_close(ch);
    S->deadline_ns = ct_now_ns() + secs * (uint64_t)CT_SEC;
    fprintf(stderr, "hostile: %" PRIu64 " s, seed %" PRIu64 "\n", secs, S->rng_seed);

    pid_t w = ct_fork(scribbler, NULL);
    ct_sleep_ms(20); /* the scribbler holds its attach lock before the peers come and go */
    pid_t p = ct_fork(producer, NULL);
    pid_t c = ct_fork(consumer, NULL);
    int ps = ct_wait(p), cs = ct_wait(c), ws = ct_wait(w);
    fprintf(stderr,
            "hostile: %" PRIu64 " scribbles (%" PRIu64 " heals); -EBADMSG reported %" PRIu64
            " times (producer %" PRIu64 ", consumer %" PRIu64 ", open %" PRIu64 "), other "
            "open refusals %" PRIu64 ", peer-state errors %" PRIu64 "; %" PRIu64
            " messages written, %" PRIu64 " delivered (%" PRIu64 " with corrupt payload); %"
            PRIu64 " calls, worst overshoot past timeout %.1f ms\n",
            S->scribbles, S->heals, S->prod_badmsg + S->cons_badmsg + S->open_badmsg,
            S->prod_badmsg, S->cons_badmsg, S->open_badmsg, S->open_other, S->peer_gone,
            S->written, S->delivered, S->corrupt_payloads, S->calls,
            (double)S->max_over_ns / 1e6);
    cr_assert(!S->failed, "%s", S->error);
    cr_assert_eq(ps, 0, "producer exited with %d", ps);
    cr_assert_eq(cs, 0, "consumer exited with %d", cs);
    cr_assert_eq(ws, 0, "scribbler exited with %d", ws);
    cr_assert_gt(S->scribbles, 100);
    cr_assert_gt(S->prod_badmsg + S->cons_badmsg + S->open_badmsg, 0, "no corruption detected");
    cr_assert_gt(S->delivered, 100, "no messages flowed");
    munmap(S, sizeof *S);
}
