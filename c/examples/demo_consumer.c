/* Demo consumer: demo_consumer [NAME [CAPACITY]]
 * Reads NAME until end-of-stream, checking each message's sequence number, and prints the
 * throughput. CAPACITY (default 32 MiB) must match the producer's. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "demo_args.h"
#include "shm_channel.h"

static const char usage[] =
    "usage: demo_consumer [NAME [CAPACITY]]\n"
    "  Read channel NAME (demo) until end-of-stream, creating it with CAPACITY bytes\n"
    "  (32 MiB) if needed, and print the throughput. A NAME starting with '-' goes\n"
    "  after \"--\".\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *pos[2];
    int npos = demo_positional(argc, argv, usage, pos, 2);
    const char *name = npos > 0 ? pos[0] : "demo";
    uint64_t cap = npos > 1 ? demo_number(argv[0], "CAPACITY", pos[1], usage) : 32u << 20;
    shm_channel_t *ch;
    /* Either side may start first: create the channel if the producer has not yet. */
    int rc = shm_channel_open(&ch, name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, cap, 0600);
    if (rc) {
        fprintf(stderr, "demo_consumer: open %s: %s\n", name, shm_channel_strerror(rc));
        return 1;
    }
    uint64_t n = 0, bytes = 0;
    double t0 = 0;
    for (;;) {
        const void *p;
        uint64_t len;
        /* Zero-copy: look at the message in place, then release it. */
        rc = shm_channel_peek(ch, &p, &len, 10 * 1000000000LL);
        if (rc)
            break;
        if (n == 0)
            t0 = now_s();
        uint64_t seq = n;
        if (len >= 8)
            memcpy(&seq, p, 8);
        if (seq != n) {
            fprintf(stderr, "demo_consumer: message %" PRIu64 " has sequence %" PRIu64 "\n", n, seq);
            shm_channel_close(ch);
            return 1;
        }
        n++;
        bytes += len;
        shm_channel_release(ch);
    }
    double dt = n ? now_s() - t0 : 0;
    shm_channel_close(ch);
    if (rc != -EPIPE) {
        fprintf(stderr, "demo_consumer: stopped after %" PRIu64 " messages: %s\n", n,
                shm_channel_strerror(rc));
        return 1;
    }
    printf("consumer: received %" PRIu64 " messages, %" PRIu64 " bytes, in order, then end-of-stream",
           n, bytes);
    if (dt > 0)
        printf(": %.0f msg/s, %.2f GB/s", (double)n / dt, (double)bytes / dt / 1e9);
    printf("\n");
    return 0;
}
