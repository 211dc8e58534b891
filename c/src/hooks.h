/* Test-only knobs, so that tests can make rare interleavings common and lost wake-ups
 * visible. Internal: the shared library's version script does not export them; the tests,
 * which link the static library, set them. Their defaults are the production behaviour,
 * and production code never changes them. */
#ifndef SHM_CHANNEL_HOOKS_H
#define SHM_CHANNEL_HOOKS_H

#include <stdint.h>

#include "shm_channel.h"

/* Longest single futex sleep of a blocked call before it re-checks the peer's liveness
 * (spec §5.6 step 2). Default 50 ms. A test that sets it to many seconds turns a lost
 * wake-up into a timeout it can see. */
extern uint64_t shm__hook_liveness_slice_ns;

/* Sleep this long before every F_OFD_GETLK liveness check (default 0): widens the window
 * between reading a peer's state and finding its lock free. */
extern uint64_t shm__hook_lock_check_delay_ns;

/* Make `dst` use `src`'s mapping of the same segment (both opened on one name in this
 * process), so that ThreadSanitizer, which tracks addresses, sees both sides' accesses to
 * the shared words. dst's own mapping is released. 0, or -EINVAL if the two handles are
 * not of the same segment. */
/* The wake handshake (spec §5.10) as a side without membarrier would run it. 1: this
 * process's stream handles behave as a layout-1.0 side: they never touch the handshake words,
 * fence on every publish, issue no membarrier before sleeping. 2: a 1.1 side whose
 * membarrier registration failed (a kernel or container without it): word 0, fence on every
 * publish, and its heavy barrier fails too (it then bounds its sleeps). Default 0: register
 * and use membarrier when possible. */
extern int shm__hook_handshake_fence_only;

int shm__hook_share_mapping(shm_channel_t *dst, const shm_channel_t *src);

/* Sleep this long in a server's answer to a request it reads in place, between its two
 * stores: freeing the request buffer and naming the answer (spec/service.md §5.6 steps 4, 5;
 * default 0). A client that could see its answer before its buffer is free would then find
 * the buffer taken (§6 (e)); test_svc_answer_order sets it. */
extern uint64_t shm__hook_svc_answer_delay_ns;

/* The broadcast wake chain (spec/broadcast.md §5.7), this process's side of it. 0 (default):
 * the chain. 1: a "publisher wakes all" side (layout 1.1 before the chain): its publisher
 * wakes every sleeper in its own FUTEX_WAKE, its subscribers sleep with a plain FUTEX_WAIT
 * and pass no wake on. 2: the chain, but a subscriber woken by a wake call stops itself
 * (SIGSTOP) before it passes the wake on: a test kills it there, a dead link. */
extern int shm__hook_bcast_chain;

/* The knobs' pause: nanosleep(ns); shm__hook_pause(0), the production value, makes no call. */
void shm__hook_sleep_ns(uint64_t ns);
static inline void shm__hook_pause(uint64_t ns)
{
    if (__builtin_expect(ns != 0, 0))
        shm__hook_sleep_ns(ns);
}

#endif
