/* Process side of the harness: fork, pinning, the shared control block, barriers,
 * timestamps, the watchdog. */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int bench_side;
int64_t bench_spin_ns = -1;
static pid_t child_pid = -1;
static int child_status = -1; /* set once the child was reaped */
static pid_t parent_pid;
static int cpus[2] = {-1, -1};

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bench_fail(struct bench_run *run, const char *fmt, ...)
{
    char *dst = bench_side ? run->ctl->child_msg : run->err;
    size_t cap = bench_side ? sizeof run->ctl->child_msg : sizeof run->err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    __atomic_store_n(&run->ctl->abort, 1, __ATOMIC_RELEASE);
    return -1;
}

void bench_mark(struct bench_run *run, uint32_t p)
{
    __atomic_store_n(&run->ctl->phase[bench_side], p, __ATOMIC_RELEASE);
}

int bench_await(struct bench_run *run, uint32_t p)
{
    for (unsigned i = 1;; i++) {
        if (__atomic_load_n(&run->ctl->phase[!bench_side], __ATOMIC_ACQUIRE) >= p)
            return 0;
        bench_relax();
        if ((i & 4095) == 0) {
            if (__atomic_load_n(&run->ctl->abort, __ATOMIC_ACQUIRE))
                return -ECANCELED;
            if (bench_side == 0 && child_status < 0 &&
                waitpid(child_pid, &child_status, WNOHANG) == child_pid)
                return -ECANCELED;
            if (bench_side == 1 && getppid() != parent_pid)
                _exit(9);
            if (cpus[0] < 0 || cpus[0] == cpus[1])
                sched_yield(); /* unpinned or one CPU: let the other side run */
        }
    }
}

int bench_tp_begin(struct bench_run *run)
{
    bench_mark(run, 1);
    return bench_await(run, 1);
}

int bench_tp_start(struct bench_run *run)
{
    int rc = bench_await(run, 2);
    run->ctl->t_start = bench_now_ns();
    return rc;
}

void bench_tp_warm(struct bench_run *run)
{
    bench_mark(run, 2);
}

void bench_tp_end_consumer(struct bench_run *run)
{
    run->ctl->t_end = bench_now_ns();
    bench_mark(run, 3);
}

int bench_tp_end_producer(struct bench_run *run)
{
    return bench_await(run, 3);
}

int bench_shm_map(const char *name, size_t len, void **out)
{
    char path[128];
    snprintf(path, sizeof path, "/%s", name);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -errno;
    shm_unlink(path);
    int rc = 0;
    if (ftruncate(fd, (off_t)len) != 0) {
        rc = -errno;
    } else {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            rc = -errno;
        else
            *out = p;
    }
    close(fd);
    if (rc == 0)
        memset(*out, 0, len); /* fault every page in now, not in the measured loop */
    return rc;
}

/* ---- pinning ----------------------------------------------------------------------- */

static int pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : -errno;
}

int bench_pin_init(int want_pin, int cpu_a, int cpu_b, char *desc, size_t desc_len)
{
    parent_pid = getpid();
    if (!want_pin) {
        snprintf(desc, desc_len, "not pinned");
        return 0;
    }
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        snprintf(desc, desc_len, "not pinned (sched_getaffinity failed)");
        return 0;
    }
    if (cpu_a < 0 || cpu_b < 0) {
        int found = 0;
        for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
            if (CPU_ISSET(c, &allowed)) {
                if (found++ == 0)
                    cpu_a = c;
                else
                    cpu_b = c;
            }
        if (found < 2) {
            snprintf(desc, desc_len, "not pinned (fewer than 2 CPUs allowed)");
            return 0;
        }
    }
    if (pin_to(cpu_a) != 0) {
        snprintf(desc, desc_len, "not pinned (CPU %d refused)", cpu_a);
        return 0;
    }
    cpus[0] = cpu_a;
    cpus[1] = cpu_b;
    snprintf(desc, desc_len, "parent on CPU %d, child on CPU %d", cpu_a, cpu_b);
    return 0;
}

int bench_pinned_cpu(int side)
{
    return cpus[side];
}

/* ---- running ----------------------------------------------------------------------- */

/* What the watchdog says (async-signal-safe: built before the alarm, phases appended by
 * hand): which case, size and run hung, and how far each side got (bench_mark phases: 0
 * before its barrier, 1 in the measured loop, 2-3 the throughput hand-offs). */
static char watchdog_msg[256];
static const volatile uint32_t *watchdog_phase;

static size_t put_str(char *dst, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        dst[at++] = *s++;
    return at;
}

static size_t put_u32(char *dst, size_t at, size_t cap, uint32_t v)
{
    char tmp[12];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 11);
    while (n > 0 && at + 1 < cap)
        dst[at++] = tmp[--n];
    return at;
}

static void on_alarm(int sig)
{
    (void)sig;
    if (child_pid > 0)
        kill(child_pid, SIGKILL);
    char msg[sizeof watchdog_msg + 64];
    size_t n = put_str(msg, 0, sizeof msg, watchdog_msg);
    if (watchdog_phase) {
        n = put_str(msg, n, sizeof msg, "; phase parent ");
        n = put_u32(msg, n, sizeof msg, watchdog_phase[0]);
        n = put_str(msg, n, sizeof msg, ", child ");
        n = put_u32(msg, n, sizeof msg, watchdog_phase[1]);
    }
    n = put_str(msg, n, sizeof msg, "; stopping\n");
    if (write(2, msg, n) < 0) {
        /* nothing more to do */
    }
    _exit(3);
}

int bench_run_once(const struct bench_transport *t, struct bench_run *run, unsigned watchdog_s)
{
    int rc = 0;
    run->err[0] = 0;
    run->ctl = mmap(NULL, sizeof *run->ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
    if (run->ctl == MAP_FAILED) {
        run->ctl = NULL;
        snprintf(run->err, sizeof run->err, "mmap: %s", strerror(errno));
        return -1;
    }
    memset(run->ctl, 0, sizeof *run->ctl);
    run->shared = NULL;
    if (t->setup && (rc = t->setup(run)) != 0) {
        if (!run->err[0])
            snprintf(run->err, sizeof run->err, "setup: %s", strerror(-rc));
        goto out;
    }
    if (t->kind == BENCH_ROUNDTRIP)
        run->ctl->rtt_total = run->warmup + run->count;
    snprintf(watchdog_msg, sizeof watchdog_msg,
             "shm_channel_bench: watchdog: %s (%s) took over %u s", run->what[0] ? run->what : t->id,
             t->label, watchdog_s);
    watchdog_phase = run->ctl->phase;
    signal(SIGALRM, on_alarm);
    alarm(watchdog_s);
    if (t->kind == BENCH_LOCAL) {
        bench_side = 0;
        rc = t->local(run);
        goto done;
    }
    fflush(NULL);
    child_status = -1;
    child_pid = fork();
    if (child_pid < 0) {
        snprintf(run->err, sizeof run->err, "fork: %s", strerror(errno));
        rc = -1;
        goto done;
    }
    if (child_pid == 0) {
        bench_side = 1;
        signal(SIGALRM, SIG_DFL);
        /* Dies with the parent, whatever kills it (the watchdog, `timeout`, a SIGKILL): a
         * child polling a baseline ring never returns to bench_await's parent check. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent_pid)
            _exit(9);
        if (cpus[1] >= 0)
            (void)pin_to(cpus[1]);
        int crc = t->kind == BENCH_THROUGHPUT ? t->consume(run) : t->pong(run);
        if (crc && !run->ctl->child_msg[0])
            snprintf(run->ctl->child_msg, sizeof run->ctl->child_msg, "failed (%d)", crc);
        _exit(crc ? 1 : 0);
    }
    bench_side = 0;
    rc = t->kind == BENCH_THROUGHPUT ? t->produce(run) : t->ping(run);
    if (rc != 0 && child_status < 0)
        kill(child_pid, SIGKILL); /* it may be polling a baseline ring forever */
    if (child_status < 0 && waitpid(child_pid, &child_status, 0) != child_pid)
        child_status = -1;
    if (!(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0)) {
        if (run->ctl->child_msg[0])
            snprintf(run->err, sizeof run->err, "child: %.240s", run->ctl->child_msg);
        else if (!run->err[0])
            snprintf(run->err, sizeof run->err, "child ended with status 0x%x", child_status);
        rc = -1;
    } else if (rc != 0 && !run->err[0]) {
        snprintf(run->err, sizeof run->err, "failed (%d)", rc);
    }
    child_pid = -1;
done:
    alarm(0);
    signal(SIGALRM, SIG_DFL);
    watchdog_phase = NULL;
    if (t->teardown)
        t->teardown(run);
out:
    run->t_start = run->ctl->t_start;
    run->t_end = run->ctl->t_end;
    run->rtt_done = run->ctl->rtt_total;
    memcpy(run->info, run->ctl->info, sizeof run->info);
    munmap(run->ctl, sizeof *run->ctl);
    run->ctl = NULL;
    return rc;
}
