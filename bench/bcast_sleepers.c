/* Broadcast publish cost with subscribers asleep between messages (issue 10): a publisher
 * pinned to CPU 0 writes one 64 B message every GAP_US microseconds to N subscriber
 * processes pinned to CPU 1 that sleep (spin 0) until each message. Prints the publisher's
 * CPU time inside the write call per message (CLOCK_THREAD_CPUTIME_ID; it includes the
 * FUTEX_WAKE that wakes the sleepers) with the membarrier handshake (KNOB 0,
 * shm__bcast_hook_membarrier_publisher = 1: its subscribers issue a membarrier before each
 * sleep) or as a fence-only publisher (KNOB 1, the library's default).
 *
 * Build against the library's objects (the knob is not exported), from the repository root
 * after building build-dev (scripts/test-c.sh's configuration):
 *   cc -O2 -std=gnu11 -Ic/include bench/bcast_sleepers.c \
 *      build-dev/CMakeFiles/shm_channel_objects.dir/c/src/STAR.o -lpthread \
 *      -o build-dev/bcast_sleepers          (STAR: the shell's asterisk)
 *   build-dev/bcast_sleepers N KNOB MSGS GAP_US      e.g. 64 0 1000 200 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm_channel.h"

extern int shm__hook_handshake_fence_only;
extern int shm__bcast_hook_membarrier_publisher;

#define MAX_SUBS 256

static double thread_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

/* A subscriber process: sleeps (no spin) until each message, until end-of-stream. */
static void subscriber(const char *name)
{
    pin(1);
    shm__hook_handshake_fence_only = 0;
    shm_channel_t *s;
    if (shm_channel_open_broadcast(&s, name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0) != 0)
        _exit(1);
    shm_channel_set_spin(s, 0);
    uint8_t buf[64];
    uint64_t len, missed;
    while (shm_channel_recv(s, buf, sizeof buf, &len, &missed, -1) == 0)
        ;
    shm_channel_close(s);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s N KNOB MSGS GAP_US\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), knob = atoi(argv[2]), msgs = atoi(argv[3]), gap_us = atoi(argv[4]);
    if (n < 0 || n > MAX_SUBS || msgs <= 0 || gap_us < 0) {
        fprintf(stderr, "N in 0..%d, MSGS > 0, GAP_US >= 0\n", MAX_SUBS);
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "bcast-sleepers-%d", (int)getpid());
    shm_channel_broadcast_config_t cfg = {64, 64, 72, NULL, {0}};
    pin(0);
    shm__hook_handshake_fence_only = knob;
    shm__bcast_hook_membarrier_publisher = !knob;
    shm_channel_t *pub;
    int rc = shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER,
                                        SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, &cfg, 0600);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", name, shm_channel_strerror(rc));
        return 1;
    }
    pid_t pids[MAX_SUBS];
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            subscriber(name);
    }
    shm_channel_broadcast_stat_t bs;
    do {
        usleep(1000);
        shm_channel_broadcast_stat(pub, &bs);
    } while (bs.subscribers < (uint32_t)n);

    uint8_t msg[64] = {0};
    double in_write = 0;
    for (int k = 0; k < msgs; k++) {
        struct timespec gap = {0, (long)gap_us * 1000};
        nanosleep(&gap, NULL);
        double c0 = thread_cpu_ns();
        shm_channel_write(pub, msg, sizeof msg, 0);
        in_write += thread_cpu_ns() - c0;
    }
    shm_channel_stat_t st;
    shm_channel_stat(pub, &st);
    printf("subs %2d knob %d: publish cpu %.0f ns/msg (write call only), wakes %lu, "
           "thread cpu total %.1f us/msg\n",
           n, knob, in_write / msgs, (unsigned long)st.producer_wakes,
           thread_cpu_ns() / msgs / 1000);
    shm_channel_close(pub); /* end-of-stream: the subscribers close and the last one unlinks */
    for (int i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
    (void)shm_channel_unlink(name, 0); /* with no subscriber, nobody else would */
    return 0;
}
