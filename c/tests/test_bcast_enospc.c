/* ENOSPC for broadcast channels (kind 2), as for streams (test_proc_enospc.c, whose private
 * 8 MiB tmpfs this reuses through ct_small_tmpfs): a broadcast segment larger than the free
 * space of the segment directory fails up front with -ENOSPC, whichever role creates it, and
 * leaves no file and no space in use behind; one that fits has every page reserved at
 * creation, so with the rest of the tmpfs filled up every slot can still be written (no
 * SIGBUS) and read back. Skipped, saying why, where unshare or mount is refused. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ct.h"
#include "ct_enospc.h"

TestSuite(bcast_enospc, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

#define TMPFS_SIZE CT_ENOSPC_TMPFS
#define SEED 0xE05BCull

static int in_small_tmpfs(void)
{
    struct statvfs vfs;
    /* 16 slots of 1 MiB: more than the whole tmpfs */
    shm_channel_broadcast_config_t big = {1u << 20, 16, 8, "u8[1048576]", {0}};
    shm_channel_t *p = NULL, *s = NULL;
    int rc = shm_channel_open_broadcast(&p, "big", SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE,
                                        &big, 0600);
    CHECK(rc == -ENOSPC, "a broadcast segment larger than the tmpfs: %s",
          shm_channel_strerror(rc));
    rc = shm_channel_open_broadcast(&s, "big", SHM_CHANNEL_SUBSCRIBER,
                                    SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, &big, 0600);
    CHECK(rc == -ENOSPC, "the same, created by a subscriber: %s", shm_channel_strerror(rc));
    CHECK(p == NULL && s == NULL, "no handle on failure");
    CHECK(ct_count_entries(env->mnt) == 0, "a failed creation left %d files", ct_count_entries(env->mnt));
    CHECK(statvfs(env->mnt, &vfs) == 0 && vfs.f_bfree == vfs.f_blocks,
          "a failed creation left space in use");
    rc = shm_channel_open_broadcast(&s, "big", SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0);
    CHECK(rc == -ENOENT, "the name does not exist: %s", shm_channel_strerror(rc));

    /* One that fits (4 slots of 1 MiB), then the rest of the tmpfs taken by another file */
    shm_channel_broadcast_config_t fits = {1u << 20, 4, 8, NULL, {0}};
    rc = shm_channel_open_broadcast(&p, "fits", SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, &fits,
                                    0600);
    CHECK(rc == 0, "a broadcast segment that fits: %s", shm_channel_strerror(rc));
    rc = shm_channel_open_broadcast(&s, "fits", SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0);
    CHECK(rc == 0, "its subscriber: %s", shm_channel_strerror(rc));
    char filler[4200];
    int64_t filled = ct_enospc_fill(filler, sizeof filler);
    CHECK(filled >= 0, "filler: %s", strerror((int)-filled));
    CHECK(statvfs(env->mnt, &vfs) == 0 && vfs.f_bavail == 0, "the tmpfs is full");
    shm_channel_t *x = NULL;
    shm_channel_broadcast_config_t small = {64, 2, 1, NULL, {0}};
    rc = shm_channel_open_broadcast(&x, "more", SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, &small,
                                    0600);
    CHECK(rc == -ENOSPC, "a small broadcast segment on a full tmpfs: %s",
          shm_channel_strerror(rc));
    CHECK(ct_count_entries(env->mnt) == 2, "a failed creation left a file (%d entries)",
          ct_count_entries(env->mnt));

    /* every byte of every slot, twice around: a page missing from the reservation would be a
     * SIGBUS here (the parent sees the signal) */
    uint64_t max = shm_channel_max_payload(p);
    uint8_t *buf = malloc(max);
    CHECK(buf, "malloc");
    for (uint64_t m = 1; m <= 8; m++) {
        ct_msg_fill(buf, SEED, m, max);
        CHECK(shm_channel_write(p, buf, max, 0) == 0, "publish %llu", (unsigned long long)m);
        uint64_t len, missed;
        memset(buf, 0, max);
        CHECK(shm_channel_recv(s, buf, max, &len, &missed, 0) == 0 && missed == 0 &&
                  ct_msg_verify(buf, len, SEED, m, max) == 0,
              "message %llu read back", (unsigned long long)m);
    }
    free(buf);
    shm_channel_close(s);
    shm_channel_close(p);
    CHECK(ct_count_entries(env->mnt) == 1, "the finished channel was removed, the filler stays");
    unlink(filler);
    return 0;
}

Test(bcast_enospc, nearly_full_tmpfs)
{
    ct_enospc_run(in_small_tmpfs, "broadcast ENOSPC");
}
