/* Hostile or odd files under a channel's name (issue 9): CREATE|EXCL on a squatted name is
 * -EEXIST whatever squats it; opening refuses non-regular files with -EACCES; a sparse file
 * with a valid header is refused (-EBADMSG) without growing the memory it uses; observers
 * never wait for a file that is not a complete segment; shm_channel_unlink() without FORCE
 * removes only channel segments no live handle uses. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ct.h"
#include "ring.h"

TestSuite(squat, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

static int open_rc(const char *name, uint32_t role, uint32_t flags, uint64_t cap)
{
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open(&ch, name, role, flags, cap, 0);
    if (rc == 0)
        shm_channel_close(ch);
    else
        cr_assert_null(ch);
    return rc;
}

/* A Unix socket bound at the name; returns the socket (keep it open). */
static int bind_socket(const char *name)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(ct_path(name)), sizeof a.sun_path, "socket path fits");
    strcpy(a.sun_path, ct_path(name));
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
    return s;
}

struct squatter {
    const char *kind;
    char name[64];
    int sock;
};

static const char *const kinds[] = {"directory", "unix socket", "fifo", "symlink to a segment",
                                    "dangling symlink", "segment of another user",
                                    "empty file of another user"};
#define KINDS (sizeof kinds / sizeof kinds[0])

/* Put a squatter of `kind` at a fresh name. The files of another user need root (chown). */
static void make_squatter(struct squatter *sq, const char *kind)
{
    shm_channel_t *t;
    sq->kind = kind;
    sq->sock = -1;
    ct_name(sq->name, "squat");
    const char *path = ct_path(sq->name);
    if (!strcmp(kind, "directory")) {
        cr_assert_eq(mkdir(path, 0700), 0);
    } else if (!strcmp(kind, "unix socket")) {
        sq->sock = bind_socket(sq->name);
    } else if (!strcmp(kind, "fifo")) {
        cr_assert_eq(mkfifo(path, 0600), 0);
    } else if (!strcmp(kind, "symlink to a segment")) {
        char target[64];
        ct_name(target, "target");
        cr_assert_eq(shm_channel_open(&t, target, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE,
                                      1024, 0), 0);
        shm_channel_close(t); /* unfinished (no producer ever closed): it stays */
        cr_assert_eq(symlink(target, ct_path(sq->name)), 0);
    } else if (!strcmp(kind, "dangling symlink")) {
        cr_assert_eq(symlink("does-not-exist", path), 0);
    } else if (!strcmp(kind, "segment of another user")) {
        cr_assert_eq(shm_channel_open(&t, sq->name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE,
                                      1024, 0), 0);
        shm_channel_close(t);
        cr_assert_eq(chown(ct_path(sq->name), 65534, 65534), 0);
    } else if (!strcmp(kind, "empty file of another user")) {
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        cr_assert_eq(chown(path, 65534, 65534), 0);
    } else {
        cr_assert_fail("unknown kind %s", kind);
    }
}

static void remove_squatter(struct squatter *sq)
{
    if (!strcmp(sq->kind, "directory"))
        rmdir(ct_path(sq->name));
    else
        unlink(ct_path(sq->name));
    if (sq->sock >= 0)
        close(sq->sock);
}

static void check_excl_is_eexist(const char *kind)
{
    if (strstr(kind, "another user") && geteuid() != 0)
        cr_skip_test("needs root to chown a file to another user");
    struct squatter sq;
    make_squatter(&sq, kind);
    int files = ct_count_files();
    uint32_t roles[] = {SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CONSUMER};
    for (int r = 0; r < 2; r++) {
        int rc = open_rc(sq.name, roles[r], SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, 1024);
        cr_assert_eq(rc, -EEXIST, "CREATE|EXCL on a %s: %s, want -EEXIST", kind,
                     shm_channel_strerror(rc));
        /* Also with a capacity that could never fit: the name is checked first. */
        rc = open_rc(sq.name, roles[r], SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL,
                     SHM_CHANNEL_MAX_CAPACITY);
        cr_assert_eq(rc, -EEXIST, "CREATE|EXCL (2^40) on a %s: %s", kind,
                     shm_channel_strerror(rc));
    }
    cr_assert(ct_exists(sq.name), "the %s is left alone", kind);
    cr_assert_eq(ct_count_files(), files, "nothing was created, no temporary left");
    remove_squatter(&sq);
}

Test(squat, create_excl_on_a_directory_is_eexist) { check_excl_is_eexist("directory"); }
Test(squat, create_excl_on_a_unix_socket_is_eexist) { check_excl_is_eexist("unix socket"); }
Test(squat, create_excl_on_a_fifo_is_eexist) { check_excl_is_eexist("fifo"); }
Test(squat, create_excl_on_a_symlink_is_eexist) { check_excl_is_eexist("symlink to a segment"); }
Test(squat, create_excl_on_a_dangling_symlink_is_eexist)
{
    check_excl_is_eexist("dangling symlink");
}
Test(squat, create_excl_on_a_foreign_segment_is_eexist)
{
    check_excl_is_eexist("segment of another user");
}
Test(squat, create_excl_on_a_foreign_file_is_eexist)
{
    check_excl_is_eexist("empty file of another user");
}

Test(squat, opening_a_non_regular_file_is_eacces)
{
    for (size_t k = 0; k < KINDS; k++) {
        if (strstr(kinds[k], "another user"))
            continue; /* regular files: refused as foreign, or by their contents */
        struct squatter sq;
        make_squatter(&sq, kinds[k]);
        int files = ct_count_files();
        uint32_t roles[] = {SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_OBSERVER};
        for (int r = 0; r < 3; r++) {
            int rc = open_rc(sq.name, roles[r], 0, 0);
            cr_assert_eq(rc, -EACCES, "role %u on a %s: %s, want -EACCES", roles[r], sq.kind,
                         shm_channel_strerror(rc));
            if (roles[r] != SHM_CHANNEL_OBSERVER) {
                rc = open_rc(sq.name, roles[r], SHM_CHANNEL_CREATE, 0);
                cr_assert_eq(rc, -EACCES, "CREATE, role %u, on a %s: %s", roles[r], sq.kind,
                             shm_channel_strerror(rc));
            }
        }
        cr_assert_eq(ct_count_files(), files, "nothing was created");
        remove_squatter(&sq);
    }
}

/* A file with a valid header claiming `cap` bytes of ring, extended with ftruncate: only
 * its first page is allocated. */
static void make_sparse(const char *name, uint64_t cap)
{
    static uint8_t img[4096];
    memset(img, 0, sizeof img);
    shm__ring_format((struct shm__header *)(void *)img, cap, 1, 2);
    int fd = open(ct_path(name), O_CREAT | O_EXCL | O_RDWR, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, img, sizeof img), (ssize_t)sizeof img);
    cr_assert_eq(ftruncate(fd, (off_t)(4096 + cap)), 0);
    close(fd);
}

static uint64_t allocated(const char *name)
{
    struct stat st;
    cr_assert_eq(stat(ct_path(name), &st), 0);
    return (uint64_t)st.st_blocks * 512;
}

Test(squat, sparse_segment_is_refused_without_allocating_it)
{
    char n[64];
    ct_name(n, "sparse");
    uint64_t cap = 64ull << 20;
    make_sparse(n, cap);
    uint64_t before = allocated(n);
    cr_assert_lt(before, 1ull << 20, "the file holds one page, claims 64 MiB");
    uint32_t roles[] = {SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_OBSERVER};
    for (int r = 0; r < 3; r++) {
        cr_assert_eq(open_rc(n, roles[r], 0, 0), -EBADMSG, "role %u", roles[r]);
        cr_assert_eq(allocated(n), before, "opening allocated none of the claimed pages");
    }
    cr_assert_eq(open_rc(n, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, cap), -EBADMSG);
    cr_assert_eq(allocated(n), before);
    cr_assert(ct_exists(n), "a file we did not create is never removed");

    /* Holes anywhere count: here the ring's pages are allocated but the file is longer. */
    ct_name(n, "holes");
    make_sparse(n, 1024);
    int fd = open(ct_path(n), O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fallocate(fd, 0, 0, 4096 + 1024), 0);
    cr_assert_eq(ftruncate(fd, 4096 + 1024 + (16 << 20)), 0);
    close(fd);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_CONSUMER, 0, 0), -EBADMSG);
    cr_assert_lt(allocated(n), 1ull << 20);

    /* The same file, with every page allocated, is a valid segment. */
    ct_name(n, "dense");
    make_sparse(n, 1024);
    fd = open(ct_path(n), O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fallocate(fd, 0, 0, 4096 + 1024), 0);
    close(fd);
    cr_assert_eq(open_rc(n, SHM_CHANNEL_CONSUMER, 0, 0), 0);
}

static void write_zeros(const char *name, size_t len)
{
    static uint8_t zero[8192];
    int fd = open(ct_path(name), O_CREAT | O_EXCL | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, zero, len), (ssize_t)len);
    close(fd);
}

Test(squat, observers_do_not_wait_for_files_that_are_not_segments)
{
    char n[64];
    ct_name(n, "zeros");
    write_zeros(n, 4096);
    /* Ten files, each of which a waiting opener would wait 1 s for. */
    uint64_t t0 = ct_now_ns();
    for (int i = 0; i < 10; i++)
        cr_assert_eq(open_rc(n, SHM_CHANNEL_OBSERVER, 0, 0), -EAGAIN, "not a segment (yet)");
    cr_assert_lt(ct_now_ns() - t0, 5 * CT_SEC, "observers returned at once, not after 10 x 1 s");
    /* A producer or consumer still waits for a creator at work (spec §5.2 step 4). */
    cr_assert_eq(open_rc(n, SHM_CHANNEL_CONSUMER, 0, 0), -ETIMEDOUT);
}

Test(squat, unlink_without_force_removes_only_idle_channels)
{
    char junk[64], zeros[64], chan[64], dir[64];
    ct_name(junk, "junk");
    int fd = open(ct_path(junk), O_CREAT | O_EXCL | O_RDWR, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "precious data, not a channel", 28), 28);
    /* fd stays open: "another program has it open" */
    ct_name(zeros, "zeros");
    write_zeros(zeros, 8192);
    ct_name(dir, "dir");
    cr_assert_eq(mkdir(ct_path(dir), 0700), 0);

    cr_assert_eq(shm_channel_unlink(junk, 0), -EPROTO, "not a channel");
    cr_assert(ct_exists(junk));
    cr_assert_eq(shm_channel_unlink(zeros, 0), -EPROTO, "zeros are not a channel");
    cr_assert(ct_exists(zeros));
    cr_assert_eq(shm_channel_unlink(dir, 0), -EACCES, "not a regular file");
    cr_assert(ct_exists(dir));

    ct_name(chan, "chan");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    cr_assert_eq(shm_channel_unlink(chan, 0), -EBUSY, "in use");
    cr_assert(ct_exists(chan));
    shm_channel_close(c);
    cr_assert_eq(shm_channel_unlink(chan, 0), 0, "an idle channel is removed");
    cr_assert(!ct_exists(chan));

    /* FORCE removes any file, channel or not, used or not. */
    cr_assert_eq(shm_channel_unlink(junk, SHM_CHANNEL_FORCE), 0);
    cr_assert(!ct_exists(junk));
    cr_assert_eq(shm_channel_unlink(zeros, SHM_CHANNEL_FORCE), 0);
    cr_assert(!ct_exists(zeros));
    close(fd);
    rmdir(ct_path(dir));
}
