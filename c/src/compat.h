/* The compat ring algorithm (spec/compat.md): the 16-byte-header byte ring of seed 002's
 * C++/Python peers, over a plain buffer of `len` bytes (header + data). Single producer,
 * single consumer, one of which is usually a peer we do not control. Nothing here makes a
 * system call; the only allocation is the handle's bounce buffer (split records). */
#ifndef SHM_CHANNEL_COMPAT_H
#define SHM_CHANNEL_COMPAT_H

#include <stddef.h>
#include <stdint.h>

/* Byte offsets of the header fields, all u32 little-endian (spec/compat.md, section 2). */
#define SHM__COMPAT_HEAD_OFF 0u
#define SHM__COMPAT_TAIL_OFF 4u
#define SHM__COMPAT_CAPACITY_OFF 8u
#define SHM__COMPAT_RESERVED_OFF 12u
#define SHM__COMPAT_HEADER 16u
#define SHM__COMPAT_PREFIX 4u /* the u32 LE length prefix of a record */
/* Smallest and largest capacity we accept (power of two, and head - tail <= capacity must
 * stay meaningful in u32 arithmetic). */
#define SHM__COMPAT_MIN_CAPACITY 8u
#define SHM__COMPAT_MAX_CAPACITY 0x80000000u

/* Torn-index handling (spec/compat.md, section 4): one try re-reads a peer's out-of-range
 * index up to SHM__COMPAT_REREADS times; a try that still finds it out of range reports "no
 * progress" (-EAGAIN) and counts in bad_tries. The caller turns a streak of such tries that
 * has lasted SHM__COMPAT_BAD_NS into -EBADMSG (shm__compat_streak): a time, not a count,
 * since a Python peer preempted in the middle of its byte-by-byte store shows a torn index
 * for as long as it is off the CPU. */
#define SHM__COMPAT_REREADS 256u
#define SHM__COMPAT_BAD_NS 2000000000ull

/* Polling backoff of a blocked call (no futex word exists): spin for the handle's spin time,
 * then sleep, doubling from SHM__COMPAT_SLEEP_MIN_NS up to SHM__COMPAT_SLEEP_MAX_NS. */
#define SHM__COMPAT_SLEEP_MIN_NS 16000u
#define SHM__COMPAT_SLEEP_MAX_NS 2000000u

struct shm__compat {
    uint32_t *head;     /* offset 0: written by the producer */
    uint32_t *tail;     /* offset 4: written by the consumer */
    uint8_t *data;      /* offset 16 */
    uint32_t capacity;  /* validated once, never re-read from the shared header */
    uint32_t mask;
};

/* Producer-local state; head and the cached tail are u32, compared only by difference. */
struct shm__compat_producer {
    uint32_t head;        /* next record position (equals the shared head between calls) */
    uint32_t tail_cache;  /* last accepted tail: room is known up to tail_cache + capacity */
    uint32_t bad_tries;   /* tries in a row that found the tail out of range (saturates) */
    uint64_t rereads;     /* loads of the tail rejected as out of range (torn), ever */
    int reserving;
    uint32_t reserve_len;
    uint8_t *reserve_ptr; /* in the ring, or the bounce buffer when the payload would wrap */
    uint8_t *bounce;
    size_t bounce_cap;
};

/* Consumer-local state. */
struct shm__compat_consumer {
    uint32_t tail;        /* next record position (equals the shared tail between calls) */
    uint32_t head_cache;  /* last accepted head */
    uint32_t bad_tries;   /* tries in a row that found the head out of range */
    uint64_t rereads;     /* loads of the head rejected as out of range (torn), ever */
    int peeking;
    uint32_t peek_len;
    const uint8_t *peek_ptr; /* in the ring, or the bounce buffer for a split payload */
    uint8_t *bounce;
    size_t bounce_cap;
};

/* The capacity a producer gives a segment of `size` bytes: the largest power of two that
 * fits in size - 16 (at most SHM__COMPAT_MAX_CAPACITY); 0 if none of at least the minimum. */
uint32_t shm__compat_capacity_for(uint64_t size);

/* Format a segment of `len` bytes as the peer's producer does: capacity = the largest power
 * of two that fits in len - 16, then head = tail = `start` (the peer uses 0; tests start
 * near 2^32). Returns 0, or -EINVAL (too small). Only for a segment no peer uses yet. */
int shm__compat_format(void *base, size_t len, uint32_t start);

/* Check an untrusted segment of `len` bytes (read once): capacity a power of two in range,
 * len exactly capacity + 16, head - tail <= capacity. Returns 0 and binds `r`, -EAGAIN
 * (file shorter than the header, or capacity still 0: the peer's producer is still
 * creating it), or -EBADMSG. */
int shm__compat_bind(struct shm__compat *r, void *base, size_t len);

/* Take over a side from the shared indices (the producer keeps the shared head, the consumer
 * the shared tail). 0 or -EAGAIN (the peer's index out of range on every re-read: the caller
 * retries, and gives up with -EBADMSG as shm__compat_streak says). fini frees the bounce
 * buffer. */
int shm__compat_producer_attach(const struct shm__compat *r, struct shm__compat_producer *p);
int shm__compat_consumer_attach(const struct shm__compat *r, struct shm__compat_consumer *c);
void shm__compat_producer_fini(struct shm__compat_producer *p);
void shm__compat_consumer_fini(struct shm__compat_consumer *c);

/* Producer: room for a record of `len` payload bytes. *ptr points into the ring, or, when
 * the payload would be split at the wrap, into the handle's bounce buffer (copied at
 * commit). Returns 0, -EINVAL (len 0: the peer's consumers stall on it), -EMSGSIZE
 * (len > capacity - 4), -EAGAIN (full, or the tail out of range: bad_tries counts those),
 * -EBUSY (already reserving), -ENOMEM. */
int shm__compat_reserve(const struct shm__compat *r, struct shm__compat_producer *p,
                        uint32_t len, void **ptr);
/* Producer: write the length prefix (and copy a bounced payload) and publish the record with
 * one release store of head. 0, or -EINVAL (no reservation, len 0 or above reserved). */
int shm__compat_commit(const struct shm__compat *r, struct shm__compat_producer *p,
                       uint32_t len);
/* Producer: drop the reservation. 0 or -EINVAL. */
int shm__compat_abort(struct shm__compat_producer *p);
/* Producer: copy one message in (split at the wrap) and publish it. Errors of reserve. */
int shm__compat_write(const struct shm__compat *r, struct shm__compat_producer *p,
                      const void *buf, uint32_t len);

/* Consumer: the next record. *ptr points into the ring, or into the handle's bounce buffer
 * when the payload is split at the wrap; valid until release. 0-length records (which our
 * producer never writes) are delivered as such. Returns 0, -EAGAIN (empty, incomplete, or
 * the head out of range: bad_tries counts those), -EBADMSG (length above capacity - 4),
 * -ENOMEM. */
int shm__compat_peek(const struct shm__compat *r, struct shm__compat_consumer *c,
                     const void **ptr, uint32_t *len);
/* Consumer: release the peeked record with one release store of tail. 0 or -EINVAL. */
int shm__compat_release(const struct shm__compat *r, struct shm__compat_consumer *c);
/* Consumer: copy the next record out (joining a split payload) and release it. 0,
 * -EMSGSIZE (cap too small: *len gets the size, the record stays), or the errors of peek. */
int shm__compat_read(const struct shm__compat *r, struct shm__compat_consumer *c, void *buf,
                     uint32_t cap, uint32_t *len);

/* Polling backoff: *state starts at 0; call after each empty/full try with the time spent
 * waiting so far and the spin budget. Returns 0 (spin: pause and retry) or the nanoseconds
 * to sleep before the next try (doubling up to SHM__COMPAT_SLEEP_MAX_NS). */
uint64_t shm__compat_backoff(uint64_t *state, uint64_t waited_ns, uint64_t spin_ns);

/* The caller's verdict after a try, from the side's bad_tries: 0, or -EBADMSG once the peer's
 * index has been out of range on every try for SHM__COMPAT_BAD_NS. *since_ns (0 at first)
 * keeps the start of the streak across calls; now_ns is a monotonic clock (never 0). */
int shm__compat_streak(uint32_t bad_tries, uint64_t *since_ns, uint64_t now_ns);

#endif
