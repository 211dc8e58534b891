/* Compat channels (kind 3, spec/compat.md: seed 002's 16-byte-header byte ring) in the one
 * harness, against the stream kind in the same run:
 *  - compat_copy:     shm_channel_write / shm_channel_read on a compat channel (baseline:
 *                     shm_copy, the stream kind's write/read of the same size and ring);
 *  - compat_zerocopy: reserve + commit / peek + release (records split at the wrap go
 *                     through the handle's bounce buffer; baseline: shm_zerocopy).
 * The peer's published figure (64 B: 9 M msg/s cross-thread, its C++ pair) is a number, not
 * a run: the report compares against it by hand (README, compat section). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "shm_channel.h"

static void segment_name(const struct bench_run *run, char *name, size_t len)
{
    snprintf(name, len, "%s-k", run->name);
}

/* The producer makes the segment before the fork (a compat consumer never creates). */
static int compat_setup(struct bench_run *run)
{
    char name[96];
    segment_name(run, name, sizeof name);
    (void)shm_channel_unlink(name, SHM_CHANNEL_COMPAT | SHM_CHANNEL_FORCE);
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, name, SHM_CHANNEL_PRODUCER,
                              SHM_CHANNEL_COMPAT | SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL,
                              run->capacity, 0600);
    if (rc)
        return bench_fail(run, "compat create %s: %s", name, shm_channel_strerror(rc));
    shm_channel_close(ch); /* never unlinks: the layout has no end-of-stream */
    return 0;
}

static void compat_teardown(struct bench_run *run)
{
    char name[96];
    segment_name(run, name, sizeof name);
    (void)shm_channel_unlink(name, SHM_CHANNEL_COMPAT | SHM_CHANNEL_FORCE);
}

static int open_side(struct bench_run *run, uint32_t role, shm_channel_t **ch)
{
    char name[96];
    segment_name(run, name, sizeof name);
    int rc = shm_channel_open(ch, name, role, SHM_CHANNEL_COMPAT, run->capacity, 0600);
    if (rc)
        return bench_fail(run, "compat open %s: %s", name, shm_channel_strerror(rc));
    if (bench_spin_ns >= 0)
        shm_channel_set_spin(*ch, (uint64_t)bench_spin_ns);
    return 0;
}

static void note_stats(struct bench_run *run, shm_channel_t *ch)
{
    shm_channel_stat_t st;
    if (shm_channel_stat(ch, &st) != 0)
        return;
    run->ctl->info[1] = st.empty_events;
    run->ctl->info[3] = st.consumer_sleeps;
}

static int produce(struct bench_run *run, int zerocopy)
{
    shm_channel_t *ch = NULL;
    uint8_t *src = aligned_alloc(64, run->size + 64);
    int rc = -1;
    if (!src) {
        bench_fail(run, "out of memory");
        goto out;
    }
    memset(src, 0x5a, run->size + 64);
    if (open_side(run, SHM_CHANNEL_PRODUCER, &ch) || bench_tp_begin(run))
        goto out;
    uint64_t seq = 0;
    for (int part = 0; part < 2; part++) {
        uint64_t end = seq + (part == 0 ? run->warmup : run->count);
        if (part == 1 && bench_tp_start(run))
            goto out;
        for (; seq < end; seq++) {
            int r;
            if (zerocopy) {
                void *p;
                if ((r = shm_channel_reserve(ch, run->size, &p, SHM_CHANNEL_INFINITE)) == 0) {
                    memcpy(p, src, run->size);
                    bench_stamp(p, run->size, seq);
                    r = shm_channel_commit(ch, run->size);
                }
            } else {
                bench_stamp(src, run->size, seq);
                r = shm_channel_write(ch, src, run->size, SHM_CHANNEL_INFINITE);
            }
            if (r) {
                bench_fail(run, "compat write: %s", shm_channel_strerror(r));
                goto out;
            }
        }
    }
    rc = bench_tp_end_producer(run);
out:
    shm_channel_close(ch);
    free(src);
    return rc;
}

static int consume(struct bench_run *run, int zerocopy)
{
    shm_channel_t *ch = NULL;
    uint8_t *buf = aligned_alloc(64, run->size + 64);
    uint64_t bad = 0;
    int rc = -1;
    if (!buf) {
        bench_fail(run, "out of memory");
        goto out;
    }
    if (open_side(run, SHM_CHANNEL_CONSUMER, &ch) || bench_tp_begin(run))
        goto out;
    uint64_t seq = 0;
    for (int part = 0; part < 2; part++) {
        uint64_t end = seq + (part == 0 ? run->warmup : run->count);
        for (; seq < end; seq++) {
            uint64_t n;
            int r;
            if (zerocopy) {
                const void *p;
                if ((r = shm_channel_peek(ch, &p, &n, SHM_CHANNEL_INFINITE)) == 0) {
                    bad += n != run->size || !bench_check(p, n, seq);
                    r = shm_channel_release(ch);
                }
            } else {
                r = shm_channel_read(ch, buf, run->size, &n, SHM_CHANNEL_INFINITE);
                bad += r == 0 && (n != run->size || !bench_check(buf, n, seq));
            }
            if (r) {
                bench_fail(run, "compat read: %s", shm_channel_strerror(r));
                goto out;
            }
        }
        if (part == 0)
            bench_tp_warm(run);
    }
    bench_tp_end_consumer(run);
    note_stats(run, ch);
    rc = bad ? bench_fail(run, "%llu bad messages", (unsigned long long)bad) : 0;
out:
    shm_channel_close(ch);
    free(buf);
    return rc;
}

static int copy_produce(struct bench_run *run)
{
    return produce(run, 0);
}
static int copy_consume(struct bench_run *run)
{
    return consume(run, 0);
}
static int zc_produce(struct bench_run *run)
{
    return produce(run, 1);
}
static int zc_consume(struct bench_run *run)
{
    return consume(run, 1);
}

const struct bench_transport bench_compat_copy = {
    .id = "compat_copy", .label = "compat write/read", .group = "shm_channel",
    .kind = BENCH_THROUGHPUT, .setup = compat_setup, .teardown = compat_teardown,
    .produce = copy_produce, .consume = copy_consume,
};

const struct bench_transport bench_compat_zerocopy = {
    .id = "compat_zerocopy", .label = "compat reserve/peek", .group = "shm_channel",
    .kind = BENCH_THROUGHPUT, .setup = compat_setup, .teardown = compat_teardown,
    .produce = zc_produce, .consume = zc_consume,
};
