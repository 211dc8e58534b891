/* SIGKILL chaos: a producer and a consumer process, killed alternately at random moments and
 * restarted, pass numbered, checksummed messages of random sizes (0 bytes to max_payload)
 * through one channel. The producer mixes write, write_batch and reserve/commit (sometimes
 * committing less than it reserved, sometimes aborting); the consumer mixes read, read_batch
 * (sometimes with a buffer too small for the next message) and peek/release.
 *
 * What is checked, exactly:
 * - Committed means "the call returned success". The producer keeps a ledger in memory
 *   shared with the test (it survives the kill): `logged` = every number up to it is
 *   committed, and before a call `attempt_hi` = the highest number the call may commit. A
 *   producer killed inside a call (or between its return and the ledger update) may or may
 *   not have committed (logged, attempt_hi]: the test marks those numbers "maybe" and the
 *   next producer continues after them. Every other number up to the final `logged` must be
 *   delivered: 0 lost.
 * - The consumer checks every message's number and checksum and that numbers strictly
 *   increase, except for one redelivery (spec §5.5): the message a dead consumer had peeked
 *   and not released. Before a peek's release it records the number as "peeked"; a new
 *   consumer may get exactly that number once more, as its first message (and so may the
 *   consumer after it, if that one died with read_pos unmoved). Any other repeat or
 *   reordering fails.
 * - read and read_batch release before they return, so a consumer killed in one of them (or
 *   before it recorded the result) may have released messages nobody recorded. The consumer
 *   records the segment's read_pos (shm_channel_stat) after each call; after a kill the test
 *   reads read_pos again. Only if it moved since the last record may the next consumer skip
 *   messages, and at most as many as the interrupted call could release (1 for read, the
 *   batch size for read_batch). Such skips are counted as "released unrecorded"; any other
 *   gap of committed numbers is a loss.
 * - No call blocks past its timeout: each call gets a timeout of 0 to 20 ms and must return
 *   within it plus a generous allowance for load (5 s), which only a hang exceeds.
 * - At the end the producer closes (end-of-stream); the consumer drains, gets -EPIPE, and
 *   checks that nothing committed after its last message is missing.
 * Messages shorter than 8 bytes cannot hold their number: they occur only at numbers that are
 * multiples of 128 (lengths 0..7), and are identified as the next such number, checked by
 * length and content.
 *
 * Environment: SHM_CHANNEL_CHAOS_KILLS (default 200), SHM_CHANNEL_CHAOS_SEED (default: time). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ct.h"

TestSuite(attack, .init = ct_setup, .fini = ct_teardown, .timeout = 1800);

#define CAP 65536u
#define MAXP (CAP / 2 - 8) /* max_payload for CAP */
#define SEED 0xc4a05ull
#define MAX_BATCH 8u
#define MAXSEQ (1ull << 27)
#define HANG_NS (5 * CT_SEC)

struct ledger {
    char name[64];
    uint64_t rng_seed;
    /* producer: written by the producer, fixed up by the test between incarnations */
    uint64_t logged;     /* every number <= logged is committed (or marked maybe) */
    uint64_t attempt_hi; /* numbers in (logged, attempt_hi] may be being committed */
    uint64_t stop;       /* test: finish and close */
    /* consumer */
    uint64_t last;       /* highest number delivered and recorded */
    uint64_t inflight;   /* messages the current call may release before it is recorded */
    uint64_t rpos;       /* read_pos after the last recorded call */
    uint64_t peeked;     /* 1 while a recorded message is peeked and not yet released */
    uint64_t peeked_seq;
    uint64_t dup_seq;    /* test: the number a new consumer may get again (0: none) */
    uint64_t allow;      /* test: messages after `allow_at` that dead consumers released */
    uint64_t allow_at;
    uint64_t done;       /* consumer: drained to end-of-stream and verified */
    /* counts */
    uint64_t messages, duplicates, maybe_marked, maybe_skipped, unrecorded;
    uint64_t calls, max_over_ns, p_starts, c_starts;
    uint64_t failed;
    uint64_t last_call;      /* diagnostics: 1 read, 2 read_batch, 3 peek (of `last`) */
    uint64_t start_rpos;     /* diagnostics: read_pos when this consumer attached */
    uint64_t prev_rpos, prev_call, seen_rpos;
    char error[512];
    uint8_t maybe[MAXSEQ / 8];
};

static struct ledger *L;

static void fail(const char *fmt, ...)
{
    if (__atomic_exchange_n(&L->failed, 1, __ATOMIC_SEQ_CST) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->error, sizeof L->error, fmt, ap);
        va_end(ap);
    }
    _exit(3);
}

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void st(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static int is_maybe(uint64_t seq)
{
    return (__atomic_load_n(&L->maybe[seq / 8], __ATOMIC_SEQ_CST) >> (seq % 8)) & 1;
}

/* Lengths: 0..7 at multiples of 128 (no room for the number), else 8..MAXP. */
static uint64_t msg_len(uint64_t seq)
{
    if (seq % 128 == 0)
        return ct_mix(seq ^ SEED) % 8;
    return 8 + ct_msg_len(SEED, seq, MAXP - 8);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state = ct_mix(rng_state);
    return rng_state;
}

static int64_t pick_timeout(void)
{
    static const int64_t t[] = {0, CT_MS / 2, 2 * CT_MS, 20 * CT_MS};
    return t[rnd() % 4];
}

/* Every call: elapsed <= timeout + HANG_NS. */
static void timed(uint64_t t0, int64_t timeout, const char *what)
{
    uint64_t el = ct_now_ns() - t0;
    uint64_t over = el > (uint64_t)timeout ? el - (uint64_t)timeout : 0;
    if (over > ld(&L->max_over_ns))
        st(&L->max_over_ns, over);
    if (over > (uint64_t)HANG_NS)
        fail("%s blocked %" PRIu64 " ms past its %" PRId64 " ms timeout", what, over / 1000000,
             timeout / CT_MS);
    __atomic_add_fetch(&L->calls, 1, __ATOMIC_RELAXED);
}

/* ---- producer --------------------------------------------------------------------- */

static uint8_t pbuf[MAX_BATCH * MAXP + 64];

static int producer(void *arg)
{
    (void)arg;
    rng_state = ld(&L->rng_seed) ^ ((uint64_t)getpid() << 32) ^ 0x9e37;
    __atomic_add_fetch(&L->p_starts, 1, __ATOMIC_RELAXED);
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, L->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, CAP, 0);
    if (rc)
        fail("producer open: %s", shm_channel_strerror(rc));
    while (!ld(&L->stop)) {
        uint64_t base = ld(&L->logged);
        if (base + MAX_BATCH >= MAXSEQ) {
            ct_sleep_ms(1);
            continue;
        }
        int64_t to = pick_timeout();
        unsigned kind = (unsigned)(rnd() % 3);
        uint64_t t0;
        if (kind == 0) {
            uint64_t seq = base + 1, len = msg_len(seq);
            ct_msg_fill(pbuf, SEED, seq, len);
            st(&L->attempt_hi, seq);
            t0 = ct_now_ns();
            rc = shm_channel_write(ch, pbuf, len, to);
            timed(t0, to, "write");
            if (rc == 0)
                rc = 1;
        } else if (kind == 1) {
            uint64_t lens[MAX_BATCH];
            uint32_t k = 1 + (uint32_t)(rnd() % MAX_BATCH);
            uint64_t off = 0;
            for (uint32_t i = 0; i < k; i++) {
                lens[i] = msg_len(base + 1 + i);
                ct_msg_fill(pbuf + off, SEED, base + 1 + i, lens[i]);
                off += lens[i];
            }
            st(&L->attempt_hi, base + k);
            t0 = ct_now_ns();
            rc = shm_channel_write_batch(ch, pbuf, lens, k, to);
            timed(t0, to, "write_batch");
            if (rc > (int)k)
                fail("write_batch of %u returned %d", k, rc);
        } else {
            uint64_t seq = base + 1, len = msg_len(seq);
            uint64_t extra = rnd() % 4 == 0 ? rnd() % (MAXP - len + 1) : 0;
            void *p;
            if (rnd() % 8 == 0) { /* a reservation dropped: commits nothing */
                t0 = ct_now_ns();
                rc = shm_channel_reserve(ch, len + extra, &p, to);
                timed(t0, to, "reserve");
                if (rc == 0) {
                    memset(p, 0xee, len + extra);
                    if ((rc = shm_channel_abort(ch)) != 0)
                        fail("abort: %s", shm_channel_strerror(rc));
                }
            }
            st(&L->attempt_hi, seq);
            t0 = ct_now_ns();
            rc = shm_channel_reserve(ch, len + extra, &p, to);
            timed(t0, to, "reserve");
            if (rc == 0) {
                ct_msg_fill(p, SEED, seq, len);
                if ((rc = shm_channel_commit(ch, len)) != 0)
                    fail("commit: %s", shm_channel_strerror(rc));
                rc = 1;
            }
        }
        if (rc > 0) {
            st(&L->logged, base + (uint64_t)rc);
            st(&L->attempt_hi, base + (uint64_t)rc);
            continue;
        }
        st(&L->attempt_hi, base);
        if (rc == -EOWNERDEAD)
            ct_sleep_ms(1); /* ring full, consumer dead: the test restarts one */
        else if (rc != -EAGAIN && rc != -ETIMEDOUT)
            fail("producer call: %s", shm_channel_strerror(rc));
    }
    shm_channel_close(ch); /* end-of-stream */
    return 0;
}

/* ---- consumer --------------------------------------------------------------------- */

static uint8_t cbuf[MAX_BATCH * MAXP + 64];
static int dup_used;
static const char *call_name = "";
static uint64_t life_msgs;

/* Which number a message is: its first 8 bytes, or, for a message too short to hold it, the
 * redelivered number or the next multiple of 128. Checks length and checksum/content. */
static uint64_t identify(const uint8_t *p, uint64_t len)
{
    uint64_t last = ld(&L->last), seq;
    if (len >= 8)
        seq = ct_msg_seq(p);
    else if (!dup_used && ld(&L->dup_seq) == last && last % 128 == 0 && msg_len(last) == len &&
             ct_msg_verify(p, len, SEED, last, len) == 0)
        seq = last;
    else
        seq = (last / 128 + 1) * 128;
    if (seq == 0 || seq >= MAXSEQ || ct_msg_verify(p, len, SEED, seq, msg_len(seq)) != 0)
        fail("message after %" PRIu64 " (length %" PRIu64 ", number field %" PRIu64
             ") is corrupt or unexpected",
             last, len, len >= 8 ? ct_msg_seq(p) : 0);
    return seq;
}

/* A delivered message: numbers strictly increase, but for one allowed redelivery; a gap may
 * only hold "maybe" numbers and what a dead consumer released unrecorded. */
static void deliver(uint64_t seq)
{
    uint64_t last = ld(&L->last);
    if (seq == last && !dup_used && ld(&L->dup_seq) == seq) {
        dup_used = 1;
        __atomic_add_fetch(&L->duplicates, 1, __ATOMIC_RELAXED);
        return;
    }
    if (seq == last && life_msgs == 0)
        fail("message %" PRIu64 " again as the first of consumer %" PRIu64 " (call %s): it "
             "attached at read_pos %" PRIu64 "; its predecessor recorded read_pos %" PRIu64
             " after its last call (%" PRIu64 ") and the test saw %" PRIu64 " after the kill",
             seq, ld(&L->c_starts), call_name, ld(&L->start_rpos), ld(&L->prev_rpos),
             ld(&L->prev_call), ld(&L->seen_rpos));
    if (seq <= last)
        fail("message %" PRIu64 " delivered after %" PRIu64 " (not an allowed redelivery; "
             "redelivery allowed for %" PRIu64 ", %s; consumer %" PRIu64 ", call %s, %" PRIu64
             " messages into its life)", seq, last, ld(&L->dup_seq), dup_used ? "used" : "unused",
             ld(&L->c_starts), call_name, life_msgs);
    life_msgs++;
    if (seq - last > 100000)
        fail("message %" PRIu64 " delivered after %" PRIu64 ": huge gap", seq, last);
    uint64_t unexcused = 0, maybes = 0;
    for (uint64_t m = last + 1; m < seq; m++) {
        if (is_maybe(m))
            maybes++;
        else
            unexcused++;
    }
    uint64_t allow = ld(&L->allow_at) == last ? ld(&L->allow) : 0;
    if (unexcused > allow)
        fail("LOST: %" PRIu64 " committed message(s) between %" PRIu64 " and %" PRIu64
             " never delivered (dead consumers released at most %" PRIu64 ")",
             unexcused, last, seq, allow);
    __atomic_add_fetch(&L->maybe_skipped, maybes, __ATOMIC_RELAXED);
    __atomic_add_fetch(&L->unrecorded, unexcused, __ATOMIC_RELAXED);
    st(&L->last, seq);
    __atomic_add_fetch(&L->messages, 1, __ATOMIC_RELAXED);
}

static void record_rpos(shm_channel_t *ch)
{
    shm_channel_stat_t s;
    int rc = shm_channel_stat(ch, &s);
    if (rc)
        fail("consumer stat: %s", shm_channel_strerror(rc));
    st(&L->rpos, s.read_pos);
    st(&L->inflight, 0);
}

/* End-of-stream: everything committed after the last message must be accounted for. */
static void verify_end(void)
{
    uint64_t last = ld(&L->last), logged = ld(&L->logged), unexcused = 0;
    for (uint64_t m = last + 1; m <= logged; m++)
        unexcused += !is_maybe(m);
    uint64_t allow = ld(&L->allow_at) == last ? ld(&L->allow) : 0;
    if (unexcused > allow)
        fail("LOST at end: %" PRIu64 " committed message(s) after %" PRIu64 " (last committed %"
             PRIu64 ")", unexcused, last, logged);
    __atomic_add_fetch(&L->unrecorded, unexcused, __ATOMIC_RELAXED);
    st(&L->done, 1);
}

static int consumer(void *arg)
{
    (void)arg;
    rng_state = ld(&L->rng_seed) ^ ((uint64_t)getpid() << 32) ^ 0xc0;
    __atomic_add_fetch(&L->c_starts, 1, __ATOMIC_RELAXED);
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, L->name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, CAP, 0);
    if (rc)
        fail("consumer open: %s", shm_channel_strerror(rc));
    record_rpos(ch);
    st(&L->start_rpos, ld(&L->rpos));
    for (;;) {
        int64_t to = pick_timeout();
        unsigned kind = (unsigned)(rnd() % 3);
        uint64_t cap = rnd() % 16 == 0 ? 256 : rnd() % 2 ? MAXP : sizeof cbuf;
        uint64_t t0, len = 0;
        if (kind == 0) {
            st(&L->inflight, 1);
            call_name = "read";
            t0 = ct_now_ns();
            rc = shm_channel_read(ch, cbuf, cap, &len, to);
            timed(t0, to, "read");
            if (rc == 0) {
                deliver(identify(cbuf, len));
                st(&L->last_call, 1);
            }
        } else if (kind == 1) {
            uint64_t lens[MAX_BATCH];
            uint32_t k = 1 + (uint32_t)(rnd() % MAX_BATCH);
            st(&L->inflight, k);
            call_name = "read_batch";
            t0 = ct_now_ns();
            rc = shm_channel_read_batch(ch, cbuf, cap, lens, k, to);
            timed(t0, to, "read_batch");
            if (rc > (int)k)
                fail("read_batch of %u returned %d", k, rc);
            uint64_t off = 0;
            for (int i = 0; i < rc; i++) {
                if (lens[i] > cap - off)
                    fail("read_batch: sizes exceed the buffer");
                deliver(identify(cbuf + off, lens[i]));
                st(&L->last_call, 2);
                off += lens[i];
            }
            if (rc > 0)
                rc = 0;
        } else {
            const void *p;
            call_name = "peek";
            t0 = ct_now_ns();
            rc = shm_channel_peek(ch, &p, &len, to);
            timed(t0, to, "peek");
            if (rc == 0) {
                memcpy(cbuf, p, len);
                uint64_t seq = identify(cbuf, len);
                st(&L->peeked_seq, seq);
                st(&L->peeked, 1);
                deliver(seq);
                st(&L->last_call, 3);
                if (rnd() % 4 == 0) { /* the peeked message is still there, unchanged */
                    const void *p2;
                    uint64_t len2;
                    rc = shm_channel_peek(ch, &p2, &len2, 0);
                    if (rc || p2 != p || len2 != len)
                        fail("second peek: %s", shm_channel_strerror(rc));
                }
                if (rnd() % 8 == 0) /* work on the message in place for a while */
                    ct_sleep_ms((unsigned)(rnd() % 3));
                if ((rc = shm_channel_release(ch)) != 0)
                    fail("release: %s", shm_channel_strerror(rc));
                st(&L->peeked, 0);
            }
        }
        if (rc == 0) {
            record_rpos(ch);
            continue;
        }
        st(&L->inflight, 0);
        if (rc == -EPIPE) {
            verify_end();
            shm_channel_close(ch);
            return 0;
        }
        if (rc == -EOWNERDEAD)
            ct_sleep_ms(1); /* drained, producer dead: the test restarts one */
        else if (rc != -EAGAIN && rc != -ETIMEDOUT && rc != -EMSGSIZE)
            fail("consumer call: %s", shm_channel_strerror(rc));
    }
}

/* ---- the test --------------------------------------------------------------------- */

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 10) : def;
}

/* After a kill: 0 if it died of SIGKILL; a child that exited on its own failed. */
static void reap(pid_t pid, const char *who)
{
    int status = ct_wait(pid);
    cr_assert(status == 128 + SIGKILL || status == 0, "%s exited with %d: %s", who, status,
              L->failed ? L->error : "(no message)");
}

static uint64_t read_pos_now(void)
{
    shm_channel_t *ob;
    int rc = shm_channel_open(&ob, L->name, SHM_CHANNEL_OBSERVER, 0, 0, 0);
    cr_assert_eq(rc, 0, "observer open: %s", shm_channel_strerror(rc));
    shm_channel_stat_t s;
    cr_assert_eq(shm_channel_stat(ob, &s), 0);
    shm_channel_close(ob);
    return s.read_pos;
}

Test(attack, chaos_sigkill)
{
    uint64_t kills = env_u64("SHM_CHANNEL_CHAOS_KILLS", 200);
    uint64_t seed = env_u64("SHM_CHANNEL_CHAOS_SEED", ct_now_ns());
    L = mmap(NULL, sizeof *L, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(L != MAP_FAILED);
    ct_name(L->name, "chaos");
    L->rng_seed = seed;
    rng_state = seed;
    fprintf(stderr, "chaos: %" PRIu64 " kills, seed %" PRIu64 " (SHM_CHANNEL_CHAOS_SEED)\n",
            kills, seed);
    uint64_t t_start = ct_now_ns();

    pid_t prod = ct_fork(producer, NULL);
    pid_t cons = ct_fork(consumer, NULL);
    uint64_t pk = 0, ck = 0, dup_rpos = UINT64_MAX;
    for (uint64_t k = 0; k < kills && !ld(&L->failed); k++) {
        /* Mostly short lives (kills land in open, in calls, between them), now and then a
         * long one (the ring fills and drains, wraps, and the peer finds the victim dead). */
        unsigned ms = (unsigned)(rnd() % 16 == 0 ? 20 + rnd() % 80 : rnd() % 12);
        ct_sleep_ms(ms);
        if (k % 2 == 0) {
            kill(prod, SIGKILL);
            reap(prod, "producer");
            uint64_t logged = ld(&L->logged), hi = ld(&L->attempt_hi);
            for (uint64_t m = logged + 1; m <= hi; m++) {
                L->maybe[m / 8] |= (uint8_t)(1u << (m % 8));
                L->maybe_marked++;
            }
            if (hi > logged)
                st(&L->logged, hi);
            st(&L->attempt_hi, ld(&L->logged));
            prod = ct_fork(producer, NULL);
            pk++;
        } else {
            kill(cons, SIGKILL);
            reap(cons, "consumer");
            uint64_t last = ld(&L->last);
            if (ld(&L->allow_at) != last) {
                st(&L->allow, 0);
                st(&L->allow_at, last);
            }
            st(&L->prev_rpos, ld(&L->rpos));
            st(&L->prev_call, ld(&L->last_call));
            st(&L->seen_rpos, read_pos_now());
            if (ld(&L->inflight) && ld(&L->seen_rpos) != ld(&L->rpos))
                st(&L->allow, ld(&L->allow) + ld(&L->inflight));
            st(&L->inflight, 0);
            /* The redelivery permission: the message it had peeked (recorded, maybe not
             * released); or, if it got nothing past read_pos, the one it inherited. */
            if (ld(&L->peeked)) {
                st(&L->dup_seq, ld(&L->peeked_seq));
                dup_rpos = ld(&L->seen_rpos);
            } else if (ld(&L->seen_rpos) != dup_rpos) {
                st(&L->dup_seq, 0);
            }
            st(&L->peeked, 0);
            cons = ct_fork(consumer, NULL);
            ck++;
        }
    }
    st(&L->stop, 1);
    int ps = ct_wait(prod);
    int cs = ct_wait(cons);
    double secs = (double)(ct_now_ns() - t_start) / 1e9;
    if (L->failed)
        fprintf(stderr, "chaos: FAILED: %s\n", L->error);
    fprintf(stderr,
            "chaos: %" PRIu64 " kills (%" PRIu64 " producer, %" PRIu64 " consumer), %" PRIu64
            " messages delivered (last %" PRIu64 "), %" PRIu64 " duplicates (allowed "
            "redeliveries), %" PRIu64 " maybe-committed numbers (%" PRIu64 " never delivered), %"
            PRIu64 " released unrecorded by dead consumers, %s lost; %" PRIu64
            " calls, worst overshoot past timeout %.1f ms; %.1f s\n",
            pk + ck, pk, ck, L->messages, L->last, L->duplicates, L->maybe_marked,
            L->maybe_skipped, L->unrecorded, L->failed ? "?" : "0", L->calls, (double)L->max_over_ns / 1e6, secs);
    cr_assert(!L->failed, "%s", L->error);
    cr_assert_eq(ps, 0, "producer exited with %d", ps);
    cr_assert_eq(cs, 0, "consumer exited with %d", cs);
    cr_assert(L->done, "the consumer never reached end-of-stream");
    cr_assert_gt(L->messages, kills, "too few messages delivered to mean anything");
    munmap(L, sizeof *L);
}
