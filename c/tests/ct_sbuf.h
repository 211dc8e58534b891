/* A store buffer full of slow stores, for the tests of the store-fence-load handshakes
 * (test_wake_store_buffer.c, test_svc_store_buffer.c). x86 commits stores in order, and a
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

#endif
