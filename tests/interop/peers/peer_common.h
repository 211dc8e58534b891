/* What the C peers of streams (peer.c) and services (svc_peer.c) share of the message
 * definition of tests/interop/README.md: the mixer and the checksum. */
#ifndef PEER_COMMON_H
#define PEER_COMMON_H

#include <stdint.h>

#define GOLDEN 0x9E3779B97F4A7C15ull
#define POOL_SEED_XOR 0x6A09E667F3BCC909ull

/* splitmix64's finaliser */
static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t adler32(const uint8_t *p, uint64_t n)
{
    uint32_t a = 1, b = 0;
    while (n) {
        uint64_t k = n < 5552 ? n : 5552;
        n -= k;
        while (k--) {
            a += *p++;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    return (b << 16) | a;
}

#endif
