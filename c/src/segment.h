/* The segment lifecycle shared by every kind (spec/README.md §5.1-5.3, 5.7-5.9): finding or
 * creating the file, the owner and mode check, the attach lock and its restart bound, the
 * header read with pread and its validation (one identity-line check for all kinds), the
 * sparse-file refusal, the bounded wait for a creator, mapping, the peer check with the
 * two-look rule, and the close/unlink rule. Each kind's algorithm (ring.c, broadcast.c)
 * works over the plain buffer this maps; the entry points (channel.c, broadcast_api.c)
 * stay thin. */
#ifndef SHM_CHANNEL_SEGMENT_H
#define SHM_CHANNEL_SEGMENT_H

#include <stdint.h>

#include "broadcast.h"
#include "layout.h"
#include "service.h"
#include "shm_channel.h"

/* One open segment file and its mapping. */
struct shm__segment {
    int fd;
    int dirfd;
    void *base;
    uint64_t map_len;
    int writable; /* opened and mapped read-write (every role but the observer) */
    char name[SHM_CHANNEL_NAME_MAX + 1];
};

/* What a validated header says (read once, kept privately). */
struct shm__seg_info {
    uint32_t kind;
    uint64_t segment_size;
    struct shm__bcast_geom bcast; /* kind 2 only */
    struct shm__svc_geom svc;     /* kind 4 only */
};

/* How a new segment is made, when the open may create one. */
struct shm__seg_create {
    uint64_t size;
    void (*init)(void *base, void *arg);
    void *arg;
    unsigned locks; /* lock bytes taken before the name is linked (os.h) */
};

/* The identity line every kind shares (spec/README.md §3.1, §5.2 step 5): checked on a
 * private copy, each field read once. want_kind 0 accepts any kind this library knows.
 * 0, -EAGAIN (shorter than a header, or the magic still zero: the creator is at work),
 * -EPROTO, -EPROTONOSUPPORT, -EPROTOTYPE. */
int shm__identity_check(const void *hdr, uint64_t file_size, uint32_t want_kind);

/* Open `s->name` in `s->dirfd` (set by the caller), or create it with `mk` (NULL: never),
 * and, for a writable handle, take the shared attach lock, starting again while an
 * unlinker is at work. 0 and s->fd (*created = 1 if this call made the file), or -errno. */
int shm__seg_attach(struct shm__segment *s, uint32_t flags, uint32_t mode,
                    const struct shm__seg_create *mk, int *created);

/* Read the header with pread (never mapped) and validate it for want_kind (0: any).
 * While the creator is at work wait up to 1 s if `wait`, else -EAGAIN; then refuse a
 * file whose pages are not all allocated (-EBADMSG). 0 and *info, or -errno. */
int shm__seg_validate(int fd, int wait, uint32_t want_kind, struct shm__seg_info *info);

/* Map the first `len` bytes (read-write if s->writable). 0 or -errno. */
int shm__seg_map(struct shm__segment *s, uint64_t len);

/* End of a handle's attachment (spec §5.9): drop the shared attach lock, try for it
 * exclusively, and if this was the last handle and finished(arg) says the channel is
 * done, unlink its name. For writable handles; an observer holds no attach lock. */
void shm__seg_end(struct shm__segment *s, int (*finished)(void *arg), void *arg);

/* Join one of n slots whose liveness is a lock byte each (lock_base + i: broadcast
 * subscribers, service clients): take the first free lock, trying from `start` (a value
 * that spreads concurrent joiners), and let claim(arg, i) record the slot in the shared
 * bytes. A claim that fails (< 0: the slot's bytes are corrupt) drops the lock: -EBADMSG.
 * 0 and the slot held, -EUSERS (every lock is held by a live process), or -errno. */
int shm__seg_take_slot(struct shm__segment *s, int lock_base, uint32_t n, uint32_t start,
                       int (*claim)(void *arg, uint32_t i), void *arg);

/* After the role ended: keep every address valid, but map the file privately
 * (copy-on-write) over the same range, so stale views never reach the segment again. */
void shm__seg_privatise(struct shm__segment *s);

/* Unmap and close; the structure may then be freed. */
void shm__seg_release(struct shm__segment *s);

/* A handle's view of its peer's liveness (spec §5.7). */
struct shm__peer_check {
    uint64_t next_check_ns;
    int dead; /* the last check found the peer's lock free */
};

/* The peer whose state/epoch words are given and whose role lock is `lock_byte`: -EAGAIN
 * while it may still act (or no verdict), -EPIPE if it closed, -EOWNERDEAD if it died.
 * The two-look rule: a free lock is death only if a second look still sees the same
 * attach in state 1. The lock check is a system call, so unless `force` it runs at most
 * every 10 ms, except a handle's first, and every time once the peer was found dead. */
int shm__peer_status(int fd, const uint32_t *statep, const uint32_t *epochp, int lock_byte,
                     struct shm__peer_check *pc, int force);

#endif
