/* Benchmark harness: two processes (fork), pinned to two CPUs, a shared control block
 * for barriers and timestamps, and a table of transports to compare.
 *
 * A transport is a set of whole loops (never one indirect call per message, which would
 * cost more than the thing measured): produce/consume for throughput, ping/pong for round
 * trips, or local for a single-process figure (memcpy). Adding a transport (a pipe, a
 * Unix socket, another library) is one struct bench_transport and one line in the plan. */
#ifndef SHM_CHANNEL_BENCH_H
#define SHM_CHANNEL_BENCH_H

#include <stddef.h>
#include <stdint.h>

enum bench_kind {
    BENCH_THROUGHPUT = 1, /* produce() in the parent, consume() in the child */
    BENCH_ROUNDTRIP = 2,  /* ping() in the parent (records samples), pong() in the child */
    BENCH_LOCAL = 3       /* local() in the parent only */
};

/* Control block shared by both processes (anonymous shared mapping made before fork).
 * Each side writes only its own line. */
struct bench_ctl {
    _Alignas(64) volatile uint32_t phase[2]; /* [0] parent, [1] child; see bench_mark */
    _Alignas(64) volatile uint64_t t_start;  /* CLOCK_MONOTONIC ns, written by the producer */
    _Alignas(64) volatile uint64_t t_end;    /* written by the consumer */
    _Alignas(64) volatile int abort;         /* set by a side that failed */
    /* Round trips: how many this run makes (warm-up included). Set before fork; the ping
     * lowers it once the run's time budget is spent (bench_rtt_ping_check). */
    _Alignas(64) volatile uint64_t rtt_total;
    uint64_t info[6];                        /* transport's notes (shm: stat counters) */
    char child_msg[256];
};

/* One run: everything both processes need, set up before fork. */
struct bench_run {
    uint64_t size;     /* payload bytes per message */
    uint64_t capacity; /* ring bytes (power of two) */
    uint64_t count;    /* measured messages (throughput) or round trips */
    uint64_t warmup;   /* messages or round trips before timing */
    uint32_t batch;    /* messages per batch call (batch transports) */
    char name[64];     /* unique channel name for this run (transports add suffixes) */
    struct bench_ctl *ctl;
    void *shared;      /* a transport's own shared memory, mapped in setup() */
    size_t shared_len;
    uint64_t *samples; /* round trips: count entries of ns, written by ping() */
    double local_ns;   /* local transports: elapsed ns of the measured part */
    uint64_t t_start;  /* throughput: ctl->t_start and ->t_end, copied after the run */
    uint64_t t_end;
    uint64_t info[6];  /* ctl->info after the run: for shm_channel, the channel's
                          full_events, empty_events, producer_sleeps, consumer_sleeps,
                          producer_wakes, consumer_wakes as the consumer saw them */
    char err[256];     /* why a side failed (parent's own) */
    uint64_t rtt_budget_ns; /* round trips: the run stops early after this long (0: never) */
    uint64_t rtt_deadline;  /* the ping's: CLOCK_MONOTONIC ns, set at its first round trip */
    uint64_t rtt_done;      /* round trips made (warm-up included), copied after the run */
    char what[96];          /* "<case id> <size> B, <calibration | run k>", for the watchdog */
};

struct bench_transport {
    const char *id;    /* stable machine-readable id, e.g. "spsc_ring" */
    const char *label; /* for the table */
    const char *group; /* "baseline" or "shm_channel" (issue 6 adds others) */
    int kind;          /* enum bench_kind */
    int (*setup)(struct bench_run *run);    /* parent, before fork; optional */
    void (*teardown)(struct bench_run *run); /* parent, after the child exited; optional */
    int (*produce)(struct bench_run *run);
    int (*consume)(struct bench_run *run);
    int (*ping)(struct bench_run *run);
    int (*pong)(struct bench_run *run);
    int (*local)(struct bench_run *run);
};

/* Transports, defined in baselines.c and shm_cases.c. */
extern const struct bench_transport bench_memcpy, bench_memcpy_ring, bench_spsc_ring,
    bench_spsc_fenced, bench_cacheline, bench_cacheline1, bench_spsc_rtt, bench_spsc_hdr_rtt, bench_spsc_mlp, bench_spsc_mlp_rtt,
    bench_spsc_mlp_load_rtt, bench_spsc_mlp_pw_rtt, bench_spsc_ring_pw_rtt, bench_spsc_mlp2_rtt, bench_shm_copy, bench_shm_copy_fenced,
    bench_shm_zerocopy,
    bench_shm_batch, bench_shm_rtt_spin, bench_shm_rtt_zc_spin, bench_shm_rtt_block;
/* Broadcast (kind 2) cases and their own baseline, in bcast_cases.c. */
extern const struct bench_transport bench_bcast_pub0, bench_bcast_pub1, bench_bcast_pub8,
    bench_bcast_pub64, bench_bcast_frames4, bench_bcast_latest, bench_seqlock_read;
/* Every broadcast publish case (subscribers keeping up, and sleeping), NULL-terminated. */
extern const struct bench_transport *const bench_bcast_pub_cases[];

/* Compat (kind 3) cases, in compat_cases.c; their baselines are shm_copy / shm_zerocopy. */
extern const struct bench_transport bench_compat_copy, bench_compat_zerocopy;

/* One-process loops for instruction counts (bench/callgrind.sh, `--inproc`): n messages of
 * `size` bytes written and read back in turn; the number of bad messages. */
uint64_t bench_spsc_inproc(uint64_t n, uint64_t size);
uint64_t bench_shm_inproc(uint64_t n, uint64_t size);

/* ---- helpers for transports ---- */

uint64_t bench_now_ns(void);

/* Which process we are: 0 the parent (producer / ping), 1 the child. */
extern int bench_side;

/* --spin: spin time for shm_channel handles that are not in blocking mode (ns), or -1 for
 * the library's default. */
extern int64_t bench_spin_ns;

/* Set our phase to p (phases only grow). */
void bench_mark(struct bench_run *run, uint32_t p);
/* Wait until the other side's phase is at least p. 0, or -ECANCELED if it aborted. */
int bench_await(struct bench_run *run, uint32_t p);

/* The standard throughput choreography, for transports to call:
 *   producer: bench_tp_begin (after opening) ... warmup messages ... bench_tp_start
 *             ... count messages ... bench_tp_end_producer
 *   consumer: bench_tp_begin ... warmup messages ... bench_tp_warm ... count messages
 *             ... bench_tp_end_consumer
 * bench_tp_start returns once the consumer has received the warm-up, and stamps t_start;
 * bench_tp_end_consumer stamps t_end. */
int bench_tp_begin(struct bench_run *run);
int bench_tp_start(struct bench_run *run);
void bench_tp_warm(struct bench_run *run);
void bench_tp_end_consumer(struct bench_run *run);
int bench_tp_end_producer(struct bench_run *run);

/* Record why this side failed; returns -1. */
int bench_fail(struct bench_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Message check: the first 8 bytes of message i hold i (when size >= 8). */
static inline void bench_stamp(void *msg, uint64_t size, uint64_t seq)
{
    if (size >= 8)
        __builtin_memcpy(msg, &seq, 8);
}

static inline int bench_check(const void *msg, uint64_t size, uint64_t seq)
{
    uint64_t got = seq;
    if (size >= 8)
        __builtin_memcpy(&got, msg, 8);
    return got == seq;
}

/* Round trips: every ping and pong loop runs `for (i = 0; i < bench_rtt_total(run); i++)`,
 * and the ping calls bench_rtt_ping_check(run, i, now) at the start of each round trip with
 * the clock it read. Once the run's time budget is spent (a loaded machine where each hand-
 * off waits for a CPU: a count calibrated at a quiet moment could take hours), the ping
 * makes round trip i the last: it lowers the total to i + 1 BEFORE it sends message i, so
 * the pong, which reads the total after it received message i, sees the new value (the
 * message's hand-off orders the two) and both loops end after round trip i. */
static inline uint64_t bench_rtt_total(const struct bench_run *run)
{
    return __atomic_load_n(&run->ctl->rtt_total, __ATOMIC_ACQUIRE);
}

static inline void bench_rtt_ping_check(struct bench_run *run, uint64_t i, uint64_t now)
{
    if (i == 0)
        run->rtt_deadline = run->rtt_budget_ns ? now + run->rtt_budget_ns : UINT64_MAX;
    else if (__builtin_expect(now > run->rtt_deadline, 0))
        __atomic_store_n(&run->ctl->rtt_total, i + 1, __ATOMIC_RELEASE);
}

/* Busy-wait hint for the harness's own waits (not for the measured loops). */
static inline void bench_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Map `len` bytes of fresh POSIX shared memory (shm_open, then unlinked at once: the
 * mapping is inherited by fork). 0 and *out, or -errno. */
int bench_shm_map(const char *name, size_t len, void **out);

#endif
