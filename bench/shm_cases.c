/* shm_channel through its public API, as a user calls it (the shared library):
 *  - copy:      shm_channel_write / shm_channel_read, one message per call;
 *  - zero-copy: shm_channel_reserve + fill + commit / shm_channel_peek + check + release
 *               (the producer still writes the payload once: it stands for producing the
 *               data in place; the consumer reads the 8-byte sequence number only);
 *  - batch:     shm_channel_write_batch / shm_channel_read_batch, run->batch per call;
 *  - copy, fence handshake: write/read with the consumer in a seccomp filter that makes
 *               membarrier fail (as a container without it would): both sides then use the
 *               layout-1.0 full fence after every publish (spec §5.10), so the row next to
 *               `write/read` is the same-run price of that fence;
 *  - round trips: 64 B ping-pong over two channels with write/read (or reserve/peek),
 *               spinning (default spin) or blocking (shm_channel_set_spin(ch, 0)). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "shm_channel.h"

static int open_side(struct bench_run *run, const char *suffix, uint32_t role,
                     shm_channel_t **ch)
{
    char name[96];
    snprintf(name, sizeof name, "%s%s", run->name, suffix);
    int rc = shm_channel_open(ch, name, role, SHM_CHANNEL_CREATE, run->capacity, 0600);
    if (rc)
        return bench_fail(run, "shm_channel_open(%s): %s", name, shm_channel_strerror(rc));
    if (bench_spin_ns >= 0)
        shm_channel_set_spin(*ch, (uint64_t)bench_spin_ns);
    return 0;
}

/* One process, for instruction counts (bench/callgrind.sh): as bench_spsc_inproc, through
 * one shm_channel (its producer and consumer handles in this process). */
__attribute__((noipa)) uint64_t bench_shm_inproc(uint64_t n, uint64_t size)
{
    char name[64];
    snprintf(name, sizeof name, "shmcb-cg-%d", (int)getpid());
    shm_channel_t *p = NULL, *c = NULL;
    uint8_t *msg = aligned_alloc(64, size + 64), *buf = aligned_alloc(64, size + 64);
    uint64_t bad = n ? n : 1;
    if (!msg || !buf ||
        shm_channel_open(&p, name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1u << 20, 0600) ||
        shm_channel_open(&c, name, SHM_CHANNEL_CONSUMER, 0, 0, 0600))
        goto out;
    memset(msg, 0x5a, size + 64);
    bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t got = 0;
        bench_stamp(msg, size, i);
        if (shm_channel_write(p, msg, size, 0) != 0 ||
            shm_channel_read(c, buf, size, &got, 0) != 0) {
            bad = n;
            break;
        }
        bad += got != size || !bench_check(buf, got, i);
    }
out:
    shm_channel_close(c);
    shm_channel_close(p);
    (void)shm_channel_unlink(name, SHM_CHANNEL_FORCE);
    free(msg);
    free(buf);
    return bad;
}

static void unlink_all(struct bench_run *run)
{
    static const char *const suffixes[] = {"-c", "-a", "-b"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s%s", run->name, suffixes[i]);
        (void)shm_channel_unlink(name, SHM_CHANNEL_FORCE); /* -ENOENT when already gone */
    }
}

static int shm_setup(struct bench_run *run)
{
    unlink_all(run);
    return 0;
}

static void shm_teardown(struct bench_run *run)
{
    unlink_all(run);
}

/* Leave the channel's wait counters for --verbose and the JSON. */
static void note_stats(struct bench_run *run, shm_channel_t *ch)
{
    shm_channel_stat_t st;
    if (shm_channel_stat(ch, &st) != 0)
        return;
    run->ctl->info[0] = st.full_events;
    run->ctl->info[1] = st.empty_events;
    run->ctl->info[2] = st.producer_sleeps;
    run->ctl->info[3] = st.consumer_sleeps;
    run->ctl->info[4] = st.producer_wakes;
    run->ctl->info[5] = st.consumer_wakes;
}

#define CHECK(call, what)                                                                \
    do {                                                                                 \
        int rc_ = (call);                                                                \
        if (rc_ < 0) {                                                                   \
            bench_fail(run, "%s: %s", what, shm_channel_strerror(rc_));                  \
            goto out;                                                                    \
        }                                                                                \
    } while (0)

/* ---- throughput --------------------------------------------------------------------- */

enum mode { COPY, ZEROCOPY, BATCH, COPY_FENCED };

/* This process (a bench child, which exits after its run) gets ENOSYS from membarrier from
 * now on: its stream handles register nothing and say "fence" (spec §5.10), and so does
 * the peer's publish step against it. */
static int block_membarrier(struct bench_run *run)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return bench_fail(run, "seccomp: %s", strerror(errno));
    return 0;
}

static int produce(struct bench_run *run, enum mode mode)
{
    shm_channel_t *ch = NULL;
    uint32_t batch = mode == BATCH ? run->batch : 1;
    uint64_t *lens = calloc(batch, sizeof *lens);
    uint8_t *src = aligned_alloc(64, run->size * batch + 64);
    int rc = -1;
    if (!lens || !src) {
        bench_fail(run, "out of memory");
        goto out;
    }
    memset(src, 0x5a, run->size * batch + 64);
    for (uint32_t k = 0; k < batch; k++)
        lens[k] = run->size;
    if (open_side(run, "-c", SHM_CHANNEL_PRODUCER, &ch))
        goto out;
    if (bench_tp_begin(run))
        goto out;
    uint64_t seq = 0;
    for (int part = 0; part < 2; part++) {
        uint64_t end = seq + (part == 0 ? run->warmup : run->count);
        if (part == 1 && bench_tp_start(run))
            goto out;
        if (mode == COPY) {
            for (; seq < end; seq++) {
                bench_stamp(src, run->size, seq);
                CHECK(shm_channel_write(ch, src, run->size, SHM_CHANNEL_INFINITE), "write");
            }
        } else if (mode == ZEROCOPY) {
            for (; seq < end; seq++) {
                void *p;
                CHECK(shm_channel_reserve(ch, run->size, &p, SHM_CHANNEL_INFINITE), "reserve");
                memcpy(p, src, run->size);
                bench_stamp(p, run->size, seq);
                CHECK(shm_channel_commit(ch, run->size), "commit");
            }
        } else {
            while (seq < end) {
                uint32_t n = end - seq < batch ? (uint32_t)(end - seq) : batch;
                for (uint32_t k = 0; k < n; k++)
                    bench_stamp(src + k * run->size, run->size, seq + k);
                int got = shm_channel_write_batch(ch, src, lens, n, SHM_CHANNEL_INFINITE);
                CHECK(got, "write_batch");
                seq += (uint64_t)got;
            }
        }
    }
    rc = bench_tp_end_producer(run);
out:
    shm_channel_close(ch);
    free(lens);
    free(src);
    return rc;
}

static int consume(struct bench_run *run, enum mode mode)
{
    shm_channel_t *ch = NULL;
    uint32_t batch = mode == BATCH ? run->batch : 1;
    uint64_t *lens = calloc(batch, sizeof *lens);
    uint64_t cap = run->size * batch;
    uint8_t *buf = aligned_alloc(64, cap + 64);
    uint64_t bad = 0;
    int rc = -1;
    if (!lens || !buf) {
        bench_fail(run, "out of memory");
        goto out;
    }
    if (mode == COPY_FENCED) {
        if (block_membarrier(run))
            goto out;
        mode = COPY;
    }
    if (open_side(run, "-c", SHM_CHANNEL_CONSUMER, &ch))
        goto out;
    if (bench_tp_begin(run))
        goto out;
    uint64_t seq = 0;
    for (int part = 0; part < 2; part++) {
        uint64_t end = seq + (part == 0 ? run->warmup : run->count);
        if (mode == COPY) {
            for (; seq < end; seq++) {
                uint64_t n;
                CHECK(shm_channel_read(ch, buf, cap, &n, SHM_CHANNEL_INFINITE), "read");
                bad += n != run->size || !bench_check(buf, n, seq);
            }
        } else if (mode == ZEROCOPY) {
            for (; seq < end; seq++) {
                const void *p;
                uint64_t n;
                CHECK(shm_channel_peek(ch, &p, &n, SHM_CHANNEL_INFINITE), "peek");
                bad += n != run->size || !bench_check(p, n, seq);
                CHECK(shm_channel_release(ch), "release");
            }
        } else {
            while (seq < end) {
                uint32_t want = end - seq < batch ? (uint32_t)(end - seq) : batch;
                int got = shm_channel_read_batch(ch, buf, cap, lens, want, SHM_CHANNEL_INFINITE);
                CHECK(got, "read_batch");
                for (int k = 0; k < got; k++)
                    bad += lens[k] != run->size ||
                           !bench_check(buf + (uint64_t)k * run->size, lens[k], seq + (uint64_t)k);
                seq += (uint64_t)got;
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
    free(lens);
    free(buf);
    return rc;
}

static int copy_produce(struct bench_run *run)
{
    return produce(run, COPY);
}
static int copy_consume(struct bench_run *run)
{
    return consume(run, COPY);
}
static int fenced_consume(struct bench_run *run)
{
    return consume(run, COPY_FENCED);
}
static int zc_produce(struct bench_run *run)
{
    return produce(run, ZEROCOPY);
}
static int zc_consume(struct bench_run *run)
{
    return consume(run, ZEROCOPY);
}
static int batch_produce(struct bench_run *run)
{
    return produce(run, BATCH);
}
static int batch_consume(struct bench_run *run)
{
    return consume(run, BATCH);
}

const struct bench_transport bench_shm_copy = {
    .id = "shm_copy", .label = "shm_channel write/read", .group = "shm_channel",
    .kind = BENCH_THROUGHPUT, .setup = shm_setup, .teardown = shm_teardown,
    .produce = copy_produce, .consume = copy_consume,
};

const struct bench_transport bench_shm_copy_fenced = {
    .id = "shm_copy_fenced", .label = "shm_channel write/read, fence hs",
    .group = "shm_channel", .kind = BENCH_THROUGHPUT, .setup = shm_setup,
    .teardown = shm_teardown, .produce = copy_produce, .consume = fenced_consume,
};

const struct bench_transport bench_shm_zerocopy = {
    .id = "shm_zerocopy", .label = "shm_channel reserve/peek", .group = "shm_channel",
    .kind = BENCH_THROUGHPUT, .setup = shm_setup, .teardown = shm_teardown,
    .produce = zc_produce, .consume = zc_consume,
};

const struct bench_transport bench_shm_batch = {
    .id = "shm_batch", .label = "shm_channel *_batch", .group = "shm_channel",
    .kind = BENCH_THROUGHPUT, .setup = shm_setup, .teardown = shm_teardown,
    .produce = batch_produce, .consume = batch_consume,
};

/* ---- round trips -------------------------------------------------------------------- */

/* The ping side produces on "-a" and consumes "-b"; the pong side the reverse. */
static int rtt_side(struct bench_run *run, int ping, int zerocopy, int blocking)
{
    shm_channel_t *out = NULL, *in = NULL;
    uint8_t *msg = aligned_alloc(64, run->size + 64);
    uint8_t *buf = aligned_alloc(64, run->size + 64);
    uint64_t bad = 0;
    int rc = -1;
    if (!msg || !buf) {
        bench_fail(run, "out of memory");
        goto out;
    }
    memset(msg, 0x5a, run->size + 64);
    if (open_side(run, ping ? "-a" : "-b", SHM_CHANNEL_PRODUCER, &out) ||
        open_side(run, ping ? "-b" : "-a", SHM_CHANNEL_CONSUMER, &in))
        goto out;
    if (blocking) {
        shm_channel_set_spin(out, 0);
        shm_channel_set_spin(in, 0);
    }
    bench_mark(run, 1);
    if (bench_await(run, 1))
        goto out;
    for (uint64_t i = 0; i < bench_rtt_total(run); i++) {
        uint64_t t0 = ping ? bench_now_ns() : 0;
        if (ping) {
            bench_rtt_ping_check(run, i, t0);
            bench_stamp(msg, run->size, i);
            if (zerocopy) {
                void *p;
                CHECK(shm_channel_reserve(out, run->size, &p, SHM_CHANNEL_INFINITE), "reserve");
                memcpy(p, msg, run->size);
                CHECK(shm_channel_commit(out, run->size), "commit");
            } else {
                CHECK(shm_channel_write(out, msg, run->size, SHM_CHANNEL_INFINITE), "write");
            }
        }
        uint64_t n;
        if (zerocopy) {
            const void *p;
            CHECK(shm_channel_peek(in, &p, &n, SHM_CHANNEL_INFINITE), "peek");
            bad += n != run->size || !bench_check(p, n, i);
            if (!ping) {
                void *q;
                CHECK(shm_channel_reserve(out, n, &q, SHM_CHANNEL_INFINITE), "reserve");
                memcpy(q, p, n);
                CHECK(shm_channel_release(in), "release");
                CHECK(shm_channel_commit(out, n), "commit");
            } else {
                CHECK(shm_channel_release(in), "release");
            }
        } else {
            CHECK(shm_channel_read(in, buf, run->size, &n, SHM_CHANNEL_INFINITE), "read");
            bad += n != run->size || !bench_check(buf, n, i);
            if (!ping)
                CHECK(shm_channel_write(out, buf, n, SHM_CHANNEL_INFINITE), "write");
        }
        if (ping && i >= run->warmup)
            run->samples[i - run->warmup] = bench_now_ns() - t0;
    }
    note_stats(run, in);
    rc = bad ? bench_fail(run, "%llu bad messages", (unsigned long long)bad) : 0;
out:
    shm_channel_close(out);
    shm_channel_close(in);
    free(msg);
    free(buf);
    return rc;
}

static int spin_ping(struct bench_run *run)
{
    return rtt_side(run, 1, 0, 0);
}
static int spin_pong(struct bench_run *run)
{
    return rtt_side(run, 0, 0, 0);
}
static int zc_ping(struct bench_run *run)
{
    return rtt_side(run, 1, 1, 0);
}
static int zc_pong(struct bench_run *run)
{
    return rtt_side(run, 0, 1, 0);
}
static int block_ping(struct bench_run *run)
{
    return rtt_side(run, 1, 0, 1);
}
static int block_pong(struct bench_run *run)
{
    return rtt_side(run, 0, 0, 1);
}

const struct bench_transport bench_shm_rtt_spin = {
    .id = "shm_spin", .label = "shm_channel write/read, spin", .group = "shm_channel",
    .kind = BENCH_ROUNDTRIP, .setup = shm_setup, .teardown = shm_teardown,
    .ping = spin_ping, .pong = spin_pong,
};

const struct bench_transport bench_shm_rtt_zc_spin = {
    .id = "shm_zerocopy_spin", .label = "shm_channel reserve/peek, spin",
    .group = "shm_channel", .kind = BENCH_ROUNDTRIP, .setup = shm_setup,
    .teardown = shm_teardown, .ping = zc_ping, .pong = zc_pong,
};

const struct bench_transport bench_shm_rtt_block = {
    .id = "shm_block", .label = "shm_channel write/read, blocking", .group = "shm_channel",
    .kind = BENCH_ROUNDTRIP, .setup = shm_setup, .teardown = shm_teardown,
    .ping = block_ping, .pong = block_pong,
};
