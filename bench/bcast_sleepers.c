/* Broadcast publish cost with subscribers asleep between messages (issue 10, spec/broadcast.md
 * §5.7): a publisher pinned to CPU 0 writes one 64 B message every GAP_US microseconds to N
 * subscriber processes pinned to CPU 1 that sleep (spin 0) until each message. For each N, two
 * runs back to back, in the same process:
 *   wake-all  the publisher wakes every sleeper in its own FUTEX_WAKE (shm__hook_bcast_chain
 *             = 1 on both sides: the library before the wake chain);
 *   chain     the default: the publisher wakes one, every woken subscriber wakes two more.
 * Prints per message: the publisher's CPU time inside the write call (CLOCK_THREAD_CPUTIME_ID;
 * it includes the wake call), the CPU time of all subscribers together (/proc/<pid>/schedstat,
 * first message to last), the time from the write to the last subscriber's delivery (only
 * rounds where every subscriber had the previous message before the write), the wake calls
 * and the subscribers' sleeps per delivery.
 *
 * Build against the library's objects (the knobs are not exported), from the repository root
 * after building build-dev (scripts/test-c.sh's configuration):
 *   cc -O2 -std=gnu11 -Ic/include bench/bcast_sleepers.c \
 *      build-dev/CMakeFiles/shm_channel_objects.dir/c/src/STAR.o -lpthread \
 *      -o build-dev/bcast_sleepers          (STAR: the shell's asterisk)
 *   build-dev/bcast_sleepers MSGS GAP_US N...      e.g. 1000 1000 0 1 8 64 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm_channel.h"

extern int shm__hook_bcast_chain;

#define MAX_SUBS 256

struct shared {
    uint64_t seq[MAX_SUBS];     /* last message each subscriber read */
    uint64_t done_ns[MAX_SUBS]; /* when it read it (CLOCK_MONOTONIC) */
};

static struct shared *S;

static double thread_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t proc_cpu_ns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/schedstat", (long)pid);
    FILE *f = fopen(path, "r");
    unsigned long long ns = 0;
    if (f) {
        if (fscanf(f, "%llu", &ns) != 1)
            ns = 0;
        fclose(f);
    }
    return ns;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

/* A subscriber process: sleeps (no spin) until each message, until end-of-stream. */
static void subscriber(const char *name, int i)
{
    pin(1);
    shm_channel_t *s;
    if (shm_channel_open_broadcast(&s, name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0) != 0)
        _exit(1);
    shm_channel_set_spin(s, 0);
    uint64_t buf[8];
    uint64_t len, missed;
    while (shm_channel_recv(s, buf, sizeof buf, &len, &missed, -1) == 0) {
        __atomic_store_n(&S->done_ns[i], mono_ns(), __ATOMIC_RELAXED);
        __atomic_store_n(&S->seq[i], buf[0], __ATOMIC_RELEASE);
    }
    shm_channel_close(s);
    _exit(0);
}

static void run(int n, int chain, int msgs, int gap_us)
{
    char name[64];
    snprintf(name, sizeof name, "bcast-sleepers-%d", (int)getpid());
    memset(S, 0, sizeof *S);
    shm_channel_broadcast_config_t cfg = {64, 64, MAX_SUBS, NULL, {0}};
    shm__hook_bcast_chain = chain ? 0 : 1; /* inherited by the subscribers */
    shm_channel_t *pub;
    int rc = shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER,
                                        SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, &cfg, 0600);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", name, shm_channel_strerror(rc));
        exit(1);
    }
    pid_t pids[MAX_SUBS];
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            subscriber(name, i);
    }
    shm_channel_broadcast_stat_t bs;
    do {
        usleep(1000);
        shm_channel_broadcast_stat(pub, &bs);
    } while (bs.subscribers < (uint32_t)n);
    shm_channel_stat_t st0, st1;
    shm_channel_stat(pub, &st0);
    uint64_t sub_cpu0 = 0;
    for (int i = 0; i < n; i++)
        sub_cpu0 += proc_cpu_ns(pids[i]);

    uint64_t msg[8] = {0};
    double in_write = 0, reach = 0;
    int reached = 0;
    uint64_t t_pub = 0;
    for (int k = 1; k <= msgs; k++) {
        struct timespec gap = {0, (long)gap_us * 1000};
        nanosleep(&gap, NULL);
        if (k > 1) { /* did every subscriber read message k - 1 before this write? */
            uint64_t last = 0;
            int all = 1;
            for (int i = 0; i < n && all; i++) {
                if (__atomic_load_n(&S->seq[i], __ATOMIC_ACQUIRE) != (uint64_t)k - 1)
                    all = 0;
                else if (S->done_ns[i] > last)
                    last = S->done_ns[i];
            }
            if (all && n) {
                reach += (double)(last - t_pub);
                reached++;
            }
        }
        msg[0] = (uint64_t)k;
        t_pub = mono_ns();
        double c0 = thread_cpu_ns();
        shm_channel_write(pub, msg, sizeof msg, 0);
        in_write += thread_cpu_ns() - c0;
    }
    /* The last message read by all before the subscribers' CPU is taken. */
    for (int i = 0; i < n; i++)
        while (__atomic_load_n(&S->seq[i], __ATOMIC_ACQUIRE) != (uint64_t)msgs)
            usleep(100);
    uint64_t sub_cpu1 = 0, sleeps = 0;
    for (int i = 0; i < n; i++)
        sub_cpu1 += proc_cpu_ns(pids[i]);
    shm_channel_stat(pub, &st1);
    for (int i = 0; i < n; i++) {
        shm_channel_sub_stat_t ss;
        if (shm_channel_sub_stat(pub, i, &ss) == 0)
            sleeps += ss.sleeps;
    }
    printf("subs %2d %-8s: publish %7.0f ns/msg (write call), subscribers %7.1f us/msg "
           "(all together), last delivery %7.1f us after the write (%d of %d rounds), "
           "wake calls %llu, sleeps %.2f per delivery\n",
           n, chain ? "chain" : "wake-all", in_write / msgs, (double)(sub_cpu1 - sub_cpu0) / 1e3 / msgs,
           reached ? reach / reached / 1e3 : 0.0, reached, msgs - 1,
           (unsigned long long)(st1.producer_wakes - st0.producer_wakes),
           n ? (double)sleeps / ((double)n * msgs) : 0.0);
    fflush(stdout);
    shm_channel_close(pub); /* end-of-stream: the subscribers close */
    for (int i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
    (void)shm_channel_unlink(name, 0);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MSGS GAP_US N...\n", argv[0]);
        return 2;
    }
    int msgs = atoi(argv[1]), gap_us = atoi(argv[2]);
    if (msgs <= 0 || gap_us < 0 || gap_us >= 1000000) {
        fprintf(stderr, "MSGS > 0, GAP_US in 0..999999\n");
        return 2;
    }
    S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED)
        return 1;
    pin(0);
    for (int a = 3; a < argc; a++) {
        int n = atoi(argv[a]);
        if (n < 0 || n > MAX_SUBS) {
            fprintf(stderr, "N in 0..%d\n", MAX_SUBS);
            return 2;
        }
        run(n, 0, msgs, gap_us);
        run(n, 1, msgs, gap_us);
    }
    return 0;
}
