#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hooks.h"
#include "layout.h"
#include "shm_channel.h"

int shm__name_check(const char *name, char *out)
{
    if (!name)
        return -EINVAL;
    if (name[0] == '/')
        name++;
    size_t n = strlen(name);
    if (n == 0 || n > SHM_CHANNEL_NAME_MAX || name[0] == '.')
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return -EINVAL;
    }
    memcpy(out, name, n + 1);
    return 0;
}

int shm__dir_open(void)
{
    int fd = open(shm_channel_dir(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int set_lock(int fd, int byte, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    return (errno == EAGAIN || errno == EACCES) ? -EBUSY : -errno;
}

int shm__lock_try(int fd, int byte, int exclusive)
{
    return set_lock(fd, byte, exclusive ? F_WRLCK : F_RDLCK);
}

void shm__lock_drop(int fd, int byte)
{
    (void)set_lock(fd, byte, F_UNLCK);
}

uint64_t shm__hook_lock_check_delay_ns = 0;

void shm__hook_sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

int shm__lock_held_range(int fd, int byte, int len)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = len};
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
        return -errno;
    return fl.l_type != F_UNLCK;
}

int shm__lock_held(int fd, int byte)
{
    /* Before the check: the caller read the peer's state just now. */
    shm__hook_pause(shm__hook_lock_check_delay_ns);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
        return -errno;
    return fl.l_type != F_UNLCK;
}

static int take_locks(int fd, unsigned locks)
{
    for (int b = 0; b < 3; b++) {
        if (!(locks & (1u << b)))
            continue;
        int rc = shm__lock_try(fd, b, b != SHM__LOCK_ATTACH);
        if (rc)
            return rc;
    }
    return 0;
}

int shm__segment_reserve(int fd, uint64_t size)
{
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS)
        return -errno;
    int rc = posix_fallocate(fd, 0, (off_t)size);
    return -rc;
}

static int fill_new(int fd, uint64_t size, uint32_t mode, void (*init)(void *, void *),
                    void *arg, unsigned locks)
{
    int rc;
    if (fchmod(fd, mode) != 0)
        return -errno;
    if ((rc = shm__segment_reserve(fd, size)) != 0)
        return rc;
    if ((rc = take_locks(fd, locks)) != 0)
        return rc;
    void *base = NULL;
    if ((rc = shm__map(fd, size, 1, &base)) != 0)
        return rc;
    init(base, arg);
    shm__unmap(base, size);
    return 0;
}

int shm__segment_create(int dirfd, const char *name, uint64_t size, uint32_t mode,
                        void (*init)(void *base, void *arg), void *arg, unsigned locks,
                        int *out)
{
    int rc;
    /* Any entry under the name (a segment, or a squatter: a directory, socket, FIFO,
     * symlink, another user's file) is EEXIST, without first allocating a segment that
     * would be thrown away (and could fail with ENOSPC). linkat decides in the end. */
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return -EEXIST;
    /* Preferred: an unnamed file, initialised, then linked under its name in one step;
     * nobody can see it half-made and a crash leaves nothing behind. */
    int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode & 0777);
    if (fd >= 0) {
        if ((rc = fill_new(fd, size, mode, init, arg, locks)) != 0)
            goto fail;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (linkat(AT_FDCWD, path, dirfd, name, AT_SYMLINK_FOLLOW) == 0) {
            *out = fd;
            return 0;
        }
        rc = -errno;
        if (rc != -ENOENT) /* ENOENT: /proc is not mounted; use the named fallback */
            goto fail;
        close(fd);
    }
    /* Fallback: a hidden temporary name, linked to the real one, then removed. */
    char tmp[96];
    snprintf(tmp, sizeof tmp, ".shm_channel-tmp.%ld.%lx", (long)getpid(),
             (unsigned long)shm__now_ns());
    fd = openat(dirfd, tmp, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, mode & 0777);
    if (fd < 0)
        return -errno;
    rc = fill_new(fd, size, mode, init, arg, locks);
    if (rc == 0 && linkat(dirfd, tmp, dirfd, name, 0) != 0)
        rc = -errno;
    unlinkat(dirfd, tmp, 0);
    if (rc == 0) {
        *out = fd;
        return 0;
    }
fail:
    close(fd);
    return rc;
}

int shm__segment_open(int dirfd, const char *name, int writable, int *out)
{
    /* O_NONBLOCK: a FIFO squatting on the name must not block the open (refused below). */
    int fd = openat(dirfd, name,
                    (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        int err = errno;
        /* A name that is not a regular file (symlink: ELOOP, directory: EISDIR, socket:
         * ENXIO, ...) is refused as EACCES, whichever way open() failed on it. */
        if (err != ENOENT && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            !S_ISREG(st.st_mode))
            return -EACCES;
        return -err;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EACCES;
    }
    *out = fd;
    return 0;
}

int shm__segment_read_header(int fd, void *buf, uint64_t len)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, (size_t)(len - done), (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EAGAIN; /* shorter than it was a moment ago */
        done += (uint64_t)n;
    }
    return 0;
}

int shm__segment_check_owner(int fd, uint32_t mode)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (st.st_uid != geteuid())
        return -EACCES;
    if ((st.st_mode & 0777) & ~(mode & 0777))
        return -EACCES;
    return 0;
}

int shm__segment_size(int fd, uint64_t *size, uint64_t *nlink)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    *nlink = (uint64_t)st.st_nlink;
    return 0;
}

int shm__segment_allocated(int fd, uint64_t *allocated, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    *allocated = (uint64_t)st.st_blocks * 512u;
    *size = (uint64_t)st.st_size;
    return 0;
}

int shm__map(int fd, uint64_t len, int writable, void **base)
{
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void *p = mmap(NULL, (size_t)len, prot, MAP_SHARED | (writable ? MAP_POPULATE : 0), fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *base = p;
    return 0;
}

void shm__unmap(void *base, uint64_t len)
{
    if (base)
        munmap(base, (size_t)len);
}

void shm__unlink_if_same(int dirfd, const char *name, int fd)
{
    struct stat mine, named;
    if (fstat(fd, &mine) != 0 || fstatat(dirfd, name, &named, AT_SYMLINK_NOFOLLOW) != 0)
        return;
    if (mine.st_dev == named.st_dev && mine.st_ino == named.st_ino)
        unlinkat(dirfd, name, 0);
}

uint64_t shm__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shm__realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int shm__futex_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000u),
                          .tv_nsec = (long)(timeout_ns % 1000000000u)};
    /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
    if (r == 0 || errno == EAGAIN)
        return 0;
    return errno == ETIMEDOUT ? -ETIMEDOUT : errno == EINTR ? -EINTR : 0;
}

void shm__futex_wake(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

/* ---- futexes with a bitset (the broadcast wake chain, spec/broadcast.md §5.7) -------- */

int shm__futex_wait_bits(uint32_t *word, uint32_t expected, uint64_t timeout_ns, uint32_t bits)
{
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
    uint64_t end = shm__now_ns() + timeout_ns;
    struct timespec ts = {.tv_sec = (time_t)(end / 1000000000u),
                          .tv_nsec = (long)(end % 1000000000u)};
    /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, &ts, NULL, bits);
    if (r == 0)
        return 1; /* dequeued by a wake (the kernel retries spurious returns itself) */
    return errno == EAGAIN ? 0 : errno == ETIMEDOUT ? -ETIMEDOUT : errno == EINTR ? -EINTR : 0;
}

int shm__futex_wake_bits(uint32_t *word, int n, uint32_t bits)
{
    long r = syscall(SYS_futex, word, FUTEX_WAKE_BITSET, n, NULL, NULL, bits);
    return r > 0 ? (int)r : 0;
}
