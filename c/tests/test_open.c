/* shm_channel_open: argument and name validation, creation, ENOENT/EEXIST, capacity, roles
 * (EBUSY), permissions (EACCES, ALLOW_FOREIGN), ENOSPC, the bounded wait for a segment being
 * initialised, and refusal of files that are not segments. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"
#include "ring.h"

TestSuite(open, .init = ct_setup, .fini = ct_teardown, .timeout = 30);

static int open_rc(const char *name, uint32_t role, uint32_t flags, uint64_t cap, uint32_t mode)
{
    shm_channel_t *ch = (shm_channel_t *)(uintptr_t)1;
    int rc = shm_channel_open(&ch, name, role, flags, cap, mode);
    if (rc == 0) {
        cr_assert_not_null(ch);
        shm_channel_close(ch);
    } else {
        cr_assert_null(ch, "*out is NULL on failure");
    }
    return rc;
}

static shm_channel_t *must_open(const char *name, uint32_t role, uint32_t flags, uint64_t cap)
{
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open(&ch, name, role, flags, cap, 0);
    cr_assert_eq(rc, 0, "open %s role %u: %s", name, role, shm_channel_strerror(rc));
    return ch;
}

Test(open, invalid_names)
{
    char long_name[SHM_CHANNEL_NAME_MAX + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0; /* 201 characters */
    const char *bad[] = {"", "/", "//x", ".hidden", "/.hidden", ".", "..", "a/b", "a b",
                         "a\tb", "caf\xc3\xa9", "x*", "x?", "x\\y", "x:y", "-\n", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(open_rc(bad[i], SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), -EINVAL,
                     "name \"%s\"", bad[i]);
        cr_assert_eq(shm_channel_unlink(bad[i], 0), -EINVAL, "unlink \"%s\"", bad[i]);
    }
    cr_assert_eq(open_rc(NULL, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), -EINVAL);
    cr_assert_eq(shm_channel_unlink(NULL, 0), -EINVAL);
    cr_assert_eq(ct_count_files(), 0, "nothing was created");
}

Test(open, valid_names)
{
    char max_name[SHM_CHANNEL_NAME_MAX + 1];
    memset(max_name, 'z', SHM_CHANNEL_NAME_MAX);
    max_name[SHM_CHANNEL_NAME_MAX] = 0;
    const char *good[] = {max_name, "a", "A-z_0.9", "-dash", "_", "x..y"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert_eq(open_rc(good[i], SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0,
                     "name \"%s\"", good[i]);
        cr_assert(ct_exists(good[i]), "segment %s created", good[i]);
        cr_assert_eq(shm_channel_unlink(good[i], 0), 0);
        cr_assert(!ct_exists(good[i]));
    }
    /* A leading '/' is the shm_open convention: the same channel. */
    char name[64], slashed[80];
    ct_name(name, "slash");
    snprintf(slashed, sizeof slashed, "/%s", name);
    shm_channel_t *p = must_open(slashed, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    cr_assert(ct_exists(name));
    cr_assert_eq(open_rc(name, SHM_CHANNEL_PRODUCER, 0, 0, 0), -EBUSY, "same channel");
    shm_channel_close(p);
    shm_channel_unlink(name, SHM_CHANNEL_FORCE);
}

Test(open, invalid_arguments)
{
    char n[64];
    ct_name(n, "args");
    shm_channel_t *ch;
    cr_assert_eq(shm_channel_open(NULL, n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), -EINVAL);
    uint32_t roles[] = {0, 8, 100, UINT32_MAX}; /* 8: the first role no kind has */
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(open_rc(n, roles[i], SHM_CHANNEL_CREATE, 0, 0), -EINVAL, "role %u", roles[i]);
    uint32_t flags[] = {8, 16, 0x80000000u, SHM_CHANNEL_CREATE | 8,
                        SHM_CHANNEL_EXCL /* without CREATE */};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, flags[i], 0, 0), -EINVAL, "flags %#x",
                     flags[i]);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, SHM_CHANNEL_CREATE, 0, 0), -EINVAL,
                 "an observer never creates");
    uint64_t caps[] = {1, 512, 1000, 1025, 3072, (1ull << 40) + 1024, 1ull << 41, UINT64_MAX};
    for (size_t i = 0; i < 8; i++)
        cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, caps[i], 0), -EINVAL,
                     "capacity %llu", (unsigned long long)caps[i]);
    uint32_t modes[] = {01000, 02600, 04600, 010000, UINT32_MAX};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, modes[i]), -EINVAL,
                     "mode %o", modes[i]);
    (void)ch;
    cr_assert_eq(ct_count_files(), 0, "nothing was created");
}

Test(open, enoent_without_create)
{
    char n[64];
    ct_name(n, "noent");
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0), -ENOENT);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_CONSUMER, 0, 0, 0), -ENOENT);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, 0, 0, 0), -ENOENT);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_ALLOW_FOREIGN, 0, 0), -ENOENT);
    cr_assert_eq(ct_count_files(), 0);
}

Test(open, missing_directory)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/does-not-exist", ct_dir());
    setenv("SHM_CHANNEL_DIR", dir, 1);
    cr_assert_eq(open_rc("x", SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), -ENOENT);
    setenv("SHM_CHANNEL_DIR", ct_dir(), 1);
}

Test(open, create_sets_size_and_mode_regardless_of_umask)
{
    char n[64];
    mode_t old = umask(0077);
    ct_name(n, "mode");
    shm_channel_t *ch = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0);
    struct stat st;
    cr_assert_eq(stat(ct_path(n), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "default mode 0600, got %o", st.st_mode & 07777);
    cr_assert_eq((uint64_t)st.st_size, 4096 + (uint64_t)SHM_CHANNEL_DEFAULT_CAPACITY);
    cr_assert_geq((uint64_t)st.st_blocks * 512, 4096 + (uint64_t)SHM_CHANNEL_DEFAULT_CAPACITY,
                  "every page is allocated up front");
    cr_assert_eq(st.st_uid, geteuid());
    cr_assert_eq(shm_channel_capacity(ch), SHM_CHANNEL_DEFAULT_CAPACITY);
    cr_assert_eq(shm_channel_max_payload(ch), SHM_CHANNEL_DEFAULT_CAPACITY / 2 - 8);
    shm_channel_close(ch);
    shm_channel_unlink(n, SHM_CHANNEL_FORCE);

    ct_name(n, "mode640");
    cr_assert_eq(shm_channel_open(&ch, n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 2048, 0640), 0);
    cr_assert_eq(stat(ct_path(n), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640, "umask 077 does not narrow the requested 0640");
    cr_assert_eq((uint64_t)st.st_size, 4096 + 2048);
    shm_channel_close(ch);
    umask(0);
    ct_name(n, "umask0");
    cr_assert_eq(shm_channel_open(&ch, n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    cr_assert_eq(stat(ct_path(n), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "umask 0 does not widen the default");
    shm_channel_close(ch);
    umask(old);
}

Test(open, no_temporary_files_left)
{
    char n[64];
    for (int i = 0; i < 10; i++) {
        ct_name(n, "tmp");
        shm_channel_t *ch = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024);
        shm_channel_close(ch);
    }
    cr_assert_eq(ct_count_files(), 10, "exactly the ten segments, no temporaries");
}

Test(open, create_excl_and_existing)
{
    char n[64];
    ct_name(n, "excl");
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL,
                                 4096);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, 4096, 0),
                 -EEXIST);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, 0, 0),
                 -EEXIST);
    /* CREATE without EXCL opens the existing segment: either side may start first. */
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0);
    cr_assert_eq(shm_channel_capacity(p), 4096, "capacity 0 means: whatever it is");
    cr_assert_eq(shm_channel_write(p, "abc", 3, 0), 0);
    uint8_t buf[8];
    uint64_t len;
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0, "one channel, not two");
    cr_assert_eq(len, 3);
    shm_channel_close(p);
    shm_channel_close(c);
    cr_assert(!ct_exists(n), "a finished stream is gone");
}

Test(open, capacity_mismatch_is_einval)
{
    char n[64];
    ct_name(n, "capmis");
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 2048);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 4096, 0), -EINVAL);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024, 0), -EINVAL);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, 0, 1024, 0), -EINVAL);
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, 0, 2048);
    cr_assert(ct_exists(n), "a refused opener does not remove a segment it did not create");
    shm_channel_close(p);
    shm_channel_close(c);
}

Test(open, one_live_producer_and_one_live_consumer)
{
    char n[64];
    ct_name(n, "busy");
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024);
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0), -EBUSY);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), -EBUSY);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_CONSUMER, 0, 0, 0), -EBUSY);
    shm_channel_t *o1 = must_open(n, SHM_CHANNEL_OBSERVER, 0, 0);
    shm_channel_t *o2 = must_open(n, SHM_CHANNEL_OBSERVER, 0, 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(o1, &st), 0);
    cr_assert_eq(st.producer_epoch, 1);
    cr_assert_eq(st.consumer_epoch, 1, "refused openers did not touch the epochs");
    shm_channel_close(o1);
    shm_channel_close(o2);
    /* The role is free again once its holder closes. */
    shm_channel_close(p);
    p = must_open(n, SHM_CHANNEL_PRODUCER, 0, 0);
    cr_assert_eq(shm_channel_stat(p, &st), 0);
    cr_assert_eq(st.producer_epoch, 2);
    cr_assert_eq(st.producer_state, SHM_CHANNEL_PEER_ATTACHED);
    shm_channel_close(c);
    c = must_open(n, SHM_CHANNEL_CONSUMER, 0, 0);
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_eq(st.consumer_epoch, 2);
    shm_channel_close(p);
    shm_channel_close(c);
}

Test(open, over_permissive_segment_is_refused)
{
    char n[64];
    ct_name(n, "perm");
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024);
    cr_assert_eq(chmod(ct_path(n), 0666), 0);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0600), -EACCES);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0), -EACCES, "mode 0 means 0600");
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0600), -EACCES);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, 0, 0, 0600), -EACCES);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0644), -EACCES, "0666 has bits beyond 0644");
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0666), 0, "the requested mode covers it");
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_ALLOW_FOREIGN, 0, 0600), 0,
                 "ALLOW_FOREIGN accepts it");
    /* A narrower mode than requested is fine. */
    cr_assert_eq(chmod(ct_path(n), 0400), 0);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, 0, 0, 0600), 0);
    cr_assert_eq(chmod(ct_path(n), 0600), 0);
    shm_channel_close(c);
}

Test(open, segment_of_another_user_is_refused)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to chown the segment");
    char n[64];
    ct_name(n, "foreign");
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024);
    cr_assert_eq(chown(ct_path(n), 4321, 4321), 0);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0), -EACCES);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, 0, 0, 0777), -EACCES, "owner, not mode");
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_ALLOW_FOREIGN, 0, 0), 0);
    shm_channel_close(c);
}

Test(open, non_regular_files_are_refused)
{
    char n[64], target[64];
    ct_name(target, "target");
    shm_channel_t *c = must_open(target, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024);
    ct_name(n, "link");
    cr_assert_eq(symlink(target, ct_path(n)), 0);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0), -EACCES, "a symlink is not followed");
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), -EACCES);
    unlink(ct_path(n));
    ct_name(n, "dir");
    cr_assert_eq(mkdir(ct_path(n), 0700), 0);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, 0, 0, 0), -EACCES, "a directory");
    cr_assert_neq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), 0);
    rmdir(ct_path(n));
    ct_name(n, "fifo");
    cr_assert_eq(mkfifo(ct_path(n), 0600), 0);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, 0, 0, 0), -EACCES, "a fifo");
    unlink(ct_path(n));
    shm_channel_close(c);
}

Test(open, enospc_at_creation)
{
    char n[64];
    ct_name(n, "nospc");
    uint64_t t0 = ct_now_ns();
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, SHM_CHANNEL_MAX_CAPACITY, 0),
                 -ENOSPC, "2^40 bytes do not fit in /dev/shm");
    cr_assert_eq(open_rc(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL,
                         SHM_CHANNEL_MAX_CAPACITY, 0), -ENOSPC);
    cr_assert_lt(ct_now_ns() - t0, 20 * CT_SEC, "fails up front, without filling memory");
    cr_assert(!ct_exists(n), "no segment is published");
    cr_assert_eq(ct_count_files(), 0, "and no temporary is left");
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0), -ENOENT);
}

static void write_file(const char *name, const void *data, size_t len, mode_t mode)
{
    int fd = open(ct_path(name), O_CREAT | O_EXCL | O_WRONLY, mode);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fchmod(fd, mode), 0);
    if (len)
        cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

Test(open, a_file_that_is_not_a_segment)
{
    char n[64];
    static uint8_t junk[8192];
    memset(junk, 'j', sizeof junk);
    ct_name(n, "junk");
    write_file(n, junk, sizeof junk, 0600);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_CONSUMER, 0, 0, 0), -EPROTO);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), -EPROTO);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, 0, 0, 0), -EPROTO);
    cr_assert(ct_exists(n), "a file we did not create is never removed");
}

Test(open, empty_file_times_out_after_the_bounded_wait)
{
    char n[64];
    ct_name(n, "empty");
    write_file(n, NULL, 0, 0600);
    uint64_t t0 = ct_now_ns();
    cr_assert_eq(open_rc(n, SHM_CHANNEL_CONSUMER, 0, 0, 0), -ETIMEDOUT);
    cr_assert_geq(ct_now_ns() - t0, 900 * CT_MS, "waited for the creator (about 1 s)");
}

static const char *late_name;

static int finish_header_late(void *arg)
{
    (void)arg;
    ct_sleep_ms(200);
    int fd = open(ct_path(late_name), O_RDWR);
    if (fd < 0)
        return 1;
    return pwrite(fd, "SHM_CHAN", 8, 0) == 8 ? 0 : 2;
}

Test(open, waits_for_a_segment_being_initialised)
{
    /* Another implementation creates the file visibly and writes the magic last. */
    char n[64];
    ct_name(n, "late");
    static uint8_t img[4096 + 1024];
    shm__ring_format((struct shm__header *)(void *)img, 1024, 1, 2);
    memset(img, 0, 8); /* magic not yet written */
    write_file(n, img, sizeof img, 0600);
    late_name = n;
    pid_t pid = ct_fork(finish_header_late, NULL);
    shm_channel_t *c;
    int rc = shm_channel_open(&c, n, SHM_CHANNEL_CONSUMER, 0, 0, 0);
    cr_assert_eq(ct_wait(pid), 0);
    cr_assert_eq(rc, 0, "the opener waited for the magic: %s", shm_channel_strerror(rc));
    cr_assert_eq(shm_channel_capacity(c), 1024);
    shm_channel_close(c);
}

/* How many of this process's descriptors are open on the file at `path` with access mode
 * `accmode` (O_RDONLY, O_WRONLY, O_RDWR), found through /proc/self/fd and matched by inode
 * (a creator's descriptor names an O_TMPFILE): what the kernel enforces, whoever we are
 * (root ignores the file's mode bits, not a descriptor's access mode). */
static int fds_on(const char *path, int accmode)
{
    struct stat want;
    cr_assert_eq(stat(path, &want), 0);
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d, "/proc/self/fd: %s", strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0)
            continue;
        int fl = fcntl(fd, F_GETFL);
        if (st.st_dev == want.st_dev && st.st_ino == want.st_ino && fl >= 0 &&
            (fl & O_ACCMODE) == accmode)
            n++;
    }
    closedir(d);
    return n;
}

Test(open, observer_is_read_only_and_claims_nothing)
{
    char n[64];
    ct_name(n, "observer");
    shm_channel_t *c = must_open(n, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024);
    cr_assert_eq(fds_on(ct_path(n), O_RDWR), 1, "the consumer's descriptor");
    cr_assert_eq(fds_on(ct_path(n), O_RDONLY), 0);
    shm_channel_t *o = must_open(n, SHM_CHANNEL_OBSERVER, 0, 0);
    /* An observer's file is open read-only (checked on the descriptor: root would pass the
     * chmod below whatever the access mode; test_privileges.c repeats it as non-root). */
    cr_assert_eq(fds_on(ct_path(n), O_RDONLY), 1, "the observer's descriptor is read-only");
    cr_assert_eq(fds_on(ct_path(n), O_RDWR), 1, "and it opened no writable one");
    /* The segment is still free for a producer, and an observer's file is read-only. */
    cr_assert_eq(chmod(ct_path(n), 0400), 0);
    shm_channel_t *o2 = must_open(n, SHM_CHANNEL_OBSERVER, 0, 0);
    cr_assert_eq(chmod(ct_path(n), 0600), 0);
    shm_channel_t *p = must_open(n, SHM_CHANNEL_PRODUCER, 0, 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(o, &st), 0);
    cr_assert_eq(st.producer_alive, 1);
    cr_assert_eq(st.consumer_alive, 1);
    cr_assert_eq(shm_channel_capacity(o), 1024);
    shm_channel_close(o);
    shm_channel_close(o2);
    shm_channel_close(p);
    shm_channel_close(c);
}
