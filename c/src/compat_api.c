/* The compat kind's side of the public entry points (spec/compat.md section 7): opening and
 * creating a segment in seed 002's layout, polling waits with a backoff, the torn-index
 * streak turned into -EBADMSG, the unlinked-name verdict (-EIDRM), and the stream calls on a
 * compat handle. The algorithm is compat.c (over a plain buffer); the file handling that
 * applies (name checks, O_NOFOLLOW, owner and mode check, our own role and attach locks) is
 * segment.c's and os_linux.c's; channel.c dispatches the shared calls here. The layout has
 * no identity line, states, futex words or end-of-stream, so the rest of the lifecycle
 * (header validation, peer check, end-of-stream, unlink on close) does not apply. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "compat.h"
#include "handle.h"
#include "os.h"
#include "segment.h"

/* A waiter looks at the name's link count at most this often (spec/compat.md section 6). */
#define LINK_CHECK_NS 100000000ull
/* How long an opener waits for a creator between its ftruncate and its header stores. */
#define OPEN_WAIT_NS 1000000000ull

_Static_assert(SHM_CHANNEL_COMPAT_POLL_MAX_NS == SHM__COMPAT_SLEEP_MAX_NS,
               "the header documents compat.h's polling bound");
_Static_assert(SHM_CHANNEL_COMPAT_MIN_CAPACITY == SHM__COMPAT_MIN_CAPACITY &&
                   SHM_CHANNEL_COMPAT_MAX_CAPACITY == SHM__COMPAT_MAX_CAPACITY,
               "the header documents compat.h's capacity limits");

static int role_is(const shm_channel_t *ch, uint32_t role)
{
    if (!ch)
        return -EINVAL;
    return ch->role == role ? 0 : -EBADF; /* a detached handle has role 0 */
}

/* A compat name: a channel name (os_linux.c's check) of at most 63 bytes, the peer's limit. */
static int name_check(const char *name, char *out)
{
    int rc = shm__name_check(name, out);
    if (rc == 0 && strlen(out) > SHM_CHANNEL_COMPAT_NAME_MAX)
        rc = -EINVAL;
    return rc;
}

/* ---- opening ---------------------------------------------------------------------- */

static void format_compat(void *base, void *arg)
{
    /* capacity + 16 bytes: shm__compat_format gives it exactly `capacity` (and stores it
     * last, with release). */
    shm__compat_format(base, *(const uint64_t *)arg + SHM__COMPAT_HEADER, 0);
}

/* Read the 16-byte header with pread (never mapped while unvalidated) and check it: 0 and
 * *cap, -EAGAIN (shorter than 16 bytes, or capacity still 0: the creator is at work), or
 * -EBADMSG (capacity not a power of two in range, or the size is not capacity + 16). */
static int check_header(int fd, uint64_t *size, uint32_t *cap)
{
    uint64_t nlink;
    uint8_t hdr[SHM__COMPAT_HEADER];
    int rc = shm__segment_size(fd, size, &nlink);
    if (rc)
        return rc;
    if (*size < SHM__COMPAT_HEADER)
        return -EAGAIN;
    if ((rc = shm__segment_read_header(fd, hdr, sizeof hdr)) != 0)
        return rc;
    struct shm__compat probe;
    if ((rc = shm__compat_bind(&probe, hdr, (size_t)*size)) != 0)
        return rc;
    *cap = probe.capacity;
    return 0;
}

/* Attach the role's algorithm state: its index is read, the peer's is accepted only in
 * range (spec section 4); a peer index out of range on every try for 2 s is -EBADMSG. */
static int attach_role(shm_channel_t *ch)
{
    uint64_t since = 0;
    for (;;) {
        int rc = ch->role == SHM_CHANNEL_PRODUCER
                     ? shm__compat_producer_attach(&ch->cp, &ch->cprod)
                     : shm__compat_consumer_attach(&ch->cp, &ch->ccons);
        if (rc != -EAGAIN)
            return rc;
        if ((rc = shm__compat_streak(1, &since, shm__now_ns())) != 0)
            return rc;
        usleep(1000);
    }
}

static int open_segment(shm_channel_t *ch, uint32_t flags, uint64_t capacity, uint32_t mode,
                        int *created)
{
    int rc;
    if ((ch->seg.dirfd = shm__dir_open()) < 0)
        return ch->seg.dirfd;
    /* The peer producer's way of starting afresh: whatever has the name goes (a consumer
     * attached to it keeps an orphaned mapping). Only when asked. */
    if ((flags & SHM_CHANNEL_COMPAT_REPLACE) && unlinkat(ch->seg.dirfd, ch->seg.name, 0) != 0 &&
        errno != ENOENT)
        return errno == EISDIR || errno == EPERM ? -EACCES : -errno;
    uint64_t cap = capacity ? capacity : SHM_CHANNEL_DEFAULT_CAPACITY;
    struct shm__seg_create mk = {cap + SHM__COMPAT_HEADER, format_compat, &cap,
                                 1u << SHM__LOCK_ATTACH | 1u << SHM__LOCK_PRODUCER};
    if ((rc = shm__seg_attach(&ch->seg, flags, mode, &mk, created)) != 0)
        return rc;
    /* Validate; wait (writable handles, at most 1 s) while the creator is at work. */
    uint64_t deadline = shm__now_ns() + OPEN_WAIT_NS, size;
    uint32_t seg_cap;
    while ((rc = check_header(ch->seg.fd, &size, &seg_cap)) == -EAGAIN) {
        if (!ch->seg.writable)
            return -EAGAIN;
        if (shm__now_ns() >= deadline)
            return -ETIMEDOUT;
        usleep(1000);
    }
    if (rc)
        return rc;
    if (capacity && capacity != seg_cap)
        return -EINVAL;
    /* The peer's producer sizes its segment with ftruncate alone: allocate its holes now,
     * so a full /dev/shm is -ENOSPC here, never SIGBUS later (the contents stay). */
    if (ch->seg.writable && (rc = shm__segment_reserve(ch->seg.fd, size)) != 0)
        return rc;
    if ((rc = shm__seg_map(&ch->seg, size)) != 0)
        return rc;
    /* The capacity is read once more, from the mapping, and must be the one validated;
     * from here on it is never read from the segment again. */
    if ((rc = shm__compat_bind(&ch->cp, ch->seg.base, (size_t)size)) != 0 ||
        ch->cp.capacity != seg_cap)
        return rc ? rc : -EBADMSG;
    if (ch->role == SHM_CHANNEL_OBSERVER)
        return 0;
    /* Our own handles hold one role each (the peer's processes take no locks). */
    int lock = ch->role == SHM_CHANNEL_PRODUCER ? SHM__LOCK_PRODUCER : SHM__LOCK_CONSUMER;
    if ((rc = shm__lock_try(ch->seg.fd, lock, 1)) != 0)
        return rc;
    return attach_role(ch);
}

int shm__cp_open(shm_channel_t **out, const char *name, uint32_t role, uint32_t flags,
                 uint64_t capacity, uint32_t mode)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    const uint32_t known = SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL | SHM_CHANNEL_ALLOW_FOREIGN |
                           SHM_CHANNEL_COMPAT | SHM_CHANNEL_COMPAT_REPLACE;
    if ((flags & ~known) ||
        (role != SHM_CHANNEL_PRODUCER && role != SHM_CHANNEL_CONSUMER &&
         role != SHM_CHANNEL_OBSERVER) ||
        ((flags & SHM_CHANNEL_CREATE) && role != SHM_CHANNEL_PRODUCER) ||
        ((flags & SHM_CHANNEL_EXCL) && !(flags & SHM_CHANNEL_CREATE)) ||
        ((flags & SHM_CHANNEL_COMPAT_REPLACE) && !(flags & SHM_CHANNEL_CREATE)) ||
        (capacity && (capacity < SHM__COMPAT_MIN_CAPACITY ||
                      capacity > SHM__COMPAT_MAX_CAPACITY || (capacity & (capacity - 1)))) ||
        (mode & ~0777u))
        return -EINVAL;
    if (mode == 0)
        mode = 0600;
    shm_channel_t *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    ch->seg.fd = ch->seg.dirfd = -1;
    ch->seg.writable = role != SHM_CHANNEL_OBSERVER;
    ch->role = role;
    ch->kind = SHM_CHANNEL_KIND_COMPAT;
    ch->spin_ns = SHM_CHANNEL_DEFAULT_SPIN_NS;
    int created = 0;
    int rc = name_check(name, ch->seg.name);
    if (rc == 0)
        rc = open_segment(ch, flags, capacity, mode, &created);
    if (rc) {
        if (created)
            shm__unlink_if_same(ch->seg.dirfd, ch->seg.name, ch->seg.fd);
        shm__seg_release(&ch->seg);
        free(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

void shm__cp_end_role(shm_channel_t *ch)
{
    /* Nothing to mark (no end-of-stream) and nothing to unlink: drop our locks. A peeked,
     * unreleased record stays for the next consumer; a reservation is dropped. */
    if (ch->role == SHM_CHANNEL_PRODUCER) {
        if (ch->cprod.reserving)
            shm__compat_abort(&ch->cprod);
        shm__lock_drop(ch->seg.fd, SHM__LOCK_PRODUCER);
    } else if (ch->role == SHM_CHANNEL_CONSUMER) {
        shm__lock_drop(ch->seg.fd, SHM__LOCK_CONSUMER);
    }
    if (ch->seg.writable)
        shm__lock_drop(ch->seg.fd, SHM__LOCK_ATTACH);
}

void shm__cp_fini(shm_channel_t *ch)
{
    shm__compat_producer_fini(&ch->cprod);
    shm__compat_consumer_fini(&ch->ccons);
}

int shm__cp_unlink(const char *name, uint32_t flags)
{
    char clean[SHM_CHANNEL_NAME_MAX + 1];
    int rc = name_check(name, clean);
    if (rc)
        return rc;
    if (flags & ~(uint32_t)(SHM_CHANNEL_FORCE | SHM_CHANNEL_COMPAT))
        return -EINVAL;
    int dirfd = shm__dir_open();
    if (dirfd < 0)
        return dirfd;
    int fd = -1;
    if (!(flags & SHM_CHANNEL_FORCE)) {
        /* Only a compat segment no handle of ours uses (the peer's cannot be seen). */
        rc = shm__segment_open(dirfd, clean, 1, &fd);
        if (rc == 0)
            rc = shm__lock_try(fd, SHM__LOCK_ATTACH, 1);
        uint64_t size;
        uint32_t cap;
        if (rc == 0 && (rc = check_header(fd, &size, &cap)) != 0)
            rc = -EPROTO;
    }
    if (rc == 0 && unlinkat(dirfd, clean, 0) != 0)
        rc = errno == EISDIR ? -EACCES : -errno;
    if (fd >= 0)
        close(fd);
    close(dirfd);
    return rc;
}

/* ---- waiting ---------------------------------------------------------------------- */

/* One try of a call: 0, -EAGAIN (full or empty, incomplete, or the peer's index out of
 * range), or an error. */
struct try_op {
    int (*fn)(shm_channel_t *ch, struct try_op *op);
    const void *src;
    void *dst;
    const void *view;
    uint32_t len, cap;
};

static uint32_t bad_tries(const shm_channel_t *ch)
{
    return ch->role == SHM_CHANNEL_PRODUCER ? ch->cprod.bad_tries : ch->ccons.bad_tries;
}

static int attempt(shm_channel_t *ch, struct try_op *op)
{
    int rc = op->fn(ch, op);
    if (bad_tries(ch) == 0)
        ch->cpx.bad_since = 0; /* an accepted load (or none needed) ends a streak */
    return rc;
}

/* 1 once the segment's name is found unlinked (checked at most every LINK_CHECK_NS). */
static int name_gone(shm_channel_t *ch, uint64_t now)
{
    if (!ch->cpx.gone && now >= ch->cpx.next_link_ns) {
        ch->cpx.next_link_ns = now + LINK_CHECK_NS;
        uint64_t size, nlink;
        if (shm__segment_size(ch->seg.fd, &size, &nlink) == 0 && nlink == 0)
            ch->cpx.gone = 1;
    }
    return ch->cpx.gone;
}

/* After a try made no progress: -EBADMSG once the peer's index was out of range on every
 * try for SHM__COMPAT_BAD_NS; -EIDRM if the name was unlinked and one more try (a consumer
 * drains what is left) makes no progress either; else -EAGAIN. */
static int verdict(shm_channel_t *ch, struct try_op *op)
{
    uint64_t now = shm__now_ns();
    int rc = shm__compat_streak(bad_tries(ch), &ch->cpx.bad_since, now);
    if (rc)
        return rc;
    if (!name_gone(ch, now))
        return -EAGAIN;
    rc = attempt(ch, op);
    return rc == -EAGAIN ? -EIDRM : rc;
}

/* Try until ready: spin for the handle's spin time, then sleep between polls, doubling
 * from SHM__COMPAT_SLEEP_MIN_NS to SHM__COMPAT_SLEEP_MAX_NS (the last sleep cut to the
 * time left). No futex word exists in the layout, so nobody wakes us. */
static int wait_ready(shm_channel_t *ch, struct try_op *op, int64_t timeout_ns)
{
    int rc = attempt(ch, op);
    if (rc != -EAGAIN)
        return rc;
    ch->cpx.waits++;
    if ((rc = verdict(ch, op)) != -EAGAIN || timeout_ns == 0)
        return rc;
    uint64_t start = shm__now_ns(), state = 0;
    unsigned spins = 0;
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
    for (;;) {
        uint64_t now = shm__now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t ns = shm__compat_backoff(&state, now - start, ch->spin_ns);
        if (ns == 0) {
            /* Spin; yield now and then: on a shared core the peer may be the one waiting
             * to run (it has no futex to wake us with either). */
            for (int i = 0; i < 32; i++)
                shm__cpu_relax();
            if ((++spins & 7) == 0)
                sched_yield();
        } else {
            if (ns > deadline - now)
                ns = deadline - now;
            ch->cpx.sleeps++;
            struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
            if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
                return -EINTR;
        }
        if ((rc = attempt(ch, op)) != -EAGAIN)
            return rc;
        if ((rc = verdict(ch, op)) != -EAGAIN)
            return rc;
    }
}

static int try_write(shm_channel_t *ch, struct try_op *op)
{
    return shm__compat_write(&ch->cp, &ch->cprod, op->src, op->len);
}

static int try_reserve(shm_channel_t *ch, struct try_op *op)
{
    return shm__compat_reserve(&ch->cp, &ch->cprod, op->len, &op->dst);
}

static int try_peek(shm_channel_t *ch, struct try_op *op)
{
    return shm__compat_peek(&ch->cp, &ch->ccons, &op->view, &op->len);
}

static int try_read(shm_channel_t *ch, struct try_op *op)
{
    return shm__compat_read(&ch->cp, &ch->ccons, op->dst, op->cap, &op->len);
}

/* ---- producer --------------------------------------------------------------------- */

/* The checks every producer call makes on a message length. */
static int check_len(const shm_channel_t *ch, uint64_t len)
{
    if (len == 0)
        return -EINVAL; /* the peer's consumers stall forever on a 0-length record */
    return len > ch->cp.capacity - SHM__COMPAT_PREFIX ? -EMSGSIZE : 0;
}

static void wrote(shm_channel_t *ch, uint64_t len)
{
    ch->cpx.msgs++;
    ch->cpx.bytes += len;
}

int shm__cp_write(shm_channel_t *ch, const void *data, uint64_t len, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_PRODUCER);
    if (rc || (rc = check_len(ch, len)) != 0)
        return rc;
    if (ch->cprod.reserving)
        return -EBUSY;
    struct try_op op = {.fn = try_write, .src = data, .len = (uint32_t)len};
    if ((rc = wait_ready(ch, &op, timeout_ns)) == 0)
        wrote(ch, len);
    return rc;
}

int shm__cp_write_batch(shm_channel_t *ch, const void *data, const uint64_t *lens,
                        uint32_t count, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_PRODUCER);
    if (rc)
        return rc;
    if ((rc = shm__batch_write_args(lens, count)) != 0)
        return rc < 0 ? rc : 0;
    if (ch->cprod.reserving)
        return -EBUSY;
    const uint8_t *src = data;
    uint32_t n = 0;
    for (; n < count; n++) {
        if ((!src && lens[n]) || (rc = check_len(ch, lens[n])) != 0) {
            rc = rc ? rc : -EINVAL;
            break;
        }
        struct try_op op = {.fn = try_write, .src = src, .len = (uint32_t)lens[n]};
        /* The first waits; the others go in while there is room. */
        if ((rc = n == 0 ? wait_ready(ch, &op, timeout_ns) : attempt(ch, &op)) != 0)
            break;
        wrote(ch, lens[n]);
        src += lens[n];
    }
    return n ? (int)n : rc;
}

int shm__cp_reserve(shm_channel_t *ch, uint64_t len, void **ptr, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_PRODUCER);
    if (rc)
        return rc;
    if (!ptr)
        return -EINVAL;
    if ((rc = check_len(ch, len)) != 0)
        return rc;
    if (ch->cprod.reserving)
        return -EBUSY;
    struct try_op op = {.fn = try_reserve, .len = (uint32_t)len};
    if ((rc = wait_ready(ch, &op, timeout_ns)) == 0)
        *ptr = op.dst;
    return rc;
}

int shm__cp_commit(shm_channel_t *ch, uint64_t len)
{
    int rc = role_is(ch, SHM_CHANNEL_PRODUCER);
    if (rc)
        return rc;
    if (len > UINT32_MAX)
        return -EINVAL;
    if ((rc = shm__compat_commit(&ch->cp, &ch->cprod, (uint32_t)len)) == 0)
        wrote(ch, len);
    return rc;
}

int shm__cp_abort(shm_channel_t *ch)
{
    int rc = role_is(ch, SHM_CHANNEL_PRODUCER);
    return rc ? rc : shm__compat_abort(&ch->cprod);
}

/* ---- consumer --------------------------------------------------------------------- */

int shm__cp_peek(shm_channel_t *ch, const void **ptr, uint64_t *len, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    if (!ptr || !len)
        return -EINVAL;
    struct try_op op = {.fn = try_peek};
    if ((rc = wait_ready(ch, &op, timeout_ns)) != 0)
        return rc;
    *ptr = op.view;
    *len = op.len;
    return 0;
}

int shm__cp_release(shm_channel_t *ch)
{
    int rc = role_is(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    uint32_t n = ch->ccons.peek_len;
    if ((rc = shm__compat_release(&ch->cp, &ch->ccons)) == 0)
        wrote(ch, n);
    return rc;
}

int shm__cp_read(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    struct try_op op = {.fn = try_read, .dst = buf,
                        .cap = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap};
    rc = wait_ready(ch, &op, timeout_ns);
    if (rc == 0 || rc == -EMSGSIZE)
        *len = op.len;
    if (rc == 0)
        wrote(ch, op.len);
    return rc;
}

int shm__cp_read_batch(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *lens,
                       uint32_t max_count, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    if ((rc = shm__batch_read_args(buf, cap, lens, max_count)) != 0)
        return rc < 0 ? rc : 0;
    struct try_op op = {.fn = try_peek};
    if ((rc = wait_ready(ch, &op, timeout_ns)) != 0)
        return rc;
    if (op.len > cap) {
        lens[0] = op.len;
        return -EMSGSIZE; /* stays peeked: the next call returns it */
    }
    uint8_t *dst = buf;
    uint64_t used = 0;
    uint32_t n = 0;
    for (;;) {
        if (op.len)
            memcpy(dst + used, op.view, op.len);
        used += op.len;
        lens[n++] = op.len;
        shm__cp_release(ch);
        if (n == max_count || attempt(ch, &op) != 0)
            break; /* empty, or corrupt: the next call reports it */
        if (op.len > cap - used)
            break; /* stays peeked for the next call */
    }
    return (int)n;
}

/* ---- inspection ------------------------------------------------------------------- */

/* Head and tail as this handle knows them: its own index, and the peer's freshly loaded if
 * in range (a torn load is not shown), else the last one accepted. */
static void positions(shm_channel_t *ch, uint32_t *head, uint32_t *tail)
{
    uint32_t h = shm__load_acquire(ch->cp.head), t = shm__load_acquire(ch->cp.tail);
    if (ch->role == SHM_CHANNEL_PRODUCER) {
        *head = ch->cprod.head;
        *tail = *head - t <= ch->cp.capacity ? t : ch->cprod.tail_cache;
    } else if (ch->role == SHM_CHANNEL_CONSUMER) {
        *tail = ch->ccons.tail;
        *head = h - *tail <= ch->cp.capacity ? h : ch->ccons.head_cache;
    } else {
        *head = h;
        *tail = t;
    }
}

void shm__cp_stat(shm_channel_t *ch, shm_channel_stat_t *st)
{
    uint32_t head, tail;
    positions(ch, &head, &tail);
    int producer = ch->role == SHM_CHANNEL_PRODUCER;
    st->kind = SHM_CHANNEL_KIND_COMPAT;
    st->capacity = ch->cp.capacity;
    st->max_payload = ch->cp.capacity - SHM__COMPAT_PREFIX;
    st->write_pos = head;
    st->read_pos = tail;
    st->used = (uint32_t)(head - tail);
    *(producer ? &st->msgs_written : &st->msgs_read) = ch->cpx.msgs;
    *(producer ? &st->bytes_written : &st->bytes_read) = ch->cpx.bytes;
    *(producer ? &st->full_events : &st->empty_events) = ch->cpx.waits;
    *(producer ? &st->producer_sleeps : &st->consumer_sleeps) = ch->cpx.sleeps;
    st->producer_alive = producer;
    st->consumer_alive = ch->role == SHM_CHANNEL_CONSUMER;
    st->in_use = ch->role != SHM_CHANNEL_OBSERVER;
}

int shm_channel_compat_stat(shm_channel_t *ch, shm_channel_compat_stat_t *st)
{
    if (!ch || !st)
        return -EINVAL;
    if (ch->kind != SHM_CHANNEL_KIND_COMPAT)
        return -EPROTOTYPE;
    if (ch->detached)
        return -EBADF;
    memset(st, 0, sizeof(*st));
    uint32_t head, tail;
    positions(ch, &head, &tail);
    st->capacity = ch->cp.capacity;
    st->head = head;
    st->tail = tail;
    st->used = head - tail;
    st->torn_loads = ch->cprod.rereads + ch->ccons.rereads;
    st->msgs = ch->cpx.msgs;
    st->bytes = ch->cpx.bytes;
    st->waits = ch->cpx.waits;
    st->sleeps = ch->cpx.sleeps;
    st->segment_gone = ch->cpx.gone;
    return 0;
}
