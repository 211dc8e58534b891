/* The segment lifecycle shared by every kind (segment.h). */
#define _GNU_SOURCE
#include "segment.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atomics.h"
#include "os.h"
#include "ring.h"

/* A non-blocking call that finds nothing to do checks liveness at most this often. */
#define LIVENESS_POLL_NS 10000000ull
/* How long an opener waits for another implementation to finish initialising a segment. */
#define OPEN_WAIT_NS 1000000000ull
/* How often an opener starts again when the name keeps being unlinked under it. */
#define ATTACH_ATTEMPTS 1000

int shm__identity_check(const void *hdr, uint64_t file_size, uint32_t want_kind)
{
    const struct shm__header *h = hdr;
    static const uint8_t zero[8];
    uint8_t magic[8];
    if (file_size < sizeof(struct shm__header))
        return -EAGAIN;
    for (int i = 0; i < 8; i++)
        magic[i] = shm__load_acquire(&h->magic[i]);
    if (memcmp(magic, zero, 8) == 0)
        return -EAGAIN;
    if (memcmp(magic, SHM__MAGIC, 8) != 0)
        return -EPROTO;
    if (shm__load_relaxed(&h->layout_major) != SHM_CHANNEL_LAYOUT_MAJOR)
        return -EPROTONOSUPPORT;
    uint16_t kind = shm__load_relaxed(&h->kind);
    if (want_kind ? kind != want_kind
                  : kind != SHM_CHANNEL_KIND_STREAM && kind != SHM_CHANNEL_KIND_BROADCAST &&
                        kind != SHM_CHANNEL_KIND_SERVICE)
        return -EPROTOTYPE;
    return 0;
}

int shm__seg_attach(struct shm__segment *s, uint32_t flags, uint32_t mode,
                    const struct shm__seg_create *mk, int *created)
{
    for (int attempt = 0; attempt < ATTACH_ATTEMPTS; attempt++) {
        int fd = -1;
        /* Exclusive creation goes straight to creating: whatever holds the name (a
         * segment, or a squatter: directory, socket, FIFO, symlink, another user's file)
         * is EEXIST. Otherwise open first, and create only on ENOENT. */
        int rc = (flags & SHM_CHANNEL_EXCL) ? -ENOENT
                                            : shm__segment_open(s->dirfd, s->name, s->writable, &fd);
        if (rc == -ENOENT && (flags & SHM_CHANNEL_CREATE) && mk) {
            rc = shm__segment_create(s->dirfd, s->name, mk->size, mode, mk->init, mk->arg,
                                     mk->locks, &fd);
            if (rc == -EEXIST && !(flags & SHM_CHANNEL_EXCL))
                continue; /* someone else created it first: open theirs */
            if (rc == 0) {
                *created = 1;
                s->fd = fd;
            }
            return rc;
        }
        if (rc)
            return rc;
        if (!(flags & SHM_CHANNEL_ALLOW_FOREIGN) && (rc = shm__segment_check_owner(fd, mode))) {
            close(fd);
            return rc;
        }
        if (s->writable) {
            /* The shared attach lock keeps unlinkers away; -EBUSY here means one is at
             * work right now, and the name is about to go: start again. */
            rc = shm__lock_try(fd, SHM__LOCK_ATTACH, 0);
            uint64_t size, nlink = 0;
            if (rc == 0)
                rc = shm__segment_size(fd, &size, &nlink);
            if (rc == -EBUSY || (rc == 0 && nlink == 0)) {
                close(fd);
                usleep(100);
                continue;
            }
            if (rc) {
                close(fd);
                return rc;
            }
        }
        s->fd = fd;
        return 0;
    }
    return -EAGAIN;
}

/* The kind's own checks on a private header copy whose identity line passed. */
static int validate_kind(const struct shm__header *hdr, uint64_t size, struct shm__seg_info *info)
{
    info->kind = shm__load_relaxed(&hdr->kind);
    if (info->kind == SHM_CHANNEL_KIND_BROADCAST) {
        int rc = shm__bcast_validate(hdr, size, &info->bcast);
        if (rc == 0)
            info->segment_size = info->bcast.segment_size;
        return rc;
    }
    if (info->kind == SHM_CHANNEL_KIND_SERVICE) {
        int rc = shm__svc_validate(hdr, size, &info->svc);
        if (rc == 0)
            info->segment_size = info->svc.segment_size;
        return rc;
    }
    return shm__ring_validate(hdr, size, &info->segment_size);
}

int shm__seg_validate(int fd, int wait, uint32_t want_kind, struct shm__seg_info *info)
{
    uint64_t deadline = shm__now_ns() + OPEN_WAIT_NS;
    struct shm__header hdr;
    int rc;
    memset(info, 0, sizeof(*info));
    for (;;) {
        uint64_t size, nlink;
        rc = shm__segment_size(fd, &size, &nlink);
        if (rc)
            return rc;
        rc = -EAGAIN;
        if (size >= SHM_CHANNEL_HEADER_SIZE &&
            (rc = shm__segment_read_header(fd, &hdr, sizeof hdr)) == 0)
            rc = shm__identity_check(&hdr, size, want_kind);
        if (rc == 0) {
            /* The magic is set: read the header again, after it (acquire), so every
             * field the creator wrote before its release of the magic is in the copy. */
            shm__fence_acquire();
            if ((rc = shm__segment_read_header(fd, &hdr, sizeof hdr)) == 0 &&
                (rc = shm__identity_check(&hdr, size, want_kind)) == 0)
                rc = validate_kind(&hdr, size, info);
        }
        if (rc != -EAGAIN)
            break;
        if (!wait)
            return -EAGAIN;
        if (shm__now_ns() >= deadline)
            return -ETIMEDOUT;
        usleep(1000);
    }
    if (rc)
        return rc;
    uint64_t allocated, size;
    if ((rc = shm__segment_allocated(fd, &allocated, &size)) != 0)
        return rc;
    /* A creator allocates every page before it links the file (spec §5.1 step 2). A file
     * with holes would make mapping it allocate (MAP_POPULATE) or fault (SIGBUS, in a full
     * tmpfs) later: refuse it now. */
    if (allocated < size || allocated < info->segment_size)
        return -EBADMSG;
    return 0;
}

int shm__seg_map(struct shm__segment *s, uint64_t len)
{
    s->map_len = len;
    int rc = shm__map(s->fd, len, s->writable, &s->base);
    if (rc)
        s->base = NULL;
    return rc;
}

int shm__seg_take_slot(struct shm__segment *s, int lock_base, uint32_t n, uint32_t start,
                       int (*claim)(void *arg, uint32_t i), void *arg)
{
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)(((uint64_t)start + k) % n);
        int rc = shm__lock_try(s->fd, lock_base + (int)i, 1);
        if (rc == -EBUSY)
            continue;
        if (rc)
            return rc;
        if (claim(arg, i) < 0) {
            shm__lock_drop(s->fd, lock_base + (int)i);
            return -EBADMSG;
        }
        return 0;
    }
    return -EUSERS;
}

void shm__seg_end(struct shm__segment *s, int (*finished)(void *arg), void *arg)
{
    if (!s->writable)
        return;
    /* Drop our shared attach lock, then try for it exclusively: whichever closer comes
     * last gets it, even when two close at once (spec: Unlinking). */
    shm__lock_drop(s->fd, SHM__LOCK_ATTACH);
    if (shm__lock_try(s->fd, SHM__LOCK_ATTACH, 1) == 0) {
        /* No live handle is attached. A finished channel removes its name. */
        if (finished(arg))
            shm__unlink_if_same(s->dirfd, s->name, s->fd);
        shm__lock_drop(s->fd, SHM__LOCK_ATTACH);
    }
}

void shm__seg_privatise(struct shm__segment *s)
{
    /* Reads of stale views see the file's bytes; writes land in private copies. If this
     * fails the shared mapping stays, which is still memory-safe. */
    if (s->base && s->writable) {
        void *p = mmap(s->base, (size_t)s->map_len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_FIXED, s->fd, 0);
        (void)p;
    }
}

void shm__seg_release(struct shm__segment *s)
{
    shm__unmap(s->base, s->map_len);
    s->base = NULL;
    if (s->fd >= 0)
        close(s->fd);
    if (s->dirfd >= 0)
        close(s->dirfd);
    s->fd = s->dirfd = -1;
}

int shm__peer_status(int fd, const uint32_t *statep, const uint32_t *epochp, int lock_byte,
                     struct shm__peer_check *pc, int force)
{
    /* Acquire: pairs with the peer's release of its state, made after its last publish
     * (and after its epoch, so the epoch we read is at least that attach's). */
    uint32_t state = shm__load_acquire(statep);
    uint32_t epoch = shm__load_relaxed(epochp);
    if (state == SHM_CHANNEL_PEER_CLOSED)
        return -EPIPE;
    if (state != SHM_CHANNEL_PEER_ATTACHED)
        return -EAGAIN; /* 0, or a value this version does not know: no verdict */
    uint64_t now = shm__now_ns();
    /* Once the peer was found dead, check every time: a caller polling without blocking
     * must keep seeing -EOWNERDEAD, never "empty for now" (-EAGAIN) in between. */
    if (!force && !pc->dead && now < pc->next_check_ns)
        return -EAGAIN;
    pc->next_check_ns = now + LIVENESS_POLL_NS;
    pc->dead = 0;
    if (shm__lock_held(fd, lock_byte) != 0)
        return -EAGAIN; /* held (or the check failed): alive as far as we know */
    /* The lock is free: the holder we read the state of either died, or closed cleanly
     * after our first look. A closer stores state 2 before it releases its lock, and the
     * kernel orders that release before our lock check, so a second look sees 2, or the
     * state and a different epoch of a newer attach. Only the same attach, still 1,
     * died. */
    shm__fence_seq_cst();
    uint32_t state2 = shm__load_acquire(statep);
    uint32_t epoch2 = shm__load_relaxed(epochp);
    if (state2 == SHM_CHANNEL_PEER_CLOSED)
        return -EPIPE;
    if (state2 != SHM_CHANNEL_PEER_ATTACHED || epoch2 != epoch)
        return -EAGAIN; /* a newer attach: look again later */
    pc->dead = 1;
    return -EOWNERDEAD;
}
