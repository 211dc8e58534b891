/* The stream ring algorithm (spec/README.md, "Records" and "Publishing and consuming"),
 * over a plain buffer: a 4096-byte header followed by `capacity` bytes of data. Single
 * producer, single consumer; nothing here makes a system call. */
#ifndef SHM_CHANNEL_RING_H
#define SHM_CHANNEL_RING_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "atomics.h"
#include "handshake.h"
#include "layout.h"

struct shm__ring {
    struct shm__header *hdr;
    uint8_t *data;
    uint64_t capacity;
    uint64_t mask;
    uint64_t max_payload;
};

/* Producer-local state; positions are free-running byte counts. */
struct shm__ring_producer {
    uint64_t wpos;          /* next record position (committed, maybe unpublished) */
    uint64_t rpos_cache;    /* last read_pos seen: room is known up to rpos_cache + capacity */
    uint64_t reserve_start; /* wpos before the reservation (padding included) */
    uint64_t reserve_at;    /* position of the reserved record */
    uint64_t reserve_len;
    int reserving;
    uint64_t pending_msgs;  /* committed since the last publish */
    uint64_t pending_bytes;
    uint64_t msgs;          /* the header's msgs_written and bytes_written, as we last */
    uint64_t bytes;         /* stored them (shm__ring_count) */
    uint32_t hs;            /* our wake handshake (handshake.h), fixed at attach */
};

/* Consumer-local state. */
struct shm__ring_consumer {
    uint64_t rpos;          /* next record position (released, maybe unpublished) */
    uint64_t wpos_cache;    /* last write_pos seen */
    uint64_t peek_next;     /* position after the peeked record */
    uint64_t peek_len;
    const uint8_t *peek_ptr;
    int peeking;
    uint64_t pending_msgs;
    uint64_t pending_bytes;
    uint64_t msgs;          /* the header's msgs_read and bytes_read, as we last stored */
    uint64_t bytes;         /* them (shm__ring_count) */
    uint32_t hs;            /* our wake handshake (handshake.h), fixed at attach */
};

/* Fill the identity fields of a fresh, zeroed header for `capacity`, magic included.
 * For a segment not yet visible to anyone; plain stores. */
void shm__ring_format(struct shm__header *h, uint64_t capacity, uint32_t creator_pid,
                      uint64_t created_ns);

/* Check an untrusted header (read once, field by field) against a file of `file_size`
 * bytes. Returns 0 and the segment size, -ETIMEDOUT-worthy -EAGAIN when the magic is still
 * zero, or -EPROTO / -EPROTONOSUPPORT / -EPROTOTYPE / -EBADMSG. */
int shm__ring_validate(const struct shm__header *h, uint64_t file_size, uint64_t *segment_size);

/* Point `r` at a segment mapped at `base`, whose capacity was validated (never re-read
 * from the shared header: another process could change it after validation). */
void shm__ring_bind(struct shm__ring *r, void *base, uint64_t capacity);

/* Take over the producer side from the shared positions. 0 or -EBADMSG. */
int shm__ring_producer_attach(const struct shm__ring *r, struct shm__ring_producer *p);
/* Take over the consumer side from the shared positions. 0 or -EBADMSG. */
int shm__ring_consumer_attach(const struct shm__ring *r, struct shm__ring_consumer *c);

/* The hot path (reserve, commit, publish; peek, release, publish_release) is inline, so that
 * shm_channel_write/read compile into one function each; the rare cases (the cached peer
 * position says full/empty, padding at the wrap, a bad record) take the out-of-line *_slow
 * functions, which are the whole algorithm. */

/* Positions are in range when the unsigned distance is at most the capacity and both are
 * record-aligned. */
static inline int shm__ring_positions_ok(const struct shm__ring *r, uint64_t wpos, uint64_t rpos)
{
    return wpos - rpos <= r->capacity && ((wpos | rpos) % SHM__RECORD_ALIGN) == 0;
}

/* Small records: the producer prefetches the line PREFETCH_AHEAD bytes past the record it
 * reserves, so that the stores of the next records seldom wait for a line to arrive (bench/:
 * about +25% msgs/s at 64 B). Larger records stream well without it, and measured slower. */
#define SHM__PREFETCH_AHEAD 512u
#define SHM__PREFETCH_MAX_RECORD 256u

/* A hint, never an access: only space known to be free (below rpos_cache + capacity, never a
 * line the consumer has yet to read), masked into the ring. `total`: the reserved record. */
static inline void shm__ring_prefetch(const struct shm__ring *r,
                                      const struct shm__ring_producer *p, uint64_t total)
{
    uint64_t ahead = p->wpos + total + SHM__PREFETCH_AHEAD;
    if (total <= SHM__PREFETCH_MAX_RECORD && ahead + 64 - p->rpos_cache <= r->capacity)
        __builtin_prefetch(r->data + (ahead & r->mask), 1, 3);
}

/* Producer: find contiguous room for `len` bytes, the whole algorithm. 0 and *ptr, -EAGAIN
 * (full), -EMSGSIZE, -EBADMSG (read_pos out of range), -EBUSY (already reserving). */
int shm__ring_reserve_slow(const struct shm__ring *r, struct shm__ring_producer *p, uint64_t len,
                           void **ptr);

/* Producer: as shm__ring_reserve_slow; inline when no reservation is open, the record fits
 * before the end of the ring (no padding) and the cached read position says there is room. */
static inline int shm__ring_reserve(const struct shm__ring *r, struct shm__ring_producer *p,
                                    uint64_t len, void **ptr)
{
    uint64_t total = SHM__RECORD_HEADER + shm__align8(len);
    uint64_t off = p->wpos & r->mask;
    if (__builtin_expect(!p->reserving && len <= r->max_payload && off + total <= r->capacity &&
                             p->wpos + total - p->rpos_cache <= r->capacity,
                         1)) {
        p->reserve_start = p->reserve_at = p->wpos;
        p->reserve_len = len;
        p->reserving = 1;
        *ptr = r->data + off + SHM__RECORD_HEADER;
        shm__ring_prefetch(r, p, total);
        return 0;
    }
    return shm__ring_reserve_slow(r, p, len, ptr);
}

/* Producer: the header of a message record of `len` bytes at position `at` (one store, so a
 * reader never sees half of it). */
static inline void shm__ring_put_message_header(const struct shm__ring *r, uint64_t at,
                                                uint64_t len)
{
    uint64_t word = len | ((uint64_t)SHM__REC_MESSAGE << 32);
    shm__store_relaxed((uint64_t *)(void *)(r->data + (at & r->mask)), word);
}

/* Producer: finish the reservation as a record of `len` bytes (<= reserved). 0 or -EINVAL. */
static inline int shm__ring_commit(const struct shm__ring *r, struct shm__ring_producer *p,
                                   uint64_t len)
{
    if (!p->reserving || len > p->reserve_len)
        return -EINVAL;
    shm__ring_put_message_header(r, p->reserve_at, len);
    p->wpos = p->reserve_at + SHM__RECORD_HEADER + shm__align8(len);
    p->reserving = 0;
    p->pending_msgs++;
    p->pending_bytes += len;
    return 0;
}

/* Producer: drop the reservation and any padding written for it. 0 or -EINVAL. */
int shm__ring_abort(struct shm__ring_producer *p);

/* Producer: store write_pos = `pos` (release: the records below it are written before they are
 * visible), then, by our handshake, the peer's waiting flag: nonzero if the consumer may be
 * asleep on the current write_seq (the caller must wake it). The store, then the load: the
 * consumer does the mirror image (store waiting, fence or membarrier, load write_pos), so one
 * of us sees the other (spec §5.10). */
static inline int shm__ring_store_write_pos(struct shm__header *h, uint32_t hs, uint64_t pos)
{
    shm__store_release(&h->write_pos, pos);
    uint32_t waiting = shm__hs_peer_waiting(hs, &h->consumer_handshake, &h->consumer_waiting);
    return __builtin_expect(waiting != 0, 0) && shm__hs_wake_needed(waiting, &h->write_seq);
}

/* Consumer: store read_pos = `pos` (release: our reads of the released records are done
 * before the producer reuses them), then load producer_waiting (mirror of the producer's
 * sleep). Nonzero if the producer may be asleep on the current read_seq. */
static inline int shm__ring_store_read_pos(struct shm__header *h, uint32_t hs, uint64_t pos)
{
    shm__store_release(&h->read_pos, pos);
    uint32_t waiting = shm__hs_peer_waiting(hs, &h->producer_handshake, &h->producer_waiting);
    return __builtin_expect(waiting != 0, 0) && shm__hs_wake_needed(waiting, &h->read_seq);
}

/* One of a side's two header counters, which only that side writes: add n to our copy and
 * store it. Never a load of the shared word: the counters share the cache line of the side's
 * position, which the waiting peer polls, and a load there would fetch the line back before
 * the store that follows (and the position store behind it) could take it over: measured,
 * one more line transfer per message (bench/README.md, "Where the time goes"). */
static inline void shm__ring_count(uint64_t *shared, uint64_t *mine, uint64_t n)
{
    *mine += n;
    shm__store_relaxed(shared, *mine);
}

/* Producer: make committed records visible. Returns nonzero if the consumer may be asleep on
 * the current write_seq (the caller must wake it: increment write_seq, FUTEX_WAKE). */
static inline int shm__ring_publish(const struct shm__ring *r, struct shm__ring_producer *p)
{
    struct shm__header *h = r->hdr;
    if (p->pending_msgs) {
        shm__ring_count(&h->msgs_written, &p->msgs, p->pending_msgs);
        shm__ring_count(&h->bytes_written, &p->bytes, p->pending_bytes);
        p->pending_msgs = p->pending_bytes = 0;
    }
    /* During a reservation, publish only up to its start: its padding is not final (an
     * abort takes it back). */
    return shm__ring_store_write_pos(h, p->hs, p->reserving ? p->reserve_start : p->wpos);
}

/* Consumer: the next record in place, the whole algorithm. 0 with *ptr and *len set, -EAGAIN
 * (empty), -EBADMSG. */
int shm__ring_peek_slow(const struct shm__ring *r, struct shm__ring_consumer *c, const void **ptr,
                        uint64_t *len);

/* Consumer, when its cached write position says empty: load write_pos into the cache.
 * 0 if there is something to read, -EAGAIN (empty), -EBADMSG (out of range). */
static inline int shm__ring_refresh_write_pos(const struct shm__ring *r,
                                              struct shm__ring_consumer *c)
{
    /* Acquire: every record below write_pos is completely written. */
    uint64_t wpos = shm__load_acquire(&r->hdr->write_pos);
    if (wpos == c->rpos)
        return -EAGAIN;
    if (!shm__ring_positions_ok(r, wpos, c->rpos))
        return -EBADMSG;
    c->wpos_cache = wpos;
    return 0;
}

/* Consumer, on each look of its wait for data: a hint, never an access. Prefetch the two lines
 * from our read position on (each masked into the ring: a small record's header line and the
 * next, which a 64 B message reaches in 7 of 8 positions), so that when the producer
 * publishes, they and write_pos's line are fetched in parallel rather than one after the
 * other (the acquire load of write_pos, then the record). Nothing seen here is used: what may
 * be read is decided by the acquire load of write_pos that follows (spec §5.5), and the record
 * is read after it. Prefetches, not loads: they never stall the look, and they take the lines
 * shared (never for writing). bench/README.md "Where the time goes" has the measurements. */
static inline void shm__ring_look_ahead(const struct shm__ring *r,
                                        const struct shm__ring_consumer *c)
{
    __builtin_prefetch(r->data + (c->rpos & r->mask), 0, 3);
    __builtin_prefetch(r->data + ((c->rpos + 64) & r->mask), 0, 3);
}

/* Consumer: as shm__ring_peek_slow; inline for a well-formed message record when nothing is
 * peeked (loading write_pos when the cached one says empty). */
static inline int shm__ring_peek(const struct shm__ring *r, struct shm__ring_consumer *c,
                                 const void **ptr, uint64_t *len)
{
    if (__builtin_expect(!c->peeking, 1)) {
        int rc;
        if (c->rpos == c->wpos_cache && (rc = shm__ring_refresh_write_pos(r, c)) != 0)
            return rc;
        uint64_t off = c->rpos & r->mask;
        /* One load of the record header: a writer changing it under us cannot make us
         * check one value and use another. */
        uint64_t word = shm__load_relaxed((const uint64_t *)(const void *)(r->data + off));
        uint64_t rlen = (uint32_t)word;
        uint64_t total = SHM__RECORD_HEADER + shm__align8(rlen);
        if (__builtin_expect((word >> 32) == SHM__REC_MESSAGE && rlen <= r->max_payload &&
                                 off + total <= r->capacity && total <= c->wpos_cache - c->rpos,
                             1)) {
            c->peek_ptr = r->data + off + SHM__RECORD_HEADER;
            c->peek_len = rlen;
            c->peek_next = c->rpos + total;
            c->peeking = 1;
            *ptr = c->peek_ptr;
            *len = rlen;
            return 0;
        }
    }
    return shm__ring_peek_slow(r, c, ptr, len);
}

/* Consumer: release the peeked record locally. 0 or -EINVAL. */
static inline int shm__ring_release(struct shm__ring_consumer *c)
{
    if (!c->peeking)
        return -EINVAL;
    c->rpos = c->peek_next;
    c->peeking = 0;
    c->pending_msgs++;
    c->pending_bytes += c->peek_len;
    return 0;
}

/* Consumer: make released space visible to the producer. Returns nonzero if the producer
 * may be asleep on the current read_seq (the caller must wake it). */
static inline int shm__ring_publish_release(const struct shm__ring *r,
                                            struct shm__ring_consumer *c)
{
    struct shm__header *h = r->hdr;
    if (c->pending_msgs) {
        shm__ring_count(&h->msgs_read, &c->msgs, c->pending_msgs);
        shm__ring_count(&h->bytes_read, &c->bytes, c->pending_bytes);
        c->pending_msgs = c->pending_bytes = 0;
    }
    return shm__ring_store_read_pos(h, c->hs, c->rpos);
}

/* ---- one whole message per call (shm_channel_write / shm_channel_read) ----------------
 * reserve + copy + commit + publish, and peek + copy + release + publish_release, fused for
 * the common case and nothing else: no reservation or peek is open, the cached peer position
 * says there is room (a message), the record needs no padding, and (read) it is a well-formed
 * message record that fits `cap`. Everything else returns SHM__RING_SLOW before any change, and
 * the caller takes the general path. What goes: the reservation/peek bookkeeping (only the
 * positions are handle state here), the pending counters (added straight to the header), the
 * re-checks of commit and release, and every value needed after the copy but the handle
 * (one register saved across the call of memcpy). The order of shared stores is the
 * algorithm's: record header and payload, counters, then the position (release), then the
 * fence or compiler barrier of the handshake and the load of the peer's waiting flag. */
#define SHM__RING_SLOW (-1)

/* 1 if the peer may sleep on the word and must be woken, 0 if not; SHM__RING_SLOW: nothing
 * was done. */
static inline int shm__ring_write(const struct shm__ring *r, struct shm__ring_producer *p,
                                  const void *data, uint64_t len)
{
    uint64_t wpos = p->wpos;
    uint64_t total = SHM__RECORD_HEADER + shm__align8(len);
    uint64_t off = wpos & r->mask;
    if (__builtin_expect(p->reserving || len > r->max_payload || off + total > r->capacity ||
                             wpos + total - p->rpos_cache > r->capacity,
                         0))
        return SHM__RING_SLOW;
    shm__ring_prefetch(r, p, total);
    shm__ring_put_message_header(r, wpos, len);
    p->wpos = wpos + total;
    if (len)
        memcpy(r->data + off + SHM__RECORD_HEADER, data, len);
    /* The counters straight to the header (the pending ones are zero between calls: every
     * commit is published before its call returns), right before the position: the three
     * stores share one line, which the consumer polls, and stores made together take it
     * over once. */
    struct shm__header *h = r->hdr;
    shm__ring_count(&h->msgs_written, &p->msgs, 1);
    shm__ring_count(&h->bytes_written, &p->bytes, len);
    return shm__ring_store_write_pos(h, p->hs, p->wpos);
}

/* As shm__ring_write, for the consumer: the next message into `buf` (at most `cap` bytes),
 * its length in *len. 1 / 0 (wake due or not) after a message was read; SHM__RING_SLOW
 * before any change (empty, padding next, a bad record, too long for cap, a peek open). */
static inline int shm__ring_read(const struct shm__ring *r, struct shm__ring_consumer *c,
                                 void *buf, uint64_t cap, uint64_t *len)
{
    if (__builtin_expect(c->peeking, 0) ||
        (c->rpos == c->wpos_cache && shm__ring_refresh_write_pos(r, c) != 0))
        return SHM__RING_SLOW; /* the general path sees the same: empty, or -EBADMSG */
    uint64_t rpos = c->rpos;
    uint64_t wpos = c->wpos_cache;
    uint64_t off = rpos & r->mask;
    const uint8_t *rec = r->data + off;
    /* One load of the record header: a writer changing it under us cannot make us check one
     * value and use another. */
    uint64_t word = shm__load_relaxed((const uint64_t *)(const void *)rec);
    uint64_t rlen = (uint32_t)word;
    uint64_t total = SHM__RECORD_HEADER + shm__align8(rlen);
    if (__builtin_expect((word >> 32) != SHM__REC_MESSAGE || rlen > r->max_payload ||
                             off + total > r->capacity || total > wpos - rpos || rlen > cap,
                         0))
        return SHM__RING_SLOW;
    *len = rlen;
    c->rpos = rpos + total;
    if (rlen)
        memcpy(buf, rec + SHM__RECORD_HEADER, rlen);
    struct shm__header *h = r->hdr;
    shm__ring_count(&h->msgs_read, &c->msgs, 1); /* as in shm__ring_write */
    shm__ring_count(&h->bytes_read, &c->bytes, rlen);
    return shm__ring_store_read_pos(h, c->hs, c->rpos);
}

#endif
