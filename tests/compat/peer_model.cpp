// A model of seed 002's C++ side (ShmProducer / ShmConsumer over its byte ring), written from
// the behaviour in spec/compat.md section 1, NOT a copy of its code. It is the peer our compat
// channels must interoperate with, bugs included:
//   - the producer unlinks any segment of the name, creates it 0666 (minus umask), sizes it,
//     sets capacity = the largest power of two that fits in size - 16, then head = tail = 0;
//   - the consumer opens only (no retry), and trusts the header;
//   - free space is capacity - (head - tail) in u32 arithmetic: a torn tail (often 0) from a
//     Python consumer looks like huge free space and unread records get overwritten;
//   - empty is head - tail < 4: a torn head from a Python producer that is behind our tail
//     looks like a lot of data, and garbage is read;
//   - Write returns false at once when full; Read skips a record larger than the buffer;
//     a 0-length record stalls the consumer forever.
// Usage (the test driver's harness around the peer's classes):
//   peer_model_cpp produce NAME SIZE COUNT SEED MAXLEN [START]
//   peer_model_cpp consume NAME COUNT SEED MAXLEN
// Messages: spec/compat.md's test stream (msg_len / msg_fill below, same as the Python model
// and the C tests). Exit 0: all sent / all received intact; 3: corrupt message received;
// 4: no progress for STALL_SEC seconds; 2: usage or system error.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

const int STALL_SEC = 20;

uint64_t mix(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint32_t msg_len(uint64_t seed, uint64_t seq, uint32_t maxlen)
{
    uint64_t r = mix(seed * 1000003ull + seq);
    uint32_t small = maxlen < 64 ? maxlen : 64;
    return 1 + (uint32_t)((r >> 8) % ((r & 63) == 0 ? maxlen : small));
}

void msg_fill(uint8_t *b, uint64_t seed, uint64_t seq, uint32_t len)
{
    uint64_t k = mix((seed * 1000003ull + seq) ^ 0xABCDEFull);
    for (uint32_t i = 0; i < len; i++)
        b[i] = (uint8_t)(k >> (8 * (i & 7)));
}

struct Header {
    uint32_t head, tail, capacity, reserved;
};

uint32_t load(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
void store(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

class ByteRing {
  public:
    ByteRing(void *base, bool init, uint32_t cap, uint32_t start) : h_((Header *)base),
        data_((uint8_t *)base + 16)
    {
        if (init) {
            h_->capacity = cap;
            h_->head = start;
            h_->tail = start;
        }
        cap_ = h_->capacity;
    }
    bool Write(const void *src, uint32_t len)
    {
        uint32_t head = load(&h_->head);
        uint32_t tail = load(&h_->tail);
        std::atomic_thread_fence(std::memory_order_acquire);
        uint32_t free_space = cap_ - (head - tail); // a torn tail makes this huge
        if (4 + len > free_space)
            return false;
        uint8_t prefix[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                             (uint8_t)(len >> 24)};
        put(head, prefix, 4);
        put(head + 4, src, len);
        std::atomic_thread_fence(std::memory_order_release);
        store(&h_->head, head + 4 + len);
        return true;
    }
    // Returns the length read, 0 when empty (or stalled on a 0-length record, or after
    // silently skipping a record larger than bufsize).
    uint32_t Read(void *dst, uint32_t bufsize)
    {
        uint32_t head = load(&h_->head);
        uint32_t tail = load(&h_->tail);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (head - tail < 4) // a torn head behind tail looks like lots of data
            return 0;
        uint8_t prefix[4];
        get(tail, prefix, 4);
        uint32_t len = prefix[0] | prefix[1] << 8 | prefix[2] << 16 | (uint32_t)prefix[3] << 24;
        if (len == 0)
            return 0; // never advances: stalls forever
        if (len > bufsize) {
            std::atomic_thread_fence(std::memory_order_release);
            store(&h_->tail, tail + 4 + len);
            return 0;
        }
        get(tail + 4, dst, len);
        std::atomic_thread_fence(std::memory_order_release);
        store(&h_->tail, tail + 4 + len);
        return len;
    }
    uint32_t capacity() const { return cap_; }

  private:
    void put(uint32_t pos, const void *src, uint32_t n)
    {
        for (uint32_t i = 0; i < n; i++)
            data_[(pos + i) & (cap_ - 1)] = ((const uint8_t *)src)[i];
    }
    void get(uint32_t pos, void *dst, uint32_t n)
    {
        for (uint32_t i = 0; i < n; i++)
            ((uint8_t *)dst)[i] = data_[(pos + i) & (cap_ - 1)];
    }
    Header *h_;
    uint8_t *data_;
    uint32_t cap_;
};

void *map_segment(const std::string &name, bool create, uint64_t size)
{
    std::string path = "/" + name;
    int fd;
    if (create) {
        shm_unlink(path.c_str()); // a consumer attached earlier is orphaned
        fd = shm_open(path.c_str(), O_CREAT | O_RDWR, 0666);
        if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
            perror("shm_open/ftruncate");
            exit(2);
        }
    } else {
        fd = shm_open(path.c_str(), O_RDWR, 0);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            perror("shm_open");
            exit(2);
        }
        size = (uint64_t)st.st_size;
    }
    void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    return p;
}

using Clock = std::chrono::steady_clock;

bool stalled(Clock::time_point last)
{
    return Clock::now() - last > std::chrono::seconds(STALL_SEC);
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: see the comment at the top of peer_model.cpp\n");
        return 2;
    }
    std::string mode = argv[1], name = argv[2];
    if (mode == "produce" && argc >= 7) {
        uint64_t size = strtoull(argv[3], nullptr, 0), count = strtoull(argv[4], nullptr, 0);
        uint64_t seed = strtoull(argv[5], nullptr, 0);
        uint32_t maxlen = (uint32_t)strtoul(argv[6], nullptr, 0);
        uint32_t start = argc > 7 ? (uint32_t)strtoul(argv[7], nullptr, 0) : 0;
        uint32_t cap = 1u << 31;
        while (cap > size - 16)
            cap >>= 1;
        ByteRing ring(map_segment(name, true, size), true, cap, start);
        std::vector<uint8_t> buf(maxlen);
        for (uint64_t seq = 0; seq < count; seq++) {
            uint32_t len = msg_len(seed, seq, maxlen);
            msg_fill(buf.data(), seed, seq, len);
            auto last = Clock::now();
            while (!ring.Write(buf.data(), len)) {
                sched_yield();
                if (stalled(last)) {
                    fprintf(stderr, "peer_model_cpp produce: stalled at %llu\n",
                            (unsigned long long)seq);
                    return 4;
                }
            }
        }
        return 0;
    }
    if (mode == "consume") {
        uint64_t count = strtoull(argv[3], nullptr, 0), seed = strtoull(argv[4], nullptr, 0);
        uint32_t maxlen = (uint32_t)strtoul(argv[5], nullptr, 0);
        ByteRing ring(map_segment(name, false, 0), false, 0, 0);
        std::vector<uint8_t> buf(maxlen), want(maxlen);
        for (uint64_t seq = 0; seq < count; seq++) {
            uint32_t wlen = msg_len(seed, seq, maxlen);
            msg_fill(want.data(), seed, seq, wlen);
            auto last = Clock::now();
            uint32_t n;
            while ((n = ring.Read(buf.data(), maxlen)) == 0) {
                sched_yield();
                if (stalled(last)) {
                    fprintf(stderr, "peer_model_cpp consume: stalled at %llu\n",
                            (unsigned long long)seq);
                    return 4;
                }
            }
            if (n != wlen || memcmp(buf.data(), want.data(), n) != 0) {
                fprintf(stderr, "peer_model_cpp consume: CORRUPT message %llu (len %u, want %u)\n",
                        (unsigned long long)seq, n, wlen);
                return 3;
            }
        }
        return 0;
    }
    fprintf(stderr, "usage: see the comment at the top of peer_model.cpp\n");
    return 2;
}
