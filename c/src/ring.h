/* The stream ring algorithm (spec/README.md, "Records" and "Publishing and consuming"),
 * over a plain buffer: a 4096-byte header followed by `capacity` bytes of data. Single
 * producer, single consumer; nothing here makes a system call. */
#ifndef SHM_CHANNEL_RING_H
#define SHM_CHANNEL_RING_H

#include <stdint.h>

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

/* Producer: find contiguous room for `len` bytes. 0 and *ptr, -EAGAIN (full),
 * -EMSGSIZE, -EBADMSG (read_pos out of range), -EBUSY (already reserving). */
int shm__ring_reserve(const struct shm__ring *r, struct shm__ring_producer *p, uint64_t len,
                      void **ptr);
/* Producer: finish the reservation as a record of `len` bytes (<= reserved). 0 or -EINVAL. */
int shm__ring_commit(const struct shm__ring *r, struct shm__ring_producer *p, uint64_t len);
/* Producer: drop the reservation and any padding written for it. 0 or -EINVAL. */
int shm__ring_abort(struct shm__ring_producer *p);
/* Producer: make committed records visible. Returns nonzero if the consumer is asleep
 * (the caller must wake it). */
int shm__ring_publish(const struct shm__ring *r, struct shm__ring_producer *p);

/* Consumer: the next record in place. 0 with *ptr and *len set, -EAGAIN (empty), -EBADMSG. */
int shm__ring_peek(const struct shm__ring *r, struct shm__ring_consumer *c, const void **ptr,
                   uint64_t *len);
/* Consumer: release the peeked record locally. 0 or -EINVAL. */
int shm__ring_release(struct shm__ring_consumer *c);
/* Consumer: make released space visible to the producer. Returns nonzero if the producer
 * is asleep (the caller must wake it). */
int shm__ring_publish_release(const struct shm__ring *r, struct shm__ring_consumer *c);

#endif
