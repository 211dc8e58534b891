/* The wake handshake of a stream (spec/README.md §5.10): how a side that published orders its
 * position store before its load of the peer's waiting flag, and what a side about to sleep
 * does so that the two never miss each other.
 *
 *  - fence (layout 1.0, every implementation): the publisher runs a full fence after its
 *    position store; the sleeper stores its waiting flag, runs a full fence, re-reads.
 *  - membarrier (layout 1.1): a side registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED says so in
 *    its `*_handshake` word; while both words say so, a publisher only keeps the compiler from
 *    moving its load above its store, and the sleeper pays instead: after its fence it issues
 *    membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which runs a full barrier on every CPU that
 *    runs a thread of a registered process (the publisher's). */
#ifndef SHM_CHANNEL_HANDSHAKE_H
#define SHM_CHANNEL_HANDSHAKE_H

#include <stdint.h>

#include "atomics.h"

#define SHM__HS_FENCE 0u      /* layout 1.0's handshake; also what a 1.0 side leaves (zero) */
#define SHM__HS_MEMBARRIER 1u /* registered: publishes without a fence against a 1 peer */

/* Called at every attach of a stream role: register this process for
 * MEMBARRIER_CMD_GLOBAL_EXPEDITED (registration belongs to the address space, so a forked
 * child registers again on its own open). SHM__HS_MEMBARRIER if that worked, else
 * SHM__HS_FENCE (no syscall, a seccomp filter, an old kernel, or the test knob). */
uint32_t shm__hs_register(void);

/* Store this side's handshake word: its handshake at attach (before its state 1), and
 * SHM__HS_FENCE at a clean close (before its state 2), so that whoever takes the role next,
 * of any layout version, is never taken for a membarrier side. */
void shm__hs_advertise(uint32_t *word, uint32_t hs);

/* The sleeper's heavy barrier (spec §5.10 step S3), when the peer's word is
 * SHM__HS_MEMBARRIER: 0, or -errno if the barrier could not be issued (the caller then
 * sleeps at most SHM__HS_UNSURE_SLICE_NS). Never called when the peer's word is 0. */
int shm__hs_heavy_barrier(void);

#define SHM__HS_UNSURE_SLICE_NS 1000000ull

/* Publish side, after the release store of its position (spec §5.4 step 7, §5.5 step 5):
 * order that store before the load of the peer's waiting flag, then load it. `own` is this
 * side's handshake, `peer_hs` the peer's word (in the same cache line as `peer_waiting`, so
 * reading it costs no extra line). Returns the flag: non-zero if the peer may be asleep
 * (shm__hs_wake_needed says whether a wake call is due). */
static inline uint32_t shm__hs_peer_waiting(uint32_t own, const uint32_t *peer_hs,
                                            const uint32_t *peer_waiting)
{
    if (own == SHM__HS_MEMBARRIER && shm__load_relaxed(peer_hs) == SHM__HS_MEMBARRIER)
        __atomic_signal_fence(__ATOMIC_SEQ_CST); /* compiler only: the sleeper's membarrier */
    else
        shm__fence_seq_cst();
    return shm__load_relaxed(peer_waiting);
}

/* The waiting flag a 1.1 sleeper stores (spec §5.6 step 2, §5.11): SHM__WAITING_SEQ | seen,
 * where seen is the value of the futex word it is about to sleep on. Non-zero, so a 1.0
 * waker (which only tests for non-zero) still wakes it. */
#define SHM__WAITING_SEQ 0x80000000u
static inline uint32_t shm__hs_waiting_flag(uint32_t seen)
{
    return SHM__WAITING_SEQ | seen;
}

/* Waker, after shm__hs_peer_waiting returned `waiting` != 0: is a wake (increment of `own_seq`,
 * the futex word only this side writes, and FUTEX_WAKE) due? Not when the flag names a value
 * of the word other than its current one (low 31 bits): every change of the word came with a
 * FUTEX_WAKE, so a sleeper on that older value was woken already, or its FUTEX_WAIT returns
 * at once (spec §5.11). A flag without SHM__WAITING_SEQ (a 1.0 sleeper's 1) always wants it. */
static inline int shm__hs_wake_needed(uint32_t waiting, const uint32_t *own_seq)
{
    if (!(waiting & SHM__WAITING_SEQ))
        return waiting != 0;
    return ((waiting ^ shm__load_relaxed(own_seq)) & ~SHM__WAITING_SEQ) == 0;
}

/* Sleep side, after storing its waiting flag and a full fence, before re-reading the peer's
 * position (spec §5.6 step 2): the heavy barrier when the peer may publish without a fence.
 * 0, or -errno as shm__hs_heavy_barrier. */
static inline int shm__hs_before_sleep(const uint32_t *peer_hs)
{
    if (shm__load_relaxed(peer_hs) != SHM__HS_MEMBARRIER)
        return 0;
    return shm__hs_heavy_barrier();
}

/* ---- broadcast (spec/broadcast.md §5.7): the subscriber's side of the same handshake ---- */
/* A broadcast subscriber about to sleep, after its registration and full fence: nothing if
 * the publisher's word is not SHM__HS_MEMBARRIER; else the heavy barrier. 0, or -errno if
 * the barrier could not be issued (the caller then sleeps at most SHM__HS_UNSURE_SLICE_NS).
 * A subscriber always knows the word (broadcast was born with it), so the test knob's
 * fence-only side (1) counts here as one whose barrier failed, as 2 does. */
int shm__hs_sleeper_barrier(const uint32_t *publisher_hs);

#endif
