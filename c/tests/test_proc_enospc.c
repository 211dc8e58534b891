/* ENOSPC on a nearly full tmpfs, not just an impossible 1 TiB request: a child process gets
 * a private mount namespace with an 8 MiB tmpfs as its segment directory. A segment one page
 * larger than the whole tmpfs fails with -ENOSPC at creation and leaves no file behind; one
 * that fits is created, the rest of the tmpfs is filled up by another file, and the ring can
 * still be written through completely (every page, twice around) without SIGBUS: its pages
 * were reserved at creation. Skipped, saying why, where unshare or mount is refused. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ct.h"
#include "ct_enospc.h"

TestSuite(enospc, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

#define TMPFS_SIZE CT_ENOSPC_TMPFS
#define SEED 5150

/* Write messages of `len` until the ring is full, then read and check them all. Returns the
 * number of messages, or -1 on a wrong message. */
static int64_t fill_and_drain(shm_channel_t *p, shm_channel_t *c, uint8_t *buf, uint64_t len,
                              uint64_t *seq)
{
    uint64_t first = *seq, n = 0;
    for (;; n++) {
        ct_msg_fill(buf, SEED, first + n, len);
        if (shm_channel_write(p, buf, len, 0) != 0)
            break;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t got;
        if (shm_channel_read(c, buf, len, &got, 0) != 0 ||
            ct_msg_verify(buf, got, SEED, first + i, len) != 0)
            return -1;
    }
    *seq += n;
    return (int64_t)n;
}

static int in_small_tmpfs(void)
{
    struct statvfs vfs;
    CHECK(statvfs(env->mnt, &vfs) == 0 && (uint64_t)vfs.f_blocks * vfs.f_frsize == TMPFS_SIZE,
          "the tmpfs is not 8 MiB");

    /* One page too large: the header (4 KiB) plus an 8 MiB ring. */
    shm_channel_t *p = NULL, *c = NULL;
    int rc = shm_channel_open(&p, "big", SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, TMPFS_SIZE, 0);
    CHECK(rc == -ENOSPC, "a segment larger than the tmpfs: %s", shm_channel_strerror(rc));
    rc = shm_channel_open(&c, "big", SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL,
                          TMPFS_SIZE, 0);
    CHECK(rc == -ENOSPC, "the same as a consumer: %s", shm_channel_strerror(rc));
    CHECK(p == NULL && c == NULL, "no handle on failure");
    CHECK(ct_count_entries(env->mnt) == 0, "a failed creation left %d files", ct_count_entries(env->mnt));
    CHECK(statvfs(env->mnt, &vfs) == 0 && vfs.f_bfree == vfs.f_blocks,
          "a failed creation left space in use");
    rc = shm_channel_open(&p, "big", SHM_CHANNEL_PRODUCER, 0, 0, 0);
    CHECK(rc == -ENOENT, "the name does not exist: %s", shm_channel_strerror(rc));

    /* One that fits (4 MiB + 4 KiB), then the rest of the tmpfs taken by another file. */
    const uint64_t cap = TMPFS_SIZE / 2;
    rc = shm_channel_open(&p, "fits", SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, cap, 0);
    CHECK(rc == 0, "a segment that fits: %s", shm_channel_strerror(rc));
    rc = shm_channel_open(&c, "fits", SHM_CHANNEL_CONSUMER, 0, 0, 0);
    CHECK(rc == 0, "its consumer: %s", shm_channel_strerror(rc));
    char filler[4200];
    int64_t filled = ct_enospc_fill(filler, sizeof filler);
    CHECK(filled >= 0, "filler: %s", strerror((int)-filled));
    CHECK(statvfs(env->mnt, &vfs) == 0 && vfs.f_bavail == 0, "the tmpfs is full");
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t seg_pages = (SHM_CHANNEL_HEADER_SIZE + cap + page - 1) / page;
    CHECK((uint64_t)filled == TMPFS_SIZE - seg_pages * page,
          "the filler took %llu bytes, not all but the segment's %llu pages: they were not "
          "all reserved at creation", (unsigned long long)filled, (unsigned long long)seg_pages);
    shm_channel_t *x = NULL;
    rc = shm_channel_open(&x, "more", SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024, 0);
    CHECK(rc == -ENOSPC, "a small segment on a full tmpfs: %s", shm_channel_strerror(rc));
    CHECK(ct_count_entries(env->mnt) == 2, "a failed creation left a file (%d entries)", ct_count_entries(env->mnt));

    /* Every page of the ring, written around twice, in records of several sizes: a page
     * missing from the reservation would be a SIGBUS here (the parent sees the signal). */
    uint64_t max = shm_channel_max_payload(p);
    uint8_t *buf = malloc(max);
    CHECK(buf, "malloc");
    uint64_t seq = 0;
    const uint64_t sizes[] = {65536, 4000, max, 100, 300000};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            int64_t n = fill_and_drain(p, c, buf, sizes[i], &seq);
            CHECK(n > 0, "records of %llu bytes: %s", (unsigned long long)sizes[i],
                  n < 0 ? "a wrong message" : "none fit");
        }
    }
    shm_channel_stat_t st;
    CHECK(shm_channel_stat(c, &st) == 0 && st.write_pos >= 2 * cap && st.msgs_read == seq,
          "the ring went around twice (write_pos %llu)", (unsigned long long)st.write_pos);
    free(buf);
    shm_channel_close(p);
    shm_channel_close(c);
    CHECK(ct_count_entries(env->mnt) == 1, "the finished stream was removed, the filler stays");
    unlink(filler);
    return 0;
}

Test(enospc, nearly_full_tmpfs)
{
    ct_enospc_run(in_small_tmpfs, "ENOSPC on a nearly full tmpfs");
}
