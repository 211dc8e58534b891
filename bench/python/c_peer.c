/* C end of the Python benchmarks (bench/python/bench.py builds it with cc against the
 * library the Python package loaded).
 *
 *   c_peer produce NAME COUNT SIZE CAPACITY single|batch|frames
 *       single: one shm_channel_write per message; batch: shm_channel_write_batch of up
 *       to 256 messages; frames: like single, from one SIZE-byte source buffer (a camera
 *       frame copied into the ring). Each message starts with its sequence number
 *       (8 bytes, little-endian, when SIZE >= 8). Closes at the end (end-of-stream).
 *   c_peer consume NAME CAPACITY read|peek
 *       read: copy each message out into a buffer; peek: look at it in place (reads its
 *       sequence number). Prints "<messages> <bytes> <seconds>" measured from the first
 *       message to end-of-stream.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm_channel.h"

#define BATCH 256

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int produce(const char *name, uint64_t count, uint64_t size, uint64_t cap, const char *mode)
{
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, cap, 0600);
    if (rc) {
        fprintf(stderr, "c_peer: open %s: %s\n", name, shm_channel_strerror(rc));
        return 1;
    }
    int batch = strcmp(mode, "batch") == 0;
    uint64_t per = batch ? BATCH : 1;
    uint8_t *buf = calloc(per, size ? size : 1);
    uint64_t lens[BATCH];
    for (uint64_t i = 0; i < per; i++)
        lens[i] = size;
    if (!buf)
        return 1;
    memset(buf, 0xab, per * size);
    for (uint64_t i = 0; i < count;) {
        uint64_t n = count - i < per ? count - i : per;
        for (uint64_t k = 0; k < n && size >= 8; k++) {
            uint64_t seq = i + k;
            memcpy(buf + k * size, &seq, 8);
        }
        if (batch) {
            rc = shm_channel_write_batch(ch, buf, lens, (uint32_t)n, SHM_CHANNEL_INFINITE);
            if (rc > 0) {
                i += (uint64_t)rc;
                continue;
            }
        } else {
            rc = shm_channel_write(ch, buf, size, SHM_CHANNEL_INFINITE);
            if (rc == 0) {
                i++;
                continue;
            }
        }
        fprintf(stderr, "c_peer: write: %s\n", shm_channel_strerror(rc));
        shm_channel_close(ch);
        return 1;
    }
    free(buf);
    shm_channel_close(ch);
    return 0;
}

static int consume(const char *name, uint64_t cap, const char *mode)
{
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, cap, 0600);
    if (rc) {
        fprintf(stderr, "c_peer: open %s: %s\n", name, shm_channel_strerror(rc));
        return 1;
    }
    int peek = strcmp(mode, "peek") == 0;
    uint64_t bufcap = shm_channel_max_payload(ch);
    uint8_t *buf = peek ? NULL : malloc(bufcap);
    uint64_t n = 0, bytes = 0, check = 0;
    double t0 = 0;
    for (;;) {
        uint64_t len;
        if (peek) {
            const void *p;
            rc = shm_channel_peek(ch, &p, &len, 30 * 1000000000LL);
            if (rc == 0) {
                uint64_t seq = 0;
                if (len >= 8)
                    memcpy(&seq, p, 8);
                check += seq;
                rc = shm_channel_release(ch);
            }
        } else {
            rc = shm_channel_read(ch, buf, bufcap, &len, 30 * 1000000000LL);
            if (rc == 0 && len >= 8) {
                uint64_t seq;
                memcpy(&seq, buf, 8);
                check += seq;
            }
        }
        if (rc)
            break;
        if (n == 0)
            t0 = now_s();
        n++;
        bytes += len;
    }
    double dt = n ? now_s() - t0 : 0;
    free(buf);
    shm_channel_close(ch);
    if (rc != -EPIPE) {
        fprintf(stderr, "c_peer: read: %s\n", shm_channel_strerror(rc));
        return 1;
    }
    printf("%" PRIu64 " %" PRIu64 " %.6f %" PRIu64 "\n", n, bytes, dt, check);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "produce") == 0)
        return produce(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
                       strtoull(argv[5], NULL, 0), argv[6]);
    if (argc == 5 && strcmp(argv[1], "consume") == 0)
        return consume(argv[2], strtoull(argv[3], NULL, 0), argv[4]);
    fprintf(stderr, "usage: c_peer produce NAME COUNT SIZE CAPACITY single|batch|frames\n"
                    "       c_peer consume NAME CAPACITY read|peek\n");
    return 2;
}
