/* Our compat side in C, for tests/interop/test_compat.py: the command line, message stream
 * and exit codes of tests/compat/peer_model.cpp (so any of ours or the peer's models can be
 * on either end), through the public API (shm_channel_open with SHM_CHANNEL_COMPAT).
 *   compat_peer produce NAME SIZE COUNT SEED MAXLEN   (creates NAME, capacity SIZE - 16)
 *   compat_peer consume NAME COUNT SEED MAXLEN
 * Exit 0: all sent / all received intact; 3: corrupt message; 4: no progress for 20 s;
 * 2: usage or library error. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm_channel.h"

#define STALL_NS 20000000000ll

static uint64_t mix(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t msg_len(uint64_t seed, uint64_t seq, uint32_t maxlen)
{
    uint64_t r = mix(seed * 1000003ull + seq);
    uint32_t small = maxlen < 64 ? maxlen : 64;
    return 1 + (uint32_t)((r >> 8) % ((r & 63) == 0 ? maxlen : small));
}

static void msg_fill(uint8_t *b, uint64_t seed, uint64_t seq, uint32_t len)
{
    uint64_t k = mix((seed * 1000003ull + seq) ^ 0xABCDEFull);
    for (uint32_t i = 0; i < len; i++)
        b[i] = (uint8_t)(k >> (8 * (i & 7)));
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "compat_peer: %s: %s\n", what, shm_channel_strerror(rc));
    return rc == -ETIMEDOUT ? 4 : 2;
}

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "produce") == 0) {
        uint64_t size = strtoull(argv[3], NULL, 0), count = strtoull(argv[4], NULL, 0);
        uint64_t seed = strtoull(argv[5], NULL, 0);
        uint32_t maxlen = (uint32_t)strtoul(argv[6], NULL, 0);
        shm_channel_t *p;
        int rc = shm_channel_open(&p, argv[2], SHM_CHANNEL_PRODUCER,
                                  SHM_CHANNEL_COMPAT | SHM_CHANNEL_CREATE, size - 16, 0);
        if (rc)
            return fail("open", rc);
        uint8_t *buf = malloc(maxlen);
        for (uint64_t seq = 0; seq < count; seq++) {
            uint32_t len = msg_len(seed, seq, maxlen);
            msg_fill(buf, seed, seq, len);
            if ((rc = shm_channel_write(p, buf, len, STALL_NS)) != 0)
                return fail("write", rc);
        }
        free(buf);
        shm_channel_close(p);
        return 0;
    }
    if (argc >= 6 && strcmp(argv[1], "consume") == 0) {
        uint64_t count = strtoull(argv[3], NULL, 0), seed = strtoull(argv[4], NULL, 0);
        uint32_t maxlen = (uint32_t)strtoul(argv[5], NULL, 0);
        shm_channel_t *c;
        int64_t t0 = now_ns();
        int rc;
        /* The producer makes the segment; the peer's C++ side creates it 0666 - umask. */
        while ((rc = shm_channel_open(&c, argv[2], SHM_CHANNEL_CONSUMER, SHM_CHANNEL_COMPAT, 0,
                                      0666)) == -ENOENT ||
               rc == -ETIMEDOUT) {
            if (now_ns() - t0 > STALL_NS)
                return fail("open", -ETIMEDOUT);
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        if (rc)
            return fail("open", rc);
        uint8_t *buf = malloc(maxlen), *want = malloc(maxlen);
        for (uint64_t seq = 0; seq < count; seq++) {
            uint64_t n;
            if ((rc = shm_channel_read(c, buf, maxlen, &n, STALL_NS)) != 0)
                return fail("read", rc);
            uint32_t wlen = msg_len(seed, seq, maxlen);
            msg_fill(want, seed, seq, wlen);
            if (n != wlen || memcmp(buf, want, n) != 0) {
                fprintf(stderr, "compat_peer: CORRUPT message %llu\n", (unsigned long long)seq);
                return 3;
            }
        }
        free(buf);
        free(want);
        shm_channel_close(c);
        return 0;
    }
    fprintf(stderr, "usage: see the comment at the top of compat_peer.c\n");
    return 2;
}
