/* The one spin-then-futex wait (wait.h). */
#define _GNU_SOURCE
#include "wait.h"

#include <errno.h>

#include "atomics.h"
#include "hooks.h"
#include "os.h"

static int settle(const struct shm__wait *w, int force)
{
    return w->settle ? w->settle(w->arg, force) : -EAGAIN;
}

int shm__wait_run(const struct shm__wait *w, int64_t timeout_ns)
{
    int rc = -EAGAIN;
    if (!w->tried && (rc = w->try_once(w->arg)) != -EAGAIN)
        return rc;
    if (w->misses)
        shm__counter_add(w->misses, 1);
    if (timeout_ns == 0)
        return settle(w, 0);

    uint64_t start = shm__now_ns();
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
    if (w->spin_ns) {
        uint64_t spin_end = start + w->spin_ns;
        if (spin_end > deadline)
            spin_end = deadline;
        for (unsigned i = 1;; i++) {
            shm__cpu_relax();
            if ((rc = w->try_once(w->arg)) != -EAGAIN)
                return rc;
            if ((i & 63) == 0 && shm__now_ns() >= spin_end)
                break;
        }
    }

    for (;;) {
        uint32_t *word;
        uint32_t seen = w->prepare(w->arg, &word);
        /* The sleeper is announced and fenced: re-check, then the peer, then sleep. */
        if ((rc = w->try_once(w->arg)) == -EAGAIN && (rc = settle(w, 1)) == -EAGAIN) {
            uint64_t now = shm__now_ns();
            if (now >= deadline) {
                rc = -ETIMEDOUT;
            } else {
                uint64_t slice = shm__hook_liveness_slice_ns;
                if (deadline - now < slice)
                    slice = deadline - now;
                if (w->slice_cap_ns && *w->slice_cap_ns && slice > *w->slice_cap_ns)
                    slice = *w->slice_cap_ns;
                if (w->sleeps)
                    shm__counter_add(w->sleeps, 1);
                int r = w->sleep ? w->sleep(w->arg, word, seen, slice)
                                 : shm__futex_wait(word, seen, slice);
                if (r == -EINTR)
                    rc = -EINTR;
            }
        }
        if (w->done)
            w->done(w->arg);
        if (rc != -EAGAIN)
            break;
    }
    if (w->finish)
        w->finish(w->arg);
    return rc;
}
