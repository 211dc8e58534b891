/* Baselines measured in the same run as shm_channel:
 *  - memcpy:      one process copying messages into a ring-sized buffer (large-message floor);
 *  - spsc_ring:   a minimal, well-made SPSC byte ring between two processes in POSIX shared
 *                 memory: copy in, copy out, free-running 64-bit positions on separate cache
 *                 lines, each side caching the other's position, busy-polling, no futex,
 *                 no counters, no validation (throughput and 64 B round-trip baseline);
 *  - spsc_fenced: the same ring plus the check shm_channel's wake protocol needs after every
 *                 publish and release (full fence, then load the peer's "waiting" flag; never
 *                 set here): what supporting sleeping peers costs a bare ring;
 *  - spsc_hdr:    round trip only, a prototype: the same ring with the receiver polling the
 *                 record header instead of the position (what a layout change would buy);
 *  - spsc_mlp*:   the same ring and layout, the receiver's empty poll also looking at the
 *                 line of the next record (a prefetch or a discarded load: a hint only), so
 *                 that the position and the record are fetched in parallel (session 6);
 *  - cacheline:   a bare cache-line ping-pong between two processes (round-trip floor). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* ---- memcpy floor ------------------------------------------------------------------ */

/* Copy `size` bytes per message from one source buffer into successive slots of a
 * destination of `nslots` slots. Two uses:
 *  - memcpy (the floor): two destination slots, used in turn, so that the working set
 *    (source + 2 x size: 18.7 MB for a 1080p frame) stays in the last-level cache whatever
 *    the ring size. A fixed floor: what one copy of the message costs at best.
 *  - memcpy_ring: as many slots as fill the ring's capacity, the working set of a
 *    producer's copy-in into a ring that size (grows with the ring; for reference only). */
static int memcpy_run(struct bench_run *run, int fixed)
{
    uint64_t size = run->size ? run->size : 1;
    uint64_t slot = (size + 63) & ~(uint64_t)63;
    uint64_t nslots = fixed ? 2 : run->capacity / slot;
    if (nslots == 0)
        nslots = 1;
    uint8_t *src = aligned_alloc(64, slot);
    uint8_t *dst = aligned_alloc(64, slot * nslots);
    if (!src || !dst) {
        free(src);
        free(dst);
        return bench_fail(run, "out of memory");
    }
    memset(src, 0x5a, slot);
    memset(dst, 0, slot * nslots);
    uint64_t k = 0;
    for (uint64_t i = 0; i < run->warmup; i++) {
        memcpy(dst + k * slot, src, size);
        k = k + 1 == nslots ? 0 : k + 1;
    }
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < run->count; i++) {
        bench_stamp(src, size, i);
        memcpy(dst + k * slot, src, size);
        __asm__ __volatile__("" ::: "memory"); /* keep every copy */
        k = k + 1 == nslots ? 0 : k + 1;
    }
    run->local_ns = (double)(bench_now_ns() - t0);
    free(src);
    free(dst);
    return 0;
}

static int memcpy_local(struct bench_run *run)
{
    return memcpy_run(run, 1);
}

static int memcpy_ring_local(struct bench_run *run)
{
    return memcpy_run(run, 0);
}

const struct bench_transport bench_memcpy = {
    .id = "memcpy", .label = "memcpy (floor, L3-resident)", .group = "baseline",
    .kind = BENCH_LOCAL, .local = memcpy_local,
};

const struct bench_transport bench_memcpy_ring = {
    .id = "memcpy_ring", .label = "memcpy (ring-sized dst)", .group = "baseline",
    .kind = BENCH_LOCAL, .local = memcpy_ring_local,
};

/* ---- minimal SPSC ring ------------------------------------------------------------- */

struct spsc_hdr {
    _Alignas(64) uint64_t write_pos;        /* written by the producer only */
    _Alignas(64) uint64_t read_pos;         /* written by the consumer only */
    _Alignas(64) uint32_t consumer_waiting; /* spsc_fenced only; never set */
    _Alignas(64) uint32_t producer_waiting;
};

struct spsc {
    struct spsc_hdr *h;
    uint8_t *data;
    uint64_t cap, mask;
    uint64_t pos;  /* own position */
    uint64_t peer; /* cached peer position */
    uint64_t wakes; /* spsc_fenced: times the peer's flag was found set (0) */
};

#define SPSC_DATA_OFF 4096u /* as shm_channel: ring data starts one page in */

/* Map the ring(s) of this run: run->shared_len bytes of fresh POSIX shared memory. */
static int spsc_map(struct bench_run *run, const char *suffix)
{
    char name[96];
    strcpy(name, run->name);
    strcat(name, suffix);
    return bench_shm_map(name, run->shared_len, &run->shared);
}

static int spsc_setup(struct bench_run *run)
{
    run->shared_len = SPSC_DATA_OFF + run->capacity;
    return spsc_map(run, "-spsc");
}

static void spsc_teardown(struct bench_run *run)
{
    if (run->shared)
        munmap(run->shared, run->shared_len);
    run->shared = NULL;
}

static void spsc_bind(struct spsc *q, void *base, uint64_t cap)
{
    q->h = base;
    q->data = (uint8_t *)base + SPSC_DATA_OFF;
    q->cap = cap;
    q->mask = cap - 1;
    q->pos = 0;
    q->peer = 0;
    q->wakes = 0;
}

#define SPSC_PREFETCH_AHEAD 512u
#define SPSC_PREFETCH_MAX 256u

static inline void spsc_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline uint64_t rec_size(uint64_t len)
{
    return 8 + ((len + 7) & ~(uint64_t)7);
}

/* What a waiting side does besides polling the peer's position (spsc_mlp* variants): the
 * receiver, on each look while empty, also prefetches (LOOK_PREFETCH) or loads and discards
 * (LOOK_LOAD) the first word of the record at its position, so that when the producer
 * publishes, that line and the position's line are fetched in parallel. What is trusted is
 * still decided by the acquire load of write_pos; the record is read again after it. The
 * producer (LOOK_PRODUCER) prefetches the line of its next record for writing right after
 * publishing. */
enum { LOOK_PREFETCH = 1, LOOK_LOAD = 2, LOOK_PRODUCER = 4, LOOK_PREFETCH2 = 8 };
#ifndef SPSC_MLP_LOOK
#define SPSC_MLP_LOOK LOOK_PREFETCH2 /* spsc_mlp's throughput case: as the library */
#endif

static inline __attribute__((always_inline)) void spsc_look(const void *rec, int look)
{
    if (look & (LOOK_PREFETCH | LOOK_PREFETCH2))
        __builtin_prefetch(rec, 0, 3);
    if (look & LOOK_LOAD) {
        uint64_t v = __atomic_load_n((const uint64_t *)rec, __ATOMIC_RELAXED);
        __asm__ __volatile__("" ::"r"(v)); /* discarded: only the line matters */
    }
}

/* Producer: one record [u64 length][payload, padded to 8], the payload split at the wrap.
 * Busy-polls while full. */
static inline __attribute__((always_inline)) void spsc_send_look(struct spsc *q, const void *msg,
                                                                  uint64_t len, int fenced,
                                                                  int look)
{
    uint64_t need = rec_size(len);
    if (q->pos + need - q->peer > q->cap) {
        /* Full as far as we know: look at the consumer's line, and while still full back off
         * with a pause between looks, so that the consumer's stores are not slowed down. */
        while ((q->peer = LOAD_ACQ(&q->h->read_pos)) + q->cap < q->pos + need)
            spsc_relax();
    }
    uint64_t off = q->pos & q->mask;
    memcpy(q->data + off, &len, 8);
    off = (off + 8) & q->mask;
    uint64_t first = q->cap - off < len ? q->cap - off : len;
    memcpy(q->data + off, msg, first);
    if (first < len)
        memcpy(q->data, (const uint8_t *)msg + first, len - first);
    q->pos += need;
    STORE_REL(&q->h->write_pos, q->pos); /* release: the record is written */
    /* Prefetch for writing a few lines ahead (only space the cached consumer position says
     * is free), as shm_channel's reserve does for small records: the stores of the next
     * records then seldom wait for a line the consumer read last. */
    if (need <= SPSC_PREFETCH_MAX && q->pos + SPSC_PREFETCH_AHEAD + 64 - q->peer <= q->cap)
        __builtin_prefetch(q->data + ((q->pos + SPSC_PREFETCH_AHEAD) & q->mask), 1, 3);
    if (look & LOOK_PRODUCER) /* the next record's line, for writing */
        __builtin_prefetch(q->data + (q->pos & q->mask), 1, 3);
    if (fenced) { /* store the position, full fence, load the peer's flag */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        q->wakes += __atomic_load_n(&q->h->consumer_waiting, __ATOMIC_RELAXED) != 0;
    }
}

static inline void spsc_send(struct spsc *q, const void *msg, uint64_t len, int fenced)
{
    spsc_send_look(q, msg, len, fenced, 0);
}

/* Consumer: copy the next record out. Busy-polls while empty. Returns its length. */
static inline __attribute__((always_inline)) uint64_t spsc_recv_look(struct spsc *q, void *buf,
                                                                     int fenced, int look)
{
    if (q->pos == q->peer) {
        /* Empty as far as we know: poll the producer's position with a pause between looks
         * (an unpaused poll keeps stealing the line the producer stores to). */
        const void *rec = q->data + (q->pos & q->mask);
        const void *rec2 = q->data + ((q->pos + 64) & q->mask);
        for (;;) {
            spsc_look(rec, look);
            if (look & LOOK_PREFETCH2) /* the record's second line (a 64 B message spans two) */
                __builtin_prefetch(rec2, 0, 3);
            if ((q->peer = LOAD_ACQ(&q->h->write_pos)) != q->pos)
                break;
            spsc_relax();
        }
    }
    uint64_t off = q->pos & q->mask;
    uint64_t len;
    memcpy(&len, q->data + off, 8);
    off = (off + 8) & q->mask;
    uint64_t first = q->cap - off < len ? q->cap - off : len;
    memcpy(buf, q->data + off, first);
    if (first < len)
        memcpy((uint8_t *)buf + first, q->data, len - first);
    q->pos += rec_size(len);
    STORE_REL(&q->h->read_pos, q->pos); /* release: done reading, the space is free */
    if (fenced) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        q->wakes += __atomic_load_n(&q->h->producer_waiting, __ATOMIC_RELAXED) != 0;
    }
    return len;
}

static inline uint64_t spsc_recv(struct spsc *q, void *buf, int fenced)
{
    return spsc_recv_look(q, buf, fenced, 0);
}

static inline __attribute__((always_inline)) int spsc_produce_impl(struct bench_run *run,
                                                                    int fenced, int look)
{
    struct spsc q;
    spsc_bind(&q, run->shared, run->capacity);
    uint8_t *src = aligned_alloc(64, run->size + 64);
    if (!src)
        return bench_fail(run, "out of memory");
    memset(src, 0x5a, run->size + 64);
    int rc = bench_tp_begin(run);
    uint64_t i = 0;
    for (; rc == 0 && i < run->warmup; i++) {
        bench_stamp(src, run->size, i);
        spsc_send_look(&q, src, run->size, fenced, look);
    }
    if (rc == 0)
        rc = bench_tp_start(run);
    for (uint64_t end = i + run->count; rc == 0 && i < end; i++) {
        bench_stamp(src, run->size, i);
        spsc_send_look(&q, src, run->size, fenced, look);
    }
    if (rc == 0)
        rc = bench_tp_end_producer(run);
    free(src);
    return rc;
}

static inline __attribute__((always_inline)) int spsc_consume_impl(struct bench_run *run,
                                                                    int fenced, int look)
{
    struct spsc q;
    spsc_bind(&q, run->shared, run->capacity);
    uint8_t *buf = aligned_alloc(64, run->size + 64);
    if (!buf)
        return bench_fail(run, "out of memory");
    int rc = bench_tp_begin(run);
    uint64_t i = 0, bad = 0;
    for (; rc == 0 && i < run->warmup; i++) {
        uint64_t n = spsc_recv_look(&q, buf, fenced, look);
        bad += n != run->size || !bench_check(buf, n, i);
    }
    bench_tp_warm(run);
    for (uint64_t end = i + run->count; rc == 0 && i < end; i++) {
        uint64_t n = spsc_recv_look(&q, buf, fenced, look);
        bad += n != run->size || !bench_check(buf, n, i);
    }
    bench_tp_end_consumer(run);
    free(buf);
    if (bad)
        return bench_fail(run, "spsc_ring: %llu bad messages", (unsigned long long)bad);
    return rc;
}

static int spsc_produce(struct bench_run *run)
{
    return spsc_produce_impl(run, 0, 0);
}
static int spsc_consume(struct bench_run *run)
{
    return spsc_consume_impl(run, 0, 0);
}
static int spsc_fenced_produce(struct bench_run *run)
{
    return spsc_produce_impl(run, 1, 0);
}
static int spsc_fenced_consume(struct bench_run *run)
{
    return spsc_consume_impl(run, 1, 0);
}
static int spsc_mlp_produce(struct bench_run *run)
{
    return spsc_produce_impl(run, 0, SPSC_MLP_LOOK);
}
static int spsc_mlp_consume(struct bench_run *run)
{
    return spsc_consume_impl(run, 0, SPSC_MLP_LOOK);
}

const struct bench_transport bench_spsc_ring = {
    .id = "spsc_ring", .label = "spsc_ring (baseline)", .group = "baseline",
    .kind = BENCH_THROUGHPUT, .setup = spsc_setup, .teardown = spsc_teardown,
    .produce = spsc_produce, .consume = spsc_consume,
};

/* spsc_mlp (throughput): the ring with the receiver's look at the next record (below). */
const struct bench_transport bench_spsc_mlp = {
    .id = "spsc_mlp", .label = "spsc_ring + 2-line look (proto)", .group = "baseline",
    .kind = BENCH_THROUGHPUT, .setup = spsc_setup, .teardown = spsc_teardown,
    .produce = spsc_mlp_produce, .consume = spsc_mlp_consume,
};

const struct bench_transport bench_spsc_fenced = {
    .id = "spsc_fenced", .label = "spsc_ring + wake fence", .group = "baseline",
    .kind = BENCH_THROUGHPUT, .setup = spsc_setup, .teardown = spsc_teardown,
    .produce = spsc_fenced_produce, .consume = spsc_fenced_consume,
};

/* One process, for instruction counts (bench/callgrind.sh): n messages of `size` bytes
 * written and read back in turn through one ring in private memory. Returns the number of
 * bad messages. noipa: callgrind counts inside this function, and `size` stays a variable
 * (as in the two-process loops: no copy specialised for 64 bytes). */
__attribute__((noipa)) uint64_t bench_spsc_inproc(uint64_t n, uint64_t size)
{
    uint64_t cap = 1u << 20, bad = 0;
    uint8_t *base = aligned_alloc(4096, SPSC_DATA_OFF + cap);
    uint8_t *msg = aligned_alloc(64, size + 64), *buf = aligned_alloc(64, size + 64);
    if (!base || !msg || !buf) {
        free(base);
        free(msg);
        free(buf);
        return n ? n : 1;
    }
    memset(base, 0, SPSC_DATA_OFF + cap);
    memset(msg, 0x5a, size + 64);
    struct spsc p, c;
    spsc_bind(&p, base, cap);
    spsc_bind(&c, base, cap);
    for (uint64_t i = 0; i < n; i++) {
        bench_stamp(msg, size, i);
        spsc_send(&p, msg, size, 0);
        uint64_t got = spsc_recv(&c, buf, 0);
        bad += got != size || !bench_check(buf, got, i);
    }
    free(base);
    free(msg);
    free(buf);
    return bad;
}

/* Round trip over two SPSC rings: ring 0 carries ping -> pong, ring 1 pong -> ping. */
static int spsc_rtt_setup(struct bench_run *run)
{
    run->shared_len = 2 * (SPSC_DATA_OFF + run->capacity);
    return spsc_map(run, "-spsc2");
}

/* One side of a round trip over two rings (ring 0 carries ping -> pong, ring 1 pong -> ping),
 * with the ring's records (hdr 0) or the header-polled prototype's below (hdr 1); always
 * called with a constant `hdr`, so each inlined copy keeps only its own calls. */
static inline __attribute__((always_inline)) int rtt_side(struct bench_run *run, int ping,
                                                          int hdr, int look);

static int spsc_ping(struct bench_run *run)
{
    return rtt_side(run, 1, 0, 0);
}

static int spsc_pong(struct bench_run *run)
{
    return rtt_side(run, 0, 0, 0);
}

const struct bench_transport bench_spsc_rtt = {
    .id = "spsc_ring", .label = "spsc_ring (baseline)", .group = "baseline",
    .kind = BENCH_ROUNDTRIP, .setup = spsc_rtt_setup, .teardown = spsc_teardown,
    .ping = spsc_ping, .pong = spsc_pong,
};

/* ---- prototype: the receiver polls the record header -------------------------------- */

/* What a layout that lets the consumer poll the record header itself would buy (report of
 * session 5, "Proposal"): the same ring and record format, but the producer stores each
 * header LAST, with release, after its payload and after zeroing the header slot that follows
 * the record (free space: room for the record and 8 more bytes is checked), so that the word at
 * the consumer's position is either 0 (nothing yet) or a complete record; the consumer polls
 * that word, in the record's own line, instead of write_pos in another line. write_pos is not
 * used at all here; read_pos is stored per message as in spsc_ring. Round trip only. */
static inline void hdr_send(struct spsc *q, const void *msg, uint64_t len)
{
    uint64_t need = rec_size(len);
    if (q->pos + need + 8 - q->peer > q->cap) {
        while ((q->peer = LOAD_ACQ(&q->h->read_pos)) + q->cap < q->pos + need + 8)
            spsc_relax();
    }
    uint64_t off = q->pos & q->mask;
    uint64_t poff = (off + 8) & q->mask;
    uint64_t first = q->cap - poff < len ? q->cap - poff : len;
    memcpy(q->data + poff, msg, first);
    if (first < len)
        memcpy(q->data, (const uint8_t *)msg + first, len - first);
    __atomic_store_n((uint64_t *)(void *)(q->data + ((q->pos + need) & q->mask)), 0,
                     __ATOMIC_RELAXED);
    /* Release: the payload and the zeroed next slot before the header. A zero-length
     * message would need a non-zero header word: the length is stored plus one. */
    __atomic_store_n((uint64_t *)(void *)(q->data + off), len + 1, __ATOMIC_RELEASE);
    q->pos += need;
}

static inline uint64_t hdr_recv(struct spsc *q, void *buf)
{
    uint64_t off = q->pos & q->mask;
    const uint64_t *hp = (const uint64_t *)(const void *)(q->data + off);
    uint64_t word;
    while ((word = __atomic_load_n(hp, __ATOMIC_ACQUIRE)) == 0)
        spsc_relax();
    uint64_t len = word - 1;
    uint64_t poff = (off + 8) & q->mask;
    uint64_t first = q->cap - poff < len ? q->cap - poff : len;
    memcpy(buf, q->data + poff, first);
    if (first < len)
        memcpy((uint8_t *)buf + first, q->data, len - first);
    q->pos += rec_size(len);
    STORE_REL(&q->h->read_pos, q->pos);
    return len;
}

static inline __attribute__((always_inline)) int rtt_side(struct bench_run *run, int ping,
                                                          int hdr, int look)
{
    struct spsc out, in;
    uint8_t *b0 = run->shared, *b1 = b0 + SPSC_DATA_OFF + run->capacity;
    spsc_bind(&out, ping ? b0 : b1, run->capacity);
    spsc_bind(&in, ping ? b1 : b0, run->capacity);
    uint8_t *msg = aligned_alloc(64, run->size + 64);
    uint8_t *buf = aligned_alloc(64, run->size + 64);
    if (!msg || !buf) {
        free(msg);
        free(buf);
        return bench_fail(run, "out of memory");
    }
    memset(msg, 0x5a, run->size + 64);
    bench_mark(run, 1);
    int rc = bench_await(run, 1);
    uint64_t bad = 0;
    for (uint64_t i = 0; rc == 0 && i < bench_rtt_total(run); i++) {
        if (ping) {
            uint64_t t0 = bench_now_ns();
            bench_rtt_ping_check(run, i, t0);
            bench_stamp(msg, run->size, i);
            if (hdr)
                hdr_send(&out, msg, run->size);
            else
                spsc_send_look(&out, msg, run->size, 0, look);
            uint64_t n = hdr ? hdr_recv(&in, buf) : spsc_recv_look(&in, buf, 0, look);
            uint64_t t1 = bench_now_ns();
            bad += n != run->size || !bench_check(buf, n, i);
            if (i >= run->warmup)
                run->samples[i - run->warmup] = t1 - t0;
        } else {
            uint64_t n = hdr ? hdr_recv(&in, buf) : spsc_recv_look(&in, buf, 0, look);
            bad += n != run->size || !bench_check(buf, n, i);
            if (hdr)
                hdr_send(&out, buf, n);
            else
                spsc_send_look(&out, buf, n, 0, look);
        }
    }
    free(msg);
    free(buf);
    if (bad)
        return bench_fail(run, "%s: %llu bad messages", hdr ? "spsc_hdr" : "spsc_ring",
                          (unsigned long long)bad);
    return rc;
}

static int hdr_ping(struct bench_run *run)
{
    return rtt_side(run, 1, 1, 0);
}

static int hdr_pong(struct bench_run *run)
{
    return rtt_side(run, 0, 1, 0);
}

const struct bench_transport bench_spsc_hdr_rtt = {
    .id = "spsc_hdr", .label = "spsc_ring, header polled (proto)", .group = "baseline",
    .kind = BENCH_ROUNDTRIP, .setup = spsc_rtt_setup, .teardown = spsc_teardown,
    .ping = hdr_ping, .pong = hdr_pong,
};

/* ---- prototype: the receiver also looks at the next record while it polls --------------
 * The ring's layout and records, unchanged; only what a waiting side touches (LOOK_*, above).
 * spsc_mlp: a prefetch of the record's line on every look; spsc_mlp_load: a discarded relaxed
 * load of its first word instead; spsc_mlp_pw: spsc_mlp plus the producer's prefetch for
 * writing of its next record's line after each publish; spsc_ring_pw: that alone. */
#define MLP_CASE(name, idstr, labelstr, lk)                                                  \
    static int name##_ping(struct bench_run *run) { return rtt_side(run, 1, 0, lk); }       \
    static int name##_pong(struct bench_run *run) { return rtt_side(run, 0, 0, lk); }       \
    const struct bench_transport bench_##name##_rtt = {                                     \
        .id = idstr, .label = labelstr, .group = "baseline", .kind = BENCH_ROUNDTRIP,       \
        .setup = spsc_rtt_setup, .teardown = spsc_teardown, .ping = name##_ping,            \
        .pong = name##_pong};
MLP_CASE(spsc_mlp, "spsc_mlp", "spsc_ring + record prefetch (proto)", LOOK_PREFETCH)
MLP_CASE(spsc_mlp_load, "spsc_mlp_load", "spsc_ring + record load (proto)", LOOK_LOAD)
MLP_CASE(spsc_mlp_pw, "spsc_mlp_pw", "spsc_mlp + producer prefetchw", LOOK_PREFETCH | LOOK_PRODUCER)
MLP_CASE(spsc_ring_pw, "spsc_ring_pw", "spsc_ring + producer prefetchw", LOOK_PRODUCER)
MLP_CASE(spsc_mlp2, "spsc_mlp2", "spsc_ring + 2-line prefetch (proto)", LOOK_PREFETCH2)

/* ---- bare cache-line ping-pong ----------------------------------------------------- */

/* Two-line variant: each side writes its own line (as a channel pair does).
 * One-line variant: both sides write one word (the classic bouncing line).
 * No pause in the polls: this is the floor. */
struct pingpong {
    _Alignas(64) uint64_t ping;
    _Alignas(64) uint64_t pong;
};

static int cl_setup(struct bench_run *run)
{
    run->shared_len = 4096;
    return spsc_map(run, "-line");
}

static int cl_side(struct bench_run *run, int ping, int one_line)
{
    struct pingpong *pp = run->shared;
    uint64_t *to = one_line ? &pp->ping : ping ? &pp->ping : &pp->pong;
    uint64_t *from = one_line ? &pp->ping : ping ? &pp->pong : &pp->ping;
    bench_mark(run, 1);
    int rc = bench_await(run, 1);
    /* One line: ping writes 2i+1 and waits for 2i+2; pong waits for 2i+1, writes 2i+2.
     * Two lines: ping writes i+1 to its line and waits for i+1 on the other. */
    for (uint64_t i = 0; rc == 0 && i < bench_rtt_total(run); i++) {
        uint64_t go = one_line ? 2 * i + 1 : i + 1;
        uint64_t back = one_line ? 2 * i + 2 : i + 1;
        if (ping) {
            uint64_t t0 = bench_now_ns();
            bench_rtt_ping_check(run, i, t0);
            STORE_REL(to, go);
            while (LOAD_ACQ(from) != back)
                ;
            uint64_t t1 = bench_now_ns();
            if (i >= run->warmup)
                run->samples[i - run->warmup] = t1 - t0;
        } else {
            while (LOAD_ACQ(from) != go)
                ;
            STORE_REL(to, back);
        }
    }
    return rc;
}

static int cl_ping(struct bench_run *run)
{
    return cl_side(run, 1, 0);
}
static int cl_pong(struct bench_run *run)
{
    return cl_side(run, 0, 0);
}
static int cl1_ping(struct bench_run *run)
{
    return cl_side(run, 1, 1);
}
static int cl1_pong(struct bench_run *run)
{
    return cl_side(run, 0, 1);
}

const struct bench_transport bench_cacheline = {
    .id = "cacheline", .label = "cache line (floor, 2 lines)", .group = "baseline",
    .kind = BENCH_ROUNDTRIP, .setup = cl_setup, .teardown = spsc_teardown,
    .ping = cl_ping, .pong = cl_pong,
};

const struct bench_transport bench_cacheline1 = {
    .id = "cacheline1", .label = "cache line (1 shared line)", .group = "baseline",
    .kind = BENCH_ROUNDTRIP, .setup = cl_setup, .teardown = spsc_teardown,
    .ping = cl1_ping, .pong = cl1_pong,
};

/* ---- broadcast floor (issue 10): a bare seqlock broadcast ------------------------------
 * bcast_floor_pub0/1/8/64: what the hardware charges a publisher whose readers read every
 * message, next to bcast_pub0/1/8/64 (bcast_cases.c) in the same run. The same geometry as
 * a broadcast channel of 64 B messages (1024 slots of 128 B: an 8 B stamp, the payload) and
 * the same publisher steps, minus everything else: stamp 2m+1, copy, stamp 2m (release),
 * seq = m (release); no fence, no counters, no wake check, no validation. Readers are
 * processes on the child's CPU (as bcast_pubN's), each reading every message it can: it
 * loads seq only once it has caught up with the last value it loaded (as spec/broadcast.md
 * §5.4 step 0), copies each message out between two stamp loads, skips to the oldest held
 * when lapped, and pauses once after finding nothing. The figure that matters is the
 * publisher's CPU time per message ("pub cpu" with -v), as for bcast_pubN. */
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_DEPTH 1024u
#define FLOOR_STRIDE 128u

struct floor_hdr {
    _Alignas(64) uint64_t seq;  /* newest published message; the publisher's only word */
    _Alignas(64) uint32_t ready; /* readers attached (atomic add) */
    uint32_t done;               /* the publisher has published its last message */
    uint32_t bad;                /* a reader saw a torn or misnumbered message */
};

static int floor_setup(struct bench_run *run)
{
    run->shared_len = 4096 + (size_t)FLOOR_DEPTH * FLOOR_STRIDE;
    return bench_shm_map(run->name, run->shared_len, &run->shared);
}

static uint8_t *floor_slot(struct bench_run *run, uint64_t m)
{
    return (uint8_t *)run->shared + 4096 + (m % FLOOR_DEPTH) * FLOOR_STRIDE;
}

static int floor_produce(struct bench_run *run)
{
    struct floor_hdr *h = run->shared;
    uint64_t size = run->size > FLOOR_STRIDE - 8 ? FLOOR_STRIDE - 8 : run->size;
    uint8_t src[FLOOR_STRIDE];
    memset(src, 0x5a, sizeof src);
    bench_mark(run, 1);
    if (bench_await(run, 1) != 0) {
        STORE_REL(&h->done, 1u); /* the readers leave */
        return -1;
    }
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    run->ctl->t_start = bench_now_ns();
    for (uint64_t m = 1; m <= run->count; m++) {
        uint64_t *stamp = (uint64_t *)(void *)floor_slot(run, m);
        STORE_REL(stamp, 2 * m + 1);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        bench_stamp(src, size, m);
        memcpy(stamp + 1, src, size);
        STORE_REL(stamp, 2 * m);
        STORE_REL(&h->seq, m);
    }
    run->ctl->t_end = bench_now_ns();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    run->ctl->info[5] = ((uint64_t)(c1.tv_sec - c0.tv_sec) * 1000000000000ull +
                         (uint64_t)(c1.tv_nsec - c0.tv_nsec) * 1000ull) / run->count;
    STORE_REL(&h->done, 1u);
    bench_mark(run, 2);
    return 0;
}

/* One reader until the publisher is done and everything up to its last seq was read. */
static void floor_read(struct bench_run *run)
{
    struct floor_hdr *h = run->shared;
    uint64_t size = run->size > FLOOR_STRIDE - 8 ? FLOOR_STRIDE - 8 : run->size;
    uint8_t buf[FLOOR_STRIDE];
    uint64_t next = 1, seen = 0;
    __atomic_fetch_add(&h->ready, 1u, __ATOMIC_SEQ_CST);
    for (;;) {
        if (next > seen) {
            int done = LOAD_ACQ(&h->done) != 0;
            seen = LOAD_ACQ(&h->seq);
            if (next > seen) {
                if (done || __atomic_load_n(&run->ctl->abort, __ATOMIC_RELAXED))
                    return;
                bench_relax();
                continue;
            }
        }
        const uint64_t *stamp = (const uint64_t *)(const void *)floor_slot(run, next);
        uint64_t s1 = LOAD_ACQ(stamp);
        if (s1 == 2 * next) {
            memcpy(buf, stamp + 1, size);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(stamp, __ATOMIC_RELAXED) == s1) {
                if (!bench_check(buf, size, next))
                    STORE_REL(&h->bad, 1u);
                next++;
                continue;
            }
        }
        /* Lapped (a later message has begun in this slot): skip to the oldest held. */
        seen = LOAD_ACQ(&h->seq);
        uint64_t oldest = seen >= FLOOR_DEPTH ? seen - FLOOR_DEPTH + 2 : 1;
        next = oldest > next ? oldest : next + 1;
    }
}

static int floor_consume(struct bench_run *run, int readers)
{
    struct floor_hdr *h = run->shared;
    pid_t pids[64];
    int n = 0;
    for (int i = 1; i < readers; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            floor_read(run);
            _exit(0);
        }
        if (pid > 0)
            pids[n++] = pid;
    }
    if (readers > 0) {
        while (LOAD_ACQ(&h->ready) < (uint32_t)readers - 1)
            bench_relax();
    }
    /* The last reader counts itself in below; the publisher starts at phase 1. */
    bench_mark(run, 1);
    if (readers > 0)
        floor_read(run);
    int rc = bench_await(run, 2);
    for (int i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
    if (LOAD_ACQ(&h->bad))
        return bench_fail(run, "bcast_floor: a reader saw a torn or misnumbered message");
    return rc;
}

#define FLOOR_CASE(k)                                                                     \
    static int floor_consume##k(struct bench_run *run) { return floor_consume(run, k); } \
    const struct bench_transport bench_bcast_floor_pub##k = {                             \
        .id = "bcast_floor_pub" #k, .label = "bcast floor: seqlock, " #k " readers",      \
        .group = "baseline", .kind = BENCH_THROUGHPUT, .setup = floor_setup,              \
        .teardown = spsc_teardown, .produce = floor_produce,                              \
        .consume = floor_consume##k};
FLOOR_CASE(0)
FLOOR_CASE(1)
FLOOR_CASE(8)
FLOOR_CASE(64)
