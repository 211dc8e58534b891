/* Kernel IPC baselines measured in the same run as shm_channel (issue 6):
 *  - pipe:  an anonymous pipe (default size) between the two processes, write(2) of one
 *           whole message per call, read(2) until the message's size has arrived;
 *  - unix:  a Unix domain stream socket pair (socketpair(AF_UNIX, SOCK_STREAM), default
 *           buffers), the same loops.
 * Messages are fixed-size in a run, so neither needs a length prefix (which favours them
 * slightly over a real protocol). Every message carries its sequence number, checked by
 * the receiver, as in every other case. Round trips: 64 B ping -> pong -> ping over two
 * pipes, or over the one duplex socket pair. The loops follow the choreography in bench.h. */
#define _GNU_SOURCE
#include "c_ipc_baselines.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The descriptors of the current run, made in setup() before the fork (so both processes
 * have them); each side closes the ends it does not use, so that a side that fails or
 * exits shows up at the other as EOF or EPIPE instead of a hang. */
static int fds[4] = {-1, -1, -1, -1};

static void close_all(void)
{
    for (int i = 0; i < 4; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

static void keep_only(int a, int b)
{
    for (int i = 0; i < 4; i++) {
        if (i != a && i != b && fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

static int write_all(int fd, const uint8_t *p, uint64_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (uint64_t)k;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, uint64_t n)
{
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            return -EPIPE; /* the other side went away */
        p += k;
        n -= (uint64_t)k;
    }
    return 0;
}

/* [0] read end, [1] write end of the parent -> child pipe; [2], [3] child -> parent. */
static int pipe_setup(struct bench_run *run)
{
    (void)run;
    close_all();
    if (pipe(fds) != 0 || pipe(fds + 2) != 0)
        return -errno;
    return 0;
}

/* [0] the parent's end, [1] the child's. */
static int unix_setup(struct bench_run *run)
{
    (void)run;
    close_all();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        return -errno;
    return 0;
}

static void ipc_teardown(struct bench_run *run)
{
    (void)run;
    close_all();
}

/* ---- throughput ------------------------------------------------------------------------ */

static int ipc_produce(struct bench_run *run, int fd, const char *what)
{
    signal(SIGPIPE, SIG_IGN);
    uint8_t *src = aligned_alloc(64, run->size + 64);
    if (!src)
        return bench_fail(run, "out of memory");
    memset(src, 0x5a, run->size + 64);
    int rc = bench_tp_begin(run);
    uint64_t i = 0;
    for (; rc == 0 && i < run->warmup; i++) {
        bench_stamp(src, run->size, i);
        rc = write_all(fd, src, run->size);
    }
    if (rc == 0)
        rc = bench_tp_start(run);
    for (uint64_t end = i + run->count; rc == 0 && i < end; i++) {
        bench_stamp(src, run->size, i);
        rc = write_all(fd, src, run->size);
    }
    if (rc == 0)
        rc = bench_tp_end_producer(run);
    else if (rc != -ECANCELED)
        rc = bench_fail(run, "%s: write: %s", what, strerror(-rc));
    free(src);
    return rc;
}

static int ipc_consume(struct bench_run *run, int fd, const char *what)
{
    uint8_t *buf = aligned_alloc(64, run->size + 64);
    if (!buf)
        return bench_fail(run, "out of memory");
    int rc = bench_tp_begin(run);
    uint64_t i = 0, bad = 0;
    for (; rc == 0 && i < run->warmup; i++) {
        rc = read_all(fd, buf, run->size);
        bad += !bench_check(buf, run->size, i);
    }
    bench_tp_warm(run);
    for (uint64_t end = i + run->count; rc == 0 && i < end; i++) {
        rc = read_all(fd, buf, run->size);
        bad += !bench_check(buf, run->size, i);
    }
    bench_tp_end_consumer(run);
    free(buf);
    if (rc != 0 && rc != -ECANCELED)
        return bench_fail(run, "%s: read: %s", what, strerror(-rc));
    if (bad)
        return bench_fail(run, "%s: %llu bad messages", what, (unsigned long long)bad);
    return rc;
}

static int pipe_produce(struct bench_run *run)
{
    keep_only(1, -1);
    return ipc_produce(run, fds[1], "pipe");
}

static int pipe_consume(struct bench_run *run)
{
    keep_only(0, -1);
    return ipc_consume(run, fds[0], "pipe");
}

static int unix_produce(struct bench_run *run)
{
    keep_only(0, -1);
    return ipc_produce(run, fds[0], "unix socket");
}

static int unix_consume(struct bench_run *run)
{
    keep_only(1, -1);
    return ipc_consume(run, fds[1], "unix socket");
}

const struct bench_transport bench_pipe = {
    .id = "pipe", .label = "pipe (baseline)", .group = "baseline",
    .kind = BENCH_THROUGHPUT, .setup = pipe_setup, .teardown = ipc_teardown,
    .produce = pipe_produce, .consume = pipe_consume,
};

const struct bench_transport bench_unix = {
    .id = "unix", .label = "unix socket (baseline)", .group = "baseline",
    .kind = BENCH_THROUGHPUT, .setup = unix_setup, .teardown = ipc_teardown,
    .produce = unix_produce, .consume = unix_consume,
};

/* ---- round trips ----------------------------------------------------------------------- */

static int ipc_rtt_side(struct bench_run *run, int in, int out, int ping, const char *what)
{
    signal(SIGPIPE, SIG_IGN);
    uint8_t *msg = aligned_alloc(64, run->size + 64);
    uint8_t *buf = aligned_alloc(64, run->size + 64);
    if (!msg || !buf) {
        free(msg);
        free(buf);
        return bench_fail(run, "out of memory");
    }
    memset(msg, 0x5a, run->size + 64);
    bench_mark(run, 1);
    int rc = bench_await(run, 1);
    uint64_t bad = 0;
    for (uint64_t i = 0; rc == 0 && i < bench_rtt_total(run); i++) {
        if (ping) {
            uint64_t t0 = bench_now_ns();
            bench_rtt_ping_check(run, i, t0);
            bench_stamp(msg, run->size, i);
            rc = write_all(out, msg, run->size);
            if (rc == 0)
                rc = read_all(in, buf, run->size);
            uint64_t t1 = bench_now_ns();
            bad += !bench_check(buf, run->size, i);
            if (i >= run->warmup)
                run->samples[i - run->warmup] = t1 - t0;
        } else {
            rc = read_all(in, buf, run->size);
            bad += !bench_check(buf, run->size, i);
            if (rc == 0)
                rc = write_all(out, buf, run->size);
        }
    }
    free(msg);
    free(buf);
    if (rc != 0 && rc != -ECANCELED)
        return bench_fail(run, "%s: %s", what, strerror(-rc));
    if (bad)
        return bench_fail(run, "%s: %llu bad messages", what, (unsigned long long)bad);
    return rc;
}

static int pipe_ping(struct bench_run *run)
{
    keep_only(1, 2);
    return ipc_rtt_side(run, fds[2], fds[1], 1, "pipe");
}

static int pipe_pong(struct bench_run *run)
{
    keep_only(0, 3);
    return ipc_rtt_side(run, fds[0], fds[3], 0, "pipe");
}

static int unix_ping(struct bench_run *run)
{
    keep_only(0, -1);
    return ipc_rtt_side(run, fds[0], fds[0], 1, "unix socket");
}

static int unix_pong(struct bench_run *run)
{
    keep_only(1, -1);
    return ipc_rtt_side(run, fds[1], fds[1], 0, "unix socket");
}

const struct bench_transport bench_pipe_rtt = {
    .id = "pipe", .label = "pipe (baseline)", .group = "baseline",
    .kind = BENCH_ROUNDTRIP, .setup = pipe_setup, .teardown = ipc_teardown,
    .ping = pipe_ping, .pong = pipe_pong,
};

const struct bench_transport bench_unix_rtt = {
    .id = "unix", .label = "unix socket (baseline)", .group = "baseline",
    .kind = BENCH_ROUNDTRIP, .setup = unix_setup, .teardown = ipc_teardown,
    .ping = unix_ping, .pong = unix_pong,
};
