/* The one spin-then-futex wait every kind uses (streams in channel.c, broadcast in
 * broadcast_api.c, services in service_api.c). The kind supplies what "ready" means and
 * how it announces a sleeper; this loop owns the order of the steps:
 *
 *   try; nothing yet and timeout 0: settle (peer verdict, without forcing the lock check);
 *   spin for spin_ns re-trying; then each round: prepare (load the futex word, announce
 *   the sleeper, full fence), try, settle (forced), deadline, FUTEX_WAIT for at most one
 *   liveness slice; done. After the last round: finish.
 *
 * prepare MUST load the futex value before it announces the sleeper and fence after it
 * (store-fence-load against the waker's store-fence-load: spec/README.md §5.6). */
#ifndef SHM_CHANNEL_WAIT_H
#define SHM_CHANNEL_WAIT_H

#include <stdint.h>

struct shm__wait {
    /* One attempt: -EAGAIN while not ready, anything else ends the wait with that value. */
    int (*try_once)(void *arg);
    /* Nothing ready: the peer's verdict (-EAGAIN: keep waiting). force: a lock check now,
     * not rate-limited. May be NULL (no peer to check). */
    int (*settle)(void *arg, int force);
    /* Announce a sleeper on *word and return the value to wait on (see above). */
    uint32_t (*prepare)(void *arg, uint32_t **word);
    /* The sleep itself, in place of shm__futex_wait(word, seen, slice_ns) (NULL: that call):
     * returns as it does (0, -ETIMEDOUT, -EINTR). Broadcast sleeps in a wake chain. */
    int (*sleep)(void *arg, uint32_t *word, uint32_t seen, uint64_t slice_ns);
    /* After each sleeping round (NULL: none). */
    void (*done)(void *arg);
    /* Once, after the sleeping rounds (NULL: none). */
    void (*finish)(void *arg);
    void *arg;
    uint64_t spin_ns;
    uint64_t *misses; /* counted once when the first try finds nothing (NULL: none) */
    uint64_t *sleeps; /* counted before every FUTEX_WAIT (NULL: none) */
    /* Read after each prepare: when nonzero, the longest sleep of that round (a stream
     * side unsure of its peer's handshake looks again soon, spec §5.10). NULL: none. */
    const uint64_t *slice_cap_ns;
    /* The caller already made the first try (inline, on its fast path) and it found nothing:
     * start from the miss (counted here, as for a first try of our own). */
    int tried;
};

/* Wait as above. timeout_ns: 0 never sleeps, negative waits forever. Returns what try or
 * settle returned, -ETIMEDOUT, or -EINTR. */
int shm__wait_run(const struct shm__wait *w, int64_t timeout_ns);

#endif
