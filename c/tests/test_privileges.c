/* Permission claims that root would pass whatever the code does (CI runs as root: it ignores
 * mode bits), checked from an unprivileged process: a child that drops to uid/gid 65534
 * (nobody) in a sticky, world-writable segment directory, like /dev/shm.
 * - an observer opens a segment read-only: it works on a 0400 segment, where a producer or
 *   consumer is refused;
 * - a segment created by another user is refused with -EACCES: by the kernel when its mode
 *   denies us, by the library (owner check) when its mode would allow us, unless
 *   SHM_CHANNEL_ALLOW_FOREIGN; and another user's segment cannot be unlinked. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"

static void setup(void)
{
    ct_setup();
    /* The unprivileged child must be able to create and open segments here. */
    cr_assert_eq(chmod(ct_dir(), 01777), 0);
}

TestSuite(privileges, .init = setup, .fini = ct_teardown, .timeout = 30);

#define NOBODY 65534

struct task {
    int (*fn)(const char *name);
    char name[64];
};

static int drop_and_run(void *arg)
{
    const struct task *t = arg;
    if (geteuid() == 0) {
        if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            return 100;
        /* A change of credentials clears the parent-death signal ct_fork set. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (setuid(0) == 0)
            return 101; /* the drop must be for good */
    }
    if (geteuid() == 0)
        return 102;
    return t->fn(t->name);
}

/* Run fn(name) in a child without privileges; returns its exit status. Skips the test
 * where uid/gid 65534 cannot be taken (e.g. not mapped in a user namespace). */
static int unprivileged(int (*fn)(const char *), const char *name)
{
    struct task t = {.fn = fn};
    snprintf(t.name, sizeof t.name, "%s", name);
    int rc = ct_wait(ct_fork(drop_and_run, &t));
    if (rc == 100)
        cr_skip_test("cannot switch to uid/gid %d here: root-bypassed checks untested", NOBODY);
    return rc;
}

static int open_rc(const char *name, uint32_t role, uint32_t flags, uint32_t mode)
{
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open(&ch, name, role, flags, 0, mode);
    if (rc == 0)
        shm_channel_close(ch);
    return rc;
}

#define EXPECT(call, want)                                                                 \
    do {                                                                                   \
        int got_ = (call);                                                                 \
        if (got_ != (want)) {                                                              \
            fprintf(stderr, "line %d: %s: %s, expected %s\n", __LINE__, #call,            \
                    shm_channel_strerror(got_), shm_channel_strerror(want));               \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

static int observer_checks(const char *name)
{
    shm_channel_t *c, *o;
    EXPECT(shm_channel_open(&c, name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    struct stat fst;
    EXPECT(stat(ct_path(name), &fst) == 0 && fst.st_uid == geteuid() ? 0 : -EINVAL, 0);
    EXPECT(chmod(ct_path(name), 0400) == 0 ? 0 : -errno, 0);
    /* Read-only for its owner too: only a read-only opener gets in. */
    EXPECT(shm_channel_open(&o, name, SHM_CHANNEL_OBSERVER, 0, 0, 0), 0);
    EXPECT(open_rc(name, SHM_CHANNEL_PRODUCER, 0, 0), -EACCES);
    EXPECT(open_rc(name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0), -EACCES);
    EXPECT(chmod(ct_path(name), 0600) == 0 ? 0 : -errno, 0);
    /* The observer claimed nothing: the producer role is free. */
    shm_channel_t *p;
    EXPECT(shm_channel_open(&p, name, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0);
    shm_channel_stat_t st;
    EXPECT(shm_channel_stat(o, &st), 0);
    if (st.producer_alive != 1 || st.consumer_alive != 1 || st.producer_epoch != 1) {
        fprintf(stderr, "observer's stat: producer %d, consumer %d, epoch %u\n",
                st.producer_alive, st.consumer_alive, st.producer_epoch);
        return 2;
    }
    shm_channel_close(o);
    shm_channel_close(p);
    shm_channel_close(c);
    return 0;
}

Test(privileges, observer_opens_read_only_as_non_root)
{
    char n[64];
    int rc = unprivileged(observer_checks, ct_name(n, "obs"));
    cr_assert_eq(rc, 0, "unprivileged observer checks: exit %d", rc);
    cr_assert(!ct_exists(n), "the unprivileged last closer removed the finished stream");
}

/* The root-owned segments: "<name>-0600" and "<name>-0666". */
static int foreign_checks(const char *name)
{
    char priv[80], open_[80];
    snprintf(priv, sizeof priv, "%s-0600", name);
    snprintf(open_, sizeof open_, "%s-0666", name);
    /* Mode denies us: the kernel refuses, for every role. */
    EXPECT(open_rc(priv, SHM_CHANNEL_PRODUCER, 0, 0), -EACCES);
    EXPECT(open_rc(priv, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 0), -EACCES);
    EXPECT(open_rc(priv, SHM_CHANNEL_OBSERVER, 0, 0), -EACCES);
    EXPECT(open_rc(priv, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_ALLOW_FOREIGN, 0777), -EACCES);
    /* Mode allows us: the library refuses another user's segment... */
    EXPECT(open_rc(open_, SHM_CHANNEL_PRODUCER, 0, 0), -EACCES);
    EXPECT(open_rc(open_, SHM_CHANNEL_PRODUCER, 0, 0666), -EACCES);
    EXPECT(open_rc(open_, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 0666), -EACCES);
    EXPECT(open_rc(open_, SHM_CHANNEL_OBSERVER, 0, 0666), -EACCES);
    /* ...unless told to accept it. */
    EXPECT(open_rc(open_, SHM_CHANNEL_OBSERVER, SHM_CHANNEL_ALLOW_FOREIGN, 0), 0);
    shm_channel_t *p;
    EXPECT(shm_channel_open(&p, open_, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_ALLOW_FOREIGN, 0, 0), 0);
    EXPECT(shm_channel_write(p, "hello", 5, 0), 0);
    shm_channel_close(p);
    /* Another user's segment in a sticky directory cannot be removed by us. */
    int rc = shm_channel_unlink(priv, 0);
    if (rc != -EACCES) {
        fprintf(stderr, "unlink of the 0600 segment: %s\n", shm_channel_strerror(rc));
        return 3;
    }
    rc = shm_channel_unlink(open_, SHM_CHANNEL_FORCE);
    if (rc != -EPERM && rc != -EACCES) {
        fprintf(stderr, "forced unlink of the 0666 segment: %s\n", shm_channel_strerror(rc));
        return 4;
    }
    return 0;
}

Test(privileges, another_users_segment_is_refused_as_non_root)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to create a segment of another user");
    char n[64], priv[80], open_[80];
    ct_name(n, "foreign");
    snprintf(priv, sizeof priv, "%s-0600", n);
    snprintf(open_, sizeof open_, "%s-0666", n);
    shm_channel_t *a, *b;
    cr_assert_eq(shm_channel_open(&a, priv, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0600), 0);
    cr_assert_eq(shm_channel_open(&b, open_, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0666), 0);
    struct stat st;
    cr_assert_eq(stat(ct_path(open_), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0666, "created with the requested mode, umask aside");
    /* Nothing attached: only permissions stand in the child's way. */
    shm_channel_close(a);
    shm_channel_close(b);
    int rc = unprivileged(foreign_checks, n);
    cr_assert_eq(rc, 0, "unprivileged checks on root's segments: exit %d", rc);
    cr_assert(ct_exists(priv) && ct_exists(open_), "neither was removed");
    /* The message the child's (foreign-accepted) producer wrote is there. */
    cr_assert_eq(shm_channel_open(&b, open_, SHM_CHANNEL_CONSUMER, 0, 0, 0666), 0);
    char buf[16];
    uint64_t len;
    cr_assert_eq(shm_channel_read(b, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    shm_channel_close(b);
}
