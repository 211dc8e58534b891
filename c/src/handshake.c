/* membarrier for the stream's asymmetric wake handshake (handshake.h, spec §5.10). */
#define _GNU_SOURCE
#include "handshake.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hooks.h"

int shm__hook_handshake_fence_only = 0;

static long membarrier(int cmd)
{
#ifdef SYS_membarrier
    return syscall(SYS_membarrier, cmd, 0, 0);
#else
    (void)cmd;
    errno = ENOSYS;
    return -1;
#endif
}

void shm__hs_advertise(uint32_t *word, uint32_t hs)
{
    if (shm__hook_handshake_fence_only == 1)
        return; /* a layout-1.0 side knows of no such word: it leaves what it finds */
    shm__store_relaxed(word, hs);
}

uint32_t shm__hs_register(void)
{
    if (shm__hook_handshake_fence_only)
        return SHM__HS_FENCE;
    /* The private expedited command would not do: it reaches only threads of the caller's
     * own address space, and the publisher is another process. The global expedited one
     * reaches every registered process's running threads. */
    if (membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0)
        return SHM__HS_FENCE;
    return SHM__HS_MEMBARRIER;
}

int shm__hs_heavy_barrier(void)
{
    if (shm__hook_handshake_fence_only == 1)
        return 0; /* as a layout-1.0 side: it knows of no handshake word, issues nothing */
    if (shm__hook_handshake_fence_only == 2)
        return -ENOSYS;
    return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0 ? 0 : -errno;
}

/* ---- broadcast (handshake.h) ---- */
int shm__hs_sleeper_barrier(const uint32_t *publisher_hs)
{
    if (shm__load_relaxed(publisher_hs) != SHM__HS_MEMBARRIER)
        return 0;
    if (shm__hook_handshake_fence_only)
        return -ENOSYS;
    return shm__hs_heavy_barrier();
}
