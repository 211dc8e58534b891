/* The C side of the paired Rust-vs-C cases of shm-channel-compare (issue 14): the loops of
 * bench/shm_cases.c (copy, zero copy, batch), word for word, over a handle the Rust
 * harness opened. Compiled by build.rs into the same program as the Rust loops and linked
 * against the same C library, so that a `c_*` row and its `rs_*` twin differ only in the
 * language of the loop that calls the library: same library build, same process
 * choreography, same timing, runs alternating in one session.
 *
 * Return value: 0, a negative errno from the library, or the number of bad messages
 * (consumer side: wrong size or sequence number). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm_channel.h"

enum { MODE_COPY = 0, MODE_ZEROCOPY = 1, MODE_BATCH = 2, MODE_ZEROCOPY_IND = 3 };

/* MODE_ZEROCOPY_IND (the case c_zerocopy_ind, --cross): the zero-copy producer loop with
 * reserve, memcpy and commit called through function pointers loaded at each call, as the Rust
 * loop calls the library (through the GOT: `call *shm_channel_reserve@GOTPCREL(%rip)`)
 * where the C loop calls it directly. Consumer side: MODE_ZEROCOPY's loop. */
static int (*volatile reserve_ind)(shm_channel_t *, uint64_t, void **, int64_t) =
    shm_channel_reserve;
static int (*volatile commit_ind)(shm_channel_t *, uint64_t) = shm_channel_commit;
static void *(*volatile memcpy_ind)(void *, const void *, size_t) = memcpy;

static inline void stamp(void *msg, uint64_t size, uint64_t seq)
{
    if (size >= 8)
        __builtin_memcpy(msg, &seq, 8);
}

static inline int check(const void *msg, uint64_t size, uint64_t seq)
{
    uint64_t got = seq;
    if (size >= 8)
        __builtin_memcpy(&got, msg, 8);
    return got == seq;
}

/* The zero-copy producer loop (messages seq .. total - 1): reserve, fill, stamp, commit. Always
 * inlined with a constant `ind`: 0 calls the library and memcpy directly (MODE_ZEROCOPY, the loop
 * of bench/shm_cases.c), 1 through the pointers above (MODE_ZEROCOPY_IND). */
static inline __attribute__((always_inline)) int64_t
produce_zerocopy(shm_channel_t *ch, uint64_t size, uint64_t seq, uint64_t total,
                 const uint8_t *src, int ind)
{
    for (; seq < total; seq++) {
        void *p;
        int r = ind ? reserve_ind(ch, size, &p, SHM_CHANNEL_INFINITE)
                    : shm_channel_reserve(ch, size, &p, SHM_CHANNEL_INFINITE);
        if (r < 0)
            return r;
        if (ind)
            memcpy_ind(p, src, size);
        else
            memcpy(p, src, size);
        stamp(p, size, seq);
        r = ind ? commit_ind(ch, size) : shm_channel_commit(ch, size);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Writes messages first .. total - 1 from `src` (size bytes, size * batch in batch mode;
 * the caller allocates and fills it once per run, as bench/shm_cases.c does: this is called
 * twice per run, for the warm-up and for the timed part, with the producer's CPU clock read
 * in between, and an allocation here would land in the timed part). */
int64_t cmp_c_produce(shm_channel_t *ch, int mode, uint64_t size, uint64_t first, uint64_t total,
                      uint32_t batch, uint8_t *src)
{
    if (mode != MODE_BATCH)
        batch = 1;
    uint64_t lens[64];
    int64_t rc = 0;
    if (batch > sizeof lens / sizeof lens[0])
        return -22; /* EINVAL */
    for (uint32_t k = 0; k < batch; k++)
        lens[k] = size;
    uint64_t seq = first;
    if (mode == MODE_COPY) {
        for (; seq < total; seq++) {
            stamp(src, size, seq);
            int r = shm_channel_write(ch, src, size, SHM_CHANNEL_INFINITE);
            if (r < 0) {
                rc = r;
                goto out;
            }
        }
    } else if (mode == MODE_ZEROCOPY_IND) {
        rc = produce_zerocopy(ch, size, seq, total, src, 1);
    } else if (mode == MODE_ZEROCOPY) {
        rc = produce_zerocopy(ch, size, seq, total, src, 0);
    } else {
        while (seq < total) {
            uint32_t n = total - seq < batch ? (uint32_t)(total - seq) : batch;
            for (uint32_t k = 0; k < n; k++)
                stamp(src + k * size, size, seq + k);
            int got = shm_channel_write_batch(ch, src, lens, n, SHM_CHANNEL_INFINITE);
            if (got < 0) {
                rc = got;
                goto out;
            }
            seq += (uint64_t)got;
        }
    }
out:
    return rc;
}

/* Reads messages first .. end - 1 into `buf` (size bytes, size * batch in batch mode; the
 * caller allocates it once per run). The harness calls it for the warm-up, tells the producer
 * to go on, then calls it for the timed part around its own clock reads, as for the Rust
 * loops. Returns the number of bad messages or a negative errno. */
int64_t cmp_c_consume(shm_channel_t *ch, int mode, uint64_t size, uint64_t first, uint64_t end,
                      uint32_t batch, uint8_t *buf)
{
    if (mode == MODE_ZEROCOPY_IND)
        mode = MODE_ZEROCOPY;
    if (mode != MODE_BATCH)
        batch = 1;
    uint64_t lens[64];
    if (batch > sizeof lens / sizeof lens[0])
        return -22; /* EINVAL */
    uint64_t cap = size * batch, bad = 0, seq = first;
    if (mode == MODE_COPY) {
        for (; seq < end; seq++) {
            uint64_t n;
            int r = shm_channel_read(ch, buf, cap, &n, SHM_CHANNEL_INFINITE);
            if (r < 0)
                return r;
            bad += n != size || !check(buf, n, seq);
        }
    } else if (mode == MODE_ZEROCOPY) {
        for (; seq < end; seq++) {
            const void *p;
            uint64_t n;
            int r = shm_channel_peek(ch, &p, &n, SHM_CHANNEL_INFINITE);
            if (r < 0)
                return r;
            bad += n != size || !check(p, n, seq);
            r = shm_channel_release(ch);
            if (r < 0)
                return r;
        }
    } else {
        while (seq < end) {
            uint32_t want = end - seq < batch ? (uint32_t)(end - seq) : batch;
            int got = shm_channel_read_batch(ch, buf, cap, lens, want, SHM_CHANNEL_INFINITE);
            if (got < 0)
                return got;
            for (int k = 0; k < got; k++)
                bad += lens[k] != size || !check(buf + (uint64_t)k * size, lens[k], seq + (uint64_t)k);
            seq += (uint64_t)got;
        }
    }
    return (int64_t)bad;
}

/* One process, both handles of one channel: `n` messages written and read back in turn
 * (`batch` at a time in batch mode), never waiting. For instruction counts per message
 * under callgrind (bench/rust/callgrind.sh), which are exact on a loaded machine. */
int64_t cmp_c_inproc(shm_channel_t *tx, shm_channel_t *rx, int mode, uint64_t size, uint64_t n,
                     uint32_t batch)
{
    if (mode != MODE_BATCH)
        batch = 1;
    uint64_t *lens = calloc(batch, sizeof *lens), *wlens = calloc(batch, sizeof *wlens);
    uint64_t cap = size * batch;
    uint8_t *src = aligned_alloc(64, ((cap + 63) & ~(uint64_t)63) + 64);
    uint8_t *buf = aligned_alloc(64, ((cap + 63) & ~(uint64_t)63) + 64);
    uint64_t bad = 0;
    int64_t rc = 0;
    if (!lens || !wlens || !src || !buf) {
        rc = -12;
        goto out;
    }
    memset(src, 0x5a, cap + 64);
    for (uint32_t k = 0; k < batch; k++)
        wlens[k] = size;
    for (uint64_t seq = 0; seq < n; seq += batch) {
        if (mode == MODE_COPY) {
            stamp(src, size, seq);
            int r = shm_channel_write(tx, src, size, SHM_CHANNEL_INFINITE);
            uint64_t got;
            if (r == 0)
                r = shm_channel_read(rx, buf, cap, &got, SHM_CHANNEL_INFINITE);
            if (r < 0) {
                rc = r;
                goto out;
            }
            bad += got != size || !check(buf, got, seq);
        } else if (mode == MODE_ZEROCOPY) {
            void *p;
            int r = shm_channel_reserve(tx, size, &p, SHM_CHANNEL_INFINITE);
            if (r == 0) {
                memcpy(p, src, size);
                stamp(p, size, seq);
                r = shm_channel_commit(tx, size);
            }
            const void *q;
            uint64_t got;
            if (r == 0)
                r = shm_channel_peek(rx, &q, &got, SHM_CHANNEL_INFINITE);
            if (r < 0) {
                rc = r;
                goto out;
            }
            bad += got != size || !check(q, got, seq);
            r = shm_channel_release(rx);
            if (r < 0) {
                rc = r;
                goto out;
            }
        } else {
            for (uint32_t k = 0; k < batch; k++)
                stamp(src + k * size, size, seq + k);
            int w = shm_channel_write_batch(tx, src, wlens, batch, SHM_CHANNEL_INFINITE);
            int got = w < 0 ? w : shm_channel_read_batch(rx, buf, cap, lens, batch, SHM_CHANNEL_INFINITE);
            if (got < 0) {
                rc = got;
                goto out;
            }
            bad += (uint64_t)(w != (int)batch || got != (int)batch);
            for (int k = 0; k < got; k++)
                bad += lens[k] != size || !check(buf + (uint64_t)k * size, lens[k], seq + (uint64_t)k);
        }
    }
    rc = (int64_t)bad;
out:
    free(lens);
    free(wlens);
    free(src);
    free(buf);
    return rc;
}

/* The layout experiment of bench/README ("Rust vs C"): calls fn(arg) with the stack `pad`
 * bytes deeper than here, so that a producer loop (and the library's frames under it) runs at
 * another stack address. */
void cmp_with_stack_pad(uint64_t pad, void (*fn)(void *), void *arg)
{
    volatile uint8_t *p = __builtin_alloca(pad + 1);
    p[0] = 0;
    fn(arg);
    __asm__ volatile("" : : "r"(p) : "memory"); /* no tail call: the pad stays under fn */
}
