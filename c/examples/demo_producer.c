/* Demo producer: demo_producer [NAME [COUNT [SIZE [CAPACITY]]]]
 * Sends COUNT messages of SIZE bytes (default: 1080p RGB frames) on NAME, each starting with
 * its sequence number, then closes (end-of-stream). Both sides must agree on CAPACITY
 * (default 32 MiB), since either may create the channel. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo_args.h"
#include "shm_channel.h"

static const char usage[] =
    "usage: demo_producer [NAME [COUNT [SIZE [CAPACITY]]]]\n"
    "  Send COUNT (300) messages of SIZE bytes (1920*1080*3) on channel NAME (demo),\n"
    "  creating it with CAPACITY bytes (32 MiB) if needed, then close (end-of-stream).\n"
    "  A NAME starting with '-' goes after \"--\".\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *pos[4];
    int npos = demo_positional(argc, argv, usage, pos, 4);
    const char *name = npos > 0 ? pos[0] : "demo";
    uint64_t count = npos > 1 ? demo_number(argv[0], "COUNT", pos[1], usage) : 300;
    uint64_t size = npos > 2 ? demo_number(argv[0], "SIZE", pos[2], usage) : 1920 * 1080 * 3;
    uint64_t cap = npos > 3 ? demo_number(argv[0], "CAPACITY", pos[3], usage) : 32u << 20;

    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, cap, 0600);
    if (rc) {
        fprintf(stderr, "demo_producer: open %s: %s\n", name, shm_channel_strerror(rc));
        return 1;
    }
    double t0 = now_s();
    for (uint64_t i = 0; i < count; i++) {
        void *p;
        /* Zero-copy: fill the frame in place, then publish it. */
        if ((rc = shm_channel_reserve(ch, size, &p, SHM_CHANNEL_INFINITE)) != 0) {
            fprintf(stderr, "demo_producer: reserve: %s\n", shm_channel_strerror(rc));
            shm_channel_close(ch);
            return 1;
        }
        memset(p, (int)(i & 0xff), size);
        if (size >= 8)
            memcpy(p, &i, 8);
        shm_channel_commit(ch, size);
    }
    double dt = now_s() - t0;
    printf("producer: sent %" PRIu64 " messages of %" PRIu64 " B in %.3f s: %.0f msg/s, %.2f GB/s\n",
           count, size, dt, (double)count / dt, (double)(count * size) / dt / 1e9);
    shm_channel_close(ch);
    return 0;
}
