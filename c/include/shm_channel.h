/*
 * shm_channel: messages between processes on one machine through shared memory.
 *
 * The one public header. Every function returns 0 (or a count) on success and a
 * negative errno value on failure; there is no global or thread-local error state.
 * shm_channel_strerror() turns a return value into text.
 *
 * The byte format of a segment is specified in spec/README.md (layout version 1);
 * this library is one implementation of it.
 *
 * Threading: a handle is used by one thread at a time (it may move between threads).
 * Different handles, in one process or many, may be used concurrently.
 *
 * The API has no inline functions and no function-like macros, so that FFI callers
 * (cffi in ABI mode, Rust extern "C") reach all of it. Every constant has a literal value.
 */
#ifndef SHM_CHANNEL_H
#define SHM_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(SHM_CHANNEL_BUILDING)
#define SHM_CHANNEL_API __attribute__((visibility("default")))
#else
#define SHM_CHANNEL_API
#endif

/* Library version (also at run time: shm_channel_version()). */
#define SHM_CHANNEL_VERSION_MAJOR 1
#define SHM_CHANNEL_VERSION_MINOR 0
#define SHM_CHANNEL_VERSION_PATCH 0

/* Segment layout version this library writes and reads (spec/README.md). */
#define SHM_CHANNEL_LAYOUT_MAJOR 1
#define SHM_CHANNEL_LAYOUT_MINOR 0

/* Capacity limits (bytes of ring data; a power of two). */
#define SHM_CHANNEL_MIN_CAPACITY 1024
#define SHM_CHANNEL_MAX_CAPACITY 1099511627776 /* 2^40 */
#define SHM_CHANNEL_DEFAULT_CAPACITY 1048576   /* used when creating with capacity 0 */

/* Size of the segment header; the ring data starts at this offset. */
#define SHM_CHANNEL_HEADER_SIZE 4096

/* Longest accepted name, not counting an optional leading '/'. */
#define SHM_CHANNEL_NAME_MAX 200

/* Timeouts are in nanoseconds: 0 never waits, a negative value waits forever. */
#define SHM_CHANNEL_INFINITE (-1)

/* Default spin before sleeping on a futex, in nanoseconds (see shm_channel_set_spin). */
#define SHM_CHANNEL_DEFAULT_SPIN_NS 20000

/* Longest type tag of a broadcast channel, in bytes (see shm_channel_broadcast_config_t). */
#define SHM_CHANNEL_TYPE_TAG_MAX 120

/* Roles, for shm_channel_open() and shm_channel_open_broadcast(). */
enum shm_channel_role {
    SHM_CHANNEL_PRODUCER = 1,  /* stream: the one writer; a second live one gets -EBUSY */
    SHM_CHANNEL_CONSUMER = 2,  /* stream: the one reader; a second live one gets -EBUSY */
    SHM_CHANNEL_OBSERVER = 3,  /* read-only view of any kind for stat(); claims no role */
    SHM_CHANNEL_PUBLISHER = 4, /* broadcast: the one writer; a second live one gets -EBUSY */
    SHM_CHANNEL_SUBSCRIBER = 5 /* broadcast: one of up to max_subscribers readers */
};

/* Flags for shm_channel_open(), OR-ed. */
enum shm_channel_open_flags {
    SHM_CHANNEL_CREATE = 1,        /* create the segment if it does not exist */
    SHM_CHANNEL_EXCL = 2,          /* with CREATE: fail with -EEXIST if it exists */
    SHM_CHANNEL_ALLOW_FOREIGN = 4, /* accept a segment owned by another user, or with
                                      more permissive mode bits than requested */
    SHM_CHANNEL_FROM_OLDEST = 8    /* broadcast subscriber: start at the oldest message
                                      still held, not the newest (history on join) */
};

/* Flags for shm_channel_unlink(). */
enum shm_channel_unlink_flags {
    SHM_CHANNEL_FORCE = 1 /* unlink even while live handles are attached */
};

/* Kinds of channel (the segment header's kind field). */
enum shm_channel_kind {
    SHM_CHANNEL_KIND_STREAM = 1,   /* one producer, one consumer, every message (spec/README.md) */
    SHM_CHANNEL_KIND_BROADCAST = 2 /* one publisher, many subscribers, the newest `depth`
                                      messages (spec/broadcast.md) */
};

/* A side's state as recorded in the segment (shm_channel_stat_t.*_state). */
enum shm_channel_peer_state {
    SHM_CHANNEL_PEER_NONE = 0,     /* never attached */
    SHM_CHANNEL_PEER_ATTACHED = 1, /* attached (alive, or died without closing) */
    SHM_CHANNEL_PEER_CLOSED = 2    /* closed cleanly (for the producer: end-of-stream) */
};

/* Opaque handle. */
typedef struct shm_channel shm_channel_t;

/* Snapshot of a segment's header, for monitoring. All fields are fixed-width. */
typedef struct shm_channel_stat {
    uint32_t kind;           /* enum shm_channel_kind */
    uint16_t layout_major;
    uint16_t layout_minor;
    uint64_t capacity;       /* ring data bytes */
    uint64_t max_payload;    /* largest message, bytes */
    uint64_t write_pos;      /* free-running byte positions */
    uint64_t read_pos;
    uint64_t used;           /* write_pos - read_pos: bytes not yet released */
    uint64_t msgs_written;
    uint64_t bytes_written;  /* payload bytes */
    uint64_t msgs_read;
    uint64_t bytes_read;
    uint64_t full_events;    /* writer found the ring full */
    uint64_t empty_events;   /* reader found the ring empty and had to wait */
    uint64_t producer_wakes; /* futex wake calls made by the producer */
    uint64_t consumer_wakes; /* futex wake calls made by the consumer */
    uint64_t producer_sleeps;/* times the producer slept on a futex */
    uint64_t consumer_sleeps;/* times the consumer slept on a futex */
    uint32_t producer_state; /* enum shm_channel_peer_state */
    uint32_t consumer_state;
    uint32_t producer_epoch; /* incremented on every producer attach */
    uint32_t consumer_epoch;
    int32_t producer_alive;  /* 1 if a live process holds the producer role */
    int32_t consumer_alive;
    int32_t in_use;          /* 1 if a producer or consumer handle is attached (this one included) */
    uint32_t creator_pid;    /* informational only */
    uint64_t created_ns;     /* CLOCK_REALTIME at creation, informational */
    uint64_t reserved[8];    /* zero */
} shm_channel_stat_t;

/* Creation parameters of a broadcast channel; when opening an existing one, every nonzero
 * field must match the segment's. A NULL pointer means all zero. */
typedef struct shm_channel_broadcast_config {
    uint64_t max_payload;     /* largest message, 1..2^31 bytes; 0: 64 when creating */
    uint32_t depth;           /* messages kept, 2..2^24; 0: 8 when creating */
    uint32_t max_subscribers; /* subscriber table entries, 1..65536; 0: 256 when creating */
    const char *type_tag;     /* NULL or "": no requirement (creating: untyped). Else 1..
                                 SHM_CHANNEL_TYPE_TAG_MAX printable ASCII bytes (a numpy
                                 dtype and shape, a struct format, a schema name) the
                                 segment's tag must equal byte for byte (-EMEDIUMTYPE) */
    uint64_t reserved[4];     /* zero */
} shm_channel_broadcast_config_t;

/* Snapshot of a broadcast segment (shm_channel_broadcast_stat). */
typedef struct shm_channel_broadcast_stat {
    uint64_t pub_seq;         /* number of the newest published message (0: none yet) */
    uint32_t depth;
    uint32_t max_subscribers;
    uint32_t subscribers;     /* entries attached (as recorded; dead ones count until reclaimed) */
    uint32_t sleepers;        /* subscribers asleep on the futex */
    uint64_t joins;           /* subscriber joins ever */
    uint64_t reclaims;        /* entries of dead subscribers taken back */
    uint32_t type_len;
    char type_tag[124];       /* the segment's type tag, NUL-terminated ("" if untyped) */
    uint64_t reserved[4];     /* zero */
} shm_channel_broadcast_stat_t;

/* One subscriber's counters (shm_channel_sub_stat). */
typedef struct shm_channel_sub_stat {
    uint32_t index;           /* its entry in the subscriber table */
    uint32_t state;           /* enum shm_channel_peer_state of the entry */
    int32_t alive;            /* 1 if a live handle holds the entry (this one included) */
    uint32_t pid;             /* informational */
    uint32_t epoch;           /* incremented by each subscriber that takes the entry */
    uint32_t reserved0;
    uint64_t next_seq;        /* number of the next message it will read */
    uint64_t delivered;       /* messages delivered intact since it joined */
    uint64_t missed;          /* messages skipped or overwritten while held, since it joined */
    uint64_t delivered_bytes;
    uint64_t lag;             /* published messages it has neither read nor missed yet */
    uint64_t sleeps;          /* times it slept on the futex */
    uint64_t last_missed;     /* own handle only: messages skipped just before the last one
                                 read or peeked (0 for other entries) */
    uint64_t reserved[4];     /* zero */
} shm_channel_sub_stat_t;

/*
 * Open (and with SHM_CHANNEL_CREATE, create) the channel `name` in the given role.
 * name: 1..SHM_CHANNEL_NAME_MAX of [A-Za-z0-9._-], not starting with '.', optionally
 *   preceded by '/'. The segment lives in /dev/shm, or in $SHM_CHANNEL_DIR if set.
 * capacity: ring bytes, a power of two in [MIN, MAX]; 0 means "any" when opening and
 *   SHM_CHANNEL_DEFAULT_CAPACITY when creating. A nonzero capacity that differs from an
 *   existing segment's gives -EINVAL.
 * mode: permission bits for a new segment (0 means 0600); an existing segment with bits
 *   beyond `mode`, or owned by another user, is refused unless SHM_CHANNEL_ALLOW_FOREIGN.
 * Producer and consumer may create (observers never do); either side may start first.
 * Does not block, except that a producer or consumer waits (at most 1 s) for a segment
 * another implementation is still initialising; an observer never waits.
 * Returns 0 and sets *out, or: -EINVAL (bad argument or name), -ENOENT (no such channel
 * and no CREATE), -EEXIST (CREATE|EXCL and anything at all has the name: a channel, or a
 * directory, socket, FIFO, symlink or file of any owner), -EBUSY (role held by a live
 * process), -EACCES (foreign or over-permissive segment, permission denied, or the name
 * is not a regular file: directory, socket, FIFO, symlink, device), -ENOSPC (not enough
 * shared memory for the segment), -EPROTO (not a shm_channel segment), -EPROTONOSUPPORT
 * (unsupported layout major version), -EPROTOTYPE (not a stream channel), -EBADMSG
 * (corrupt header, file shorter than its header says, or a file whose pages are not all
 * allocated: a sparse file is never mapped), -ETIMEDOUT (producer/consumer: the segment
 * never finished initialising), -EAGAIN (observer: the file is not, or not yet, a
 * complete segment; or the name kept being unlinked under us), -ENOMEM, or another errno
 * from the system.
 */
SHM_CHANNEL_API int shm_channel_open(shm_channel_t **out, const char *name, uint32_t role,
                                     uint32_t flags, uint64_t capacity, uint32_t mode);

/*
 * Open (and with SHM_CHANNEL_CREATE, create) the broadcast channel `name` (kind 2) as
 * SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_SUBSCRIBER or SHM_CHANNEL_OBSERVER. shm_channel_open()
 * with the role PUBLISHER or SUBSCRIBER and capacity 0 is this call with cfg NULL.
 * name, flags and mode as shm_channel_open(). cfg: the creation parameters, or for an
 * existing channel the parameters and type tag it must have (NULL: any).
 * Either side may create and start first. One live publisher: a second gets -EBUSY; after
 * the first closes or dies, a new one takes over and continues the numbering. Up to
 * max_subscribers subscribers at once; a subscriber starts at the newest message (so a
 * first read returns it at once), or at the first if none was published yet, or with
 * SHM_CHANNEL_FROM_OLDEST at the oldest message still held. Its delivered and missed
 * counts start at that message.
 * Blocks as shm_channel_open() (at most 1 s while another process initialises the segment).
 * Returns 0 and sets *out, or the errors of shm_channel_open() (-EPROTOTYPE: the segment is
 * a stream, and shm_channel_open() as producer or consumer gets -EPROTOTYPE on a broadcast
 * segment), or: -EINVAL (a bad or mismatching parameter, nonzero reserved words, a role
 * that is not PUBLISHER/SUBSCRIBER/OBSERVER), -EMEDIUMTYPE (cfg->type_tag differs from the
 * segment's tag: open an observer and read shm_channel_broadcast_stat().type_tag to name
 * both), -EUSERS (subscriber: every table entry is held by a live subscriber).
 */
SHM_CHANNEL_API int shm_channel_open_broadcast(shm_channel_t **out, const char *name,
                                               uint32_t role, uint32_t flags,
                                               const shm_channel_broadcast_config_t *cfg,
                                               uint32_t mode);

/*
 * Close a handle; NULL is accepted. A producer's close marks end-of-stream (the consumer
 * drains the ring, then reads -EPIPE) and wakes the consumer. The last handle to close a
 * finished stream (end-of-stream and nothing unread) unlinks the segment. Never blocks;
 * safe from a garbage collector's finalizer. Outstanding reservations are aborted.
 */
SHM_CHANNEL_API void shm_channel_close(shm_channel_t *ch);

/*
 * End this handle's role now, exactly as shm_channel_close() does (a producer marks
 * end-of-stream and aborts its reservation, the role and attach locks are released, the
 * last handle of a finished stream unlinks it), but keep the memory mapped until
 * shm_channel_close(): pointers from peek and reserve stay valid to read and write, but
 * no longer reach the shared segment (they see a private copy-on-write image of it). For
 * bindings whose close() cannot know whether a zero-copy view is still referenced.
 * Afterwards every call on the handle but shm_channel_detach() (which does nothing),
 * shm_channel_close(), shm_channel_capacity() and shm_channel_max_payload() returns
 * -EBADF. Never blocks. Returns 0, or -EINVAL (NULL handle).
 */
SHM_CHANNEL_API int shm_channel_detach(shm_channel_t *ch);

/*
 * Remove the channel's name. Without SHM_CHANNEL_FORCE, only a channel segment (a
 * regular file with the shm_channel magic, of any kind or layout version) that no live
 * handle is attached to: -EBUSY while one is, -EPROTO if the file is not a channel, -EACCES
 * if it is not a regular file or we may not open it for writing. With SHM_CHANNEL_FORCE,
 * any file under the name is removed, in use or not. Live handles keep working on the
 * unlinked segment. Returns 0, -EINVAL (bad name or flags), -ENOENT, -EBUSY, -EPROTO,
 * -EACCES, or another errno.
 */
SHM_CHANNEL_API int shm_channel_unlink(const char *name, uint32_t flags);

/*
 * Producer: copy one message of `len` bytes (0..max_payload) into the ring and publish it.
 * timeout_ns: 0 returns -EAGAIN at once when the ring is full; negative waits forever.
 * Returns 0, or: -EMSGSIZE (len > max_payload), -EAGAIN, -ETIMEDOUT, -EINTR (a signal
 * arrived while waiting), -EOWNERDEAD (ring full and the consumer died), -EPIPE (ring full
 * and the consumer closed), -EBADMSG (corrupt segment), -EBADF (not a producer),
 * -EBUSY (a reservation is outstanding), -EINVAL (NULL data with len > 0 or NULL handle).
 * Publisher (broadcast): never waits (timeout_ns is ignored: the oldest message is
 * overwritten) and wakes sleeping subscribers; -EMSGSIZE, -EBUSY, -EINVAL as above, or
 * -EOVERFLOW (2^63 - 2 messages published: never in practice).
 */
SHM_CHANNEL_API int shm_channel_write(shm_channel_t *ch, const void *data, uint64_t len,
                                      int64_t timeout_ns);

/*
 * Producer: write up to `count` messages stored back to back in `data`, message i being
 * lens[i] bytes. Waits (as shm_channel_write) for room for the first, then writes as many
 * as fit without waiting, publishing them together.
 * Returns the number written (1..count), 0 if count is 0, or the errors of shm_channel_write
 * (-EMSGSIZE if the first message is too large; a later one stops the batch before it).
 * Publisher: publishes them one by one, never waiting.
 */
SHM_CHANNEL_API int shm_channel_write_batch(shm_channel_t *ch, const void *data,
                                            const uint64_t *lens, uint32_t count,
                                            int64_t timeout_ns);

/*
 * Producer, zero-copy: wait for room for `len` bytes and set *ptr to contiguous, 8-byte
 * aligned, writable space inside the ring. Fill it, then shm_channel_commit() or
 * shm_channel_abort(). Nothing is visible to the consumer before commit.
 * Returns 0 or the errors of shm_channel_write.
 * Publisher: never waits; the space is the slot of the oldest message, which is gone from
 * this call on (an abort does not bring it back); max_payload bytes are writable.
 */
SHM_CHANNEL_API int shm_channel_reserve(shm_channel_t *ch, uint64_t len, void **ptr,
                                        int64_t timeout_ns);

/*
 * Producer: publish the reserved message with its final length (0..reserved length).
 * Returns 0, -EINVAL (no reservation, or len larger than reserved), -EBADF.
 * Publisher: also wakes sleeping subscribers.
 */
SHM_CHANNEL_API int shm_channel_commit(shm_channel_t *ch, uint64_t len);

/* Producer: drop the outstanding reservation. Returns 0, -EINVAL (none), -EBADF. */
SHM_CHANNEL_API int shm_channel_abort(shm_channel_t *ch);

/*
 * Consumer: copy the next message into buf (cap bytes) and release it; *len gets its size.
 * timeout_ns: 0 returns -EAGAIN at once when the ring is empty; negative waits forever.
 * Returns 0, or: -EMSGSIZE (cap too small: *len gets the size needed, the message stays),
 * -EAGAIN (empty), -ETIMEDOUT, -EINTR, -EPIPE (end-of-stream: the producer closed and the
 * ring is drained), -EOWNERDEAD (the producer died and the ring is drained), -EBADMSG
 * (corrupt segment), -EBADF (not a consumer), -EINVAL (NULL len, or NULL buf with cap > 0).
 * Subscriber (broadcast): the next message in order; after being lapped, the oldest still
 * held (shm_channel_recv() says how many were skipped). A copy that raced with an overwrite
 * is never returned. Waits as above (spin, then futex); -EPIPE / -EOWNERDEAD once every
 * held message was read and the publisher closed / died; -EAGAIN also when the publisher
 * overwrote the message 64 times in a row during the copy; -EBUSY while a view from
 * shm_channel_peek() or shm_channel_peek_latest() is held (release it first).
 */
SHM_CHANNEL_API int shm_channel_read(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
                                     int64_t timeout_ns);

/*
 * Consumer: read up to max_count messages, stored back to back into buf; lens[i] gets the
 * size of message i. Waits (as shm_channel_read) for the first, then takes as many as are
 * ready and fit. Returns the number read (1..max_count), 0 if max_count is 0, or the errors
 * of shm_channel_read (-EMSGSIZE with lens[0] = size needed if the first does not fit).
 * Subscriber: as many consecutive messages as are published and fit.
 */
SHM_CHANNEL_API int shm_channel_read_batch(shm_channel_t *ch, void *buf, uint64_t cap,
                                           uint64_t *lens, uint32_t max_count,
                                           int64_t timeout_ns);

/*
 * Consumer, zero-copy: wait for the next message and set *ptr / *len to it in place
 * (contiguous, 8-byte aligned, read-only). It stays valid until shm_channel_release();
 * peeking again returns the same message. Returns the errors of shm_channel_read.
 * Subscriber: the view is of message m in its slot; the publisher overwrites it when it
 * starts message m + depth. So a view taken while the newest published message is P stays
 * intact for the next m + depth - 1 - P publishes: depth - 1 for the newest message (as
 * shm_channel_peek_latest gives, or a subscriber that keeps up), `lag` fewer for one that
 * lags (shm_channel_sub_stat). At a steady rate r that is (m + depth - 1 - P) / r seconds,
 * e.g. the newest frame at depth 4 and 30 frames/s: at least 100 ms (spec/broadcast.md
 * §5.6). shm_channel_release() says whether it stayed intact. The skip before it is in
 * shm_channel_sub_stat(ch, -1, ...).last_missed.
 */
SHM_CHANNEL_API int shm_channel_peek(shm_channel_t *ch, const void **ptr, uint64_t *len,
                                     int64_t timeout_ns);

/* Consumer: release the peeked message. Returns 0, -EINVAL (nothing peeked), -EBADF.
 * Subscriber: also -ESTALE if the publisher began overwriting the message while it was
 * held: what was read of it may be torn, and it counts as missed, not delivered. */
SHM_CHANNEL_API int shm_channel_release(shm_channel_t *ch);

/*
 * Subscriber: shm_channel_read(), and *missed (if not NULL) gets the number of messages
 * skipped just before this one because the publisher lapped this subscriber. Delivered plus
 * missed always equals the messages published since it joined (up to its next one).
 * Returns the errors of shm_channel_read(); -EBADF if not a subscriber.
 */
SHM_CHANNEL_API int shm_channel_recv(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
                                     uint64_t *missed, int64_t timeout_ns);

/*
 * Subscriber: copy the newest message into buf; never waits. *is_new (if not NULL) is 1
 * if this handle had not read it before, else 0; *missed (if not NULL) the messages skipped
 * to reach it (0 when not new). A later shm_channel_read() continues after it. Seed 000's
 * subscribe() -> (value, is_new). Returns 0, -EAGAIN (nothing published yet, or
 * overwritten 64 times during the copy), -EMSGSIZE (*len = size needed), -EBUSY (a view is
 * held), -EBADMSG, -EBADF (not a subscriber), -EINVAL (NULL len, or NULL buf with cap > 0).
 */
SHM_CHANNEL_API int shm_channel_read_latest(shm_channel_t *ch, void *buf, uint64_t cap,
                                            uint64_t *len, int32_t *is_new, uint64_t *missed);

/*
 * Subscriber, zero-copy: shm_channel_read_latest() as a view in place, held until
 * shm_channel_release() (which reports -ESTALE as for shm_channel_peek()). Peeking again
 * before the release returns the same view and report. Never waits. Returns 0 or the
 * errors of shm_channel_read_latest() but -EMSGSIZE and -EBUSY.
 */
SHM_CHANNEL_API int shm_channel_peek_latest(shm_channel_t *ch, const void **ptr, uint64_t *len,
                                            int32_t *is_new, uint64_t *missed);

/* Fill *st with a snapshot of the segment's header. Any role, any kind (for a broadcast
 * segment: capacity = slot area bytes, producer_* = publisher, msgs_read = 0,
 * consumer_alive = 1 if any subscriber entry is held). Returns 0, -EINVAL, or -EBADF
 * (the handle was detached). */
SHM_CHANNEL_API int shm_channel_stat(shm_channel_t *ch, shm_channel_stat_t *st);

/*
 * Broadcast, any role: fill *st with the broadcast-specific part of the header. Never
 * blocks. Returns 0, -EINVAL (NULL), -EPROTOTYPE (a stream handle), -EBADF (detached).
 */
SHM_CHANNEL_API int shm_channel_broadcast_stat(shm_channel_t *ch,
                                               shm_channel_broadcast_stat_t *st);

/*
 * Broadcast, any role: the counters of subscriber entry `index` (0..max_subscribers - 1),
 * as recorded in the table, with alive from its lock; index -1 on a subscriber: its own
 * handle's exact running totals (and last_missed). Never blocks. Returns 0, -EINVAL (NULL,
 * index out of range, -1 on a handle that is not a subscriber), -ENOENT (entry never
 * used), -EPROTOTYPE (a stream handle), -EBADF (detached).
 */
SHM_CHANNEL_API int shm_channel_sub_stat(shm_channel_t *ch, int64_t index,
                                         shm_channel_sub_stat_t *st);

/* Largest message this channel accepts, in bytes (0 for a NULL handle). Any kind. */
SHM_CHANNEL_API uint64_t shm_channel_max_payload(shm_channel_t *ch);

/* Capacity of this channel's ring, in bytes (0 for a NULL handle). Broadcast: bytes of
 * the slot area (depth x slot stride). */
SHM_CHANNEL_API uint64_t shm_channel_capacity(shm_channel_t *ch);

/*
 * Set how long a blocking call spins before sleeping on a futex, in nanoseconds
 * (0 sleeps at once). Default SHM_CHANNEL_DEFAULT_SPIN_NS. Returns 0 or -EINVAL.
 */
SHM_CHANNEL_API int shm_channel_set_spin(shm_channel_t *ch, uint64_t spin_ns);

/* The directory segments live in: $SHM_CHANNEL_DIR if set, else "/dev/shm". */
SHM_CHANNEL_API const char *shm_channel_dir(void);

/* Static text for a return value (negative errno or 0). Never NULL. */
SHM_CHANNEL_API const char *shm_channel_strerror(int err);

/* Library version as (major << 16) | (minor << 8) | patch. */
SHM_CHANNEL_API uint32_t shm_channel_version(void);

/* Library version as text, e.g. "1.0.0". */
SHM_CHANNEL_API const char *shm_channel_version_string(void);

/* ==== Services (kind 4, spec/service.md): request/response, one server, many clients ====
 *
 * A server offers a named service; up to max_clients clients send it requests, each with
 * one request in flight, and each gets only the response to its own request. The server
 * waits for the next request from any client in one call, may hold one request of every
 * client at once and answers them in any order, or not at all. Blocking calls spin, then
 * sleep on a futex (no system call while the peer is busy, none while nobody sleeps).
 *
 * The calls every kind shares, on a service handle:
 *   client: shm_channel_write() sends a request (copy) without waiting for its response;
 *     shm_channel_reserve()/shm_channel_commit()/shm_channel_abort() build one in place;
 *     shm_channel_read() / shm_channel_peek() wait for the response to it (copy / in place,
 *     as shm_channel_response()); shm_channel_release() ends a view (optional: a view stays
 *     valid until the next request). timeout_ns of write/reserve bounds the wait for a
 *     server and for the request buffer. Sending a request gives up an earlier one whose
 *     response was not read (as a timeout does).
 *   server: shm_channel_abort() drops an outstanding shm_channel_respond_reserve() (the
 *     request stays owed). write, write_batch, reserve, commit, read, read_batch, peek and
 *     release return -EOPNOTSUPP: a response needs a request id (the calls below).
 *   both: write_batch/read_batch -EOPNOTSUPP; shm_channel_stat() (producer_* = the server,
 *     consumer_alive = any client alive, msgs_written = requests taken, msgs_read =
 *     responses), shm_channel_max_payload() (max(max_request, max_response)),
 *     shm_channel_capacity() (bytes of the slot area), shm_channel_set_spin(),
 *     shm_channel_detach(), shm_channel_close() as for every kind. The broadcast calls
 *     (recv, read_latest, peek_latest) return -EBADF, broadcast_stat/sub_stat -EPROTOTYPE.
 */

/* Kind and roles of a service (the same numbering as enum shm_channel_kind / _role). */
enum shm_channel_service_kind {
    SHM_CHANNEL_KIND_SERVICE = 4 /* one server, many clients, request/response */
};
enum shm_channel_service_role {
    SHM_CHANNEL_SERVER = 6, /* the one server; a second live one gets -EBUSY */
    SHM_CHANNEL_CLIENT = 7  /* one of up to max_clients clients; one more gets -EUSERS */
};

/* Limits of a service (spec/service.md §3.1). */
#define SHM_CHANNEL_SERVICE_MAX_CLIENTS 1024
#define SHM_CHANNEL_SERVICE_MAX_MESSAGE 1073741824 /* 2^30: largest max_request/response */
#define SHM_CHANNEL_SERVICE_DEFAULT_MESSAGE 4096
#define SHM_CHANNEL_SERVICE_DEFAULT_CLIENTS 64

/* Creation parameters of a service; when opening an existing one, every nonzero field must
 * match the segment's (-EINVAL). A NULL pointer means all zero. */
typedef struct shm_channel_service_config {
    uint64_t max_request;  /* largest request, 0..2^30 bytes; 0: 4096 when creating */
    uint64_t max_response; /* largest response, 0..2^30 bytes; 0: 4096 when creating */
    uint32_t max_clients;  /* client slots, 1..1024; 0: 64 when creating */
    uint32_t reserved0;    /* zero */
    uint64_t reserved[4];  /* zero */
} shm_channel_service_config_t;

/* Names one received request: the client's slot and the request's number in that slot. A
 * number names one request of one client once for the life of the segment. */
typedef struct shm_channel_request_id {
    uint32_t client;   /* slot index, 0..max_clients - 1 */
    uint32_t reserved; /* zero */
    uint64_t seq;      /* request number in the slot, from 1 */
} shm_channel_request_id_t;

/* Snapshot of a service segment (shm_channel_service_stat). Counters as recorded in the
 * segment; *_alive from the kernel's locks. */
typedef struct shm_channel_service_stat {
    uint64_t max_request;
    uint64_t max_response;
    uint32_t max_clients;
    uint32_t clients;         /* slots recorded attached (a dead client counts until reaped) */
    uint32_t live_clients;    /* slots whose lock a live client holds (this handle included) */
    uint32_t server_state;    /* enum shm_channel_peer_state */
    uint32_t server_epoch;    /* incremented by every server attach */
    int32_t server_alive;     /* 1 if a live process holds the server role */
    uint64_t joins;           /* client joins ever */
    uint64_t reclaims;        /* slots of dead clients taken back (by anyone) */
    uint64_t reaped;          /* of those, by a server */
    uint64_t requests;        /* requests handed to a server */
    uint64_t responses;       /* responses published */
    uint64_t stale;           /* responses not written: the client had given up */
    uint64_t expired;         /* requests addressed to an earlier server, dropped */
    uint64_t invalid;         /* requests with an invalid length, dropped */
    uint64_t server_sleeps;   /* times the server prepared to sleep */
    uint64_t server_wakes;    /* client wake-ups made by the server */
    uint64_t client_sleeps;   /* times the attached clients prepared to sleep (sum) */
    uint64_t client_timeouts; /* requests the attached clients gave up on (sum) */
    uint64_t reserved[6];     /* zero */
} shm_channel_service_stat_t;

/*
 * Open (and with SHM_CHANNEL_CREATE, create) the service `name` (kind 4) as
 * SHM_CHANNEL_SERVER, SHM_CHANNEL_CLIENT or SHM_CHANNEL_OBSERVER. shm_channel_open() with
 * the role SERVER or CLIENT and capacity 0 is this call with cfg NULL. name, flags (CREATE,
 * EXCL, ALLOW_FOREIGN) and mode as shm_channel_open(). cfg: the creation parameters, or for
 * an existing service the parameters it must have (NULL: any).
 * Either side may create and start first; a client never waits here for a server (request()
 * does, and shm_channel_wait_server()). One live server: a second gets -EBUSY; after it
 * closes or dies, a new one takes over the name (requests sent to its predecessor are
 * dropped, never run by the successor). Up to max_clients clients at once; the slot of a
 * dead client is taken back by the next joiner or by the server.
 * Blocks as shm_channel_open() (at most 1 s while another process initialises the segment).
 * Returns 0 and sets *out, or the errors of shm_channel_open() (-EPROTOTYPE: the segment is
 * of another kind; shm_channel_open() and shm_channel_open_broadcast() get -EPROTOTYPE on a
 * service), or: -EINVAL (a bad or mismatching parameter, nonzero reserved words, another
 * role), -EUSERS (client: every slot is held by a live client).
 */
SHM_CHANNEL_API int shm_channel_open_service(shm_channel_t **out, const char *name,
                                             uint32_t role, uint32_t flags,
                                             const shm_channel_service_config_t *cfg,
                                             uint32_t mode);

/*
 * Client: send one request of req_len bytes (0..max_request) and wait for its response,
 * copied into resp (resp_cap bytes); *resp_len gets its size. If no server ever attached,
 * first waits for one, within the same timeout. timeout_ns: negative waits forever; 0
 * sends only if a server is live and returns -ETIMEDOUT unless the answer is there at once.
 * Returns 0, or: -ETIMEDOUT (the request was withdrawn if the server had not taken it yet,
 * so it never runs; if the server had it, its answer is never returned by a later call),
 * -EINTR (a signal: given up as for a timeout), -EPIPE (the server closed), -EOWNERDEAD
 * (the server died: no successor runs the request), -ECONNRESET (the server that had the
 * request is gone and another has attached: send it again), -EMSGSIZE (req_len >
 * max_request, nothing sent; or the response did not fit: *resp_len = its size, and it
 * stays readable by shm_channel_response() until the next request), -EBADMSG (corrupt
 * segment), -EBADF (not a client), -EINVAL (NULL with a nonzero length, NULL resp_len).
 */
SHM_CHANNEL_API int shm_channel_request(shm_channel_t *ch, const void *req, uint64_t req_len,
                                        void *resp, uint64_t resp_cap, uint64_t *resp_len,
                                        int64_t timeout_ns);

/*
 * Client, zero-copy: wait for the response to the request sent with shm_channel_write() or
 * shm_channel_commit() and set *ptr / *len to it in place (8-byte aligned, read-only); the
 * view stays valid until this handle's next request. Calling it again returns the same
 * response. Returns 0, -EINVAL (no request sent, or NULL), or the errors of
 * shm_channel_request() but -EMSGSIZE.
 */
SHM_CHANNEL_API int shm_channel_response(shm_channel_t *ch, const void **ptr, uint64_t *len,
                                         int64_t timeout_ns);

/*
 * Client: wait until a live server is attached (also after the previous one closed or
 * died: its successor). Returns 0, -ETIMEDOUT (also at once with timeout 0 and no live
 * server), -EINTR, -EBADF (not a client), -EINVAL.
 */
SHM_CHANNEL_API int shm_channel_wait_server(shm_channel_t *ch, int64_t timeout_ns);

/*
 * Server: wait for the next request from any client and copy it into buf (cap bytes); *len
 * gets its size, *id names it for shm_channel_respond() / shm_channel_drop(). The client's
 * request buffer is free again at once; the answer is still owed. Clients are served in
 * fair rounds. While it waits, the server reclaims the slots of dead clients once per
 * liveness slice (shm_channel_reap() reports them). timeout_ns as shm_channel_read().
 * Returns 0, or: -EAGAIN (timeout 0, none), -ETIMEDOUT, -EINTR, -EMSGSIZE (cap too small:
 * *len = its size, *id set; it stays the next request this call or shm_channel_receive_peek()
 * returns), -EBADF (not a server), -EINVAL (NULL len or id, NULL buf with cap > 0).
 */
SHM_CHANNEL_API int shm_channel_receive(shm_channel_t *ch, void *buf, uint64_t cap,
                                        uint64_t *len, shm_channel_request_id_t *id,
                                        int64_t timeout_ns);

/*
 * Server, zero-copy: shm_channel_receive() in place. The view (8-byte aligned, read-only)
 * stays valid until the request is answered (respond/respond_commit), dropped or released
 * (shm_channel_receive_release()); until then that client cannot send its next request.
 * Returns 0 or the errors of shm_channel_receive() but -EMSGSIZE.
 */
SHM_CHANNEL_API int shm_channel_receive_peek(shm_channel_t *ch, const void **ptr,
                                             uint64_t *len, shm_channel_request_id_t *id,
                                             int64_t timeout_ns);

/*
 * Server: done reading a request received with shm_channel_receive_peek() in place (its
 * view ends); the answer is still owed. The client may send its next request only after
 * this (or the answer). Returns 0, -EINVAL (not held in place), -EBADF.
 */
SHM_CHANNEL_API int shm_channel_receive_release(shm_channel_t *ch,
                                                const shm_channel_request_id_t *id);

/*
 * Server: answer request *id with len bytes (0..max_response), copied. Never waits; wakes
 * the client if it sleeps. Returns 0, or: -ESTALE (the client gave up on it and has sent a
 * newer request: nothing is written, the request is no longer owed), -EINVAL (not owed:
 * never received, answered or dropped already, or its client was reaped; NULL data with
 * len > 0), -EMSGSIZE (len > max_response; still owed), -EBUSY (a respond_reserve is
 * outstanding), -EBADF (not a server).
 */
SHM_CHANNEL_API int shm_channel_respond(shm_channel_t *ch, const shm_channel_request_id_t *id,
                                        const void *data, uint64_t len);

/*
 * Server, zero-copy: set *ptr to space (8-byte aligned) for a response of up to len bytes to
 * request *id, in the client's response buffer. Fill it, then shm_channel_respond_commit()
 * (or shm_channel_abort()). One at a time. Returns 0 or the errors of shm_channel_respond().
 */
SHM_CHANNEL_API int shm_channel_respond_reserve(shm_channel_t *ch,
                                                const shm_channel_request_id_t *id,
                                                uint64_t len, void **ptr);

/*
 * Server: publish the reserved response to *id with its final length (<= reserved).
 * Returns 0, -EINVAL (no reservation for *id, or len larger than reserved), -EBADF.
 */
SHM_CHANNEL_API int shm_channel_respond_commit(shm_channel_t *ch,
                                               const shm_channel_request_id_t *id,
                                               uint64_t len);

/*
 * Server: answer request *id not at all; its client's call times out, or sees the server's
 * close or death. A request held in place is released. Returns 0, -EINVAL (not owed),
 * -EBADF.
 */
SHM_CHANNEL_API int shm_channel_drop(shm_channel_t *ch, const shm_channel_request_id_t *id);

/*
 * Server: reclaim now the slots of clients that died, and report every slot reclaimed by
 * this server since the last call (here or while receive waited): fills dead[0..cap - 1]
 * with their indices and returns how many were filled (the rest stay for the next call).
 * A reaped client's request is no longer owed, except one held in place
 * (shm_channel_receive_peek), which stays until answered, dropped or released (its answer
 * reaches nobody). Returns the count, -EBADF, -EINVAL (NULL dead with cap > 0).
 */
SHM_CHANNEL_API int shm_channel_reap(shm_channel_t *ch, uint32_t *dead, uint32_t cap);

/*
 * Service, any role (observer included): fill *st with the service-specific part of the
 * segment. Never blocks; live_clients costs one lock query per slot recorded attached.
 * Returns 0, -EINVAL (NULL), -EPROTOTYPE (not a service handle), -EBADF (detached).
 */
SHM_CHANNEL_API int shm_channel_service_stat(shm_channel_t *ch, shm_channel_service_stat_t *st);
/* ==== end of services ==== */

/* ---- Compat channels (spec/compat.md): seed 002's 16-byte-header byte ring ------------
 *
 * A compat channel is a segment in the layout of seed 002 (cpp_py_shmbuf): a 16-byte header
 * (head, tail, capacity, reserved; u32 little-endian) and a byte ring of [u32 length]
 * [payload] records, with no identity line, locks, futex words or states. It lets a
 * shm_channel producer or consumer talk, unchanged, to that project's C++ and Python
 * processes, and be the safe side of the pair (torn indices refused, never overwriting).
 * shm_channel_open(out, name, role, flags | SHM_CHANNEL_COMPAT, capacity, mode):
 *   role PRODUCER or CONSUMER (OBSERVER: stat only). With CREATE (producer only; a consumer
 *   or observer with it: -EINVAL) a missing segment is created as the peer's producer does
 *   it (capacity + 16 bytes, head = tail = 0, capacity stored last), but with mode 0600 when
 *   mode is 0; capacity a power of two in [SHM_CHANNEL_COMPAT_MIN_CAPACITY,
 *   SHM_CHANNEL_COMPAT_MAX_CAPACITY], 0: SHM_CHANNEL_DEFAULT_CAPACITY. EXCL as for streams.
 *   COMPAT_REPLACE (producer with CREATE): unlink first. Without it an existing segment is
 *   opened and validated, never unlinked: only the caller knows whether a live peer uses it.
 *   ALLOW_FOREIGN as for streams (the peer's C++ producer creates mode 0666 minus umask:
 *   pass that mode, or ALLOW_FOREIGN). A nonzero capacity that differs from the segment's
 *   is -EINVAL. One producer and one consumer handle of this library per segment (-EBUSY);
 *   the peer's processes take no locks and cannot be counted.
 *   Waits (at most 1 s, then -ETIMEDOUT; an observer: -EAGAIN at once) while the file is
 *   shorter than 16 bytes or its capacity is still 0 (the peer's producer is between its
 *   ftruncate and its header stores). Errors: those of shm_channel_open() but -EPROTO,
 *   -EPROTONOSUPPORT and -EPROTOTYPE; -EBADMSG: not a compat segment (size not capacity +
 *   16, capacity not a power of two in range), or the indices out of range for 2 s.
 * Then the stream calls apply, with these differences (spec/compat.md section 7):
 *  - write, write_batch, reserve/commit: a 0-length message or commit is -EINVAL (the
 *    peer's consumers stall forever on one); the largest message is capacity - 4; the
 *    pointer from reserve is unaligned and, when the payload would be split at the wrap, a
 *    handle-owned bounce buffer copied into the ring at commit.
 *  - read, read_batch, peek/release: peek of a payload split at the wrap returns a copy in a
 *    handle-owned buffer; unaligned. A 0-length record a peer wrote is delivered as such.
 *  - A blocked call polls (no futex word exists): it spins for the handle's spin time, then
 *    sleeps, doubling from 16 us up to SHM_CHANNEL_COMPAT_POLL_MAX_NS, until ready or its
 *    timeout. An idle waiter wakes at most once per bound (500 times a second) and costs
 *    about what a bare sleep loop of that period costs (1-2% of a core on a 2-vCPU VM);
 *    wake-up latency is at most the bound once idle.
 *  - Never -EPIPE or -EOWNERDEAD: the layout has no end-of-stream or liveness. Instead
 *    -EIDRM: the segment's name was unlinked (a peer producer replaced it, or a Python peer's
 *    resource tracker removed it) and, for a consumer, the ring is drained; for a producer,
 *    the ring is full. Checked at most every 100 ms while waiting.
 *  - -EBADMSG: the peer's index stayed out of range (head - tail > capacity) on every try
 *    for 2 s (a torn index is refused and re-read; a lasting one is corruption), or a record
 *    length above capacity - 4.
 *  - close and detach never unlink and mark nothing.
 * Names: 1..SHM_CHANNEL_COMPAT_NAME_MAX bytes of [A-Za-z0-9._-], not starting with '.'
 * (optionally preceded by '/'). The segment is shm_channel_dir()/<name>: /dev/shm/<name>,
 * where the peer's shm_open("/<name>") looks, unless $SHM_CHANNEL_DIR is set (then only
 * processes using the same directory meet: keep it unset to reach the peer).
 */

/* Open flags of compat channels, OR-ed with those of shm_channel_open(). */
enum shm_channel_compat_flags {
    SHM_CHANNEL_COMPAT = 256,        /* open (or create) a compat channel; also for
                                        shm_channel_unlink() */
    SHM_CHANNEL_COMPAT_REPLACE = 512 /* producer with CREATE: first unlink whatever has the
                                        name, as the peer's producer does (a consumer still
                                        attached to the old segment is orphaned) */
};

/* shm_channel_stat_t.kind of a compat channel (spec/README.md reserves kind 3). */
#define SHM_CHANNEL_KIND_COMPAT 3
/* Longest compat channel name (the peer's limit), not counting a leading '/'. */
#define SHM_CHANNEL_COMPAT_NAME_MAX 63
/* Capacity limits of a compat channel (a power of two; the segment is capacity + 16). */
#define SHM_CHANNEL_COMPAT_MIN_CAPACITY 8
#define SHM_CHANNEL_COMPAT_MAX_CAPACITY 2147483648
/* Longest sleep between two polls of a blocked compat call, in nanoseconds. */
#define SHM_CHANNEL_COMPAT_POLL_MAX_NS 2000000

/* A compat handle's view (shm_channel_compat_stat). Indices are the segment's u32 words. */
typedef struct shm_channel_compat_stat {
    uint32_t capacity;     /* ring data bytes */
    uint32_t head;         /* as last accepted (own index, or the peer's) */
    uint32_t tail;
    uint32_t used;         /* head - tail (u32) */
    uint64_t torn_loads;   /* loads of the peer's index refused as out of range, ever */
    uint64_t msgs;         /* messages this handle wrote (producer) or read (consumer) */
    uint64_t bytes;        /* their payload bytes */
    uint64_t waits;        /* calls that found the ring full (producer) or empty (consumer) */
    uint64_t sleeps;       /* sleeps between polls */
    int32_t segment_gone;  /* 1 once the segment's name was found unlinked */
    uint32_t reserved0;    /* zero */
    uint64_t reserved[4];  /* zero */
} shm_channel_compat_stat_t;

/*
 * Compat, any role: fill *st with this handle's view of the channel. Never blocks.
 * shm_channel_stat() also works on a compat handle: kind SHM_CHANNEL_KIND_COMPAT, capacity,
 * max_payload, write_pos = head and read_pos = tail as u32 positions, this handle's message
 * and byte counts, full/empty events and sleeps; the fields the layout lacks (peer states,
 * epochs, wakes, creator) are 0, and the peer's *_alive is 0 (unknown).
 * Returns 0, -EINVAL (NULL), -EPROTOTYPE (not a compat handle), -EBADF (detached).
 */
SHM_CHANNEL_API int shm_channel_compat_stat(shm_channel_t *ch, shm_channel_compat_stat_t *st);

/* ---- end of compat channels ------------------------------------------------------------ */

/* ---- reclaiming dead peers' entries (issue 10) ------------------------------------------ */
/*
 * Take back the subscriber entries of a broadcast channel whose subscribers died attached
 * (spec/broadcast.md §5.9): each entry that reads attached and whose lock this call can
 * take (proof that its owner is gone) is reclaimed, so `subscribers` and the sleepers'
 * count no longer include the dead. What a new publisher or joiner does on its own; for
 * monitors (`shm_channel gc`). Opens as shm_channel_open() with mode 0 does (own file, no
 * wider than 0600, write access); never waits, never
 * unlinks. flags: 0.
 * Returns the number of entries reclaimed (>= 0), or -EINVAL (flags), -EPROTOTYPE (not a
 * broadcast channel: a stream has no table; a service's dead clients are reaped by its
 * server, which holds their requests), -EAGAIN (being created), -EACCES, -ENOENT, or the
 * errors of shm_channel_open().
 */
SHM_CHANNEL_API int shm_channel_reclaim(const char *name, uint32_t flags);

/* ---- end of reclaiming ------------------------------------------------------------------ */

/* ---- batch peek and the mapping window (issue 14) ------------------------------------ */

/*
 * Consumer (stream), zero-copy: wait (as shm_channel_peek()) for the next message, then hand
 * over up to max_count messages in place, in order, WITHOUT releasing any: ptrs[i] / lens[i]
 * = message i (contiguous, 8-byte aligned, read-only). Returns their number n (1..max_count),
 * 0 if max_count is 0, or the errors of shm_channel_peek(); -EOPNOTSUPP for a kind other than
 * a stream, -EINVAL (NULL ptrs or lens, max_count > INT32_MAX). The first stays peeked as
 * shm_channel_peek() holds it, and all n stay valid until shm_channel_release_n() (or the
 * handle's close): the producer cannot reuse their space before. Peeking again (either
 * call) before that returns the same messages from the first. A consumer that dies, closes
 * or detaches while holding them has released none of them: its successor reads all n again
 * (spec/README.md §5.5, "Batch peek"), so redelivery is bounded by n.
 */
SHM_CHANNEL_API int shm_channel_peek_batch(shm_channel_t *ch, const void **ptrs, uint64_t *lens,
                                           uint32_t max_count, int64_t timeout_ns);

/*
 * Consumer (stream): release the first n messages of the last shm_channel_peek_batch() (n up
 * to its count) in one step, waking a sleeping producer once. The rest are no longer held:
 * the next peek or read returns them again. n = 0 does nothing. Returns 0, -EINVAL (n larger
 * than the batch, or no batch held: a read or release since the batch peek ends it), -EBADMSG
 * (the segment changed under a held message: those before it are released), -EBADF,
 * -EOPNOTSUPP (not a stream).
 */
SHM_CHANNEL_API int shm_channel_release_n(shm_channel_t *ch, uint32_t n);

/*
 * Any role, any kind: *base / *len = this handle's mapping of the segment. Every view that
 * peek, peek_batch and reserve hand out on a stream lies inside it. It stays mapped until
 * shm_channel_close() (after shm_channel_detach(), as a private copy), so a binding may
 * build one buffer over it and hand out slices. Returns 0 or -EINVAL (a NULL argument).
 */
SHM_CHANNEL_API int shm_channel_mapping(shm_channel_t *ch, void **base, uint64_t *len);

/* ---- end of batch peek and the mapping window ------------------------------------------ */

/* ---- one-try write and read with few arguments (issue 14, bindings) -------------------- */

/*
 * Any kind and role that shm_channel_write() takes: shm_channel_write(ch, data, len, 0), with
 * one argument less. For bindings whose cost per call grows with its arguments (Python's
 * cffi): try this, and make the waiting shm_channel_write() only on -EAGAIN. Like any call
 * with timeout 0 that finds the ring full, it counts one full event.
 */
SHM_CHANNEL_API int shm_channel_try_write(shm_channel_t *ch, const void *data, uint64_t len);

/*
 * Any kind and role that shm_channel_read() takes: shm_channel_read(ch, buf, cap, &len, 0),
 * returning the message's length (>= 0) instead of storing it, or its negative errno (-EAGAIN
 * when nothing is ready, -EMSGSIZE when the message is larger than cap: it stays unread, and
 * shm_channel_read() tells its length).
 */
SHM_CHANNEL_API int64_t shm_channel_try_read(shm_channel_t *ch, void *buf, uint64_t cap);

/* ---- end of one-try write and read ------------------------------------------------------ */

/* ---- one-try zero copy with few arguments (issue 14, bindings) ------------------------- */

/*
 * Any kind and role that shm_channel_reserve() takes: shm_channel_reserve(ch, len, &ptr, 0),
 * returning where the space starts as an offset from this handle's mapping base
 * (shm_channel_mapping(); >= 0) instead of storing a pointer, or a negative errno (-EAGAIN
 * when there is no room now; then nothing is reserved). -ERANGE: the space is not inside the
 * mapping (a compat reservation split at the wrap gets a bounce buffer); it was aborted, so
 * nothing is reserved: use shm_channel_reserve(). Commit or abort as after shm_channel_reserve().
 */
SHM_CHANNEL_API int64_t shm_channel_try_reserve(shm_channel_t *ch, uint64_t len);

/*
 * Any kind and role that shm_channel_peek() takes: shm_channel_peek(ch, &ptr, len, 0),
 * returning the message's offset from this handle's mapping base (>= 0) instead of storing a
 * pointer, or a negative errno (-EAGAIN when nothing is ready). -ERANGE: the message is held
 * (peeked) but does not lie inside the mapping (a compat message split at the wrap is handed
 * out as a copy): shm_channel_peek() returns its pointer. Release as after shm_channel_peek().
 */
SHM_CHANNEL_API int64_t shm_channel_try_peek(shm_channel_t *ch, uint64_t *len);

/* ---- end of one-try zero copy ----------------------------------------------------------- */

#ifdef __cplusplus
}
#endif

#endif /* SHM_CHANNEL_H */
