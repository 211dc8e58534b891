/* What the ENOSPC tests of every kind (test_proc_enospc.c, test_bcast_enospc.c) share: the
 * test body runs in a child process whose segment directory is a fresh tmpfs of
 * CT_ENOSPC_TMPFS bytes in a private mount namespace (ct_small_tmpfs); the child's checks
 * report to the test through a shared page; the filler that takes the rest of the tmpfs. */
#ifndef CT_ENOSPC_H
#define CT_ENOSPC_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"
#include "ct_criterion.h"

#define CT_ENOSPC_TMPFS (8ull << 20)

struct ct_enospc {
    char mnt[4096]; /* the tmpfs (the segment directory in the child) */
    char why[256];  /* the reason for a skip, or the failed check */
    int line;       /* of the failed check */
};
static struct ct_enospc *env;

/* In the child: a failed check ends it (exit 1) with its words and line on the shared page. */
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            snprintf(env->why, sizeof env->why, __VA_ARGS__);                              \
            env->line = __LINE__;                                                          \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

/* In the child: the rest of the tmpfs taken by the file <mnt>/filler (its path into `path`).
 * Returns the bytes written, or -errno of what stopped it before ENOSPC. */
static inline int64_t ct_enospc_fill(char *path, size_t len)
{
    snprintf(path, len, "%s/filler", env->mnt);
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    static uint8_t chunk[65536];
    memset(chunk, 'f', sizeof chunk);
    int64_t filled = 0;
    for (;;) {
        ssize_t w = write(fd, chunk, sizeof chunk);
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            return e == ENOSPC ? filled : -e;
        }
        filled += w;
    }
}

static int (*ct_enospc_body)(void);

static inline int ct_enospc_child(void *arg)
{
    (void)arg;
    int skip = ct_small_tmpfs(env->mnt, CT_ENOSPC_TMPFS, env->why, sizeof env->why);
    return skip ? skip : ct_enospc_body();
}

/* The test: body() in a child inside the private tmpfs; skipped, saying what goes `untested`,
 * where unshare or mount is refused. */
static inline void ct_enospc_run(int (*body)(void), const char *untested)
{
    env = ct_shared(sizeof *env);
    ct_enospc_body = body;
    snprintf(env->mnt, sizeof env->mnt, "%s/mnt", ct_dir());
    cr_assert_eq(mkdir(env->mnt, 0700), 0);
    int rc = ct_wait(ct_fork(ct_enospc_child, NULL));
    rmdir(env->mnt); /* the mount went with the child's namespace */
    if (rc == CT_SKIPPED)
        cr_skip_test("no private tmpfs here (%s): %s untested", env->why, untested);
    cr_assert_eq(rc, 0, "in the private tmpfs: %s (exit %d%s, check at line %d)", env->why, rc,
                 rc == 128 + SIGBUS ? ": SIGBUS" : "", env->line);
    munmap(env, sizeof *env);
}

#endif
