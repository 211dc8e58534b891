/* The command-line programs, run as a user runs them (fork + exec, in this test's private
 * SHM_CHANNEL_DIR): `shm_channel ls`/`gc` do not wait on files that are not channels;
 * `shm_channel rm` without --force removes only idle channels; every program parses its
 * arguments and prints its usage on bad ones (exit 2) or --help (exit 0), creating
 * nothing. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ct.h"

TestSuite(cli, .init = ct_setup, .fini = ct_teardown, .timeout = 120);

#define RUN_LIMIT (30 * CT_SEC)

struct run {
    int status; /* exit status; 128+signal; -1 if killed at RUN_LIMIT */
    uint64_t ns;
    char out[8192];
    char err[8192];
};

static void slurp(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
}

/* Run argv (argv[0] a path) with stdout and stderr captured; kill it at RUN_LIMIT. */
static void run(struct run *r, const char *const *argv)
{
    char o[] = "/tmp/ct-cli-out-XXXXXX", e[] = "/tmp/ct-cli-err-XXXXXX";
    int ofd = mkstemp(o), efd = mkstemp(e);
    cr_assert(ofd >= 0 && efd >= 0);
    unlink(o);
    unlink(e);
    uint64_t t0 = ct_now_ns();
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (ct_now_ns() - t0 > RUN_LIMIT) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            st = -1;
            break;
        }
        ct_sleep_ms(2);
    }
    r->ns = ct_now_ns() - t0;
    r->status = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    slurp(ofd, r->out, sizeof r->out);
    slurp(efd, r->err, sizeof r->err);
}

static void write_zeros(const char *name, size_t len)
{
    static const uint8_t zero[4096];
    int fd = open(ct_path(name), O_CREAT | O_EXCL | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, zero, len), (ssize_t)len);
    close(fd);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(cli, ls_and_gc_do_not_wait_on_files_that_are_not_channels)
{
    /* 1000 files that look like a segment being initialised (>= 4 KiB, zeros): a
     * waiting opener would spend 1 s on each. */
    char n[64];
    for (int i = 0; i < 1000; i++)
        write_zeros(ct_name(n, "zeros"), 4096);
    char chan[64];
    ct_name(chan, "real");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);

    struct run r;
    const char *ls[] = {CT_CLI, "ls", NULL};
    run(&r, ls);
    cr_assert_eq(r.status, 0, "ls exit %d after %.1f s: %s", r.status, (double)r.ns / 1e9, r.err);
    cr_assert_lt(r.ns, 20 * CT_SEC, "ls over 1000 non-channels took %.1f s", (double)r.ns / 1e9);
    cr_assert_eq(count_lines(r.out), 2, "the header and the one channel, nothing bogus:\n%s",
                 r.out);
    cr_assert(strstr(r.out, chan), "the channel is listed:\n%s", r.out);

    const char *gc[] = {CT_CLI, "gc", NULL};
    run(&r, gc);
    cr_assert_eq(r.status, 0, "gc: %s", r.err);
    cr_assert_lt(r.ns, 20 * CT_SEC, "gc over 1000 non-channels took %.1f s", (double)r.ns / 1e9);
    cr_assert_eq(ct_count_files(), 1001, "gc removed neither the files nor the channel in use");
    shm_channel_close(c);
}

static void make_idle_channel(const char *name)
{
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    shm_channel_close(c); /* no producer ever closed: the stream is unfinished, it stays */
    cr_assert(ct_exists(name));
}

Test(cli, rm_without_force_removes_only_idle_channels)
{
    struct run r;
    char junk[64], zeros[64], busy[64], idle[64];
    ct_name(junk, "junk");
    int fd = open(ct_path(junk), O_CREAT | O_EXCL | O_RDWR, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "someone's data", 14), 14); /* and it stays open */
    ct_name(zeros, "zeros");
    write_zeros(zeros, 4096);
    ct_name(busy, "busy");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, busy, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    ct_name(idle, "idle");
    make_idle_channel(idle);

    const char *rm_junk[] = {CT_CLI, "rm", junk, NULL};
    run(&r, rm_junk);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "not a shm_channel segment"), "a clear message: %s", r.err);
    cr_assert(ct_exists(junk), "a file that is not a channel stays");
    const char *rm_zeros[] = {CT_CLI, "rm", zeros, NULL};
    run(&r, rm_zeros);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "not a shm_channel segment"), "%s", r.err);
    cr_assert(ct_exists(zeros));
    const char *rm_busy[] = {CT_CLI, "rm", busy, NULL};
    run(&r, rm_busy);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "in use"), "a clear message: %s", r.err);
    cr_assert(ct_exists(busy), "a channel in use stays");
    const char *rm_idle[] = {CT_CLI, "rm", idle, NULL};
    run(&r, rm_idle);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(!ct_exists(idle), "an idle channel is removed");

    const char *force_junk[] = {CT_CLI, "rm", "--force", junk, NULL};
    run(&r, force_junk);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(!ct_exists(junk), "--force removes any file");
    const char *force_busy[] = {CT_CLI, "rm", "--force", busy, NULL};
    run(&r, force_busy);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(!ct_exists(busy), "--force removes a channel in use");
    shm_channel_close(c);
    close(fd);
}

Test(cli, options_are_never_names)
{
    struct run r;
    /* Channel names may start with '-': such a name goes after "--", never as an option. */
    make_idle_channel("--help");
    make_idle_channel("-x");
    const char *rm_x[] = {CT_CLI, "rm", "-x", NULL};
    run(&r, rm_x);
    cr_assert_eq(r.status, 2, "unknown option: usage error");
    cr_assert(strstr(r.err, "usage"), "%s", r.err);
    cr_assert(ct_exists("-x"));
    const char *rm_help[] = {CT_CLI, "rm", "--help", NULL};
    run(&r, rm_help);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "usage"));
    cr_assert(ct_exists("--help"), "--help printed the usage and removed nothing");
    const char *rm_dashdash[] = {CT_CLI, "rm", "--", "-x", NULL};
    run(&r, rm_dashdash);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(!ct_exists("-x"));
}

/* Every program: --help and -h print the usage (exit 0); bad arguments print it to stderr
 * (exit 2); none of them creates anything. */
static void check_usage(const char *prog, const char *const bad[][6], size_t nbad)
{
    struct run r;
    const char *help[][3] = {{prog, "--help", NULL}, {prog, "-h", NULL}};
    for (int i = 0; i < 2; i++) {
        run(&r, help[i]);
        cr_assert_eq(r.status, 0, "%s %s: exit %d, %s", prog, help[i][1], r.status, r.err);
        cr_assert(strstr(r.out, "usage"), "%s %s prints the usage: %s", prog, help[i][1], r.out);
    }
    for (size_t i = 0; i < nbad; i++) {
        const char *argv[7] = {prog};
        char shown[256] = "";
        for (int j = 0; j < 6 && bad[i][j]; j++) {
            argv[j + 1] = bad[i][j];
            strncat(shown, " ", sizeof shown - strlen(shown) - 1);
            strncat(shown, bad[i][j], sizeof shown - strlen(shown) - 1);
        }
        run(&r, argv);
        cr_assert_eq(r.status, 2, "%s%s: exit %d, want 2 (usage error); stderr: %s", prog, shown,
                     r.status, r.err);
        cr_assert(strstr(r.err, "usage"), "%s%s prints the usage to stderr: %s", prog, shown,
                  r.err);
    }
    cr_assert_eq(ct_count_files(), 0, "%s created nothing", prog);
}

Test(cli, shm_channel_usage)
{
    static const char *const bad[][6] = {
        {NULL}, {"--bogus"}, {"ls", "extra"}, {"rm"}, {"rm", "a", "b"}, {"stat"},
        {"frob"}, {"gc", "--force"}, {"ls", "-x"}, {"rm", "-q", "x"},
    };
    check_usage(CT_CLI, bad, sizeof bad / sizeof bad[0]);
}

#ifdef CT_DEMO_PRODUCER
Test(cli, demo_producer_usage)
{
    static const char *const bad[][6] = {
        {"--bogus"}, {"-x", "name"}, {"name", "ten"}, {"name", "10", "1k"},
        {"name", "10", "64", "big"}, {"name", "10", "64", "-1024"}, {"name", "-5"},
        {"name", "10", "64", "1024", "extra"}, {"name", ""},
    };
    check_usage(CT_DEMO_PRODUCER, bad, sizeof bad / sizeof bad[0]);
    /* --help anywhere wins: nothing is created. */
    struct run r;
    const char *late_help[] = {CT_DEMO_PRODUCER, "name", "10", "--help", NULL};
    run(&r, late_help);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(ct_count_files(), 0);
}

Test(cli, demo_consumer_usage)
{
    static const char *const bad[][6] = {
        {"--bogus"}, {"-x", "name"}, {"name", "1MiB"}, {"name", "-1024"},
        {"name", "1024", "extra"}, {"name", "0x"},
    };
    check_usage(CT_DEMO_CONSUMER, bad, sizeof bad / sizeof bad[0]);
}
#endif

Test(cli, ls_and_stat_show_broadcast_channels)
{
    char b[64], s[64];
    ct_name(b, "bcast");
    ct_name(s, "stream");
    shm_channel_broadcast_config_t cfg = {100, 4, 8, "<f4(3,)", {0}};
    shm_channel_t *pub, *sub1, *sub2, *prod;
    cr_assert_eq(shm_channel_open_broadcast(&pub, b, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE,
                                            &cfg, 0), 0);
    cr_assert_eq(shm_channel_open_broadcast(&sub1, b, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0), 0);
    cr_assert_eq(shm_channel_open_broadcast(&sub2, b, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0), 0);
    cr_assert_eq(shm_channel_open(&prod, s, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), 0);
    uint64_t v = 0, len;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(shm_channel_write(pub, &v, 8, 0), 0);
    uint8_t buf[100];
    cr_assert_eq(shm_channel_read(sub1, buf, sizeof buf, &len, 0), 0); /* 1 */
    for (int i = 0; i < 6; i++)
        cr_assert_eq(shm_channel_write(pub, &v, 8, 0), 0);
    cr_assert_eq(shm_channel_read(sub1, buf, sizeof buf, &len, 0), 0); /* 13: lapped */

    struct run r;
    const char *ls[] = {CT_CLI, "ls", NULL};
    run(&r, ls);
    cr_assert_eq(r.status, 0, "ls: %s", r.err);
    cr_assert_eq(count_lines(r.out), 3, "%s", r.out);
    cr_assert(strstr(r.out, "KIND"), "%s", r.out);
    char *line = strstr(r.out, b);
    cr_assert_not_null(line, "%s", r.out);
    cr_assert(strstr(line, "broadcast"), "%s", r.out);
    cr_assert(strstr(line, "2 subs"), "%s", r.out);
    cr_assert(strstr(strstr(r.out, s), "stream"), "%s", r.out);

    const char *st[] = {CT_CLI, "stat", b, NULL};
    run(&r, st);
    cr_assert_eq(r.status, 0, "stat: %s", r.err);
    const char *want[] = {"kind            broadcast", "depth           4",
                          "max_payload     100", "max_subscribers 8",
                          "type_tag        <f4(3,)", "published       16",
                          "publisher       alive", "subscribers     2 live", "SUB", "MISSED"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(r.out, want[i]), "\"%s\" missing:\n%s", want[i], r.out);
    /* Both joined before anything was published. sub1 read message 1, then 13 (lapped:
     * 2..12 missed): next 14, delivered 2, missed 11, lag 3; sub2 read nothing: lag 16. */
    cr_assert_eq(count_lines(r.out), 20, "%s", r.out);
    cr_assert(strstr(r.out, "      14            2           11            3"), "%s", r.out);
    cr_assert(strstr(r.out, "       1            0            0           16"), "%s", r.out);
    shm_channel_close(sub1);
    shm_channel_close(sub2);
    shm_channel_close(pub);
    shm_channel_close(prod);
}
