/* Our compat side, through the public API (shm_channel_open with SHM_CHANNEL_COMPAT, the
 * stream calls, their polling waits), against models of seed 002's peers
 * (tests/compat/peer_model.cpp and peer_model.py) running as real processes, in both
 * directions: random sizes, every message checked byte for byte, ring sizes 1 KiB to 64 KiB,
 * a run across 2^32 bytes of traffic, and the peer's own C++ consumer corrupting a Python
 * producer's stream that ours reads intact. The segments are /dev/shm/<name>, where the
 * peer's shm_open looks: the test points SHM_CHANNEL_DIR there. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ct.h"

/* Longest time without progress before a side is declared stuck (a failure, never a
 * state we wait for). */
#define STUCK_NS (120 * CT_SEC)
/* The handles' spin before they sleep between polls (the library's default is 20 us): the
 * peer models poll with sched_yield and never sleep, and a small ring fills in microseconds. */
#define SPIN_NS 50000u

/* The test stream, identical in peer_model.cpp and peer_model.py: mostly 1..64 bytes, one
 * in 64 up to maxlen; the payload is an 8-byte key of (seed, seq) repeated. */
static uint64_t mix(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t msg_len(uint64_t seed, uint64_t seq, uint32_t maxlen)
{
    uint64_t r = mix(seed * 1000003ull + seq);
    uint32_t small = maxlen < 64 ? maxlen : 64;
    return 1 + (uint32_t)((r >> 8) % ((r & 63) == 0 ? maxlen : small));
}

static void msg_fill(uint8_t *b, uint64_t seed, uint64_t seq, uint32_t len)
{
    uint64_t k = mix((seed * 1000003ull + seq) ^ 0xABCDEFull);
    for (uint32_t i = 0; i < len; i++)
        b[i] = (uint8_t)(k >> (8 * (i & 7)));
}

struct seg {
    char name[64];
    shm_channel_t *ch;
};

static void seg_name(struct seg *s, const char *tag)
{
    snprintf(s->name, sizeof s->name, "ctc-%ld-%s-%lu", (long)getpid(), tag,
             (unsigned long)(ct_now_ns() % 1000000007u));
}

static void at_dev_shm(void)
{
    setenv("SHM_CHANNEL_DIR", "/dev/shm", 1); /* where the peer's shm_open looks */
}

TestSuite(compat_proc, .init = at_dev_shm);

static int peer_exited(pid_t pid, int *status);

/* Our producer creates the segment as the peer's does (capacity + 16 bytes, head = tail =
 * 0, capacity last), mode 0600. A start other than 0 is set as a creator may (the layout
 * allows any start): create, close, store head = tail = start, open again. */
static void seg_create(struct seg *s, uint32_t cap, uint32_t start)
{
    int rc = shm_channel_open(&s->ch, s->name, SHM_CHANNEL_PRODUCER,
                              SHM_CHANNEL_COMPAT | SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, cap, 0);
    cr_assert_eq(rc, 0, "create %s: %s", s->name, shm_channel_strerror(rc));
    shm_channel_set_spin(s->ch, SPIN_NS);
    if (!start)
        return;
    shm_channel_close(s->ch);
    char path[128];
    snprintf(path, sizeof path, "/%s", s->name);
    int fd = shm_open(path, O_RDWR, 0);
    cr_assert_geq(fd, 0);
    uint32_t *h = mmap(NULL, 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    cr_assert_neq(h, MAP_FAILED);
    h[0] = h[1] = start;
    munmap(h, 16);
    rc = shm_channel_open(&s->ch, s->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_COMPAT, cap, 0);
    cr_assert_eq(rc, 0, "reopen %s: %s", s->name, shm_channel_strerror(rc));
    shm_channel_set_spin(s->ch, SPIN_NS);
}

/* Our consumer opens the peer producer's segment once the producer made it (it unlinks,
 * creates, sizes, then writes capacity): -ENOENT, or -ETIMEDOUT after the open's 1 s wait,
 * until then. The C++ peer creates mode 0666 minus umask: we accept up to 0666. */
static void seg_open(struct seg *s, pid_t peer)
{
    uint64_t t0 = ct_now_ns();
    for (;;) {
        int rc = shm_channel_open(&s->ch, s->name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_COMPAT, 0,
                                  0666);
        if (rc == 0) {
            shm_channel_set_spin(s->ch, SPIN_NS);
            return;
        }
        cr_assert(rc == -ENOENT || rc == -ETIMEDOUT, "open: %s", shm_channel_strerror(rc));
        int status;
        cr_assert(!peer_exited(peer, &status), "the peer producer exited (%d) first", status);
        cr_assert_lt(ct_now_ns() - t0, STUCK_NS, "the peer never created %s", s->name);
        ct_sleep_ms(1);
    }
}

static uint32_t last_head; /* head of the segment last closed */

static void seg_close(struct seg *s)
{
    shm_channel_compat_stat_t cs;
    cr_assert_eq(shm_channel_compat_stat(s->ch, &cs), 0);
    last_head = cs.head;
    shm_channel_close(s->ch);
    s->ch = NULL;
    /* A Python peer's resource tracker may have unlinked it already. */
    int rc = shm_channel_unlink(s->name, SHM_CHANNEL_COMPAT | SHM_CHANNEL_FORCE);
    cr_assert(rc == 0 || rc == -ENOENT, "unlink: %s", shm_channel_strerror(rc));
}

/* Start a peer model; it dies with us. */
static pid_t spawn(char *const argv[])
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(120);
        /* The Python model's resource tracker warns about the segments it unlinks (the
         * peer's behaviour, spec/compat.md section 1); not worth the noise in the logs. */
        setenv("PYTHONWARNINGS", "ignore", 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* 1 (and its status) if the peer has exited; reaps it. */
static int peer_exited(pid_t pid, int *status)
{
    int st;
    if (waitpid(pid, &st, WNOHANG) != pid)
        return 0;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 1;
}

static int peer_wait(pid_t pid)
{
    return ct_wait(pid);
}

/* A blocking call's wait slice: the library polls (spin, then sleeps up to 2 ms) for up to
 * this long; between slices the test checks that the peer is alive and that something
 * moved within STUCK_NS. */
#define SLICE_NS (200 * CT_MS)

struct waiter {
    uint64_t last_progress;
    pid_t peer;
};

/* After a call returned rc: 1 to try again (timed out while the peer lives), 0 on success;
 * anything else fails the test. */
static int again(struct waiter *w, int rc, const char *what, uint64_t seq)
{
    if (rc == 0) {
        w->last_progress = ct_now_ns();
        return 0;
    }
    cr_assert_eq(rc, -ETIMEDOUT, "%s of message %lu: %s", what, (unsigned long)seq,
                 shm_channel_strerror(rc));
    int status;
    cr_assert(!peer_exited(w->peer, &status), "the peer exited (%d) while we waited", status);
    cr_assert_lt(ct_now_ns() - w->last_progress, STUCK_NS, "no progress");
    return 1;
}

/* Our producer: count messages, in turn write(), reserve()/commit() and write_batch(). */
static uint64_t our_produce(struct seg *s, pid_t peer, uint64_t count, uint64_t seed,
                            uint32_t maxlen)
{
    struct waiter w = {.peer = peer, .last_progress = ct_now_ns()};
    uint8_t *buf = malloc(maxlen);
    for (uint64_t seq = 0; seq < count; seq++) {
        uint32_t len = msg_len(seed, seq, maxlen);
        if (seq % 3 == 0) {
            void *ptr;
            while (again(&w, shm_channel_reserve(s->ch, len, &ptr, SLICE_NS), "reserve", seq))
                ;
            msg_fill(ptr, seed, seq, len);
            cr_assert_eq(shm_channel_commit(s->ch, len), 0);
        } else if (seq % 3 == 1) {
            msg_fill(buf, seed, seq, len);
            while (again(&w, shm_channel_write(s->ch, buf, len, SLICE_NS), "write", seq))
                ;
        } else {
            msg_fill(buf, seed, seq, len);
            uint64_t l = len;
            int rc;
            while ((rc = shm_channel_write_batch(s->ch, buf, &l, 1, SLICE_NS)) != 1 &&
                   again(&w, rc, "write_batch", seq))
                ;
        }
    }
    free(buf);
    shm_channel_compat_stat_t cs;
    cr_assert_eq(shm_channel_compat_stat(s->ch, &cs), 0);
    cr_assert_eq(cs.msgs, count);
    return cs.torn_loads;
}

/* Our consumer: messages first..first+count-1, in turn read(), peek()/release() and
 * read_batch(); every byte checked. */
static void our_consume_from(struct seg *s, pid_t peer, uint64_t first, uint64_t count,
                             uint64_t seed, uint32_t maxlen)
{
    uint8_t *buf = malloc(maxlen), *want = malloc(maxlen);
    struct waiter w = {.peer = peer, .last_progress = ct_now_ns()};
    for (uint64_t seq = first; seq < first + count; seq++) {
        uint32_t wlen = msg_len(seed, seq, maxlen);
        uint64_t n = 0;
        msg_fill(want, seed, seq, wlen);
        const uint8_t *got = buf;
        if (seq % 3 == 0) {
            while (again(&w, shm_channel_read(s->ch, buf, maxlen, &n, SLICE_NS), "read", seq))
                ;
        } else if (seq % 3 == 1) {
            const void *ptr;
            while (again(&w, shm_channel_peek(s->ch, &ptr, &n, SLICE_NS), "peek", seq))
                ;
            got = ptr;
        } else {
            int rc;
            while ((rc = shm_channel_read_batch(s->ch, buf, maxlen, &n, 1, SLICE_NS)) != 1 &&
                   again(&w, rc, "read_batch", seq))
                ;
        }
        cr_assert_eq(n, wlen, "message %lu: length %lu, want %u", (unsigned long)seq,
                     (unsigned long)n, wlen);
        cr_assert(memcmp(got, want, n) == 0, "message %lu corrupt", (unsigned long)seq);
        if (seq % 3 == 1)
            cr_assert_eq(shm_channel_release(s->ch), 0);
    }
    free(buf);
    free(want);
}

static uint64_t torn_loads(struct seg *s)
{
    shm_channel_compat_stat_t cs;
    cr_assert_eq(shm_channel_compat_stat(s->ch, &cs), 0);
    return cs.torn_loads;
}

/* Our consumer: count messages. Returns the number of peer index loads rejected as torn. */
static uint64_t our_consume(struct seg *s, pid_t peer, uint64_t count, uint64_t seed,
                            uint32_t maxlen)
{
    our_consume_from(s, peer, 0, count, seed, maxlen);
    return torn_loads(s);
}

static char num[8][32];
static char *u64s(int slot, uint64_t v)
{
    snprintf(num[slot], sizeof num[slot], "%llu", (unsigned long long)v);
    return num[slot];
}

/* A peer producer (C++ or Python) to our consumer. start: the C++ model's first index. */
static uint64_t peer_to_us(int python, uint32_t cap, uint64_t count, uint64_t seed,
                           uint32_t start, const char *tag)
{
    struct seg s;
    seg_name(&s, tag);
    uint32_t maxlen = cap - 4;
    char *cpp[] = {CT_PEER_CPP, "produce", s.name, u64s(0, cap + 16), u64s(1, count),
                   u64s(2, seed), u64s(3, maxlen), u64s(4, start), NULL};
    char *py[] = {CT_PYTHON, CT_PEER_PY, "produce", s.name, u64s(0, cap + 16), u64s(1, count),
                  u64s(2, seed), u64s(3, maxlen), NULL};
    pid_t pid = spawn(python ? py : cpp);
    seg_open(&s, pid);
    cr_assert_eq(shm_channel_capacity(s.ch), cap);
    uint64_t rereads = our_consume(&s, pid, count, seed, maxlen);
    cr_assert_eq(peer_wait(pid), 0, "the peer producer failed");
    seg_close(&s);
    return rereads;
}

/* Our producer to a peer consumer, which checks every message and exits 0. */
static uint64_t us_to_peer(int python, uint32_t cap, uint64_t count, uint64_t seed,
                           uint32_t start, const char *tag)
{
    struct seg s;
    seg_name(&s, tag);
    seg_create(&s, cap, start);
    uint32_t maxlen = cap - 4;
    char *cpp[] = {CT_PEER_CPP, "consume", s.name, u64s(0, count), u64s(1, seed),
                   u64s(2, maxlen), NULL};
    char *py[] = {CT_PYTHON, CT_PEER_PY, "consume", s.name, u64s(0, count), u64s(1, seed),
                  u64s(2, maxlen), NULL};
    pid_t pid = spawn(python ? py : cpp);
    uint64_t rereads = our_produce(&s, pid, count, seed, maxlen);
    cr_assert_eq(peer_wait(pid), 0, "the peer consumer reported a bad stream");
    seg_close(&s);
    return rereads;
}

static const uint32_t caps[] = {1024, 4096, 16384, 65536};

Test(compat_proc, cpp_producer_to_our_consumer)
{
    uint64_t n = ct_scaled(2500000, 20000); /* per ring size: 10^7 in the plain build */
    for (int i = 0; i < 4; i++)
        peer_to_us(0, caps[i], n, 100 + i, 0, "cpp2us");
}

Test(compat_proc, our_producer_to_cpp_consumer)
{
    uint64_t n = ct_scaled(2500000, 20000);
    for (int i = 0; i < 4; i++)
        us_to_peer(0, caps[i], n, 200 + i, 0, "us2cpp");
}

Test(compat_proc, python_producer_to_our_consumer)
{
    uint64_t n = ct_scaled(250000, 5000); /* per ring size; the model is slow */
    uint64_t torn = 0;
    for (int i = 0; i < 4; i++)
        torn += peer_to_us(1, caps[i], n, 300 + i, 0, "py2us");
    cr_log_info("python producer: %lu torn heads re-read", (unsigned long)torn);
}

Test(compat_proc, our_producer_to_python_consumer)
{
    uint64_t n = ct_scaled(250000, 5000);
    uint64_t torn = 0;
    for (int i = 0; i < 4; i++)
        torn += us_to_peer(1, caps[i], n, 400 + i, 0, "us2py");
    cr_log_info("python consumer: %lu torn tails re-read", (unsigned long)torn);
}

Test(compat_proc, traffic_across_2_pow_32_bytes)
{
    /* Indices start 1 MiB below 2^32 (the peer's u32 arithmetic allows any start); the
     * runs move several MiB, so head and tail wrap past 2^32 in both directions. */
    uint32_t start = 0xFFFFFFFFu - (1u << 20) + 1;
    uint64_t n = ct_scaled(200000, 100000);
    peer_to_us(0, 4096, n, 500, start, "wrap-cpp2us");
    cr_assert_lt(last_head, start, "head wrapped past 2^32 (%#x)", last_head);
    us_to_peer(0, 65536, n, 501, start, "wrap-us2cpp");
    cr_assert_lt(last_head, start, "head wrapped past 2^32 (%#x)", last_head);
}

Test(compat_proc, python_producer_corrupts_the_peer_cpp_consumer_not_ours)
{
    /* The peer's own pair: its Python producer stores head byte by byte; its C++ consumer
     * reads a torn head behind its tail as a huge amount of data and delivers garbage (exit
     * 3), or stalls on a garbage 0-length record (exit 4). */
    struct seg s;
    seg_name(&s, "demo-peer");
    char *py[] = {CT_PYTHON, CT_PEER_PY, "produce", s.name, u64s(0, 1024 + 16), "0",
                  u64s(2, 600), u64s(3, 1020), NULL};
    setenv("PEER_MODEL_TORN", "yield", 1); /* sure tears: peer_model.py's docstring */
    pid_t prod = spawn(py);
    seg_open(&s, prod);
    char *cpp[] = {CT_PEER_CPP, "consume", s.name, "1000000000", u64s(0, 600), u64s(1, 1020),
                   NULL};
    pid_t cons = spawn(cpp);
    uint64_t t0 = ct_now_ns();
    int status = -1;
    while (!peer_exited(cons, &status)) {
        int ps;
        cr_assert(!peer_exited(prod, &ps), "the Python producer exited (%d)", ps);
        cr_assert_lt(ct_now_ns() - t0, 240 * CT_SEC,
                     "the peer's C++ consumer read a byte-by-byte producer intact for 240 s");
        ct_sleep_ms(10);
    }
    kill(prod, SIGKILL);
    peer_wait(prod);
    seg_close(&s);
    cr_assert(status == 3 || status == 4, "peer C++ consumer exit %d (3: corrupt, 4: stall)",
              status);
    cr_log_info("the peer's C++ consumer failed after %.1f s (exit %d)",
                (double)(ct_now_ns() - t0) / 1e9, status);
    /* Ours, on the same kind of stream (endless): every message intact, read until it has
     * refused torn heads at least a few times (at most 20 rounds). */
    seg_name(&s, "demo-ours");
    py[3] = s.name;
    u64s(0, 1024 + 16);
    u64s(2, 601);
    prod = spawn(py);
    seg_open(&s, prod);
    uint64_t n = ct_scaled(200000, 20000), seq = 0;
    for (int round = 0; round < 20 && (round == 0 || torn_loads(&s) < 10); round++) {
        our_consume_from(&s, prod, seq, n, 601, 1020);
        seq += n;
    }
    uint64_t torn = torn_loads(&s);
    kill(prod, SIGKILL);
    peer_wait(prod);
    unsetenv("PEER_MODEL_TORN");
    seg_close(&s);
    cr_log_info("our consumer: %lu messages intact, %lu torn heads refused", (unsigned long)seq,
                (unsigned long)torn);
    cr_assert_geq(torn, 10, "the run exercised torn heads");
}
