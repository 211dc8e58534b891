/* The broadcast algorithm (spec/broadcast.md, kind 2) over a plain buffer: one publisher,
 * any number of subscribers, `depth` slots of one message each, a seqlock stamp per slot.
 * Nothing here makes a system call: the caller takes the OFD locks and does the futex
 * wait and wake this code asks for (broadcast_api.c, through the public API).
 *
 * PROPOSED public API (for the integration session; names in the style of shm_channel.h):
 *
 *   enum shm_channel_kind { ..., SHM_CHANNEL_KIND_BROADCAST = 2 };
 *   enum shm_channel_role { ..., SHM_CHANNEL_PUBLISHER = 4,   one live publisher (-EBUSY)
 *                                SHM_CHANNEL_SUBSCRIBER = 5 }; any number, up to max_subscribers
 *
 *   typedef struct shm_channel_broadcast_config {
 *       uint64_t max_payload;     largest message; 0 = 64 (creation only; else must match or 0)
 *       uint32_t depth;           messages kept, 2..2^24; 0 = 8 (seed 000's buffer_num)
 *       uint32_t max_subscribers; 1..65536; 0 = 256
 *       const char *type_tag;     NULL or "" = no requirement (and an untyped segment when
 *                                 creating); else at most 120 printable ASCII bytes that the
 *                                 segment's tag must equal: -EMEDIUMTYPE otherwise, and
 *                                 shm_channel_type_tag() tells the caller the segment's tag
 *       uint64_t reserved[4];     zero
 *   } shm_channel_broadcast_config_t;
 *
 *   int shm_channel_open_broadcast(shm_channel_t **out, const char *name, uint32_t role,
 *                                  uint32_t flags, const shm_channel_broadcast_config_t *cfg,
 *                                  uint32_t mode);
 *       Either side may create. -EPROTOTYPE on a stream segment (and shm_channel_open()
 *       gives -EPROTOTYPE on a broadcast one), -EUSERS when every subscriber entry is held,
 *       -EMEDIUMTYPE on a type tag mismatch, else the errors of shm_channel_open().
 *   int shm_channel_type_tag(shm_channel_t *ch, char *buf, uint64_t cap);  segment's tag
 *
 *   Same calls, same meaning, on a publisher (never waits: timeout_ns is ignored, the
 *   ring is never full): shm_channel_write, shm_channel_reserve, shm_channel_commit,
 *   shm_channel_abort. Closing a publisher is end-of-stream.
 *   Same calls on a subscriber: shm_channel_read (the next message, in order; after a lap,
 *   the oldest still held), shm_channel_peek / shm_channel_release (release returns
 *   -ESTALE if the message was overwritten while held: its bytes may be torn and it
 *   counts as missed, not delivered). -EPIPE / -EOWNERDEAD as for streams.
 *   New, where the meaning differs:
 *   int shm_channel_recv(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
 *                        uint64_t *missed, int64_t timeout_ns);
 *       shm_channel_read plus the number of messages skipped just before this one.
 *   int shm_channel_read_latest(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
 *                               int32_t *is_new, uint64_t *missed);
 *       Never waits. The newest message; is_new = 0 if this handle has had it before;
 *       missed = messages skipped to get to it. -EAGAIN if nothing was ever published.
 *   int shm_channel_peek_latest(shm_channel_t *ch, const void **ptr, uint64_t *len,
 *                               int32_t *is_new, uint64_t *missed);
 *   int shm_channel_sub_stat(shm_channel_t *ch, uint64_t *delivered, uint64_t *missed,
 *                            uint64_t *lag, uint64_t *last_missed);
 *       running totals of this subscriber, and the skip reported with the last message
 *       read or peeked (so shm_channel_peek needs no new out-parameter)
 *   shm_channel_stat_t gains (from its reserved words): depth, max_subscribers,
 *   subscribers (live), published seq; shm_channel ls/stat print them for kind 2.
 */
#ifndef SHM_CHANNEL_BROADCAST_H
#define SHM_CHANNEL_BROADCAST_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define SHM__KIND_BROADCAST 2u
/* The minor version a broadcast creator writes: 1 since the publisher's handshake word and
 * the counters' own line (spec/broadcast.md §3.2). */
#define SHM__BCAST_LAYOUT_MINOR 1u
#define SHM__BCAST_SLOT_HEADER 16u
#define SHM__BCAST_SLOT_ALIGN 64u
#define SHM__BCAST_SUB_SIZE 128u
#define SHM__BCAST_SUBS_OFFSET 4096u
#define SHM__BCAST_MIN_DEPTH 2u
#define SHM__BCAST_MAX_DEPTH (1u << 24)
#define SHM__BCAST_MAX_SUBS 65536u
#define SHM__BCAST_MAX_PAYLOAD (1ull << 31)
#define SHM__BCAST_MAX_SEGMENT ((1ull << 40) + (1ull << 24))
#define SHM__BCAST_TAG_MAX 120u
#define SHM__BCAST_DEFAULT_DEPTH 8u
#define SHM__BCAST_DEFAULT_SUBS 256u
#define SHM__BCAST_DEFAULT_PAYLOAD 64u
/* Lock bytes (spec/broadcast.md §3.7): 0 publisher, 2 attach (as streams), and one per
 * subscriber entry. */
#define SHM__BCAST_LOCK_PUBLISHER 0
#define SHM__BCAST_LOCK_ATTACH 2
#define SHM__BCAST_LOCK_SUB_BASE 4096
/* How many slots one read may try before giving up with -EAGAIN because the publisher
 * kept overwriting what it was reading (only when it laps the reader within one copy). */
#define SHM__BCAST_MAX_TRIES 64
/* Largest message number: 2m + 1 fits in a stamp. */
#define SHM__BCAST_MAX_SEQ ((1ull << 63) - 2)

/* The 4096-byte header of a kind-2 segment (spec/broadcast.md §3). */
struct shm__bcast_header {
    /* identity line, written once by the creator (shared with streams up to offset 60) */
    uint8_t magic[8];           /* 0 */
    uint16_t layout_major;      /* 8 */
    uint16_t layout_minor;      /* 10 */
    uint16_t kind;              /* 12: 2 */
    uint16_t flags;             /* 14 */
    uint32_t header_size;       /* 16: 4096 */
    uint32_t reserved0;         /* 20 */
    uint64_t capacity;          /* 24: depth * slot_stride, bytes of the slot area */
    uint64_t max_payload;       /* 32 */
    uint64_t segment_size;      /* 40 */
    uint64_t created_ns;        /* 48 */
    uint32_t creator_pid;       /* 56 */
    uint32_t reserved1;         /* 60 */
    uint64_t slot_stride;       /* 64 */
    uint32_t depth;             /* 72 */
    uint32_t max_subscribers;   /* 76 */
    uint64_t subs_offset;       /* 80: 4096 */
    uint64_t slots_offset;      /* 88 */
    uint8_t reserved2[32];      /* 96 */
    /* publisher line: written only by the publisher; subscribers load pub_seq only once
     * they have caught up with the value they last loaded (spec §5.4 step 0), for the
     * latest value, or when lapped; the rest only around a sleep */
    uint64_t pub_seq;           /* 128: number of the last published message, 0 = none */
    uint32_t notify_seq;        /* 136: futex word the subscribers sleep on */
    uint32_t publisher_state;   /* 140 */
    uint32_t publisher_epoch;   /* 144 */
    uint32_t publisher_handshake; /* 148: 1 = publishes without a fence (spec §5.7, 1.1) */
    uint8_t reserved4[104];     /* 152: zero (1.0 had its counters here) */
    /* subscribers' shared line: atomic read-modify-writes by subscribers */
    uint32_t subscribers;       /* 256: attached entries */
    uint32_t reserved6;         /* 260 */
    uint64_t joins;             /* 264 */
    uint64_t reclaims;          /* 272 */
    uint8_t reserved7[104];     /* 280 */
    /* waiting line (spec §5.7): bit 0 = a wake is owed (set by every sleeper before each
     * sleep, cleared by the publisher when it wakes, or by the last sleeper out); bits 1-31
     * = subscribers between counting in and out. The publisher loads it, and writes it only
     * when bit 0 is set. */
    uint32_t waiting;           /* 384 */
    uint8_t reserved8[124];     /* 388 */
    /* publisher counters line (1.1): written by the publisher on every publish, read only by
     * observers, so the publisher's per-message counter stores never touch a line a
     * subscriber reads */
    uint64_t msgs_written;      /* 512 */
    uint64_t bytes_written;     /* 520 */
    uint64_t publisher_wakes;   /* 528 */
    uint8_t reserved9[104];     /* 536 */
    /* type tag line, written once by the creator */
    uint32_t type_len;          /* 640 */
    uint32_t reserved10;        /* 644 */
    uint8_t type_tag[SHM__BCAST_TAG_MAX]; /* 648 */
    uint8_t reserved11[4096 - 768]; /* 768 */
};

/* One subscriber entry (spec §3.6), 128 bytes, written by its owner (and a reclaimer). */
struct shm__bcast_sub_entry {
    uint32_t state;             /* 0: 0 never used, 1 attached, 2 left */
    uint32_t epoch;             /* 4 */
    uint32_t sleeping;          /* 8: 1 while counted in waiting */
    uint32_t pid;               /* 12: informational */
    uint64_t next_seq;          /* 16: number of the next message it will read */
    uint64_t delivered;         /* 24 */
    uint64_t missed;            /* 32 */
    uint64_t delivered_bytes;   /* 40 */
    uint64_t sleeps;            /* 48 */
    uint8_t reserved[72];       /* 56 */
};

/* Slot header (spec §3.8); the payload follows at +16. */
struct shm__bcast_slot {
    uint64_t stamp;             /* 0: 2m = message m complete, 2m+1 = message m being written */
    uint32_t length;            /* 8 */
    uint32_t reserved;          /* 12 */
};

#define SHM__BCAST_OFF(f, n) _Static_assert(offsetof(struct shm__bcast_header, f) == (n), #f)
SHM__BCAST_OFF(kind, 12);
SHM__BCAST_OFF(capacity, 24);
SHM__BCAST_OFF(creator_pid, 56);
SHM__BCAST_OFF(slot_stride, 64);
SHM__BCAST_OFF(depth, 72);
SHM__BCAST_OFF(max_subscribers, 76);
SHM__BCAST_OFF(subs_offset, 80);
SHM__BCAST_OFF(slots_offset, 88);
SHM__BCAST_OFF(pub_seq, 128);
SHM__BCAST_OFF(notify_seq, 136);
SHM__BCAST_OFF(publisher_state, 140);
SHM__BCAST_OFF(publisher_epoch, 144);
SHM__BCAST_OFF(publisher_handshake, 148);
SHM__BCAST_OFF(msgs_written, 512);
SHM__BCAST_OFF(bytes_written, 520);
SHM__BCAST_OFF(publisher_wakes, 528);
SHM__BCAST_OFF(subscribers, 256);
SHM__BCAST_OFF(joins, 264);
SHM__BCAST_OFF(reclaims, 272);
SHM__BCAST_OFF(waiting, 384);
SHM__BCAST_OFF(type_len, 640);
SHM__BCAST_OFF(type_tag, 648);
_Static_assert(sizeof(struct shm__bcast_header) == 4096, "broadcast header is 4096 bytes");
_Static_assert(sizeof(struct shm__bcast_sub_entry) == SHM__BCAST_SUB_SIZE, "entry size");
_Static_assert(offsetof(struct shm__bcast_sub_entry, next_seq) == 16, "next_seq");
_Static_assert(offsetof(struct shm__bcast_sub_entry, sleeps) == 48, "sleeps");
_Static_assert(sizeof(struct shm__bcast_slot) == SHM__BCAST_SLOT_HEADER, "slot header");

/* The geometry of a segment: derived from the creation parameters, or read (once) from a
 * validated header. The algorithm uses only these private copies. */
struct shm__bcast_geom {
    uint64_t max_payload;
    uint32_t depth;
    uint32_t max_subscribers;
    uint64_t slot_stride;
    uint64_t slots_offset;
    uint64_t capacity;
    uint64_t segment_size;
    uint32_t type_len;
    char type_tag[SHM__BCAST_TAG_MAX + 1]; /* NUL-terminated copy */
};

/* A segment mapped at `base`. */
struct shm__bcast {
    struct shm__bcast_header *hdr;
    struct shm__bcast_sub_entry *subs;
    uint8_t *slots;
    struct shm__bcast_geom g;
    uint64_t depth_mask; /* depth - 1 if depth is a power of two, else 0 */
};

struct shm__bcast_pub {
    uint64_t seq;           /* last published message */
    uint64_t reserve_len;
    int reserving;          /* message seq + 1 is being written */
    int committed;          /* message seq + 1 is complete, not yet published */
    uint64_t committed_len;
    int attach_wake;        /* set by pub_attach: the caller must wake the sleepers once */
    uint32_t hs;            /* its handshake (handshake.h): SHM__HS_MEMBARRIER = no fence */
};

struct shm__bcast_sub {
    uint32_t index;         /* its entry */
    uint64_t next;          /* number of the next message to deliver */
    uint64_t pub_seen;      /* largest pub_seq seen: it never goes back */
    uint64_t delivered;     /* running totals, also mirrored in the entry */
    uint64_t missed;
    uint64_t delivered_bytes;
    uint64_t last_missed;   /* skipped since the last delivery, not yet reported */
    uint64_t last_reported; /* the skip reported with the last message read or peeked */
    int peeking;
    uint64_t peek_seq;
    uint64_t peek_len;
    uint64_t peek_missed;
    const uint8_t *peek_ptr;
    struct shm__bcast_sub_entry *entry;
};

/* Creation parameters to geometry: 0 picks the default. 0 or -EINVAL. `type_tag` may be
 * NULL; else at most SHM__BCAST_TAG_MAX printable ASCII bytes. */
int shm__bcast_geometry(struct shm__bcast_geom *g, uint64_t max_payload, uint32_t depth,
                        uint32_t max_subscribers, const char *type_tag);

/* Fill a fresh, zeroed, not yet visible segment of g->segment_size bytes; magic last. */
void shm__bcast_format(void *base, const struct shm__bcast_geom *g, uint32_t creator_pid,
                       uint64_t created_ns);

/* Check an untrusted header, reading each field once, against a file of `file_size` bytes.
 * 0 and *g; -EAGAIN (file shorter than the header or magic still zero: creator at work),
 * -EPROTO, -EPROTONOSUPPORT, -EPROTOTYPE (not kind 2), -EBADMSG. */
int shm__bcast_validate(const void *base, uint64_t file_size, struct shm__bcast_geom *g);

/* 0 if `want` (NULL or "" = no requirement) matches the segment's tag, else -EMEDIUMTYPE. */
int shm__bcast_check_type(const struct shm__bcast_geom *g, const char *want);

/* Point b at a segment mapped at base, of validated geometry g. */
void shm__bcast_bind(struct shm__bcast *b, void *base, const struct shm__bcast_geom *g);

/* ---- publisher ---------------------------------------------------------------------- */

/* Take over the publisher role (the caller holds lock byte 0): continue after pub_seq,
 * increment the epoch, state = attached; if any subscriber is counted in as waiting, also
 * increment notify_seq and set p->attach_wake: the caller must then FUTEX_WAKE(&hdr->
 * notify_seq, INT_MAX) once (a predecessor may have died between taking a wake and making
 * it, spec §5.7). 0, or -EBADMSG (pub_seq out of range). */
int shm__bcast_pub_attach(struct shm__bcast *b, struct shm__bcast_pub *p);
/* The same with this publisher's handshake (shm__hs_register()): advertised in
 * publisher_handshake before the attach fence; SHM__HS_MEMBARRIER publishes without a fence
 * (spec §5.7). pub_attach is this with SHM__HS_FENCE. */
int shm__bcast_pub_attach_hs(struct shm__bcast *b, struct shm__bcast_pub *p, uint32_t hs);
/* Slot space for the next message: 0 and *ptr (8-byte aligned, max_payload bytes),
 * -EMSGSIZE, -EBUSY (a reservation or an unpublished commit is outstanding), -EOVERFLOW
 * (message number 2^63 - 2 reached). The oldest message is overwritten from here on. */
int shm__bcast_reserve(struct shm__bcast *b, struct shm__bcast_pub *p, uint64_t len,
                       void **ptr);
/* Complete the reserved message with its final length (<= reserved). 0 or -EINVAL. */
int shm__bcast_commit(struct shm__bcast *b, struct shm__bcast_pub *p, uint64_t len);
/* Drop the reservation (the slot stays marked as being written). 0 or -EINVAL. */
int shm__bcast_abort(struct shm__bcast_pub *p);
/* Publish the committed message. Returns 1 if a sleeper registered since the last wake:
 * the publisher has taken the owed wake (cleared bit 0 of waiting), notify_seq has been
 * incremented, and the caller must FUTEX_WAKE(&hdr->notify_seq, INT_MAX). Else 0. */
int shm__bcast_publish(struct shm__bcast *b, struct shm__bcast_pub *p);
/* reserve + copy + commit + publish. Returns 0/1 as publish, or reserve's errors. */
int shm__bcast_write(struct shm__bcast *b, struct shm__bcast_pub *p, const void *data,
                     uint64_t len);
/* End-of-stream: abort any reservation, state = closed. Returns 1 if the caller must wake
 * the sleepers (as publish). */
int shm__bcast_pub_close(struct shm__bcast *b, struct shm__bcast_pub *p);

/* ---- subscriber --------------------------------------------------------------------- */

/* Join through entry `index`, whose lock the caller holds. Reclaims the entry first if its
 * previous owner died attached (returns 1 then, else 0). Starts at the latest message
 * (the first message if none was published yet). -EINVAL if index is out of range. */
int shm__bcast_sub_join(struct shm__bcast *b, struct shm__bcast_sub *s, uint32_t index,
                        uint32_t pid);
/* Reclaim entry `index` of a dead owner (the caller holds its lock and found it
 * attached): undo its count in waiting and its attached count. 1 if it was attached,
 * else 0. */
int shm__bcast_reclaim(struct shm__bcast *b, uint32_t index);
/* Right after join: start at the oldest message still held instead of the newest. */
void shm__bcast_sub_rewind(struct shm__bcast *b, struct shm__bcast_sub *s);
/* Leave: state = left, uncount. The caller then releases the entry's lock. */
void shm__bcast_sub_leave(struct shm__bcast *b, struct shm__bcast_sub *s);

/* The next message, copied into buf (cap bytes). 0 with *len and *missed (messages skipped
 * just before it); -EAGAIN (none yet, or overwritten SHM__BCAST_MAX_TRIES times during
 * the copy); -EMSGSIZE (*len = size needed; the message stays next); -EBUSY (peeking);
 * -EBADMSG. */
int shm__bcast_next(struct shm__bcast *b, struct shm__bcast_sub *s, void *buf, uint64_t cap,
                    uint64_t *len, uint64_t *missed);
/* The newest message. 0 with *len, *is_new (not delivered to this subscriber before) and
 * *missed (skipped to reach it; 0 when not new); -EAGAIN (nothing published yet, or
 * overwritten too often); -EMSGSIZE; -EBUSY; -EBADMSG. */
int shm__bcast_latest(struct shm__bcast *b, struct shm__bcast_sub *s, void *buf, uint64_t cap,
                      uint64_t *len, int *is_new, uint64_t *missed);
/* Zero-copy: the next (latest = 0) or the newest (latest = 1) message in place. 0 with
 * *ptr (8-byte aligned), *len, *missed, and *is_new if not NULL; errors as next/latest.
 * Peeking again before release returns the same view and the same *missed and *is_new
 * (the skipped messages are counted once, in the running total). */
int shm__bcast_peek(struct shm__bcast *b, struct shm__bcast_sub *s, int latest,
                    const void **ptr, uint64_t *len, uint64_t *missed, int *is_new);
/* End the view: 0 if the message was intact for the whole time it was held (delivered),
 * -ESTALE if the publisher began overwriting it (it counts as missed), -EINVAL if no
 * view is held. */
int shm__bcast_release(struct shm__bcast *b, struct shm__bcast_sub *s);

/* Waiting (spec §5.7). Before EVERY sleep (also after a timeout, a spurious or an earlier
 * wake, EINTR): returns the futex value to wait on, counts the subscriber in and marks a
 * wake as owed. The caller must then re-try the read and check the publisher's state, and
 * only then FUTEX_WAIT(&hdr->notify_seq, seen); then call wait_done. */
uint32_t shm__bcast_wait_prepare(struct shm__bcast *b, struct shm__bcast_sub *s);
void shm__bcast_wait_done(struct shm__bcast *b, struct shm__bcast_sub *s);
/* The wake chain (spec §5.7 S5, P5): a sleeper that loaded `seen` sleeps as a waiter of the
 * bits shm__bcast_chain_bits(seen) (FUTEX_WAIT_BITSET); the publisher wakes at most
 * SHM__BCAST_CHAIN_ROOT of them with the bits of the value its P4 replaced
 * (shm__bcast_pub_wake_bits), and every sleeper woken by a wake call wakes at most
 * SHM__BCAST_CHAIN_FANOUT more with its own bits before it does anything else. */
#define SHM__BCAST_CHAIN_ROOT 1
#define SHM__BCAST_CHAIN_FANOUT 2
uint32_t shm__bcast_chain_bits(uint32_t seen);
uint32_t shm__bcast_pub_wake_bits(const struct shm__bcast *b);
/* publisher_state with acquire (0 none yet, 1 attached, 2 closed). */
uint32_t shm__bcast_publisher_state(const struct shm__bcast *b);
/* Messages published and not yet delivered to or skipped by this subscriber. */
uint64_t shm__bcast_lag(const struct shm__bcast *b, const struct shm__bcast_sub *s);

/* Test-only: called between a read's copy and its re-check of the stamp (NULL in
 * production), so a test can overwrite the slot at exactly that moment. */
extern void (*shm__bcast_hook_after_copy)(void *arg);
/* Test-only (NULL in production): called by a publisher after its store and before the
 * fence and the load of `waiting` (§5.7 between P1 and P2), and by a sleeper after its
 * registration (between S2 and S3), so a test can stretch both windows and make a wake
 * that takes a registration meant for an earlier message land at the worst moment. */
extern void (*shm__bcast_hook_before_wake_check)(void *arg);
extern void (*shm__bcast_hook_after_register)(void *arg);
extern void *shm__bcast_hook_arg;
/* 1: a publisher registers for membarrier and publishes without a fence (spec §5.7's
 * membarrier handshake). 0 (the default): it advertises 0 and fences every publish. The
 * handshake is off by default because on the machines measured (2-core AMD EPYC VM) the fence
 * cost < 0.5 ns per publish while every subscriber sleep then cost a membarrier system call
 * and an IPI on the publisher's CPU (bench/README.md, "Broadcast channels"). Tests and
 * benchmarks turn it on. */
extern int shm__bcast_hook_membarrier_publisher;

#endif
