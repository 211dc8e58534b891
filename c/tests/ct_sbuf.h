/* What the tests of the store-fence-load handshakes (test_wake_store_buffer.c,
 * test_svc_store_buffer.c) share: a store buffer full of slow stores, and the control page on
 * which their two sides take their steps together. x86 commits stores in order, and a
 * load may run before older stores commit: a handshake whose fence is missing loses only if
 * its store is still buffered when its load runs, a window of nanoseconds that no delay
 * widens. Stores to lines that are in no cache, just before the step, make the step's store
 * wait behind them for about a microsecond while its load runs at once. */
#ifndef CT_SBUF_H
#define CT_SBUF_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "atomics.h"
#include "ct.h"
#include "hooks.h"

#ifndef CT_SBUF_STUFF
#define CT_SBUF_STUFF 40 /* slow stores ahead of the step: fewer than a store queue holds */
#endif
#define CT_SBUF_BYTES (64u << 20) /* more than any last-level cache of the machines we use */

static uint8_t *ct_sbuf_cold;
static uint64_t ct_sbuf_line;

/* 0, or -1 if the buffer cannot be had. Every page touched now: no page fault later. */
static inline int ct_sbuf_setup(void)
{
    void *p = mmap(NULL, CT_SBUF_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return -1;
    memset(p, 1, CT_SBUF_BYTES);
    ct_sbuf_cold = p;
    return 0;
}

/* CT_SBUF_STUFF stores to lines in no cache. A prime stride over the buffer: a line comes
 * back only after a million others. */
static inline void ct_sbuf_stuff(uint64_t v)
{
    for (unsigned k = 0; k < CT_SBUF_STUFF; k++) {
        ct_sbuf_line = (ct_sbuf_line + 7919) % (CT_SBUF_BYTES / 64);
        __atomic_store_n((uint64_t *)(void *)(ct_sbuf_cold + ct_sbuf_line * 64), v,
                         __ATOMIC_RELAXED);
    }
}

/* The other side: start its step a little later or sooner into the stuffer's window (0 to
 * 63 pauses, by round). */
static inline void ct_sbuf_jitter(uint64_t round)
{
    for (uint64_t n = ct_mix(round) % 64; n; n--)
        shm__cpu_relax();
}

/* ---- the control page -------------------------------------------------------------- */

/* Shared by the test's process (the watcher) and the two sides it forks: side 0 (producer,
 * server) pinned to CPU 0, side 1 (consumer, client) to CPU 1. */
struct ct_sbuf_ctl {
    uint64_t go;       /* round whose step the stuffer is taking */
    uint64_t acked;    /* rounds done: the other side's step (stream), an answer (service) */
    uint64_t received; /* service: rounds whose request the server has (answered at go) */
    uint64_t stop;     /* set by the watcher: the sides end */
    int rc[2];         /* each side's last result */
    uint64_t bad;      /* the first round that saw a wrong message */
};
static struct ct_sbuf_ctl *ct_ctl;

/* A fresh (zeroed) control page, before the sides are forked. */
static inline void ct_sbuf_ctl_map(void)
{
    ct_ctl = ct_shared(sizeof *ct_ctl);
}

/* A side's start: its liveness slice one hour (a lost wake-up then leaves it asleep for
 * good, a state the watcher sees), pinned to its own CPU. */
static inline void ct_sbuf_side(int side)
{
    shm__hook_liveness_slice_ns = 3600ull * CT_SEC;
    ct_pin(side);
}

/* Wait on the control page for *p >= v (or the watcher's stop). */
static inline void ct_sbuf_await(const uint64_t *p, uint64_t v)
{
    while (ct_ld(p) < v && !ct_ld(&ct_ctl->stop))
        shm__cpu_relax();
}

/* The watcher's loop condition: rounds to go, and neither a stop, a side's error nor a wrong
 * message. */
static inline int ct_sbuf_running(uint64_t rounds)
{
    return ct_ld(&ct_ctl->acked) < rounds && !ct_ld(&ct_ctl->stop) && !ct_ctl->rc[0] &&
           !ct_ctl->rc[1] && !ct_ld(&ct_ctl->bad);
}

/* A side's end: its result on the control page, then no close (whose wake would end a lost
 * wake-up) until the watcher stops. Returns the side's exit status. */
static inline int ct_sbuf_finish(shm_channel_t *ch, int rc, int side)
{
    ct_ctl->rc[side] = rc;
    while (!ct_ld(&ct_ctl->stop))
        ct_sleep_ms(1);
    shm_channel_close(ch);
    return rc ? 1 : 0;
}

#endif
