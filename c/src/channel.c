/* Public entry points: open/close, the waiting protocol, and the calls of both roles. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomics.h"
#include "handshake.h"
#include "hooks.h"
#include "layout.h"
#include "os.h"
#include "handle.h"
#include "ring.h"
#include "segment.h"
#include "shm_channel.h"
#include "wait.h"

/* A blocked call re-checks its peer's liveness at least this often (a test may lengthen
 * it: hooks.h). */
uint64_t shm__hook_liveness_slice_ns = 50000000ull;

/* What one wait is for: room for `len` bytes (producer) or the next message (consumer). */
struct op {
    uint64_t len;
    void *ptr;
};

/* ---- opening ---------------------------------------------------------------------- */

struct format_args {
    uint64_t capacity;
};

static void format_segment(void *base, void *arg)
{
    const struct format_args *a = arg;
    shm__ring_format(base, a->capacity, (uint32_t)getpid(), shm__realtime_ns());
}

static void format_broadcast(void *base, void *arg)
{
    shm__bcast_format(base, arg, (uint32_t)getpid(), shm__realtime_ns());
}

static void format_service(void *base, void *arg)
{
    shm__svc_format(base, arg, (uint32_t)getpid(), shm__realtime_ns());
}

static int check_open_args(uint32_t role, uint32_t flags, uint64_t capacity, uint32_t mode)
{
    if (role < SHM_CHANNEL_PRODUCER || role > SHM_CHANNEL_CLIENT)
        return -EINVAL;
    if (flags & ~(uint32_t)(SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL | SHM_CHANNEL_ALLOW_FOREIGN |
                            SHM_CHANNEL_FROM_OLDEST))
        return -EINVAL;
    if ((flags & SHM_CHANNEL_FROM_OLDEST) && role != SHM_CHANNEL_SUBSCRIBER)
        return -EINVAL;
    if ((flags & SHM_CHANNEL_EXCL) && !(flags & SHM_CHANNEL_CREATE))
        return -EINVAL;
    if (role == SHM_CHANNEL_OBSERVER && (flags & SHM_CHANNEL_CREATE))
        return -EINVAL;
    if (capacity && (capacity < SHM_CHANNEL_MIN_CAPACITY || capacity > SHM_CHANNEL_MAX_CAPACITY ||
                     (capacity & (capacity - 1))))
        return -EINVAL;
    if (mode & ~0777u)
        return -EINVAL;
    return 0;
}

static void wake(uint32_t *seq, uint64_t *counter);

static int claim_role(shm_channel_t *ch)
{
    struct shm__header *h = ch->ring.hdr;
    int rc;
    if (ch->role == SHM_CHANNEL_PRODUCER) {
        if ((rc = shm__lock_try(ch->seg.fd, SHM__LOCK_PRODUCER, 1)) != 0)
            return rc;
        if ((rc = shm__ring_producer_attach(&ch->ring, &ch->prod)) != 0)
            return rc;
        shm__store_relaxed(&h->producer_waiting, 0); /* a dead predecessor's flag */
        ch->prod.hs = shm__hs_register();
        shm__hs_advertise(&h->producer_handshake, ch->prod.hs);
        shm__store_relaxed(&h->producer_epoch, shm__load_relaxed(&h->producer_epoch) + 1);
        shm__store_release(&h->producer_state, SHM_CHANNEL_PEER_ATTACHED);
        /* Our handshake word before our first publish's load of consumer_waiting (§5.10). */
        shm__fence_seq_cst();
        /* A predecessor may have died between its increment of write_seq and its FUTEX_WAKE:
         * a consumer asleep on the old value, whose flag now names a value other than the
         * word's, would get no wake from our publishes (§5.11 rule 3). Such a consumer's flag
         * is set: wake once if it is (a wake call, counted), never while nobody sleeps. */
        if (shm__load_relaxed(&h->consumer_waiting) != 0)
            wake(&h->write_seq, &h->producer_wakes);
    } else if (ch->role == SHM_CHANNEL_CONSUMER) {
        if ((rc = shm__lock_try(ch->seg.fd, SHM__LOCK_CONSUMER, 1)) != 0)
            return rc;
        if ((rc = shm__ring_consumer_attach(&ch->ring, &ch->cons)) != 0)
            return rc;
        shm__store_relaxed(&h->consumer_waiting, 0);
        ch->cons.hs = shm__hs_register();
        shm__hs_advertise(&h->consumer_handshake, ch->cons.hs);
        shm__store_relaxed(&h->consumer_epoch, shm__load_relaxed(&h->consumer_epoch) + 1);
        shm__store_release(&h->consumer_state, SHM_CHANNEL_PEER_ATTACHED);
        shm__fence_seq_cst();
        if (shm__load_relaxed(&h->producer_waiting) != 0) /* as the producer's (rule 3) */
            wake(&h->read_seq, &h->consumer_wakes);
    }
    return 0;
}

/* The stream side of an open whose segment was validated: capacity, mapping, role. */
static int open_stream(shm_channel_t *ch, uint64_t capacity, const struct shm__seg_info *info)
{
    int rc;
    uint64_t cap = info->segment_size - SHM_CHANNEL_HEADER_SIZE;
    /* A capacity mismatch is refused before mapping (and populating) anything. */
    if (capacity && cap != capacity)
        return -EINVAL;
    if ((rc = shm__seg_map(&ch->seg, ch->seg.writable ? info->segment_size
                                                      : SHM_CHANNEL_HEADER_SIZE)) != 0)
        return rc;
    shm__ring_bind(&ch->ring, ch->seg.base, cap);
    return claim_role(ch);
}

static int open_handle(shm_channel_t **out, const char *name, uint32_t role, uint32_t flags,
                       uint64_t capacity, const shm_channel_broadcast_config_t *cfg,
                       const shm_channel_service_config_t *scfg, uint32_t mode,
                       uint32_t want_kind)
{
    int created = 0;
    if (!out)
        return -EINVAL;
    *out = NULL;
    int rc = check_open_args(role, flags, capacity, mode);
    if (rc)
        return rc;
    int broadcast = role == SHM_CHANNEL_PUBLISHER || role == SHM_CHANNEL_SUBSCRIBER;
    int service = role == SHM_CHANNEL_SERVER || role == SHM_CHANNEL_CLIENT;
    if ((broadcast || service) && capacity)
        return -EINVAL; /* their segment's size comes from the configuration */
    if (mode == 0)
        mode = 0600;
    struct shm__bcast_geom geom;
    if (broadcast && (rc = shm__bc_config(cfg, &geom)) != 0)
        return rc;
    struct shm__svc_geom sgeom;
    if (service && (rc = shm__sv_config(scfg, &sgeom)) != 0)
        return rc;
    shm_channel_t *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    ch->seg.fd = ch->seg.dirfd = -1;
    ch->seg.writable = role != SHM_CHANNEL_OBSERVER;
    ch->role = role;
    ch->spin_ns = SHM_CHANNEL_DEFAULT_SPIN_NS;
    if ((rc = shm__name_check(name, ch->seg.name)) != 0)
        goto fail;
    if ((ch->seg.dirfd = shm__dir_open()) < 0) {
        rc = ch->seg.dirfd;
        goto fail;
    }
    struct format_args fa = {capacity ? capacity : SHM_CHANNEL_DEFAULT_CAPACITY};
    struct shm__seg_create mk = {SHM_CHANNEL_HEADER_SIZE + fa.capacity, format_segment, &fa,
                                 1u << SHM__LOCK_ATTACH};
    if (broadcast)
        mk = (struct shm__seg_create){geom.segment_size, format_broadcast, &geom,
                                      1u << SHM__LOCK_ATTACH};
    if (service)
        mk = (struct shm__seg_create){sgeom.segment_size, format_service, &sgeom,
                                      1u << SHM__LOCK_ATTACH};
    if (role == SHM_CHANNEL_PRODUCER)
        mk.locks |= 1u << SHM__LOCK_PRODUCER;
    else if (role == SHM_CHANNEL_CONSUMER)
        mk.locks |= 1u << SHM__LOCK_CONSUMER;
    else if (role == SHM_CHANNEL_PUBLISHER)
        mk.locks |= 1u << SHM__BCAST_LOCK_PUBLISHER;
    else if (role == SHM_CHANNEL_SERVER)
        mk.locks |= 1u << SHM__SVC_LOCK_SERVER;
    if ((rc = shm__seg_attach(&ch->seg, flags, mode, &mk, &created)) != 0)
        goto fail;
    /* Observers (ls, stat, monitoring) never wait, and see every kind: a file that is not
     * (yet) a complete segment is -EAGAIN at once. */
    struct shm__seg_info info;
    if ((rc = shm__seg_validate(ch->seg.fd, role != SHM_CHANNEL_OBSERVER, want_kind, &info)) != 0)
        goto fail;
    ch->kind = info.kind;
    rc = ch->kind == SHM_CHANNEL_KIND_BROADCAST ? shm__bc_attach(ch, flags, cfg, &info)
         : ch->kind == SHM_CHANNEL_KIND_SERVICE ? shm__sv_attach(ch, scfg, &info)
                                                : open_stream(ch, capacity, &info);
    if (rc)
        goto fail;
    *out = ch;
    return 0;
fail:
    if (created)
        shm__unlink_if_same(ch->seg.dirfd, ch->seg.name, ch->seg.fd);
    shm__seg_release(&ch->seg);
    shm__sv_free(ch);
    free(ch);
    return rc;
}

int shm_channel_open(shm_channel_t **out, const char *name, uint32_t role, uint32_t flags,
                     uint64_t capacity, uint32_t mode)
{
    if (flags & SHM_CHANNEL_COMPAT) /* only when asked: never a fallback (spec/compat.md) */
        return shm__cp_open(out, name, role, flags, capacity, mode);
    uint32_t want_kind = role == SHM_CHANNEL_OBSERVER ? 0 /* any kind: ls, stat, monitoring */
                         : role >= SHM_CHANNEL_SERVER    ? SHM_CHANNEL_KIND_SERVICE
                         : role >= SHM_CHANNEL_PUBLISHER ? SHM_CHANNEL_KIND_BROADCAST
                                                         : SHM_CHANNEL_KIND_STREAM;
    return open_handle(out, name, role, flags, capacity, NULL, NULL, mode, want_kind);
}

int shm_channel_open_broadcast(shm_channel_t **out, const char *name, uint32_t role,
                               uint32_t flags, const shm_channel_broadcast_config_t *cfg,
                               uint32_t mode)
{
    if (role != SHM_CHANNEL_PUBLISHER && role != SHM_CHANNEL_SUBSCRIBER &&
        role != SHM_CHANNEL_OBSERVER)
        return -EINVAL;
    return open_handle(out, name, role, flags, 0, cfg, NULL, mode, SHM_CHANNEL_KIND_BROADCAST);
}

int shm_channel_open_service(shm_channel_t **out, const char *name, uint32_t role,
                             uint32_t flags, const shm_channel_service_config_t *cfg,
                             uint32_t mode)
{
    if (role != SHM_CHANNEL_SERVER && role != SHM_CHANNEL_CLIENT && role != SHM_CHANNEL_OBSERVER)
        return -EINVAL;
    return open_handle(out, name, role, flags, 0, NULL, cfg, mode, SHM_CHANNEL_KIND_SERVICE);
}

/* A service handle (kind 4) takes the calls every kind shares in service_api.c. */
static int is_service(const shm_channel_t *ch)
{
    return ch && !ch->detached && ch->kind == SHM_CHANNEL_KIND_SERVICE &&
           ch->role != SHM_CHANNEL_OBSERVER;
}

/* ---- waking and waiting ----------------------------------------------------------- */

static void __attribute__((noinline, cold)) wake(uint32_t *seq, uint64_t *counter)
{
    shm__fetch_add_release(seq, 1);
    shm__futex_wake(seq);
    if (counter)
        shm__counter_add(counter, 1);
}

/* After a publish of the producer (consumer): the wake it found due, if any. */
static inline void producer_wake_if(shm_channel_t *ch, int due)
{
    struct shm__header *h = ch->ring.hdr;
    if (due)
        wake(&h->write_seq, &h->producer_wakes);
}

static inline void consumer_wake_if(shm_channel_t *ch, int due)
{
    struct shm__header *h = ch->ring.hdr;
    if (due)
        wake(&h->read_seq, &h->consumer_wakes);
}

static inline void producer_publish(shm_channel_t *ch)
{
    producer_wake_if(ch, shm__ring_publish(&ch->ring, &ch->prod));
}

static inline void consumer_publish(shm_channel_t *ch)
{
    consumer_wake_if(ch, shm__ring_publish_release(&ch->ring, &ch->cons));
}

static inline int try_once(shm_channel_t *ch, struct op *op)
{
    if (ch->role == SHM_CHANNEL_PRODUCER)
        return shm__ring_reserve(&ch->ring, &ch->prod, op->len, &op->ptr);
    const void *p = NULL;
    int rc = shm__ring_peek(&ch->ring, &ch->cons, &p, &op->len);
    op->ptr = (void *)(uintptr_t)p;
    return rc;
}

/* The peer's state, when the ring is full (producer) or empty (consumer): -EAGAIN while it
 * may still act, -EPIPE if it closed, -EOWNERDEAD if it died (spec §5.7). */
static int peer_status(shm_channel_t *ch, int force)
{
    struct shm__header *h = ch->ring.hdr;
    if (ch->role == SHM_CHANNEL_PRODUCER)
        return shm__peer_status(ch->seg.fd, &h->consumer_state, &h->consumer_epoch,
                                SHM__LOCK_CONSUMER, &ch->peer, force);
    return shm__peer_status(ch->seg.fd, &h->producer_state, &h->producer_epoch,
                            SHM__LOCK_PRODUCER, &ch->peer, force);
}

/* After the ring looked full or empty: if the peer is gone, look once more (it may have
 * published before it went), else report how it went. */
static int settle(shm_channel_t *ch, struct op *op, int force)
{
    int rc = peer_status(ch, force);
    if (rc == -EAGAIN)
        return rc;
    int again = try_once(ch, op);
    return again == -EAGAIN ? rc : again;
}

/* What wait_ready waits with (wait.h). */
struct ring_wait {
    shm_channel_t *ch;
    struct op *op;
    uint64_t slice_cap_ns; /* set by ring_prepare: the longest sleep of this round, 0: any */
};

static int ring_try(void *arg)
{
    struct ring_wait *w = arg;
    /* A waiting consumer looks at the next record's line before each load of write_pos
     * (ring.h, a hint only): both lines then arrive together when the producer publishes. */
    if (w->ch->role == SHM_CHANNEL_CONSUMER)
        shm__ring_look_ahead(&w->ch->ring, &w->ch->cons);
    return try_once(w->ch, w->op);
}

static int ring_settle(void *arg, int force)
{
    struct ring_wait *w = arg;
    return settle(w->ch, w->op, force);
}

static uint32_t ring_prepare(void *arg, uint32_t **word)
{
    struct ring_wait *w = arg;
    struct shm__header *h = w->ch->ring.hdr;
    int producer = w->ch->role == SHM_CHANNEL_PRODUCER;
    *word = producer ? &h->read_seq : &h->write_seq;
    uint32_t seen = shm__load_acquire(*word);
    /* The value we sleep on, in the flag: a waker that has moved its word past it since
     * knows its earlier wake covers us (spec §5.11). */
    shm__store_relaxed(producer ? &h->producer_waiting : &h->consumer_waiting,
                       shm__hs_waiting_flag(seen));
    /* Store waiting, then load the peer's position (inside try_once): the peer stores
     * its position, then loads waiting, so one of us sees the other: by our fence and
     * its fence, or, if the peer publishes without one, by our membarrier (§5.10). */
    shm__fence_seq_cst();
    const uint32_t *peer_hs = producer ? &h->consumer_handshake : &h->producer_handshake;
    /* Unsure: the peer may publish unfenced and our barrier failed: look again soon. */
    w->slice_cap_ns = shm__hs_before_sleep(peer_hs) != 0 ? SHM__HS_UNSURE_SLICE_NS : 0;
    return seen;
}

static void ring_finish(void *arg)
{
    struct ring_wait *w = arg;
    struct shm__header *h = w->ch->ring.hdr;
    shm__store_relaxed(w->ch->role == SHM_CHANNEL_PRODUCER ? &h->producer_waiting
                                                          : &h->consumer_waiting, 0);
}

/* Try until the ring has room (producer) or a message (consumer): spin for spin_ns, then
 * sleep on the peer's futex word, re-checking the peer's liveness every slice (wait.c).
 * Called after a first try (inline, in the caller) found the ring full or empty. */
static int __attribute__((noinline)) wait_ready_slow(shm_channel_t *ch, struct op *op,
                                                     int64_t timeout_ns)
{
    struct shm__header *h = ch->ring.hdr;
    int producer = ch->role == SHM_CHANNEL_PRODUCER;
    struct ring_wait rw = {ch, op, 0};
    struct shm__wait w = {.try_once = ring_try,
                          .settle = ring_settle,
                          .prepare = ring_prepare,
                          .finish = ring_finish,
                          .arg = &rw,
                          .spin_ns = ch->spin_ns,
                          .misses = producer ? &h->full_events : &h->empty_events,
                          .sleeps = producer ? &h->producer_sleeps : &h->consumer_sleeps,
                          .slice_cap_ns = &rw.slice_cap_ns,
                          .tried = 1};
    return shm__wait_run(&w, timeout_ns);
}

/* The hot path: one inline try; the wait only when the ring is full or empty. */
static inline int wait_ready(shm_channel_t *ch, struct op *op, int64_t timeout_ns)
{
    int rc = try_once(ch, op);
    return rc == -EAGAIN ? wait_ready_slow(ch, op, timeout_ns) : rc;
}

static inline int check_role(shm_channel_t *ch, uint32_t role)
{
    if (!ch)
        return -EINVAL;
    return ch->role == role ? 0 : -EBADF;
}

/* ---- producer --------------------------------------------------------------------- */

/* The bodies of reserve/commit/peek/release, static so that write/read call them directly:
 * a call to an exported function inside the shared library would go through the PLT. */
static inline int do_reserve(shm_channel_t *ch, uint64_t len, void **ptr, int64_t timeout_ns)
{
    int rc = check_role(ch, SHM_CHANNEL_PRODUCER);
    if (rc)
        return rc;
    if (!ptr)
        return -EINVAL;
    if (ch->prod.reserving)
        return -EBUSY;
    struct op op = {.len = len};
    if ((rc = wait_ready(ch, &op, timeout_ns)) != 0)
        return rc;
    *ptr = op.ptr;
    return 0;
}

static inline int do_commit(shm_channel_t *ch, uint64_t len)
{
    int rc = check_role(ch, SHM_CHANNEL_PRODUCER);
    if (rc)
        return rc;
    if ((rc = shm__ring_commit(&ch->ring, &ch->prod, len)) != 0)
        return rc;
    producer_publish(ch);
    return 0;
}

int shm_channel_reserve(shm_channel_t *ch, uint64_t len, void **ptr, int64_t timeout_ns)
{
    if (ch && ch->role == SHM_CHANNEL_PUBLISHER)
        return shm__bc_reserve(ch, len, ptr);
    if (is_service(ch))
        return shm__sv_reserve(ch, len, ptr, timeout_ns);
    if (ch && ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return shm__cp_reserve(ch, len, ptr, timeout_ns);
    return do_reserve(ch, len, ptr, timeout_ns);
}

int shm_channel_commit(shm_channel_t *ch, uint64_t len)
{
    if (ch && ch->role == SHM_CHANNEL_PUBLISHER)
        return shm__bc_commit(ch, len);
    if (is_service(ch))
        return shm__sv_commit(ch, len);
    if (ch && ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return shm__cp_commit(ch, len);
    return do_commit(ch, len);
}

int shm_channel_abort(shm_channel_t *ch)
{
    if (ch && ch->role == SHM_CHANNEL_PUBLISHER)
        return shm__bc_abort(ch);
    if (is_service(ch))
        return shm__sv_abort(ch);
    if (ch && ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return shm__cp_abort(ch);
    int rc = check_role(ch, SHM_CHANNEL_PRODUCER);
    return rc ? rc : shm__ring_abort(&ch->prod);
}

/* shm_channel_write in general: every kind, every error, the wait. */
static int __attribute__((noinline)) write_general(shm_channel_t *ch, const void *data,
                                                   uint64_t len, int64_t timeout_ns)
{
    if (!data && len)
        return -EINVAL;
    if (ch && ch->kind == SHM_CHANNEL_KIND_STREAM)
        goto stream; /* the hot path first: none of the other kinds' tests can hold */
    if (ch && ch->role == SHM_CHANNEL_PUBLISHER)
        return shm__bc_write(ch, data, len);
    if (is_service(ch))
        return shm__sv_write(ch, data, len, timeout_ns);
    if (ch && ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return shm__cp_write(ch, data, len, timeout_ns);
stream:;
    /* do_reserve + copy + do_commit, with each check made once. */
    int rc = check_role(ch, SHM_CHANNEL_PRODUCER);
    if (rc)
        return rc;
    if (ch->prod.reserving)
        return -EBUSY;
    struct op op = {.len = len};
    rc = shm__ring_reserve(&ch->ring, &ch->prod, len, &op.ptr);
    if (__builtin_expect(rc == -EAGAIN, 0))
        rc = wait_ready_slow(ch, &op, timeout_ns);
    if (rc)
        return rc;
    if (len)
        memcpy(op.ptr, data, len);
    shm__ring_commit(&ch->ring, &ch->prod, len); /* cannot fail: reserved, len as reserved */
    producer_publish(ch);
    return 0;
}

/* The hot path first: a stream producer with room by its cached read position writes,
 * publishes and returns without entering write_general (which would reach the same state:
 * its tests all pass for such a handle, and shm__ring_write changes nothing when it says
 * SHM__RING_SLOW). */
int shm_channel_write(shm_channel_t *ch, const void *data, uint64_t len, int64_t timeout_ns)
{
    if (__builtin_expect(ch && ch->kind == SHM_CHANNEL_KIND_STREAM &&
                             ch->role == SHM_CHANNEL_PRODUCER && (data || !len),
                         1)) {
        int rc = shm__ring_write(&ch->ring, &ch->prod, data, len);
        if (__builtin_expect(rc != SHM__RING_SLOW, 1)) {
            producer_wake_if(ch, rc);
            return 0;
        }
    }
    return write_general(ch, data, len, timeout_ns);
}

int shm_channel_write_batch(shm_channel_t *ch, const void *data, const uint64_t *lens,
                            uint32_t count, int64_t timeout_ns)
{
    if (ch && ch->role == SHM_CHANNEL_PUBLISHER)
        return shm__bc_write_batch(ch, data, lens, count);
    if (is_service(ch))
        return -EOPNOTSUPP;
    if (ch && ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return shm__cp_write_batch(ch, data, lens, count, timeout_ns);
    int rc = check_role(ch, SHM_CHANNEL_PRODUCER);
    if (rc)
        return rc;
    if ((rc = shm__batch_write_args(lens, count)) != 0)
        return rc < 0 ? rc : 0;
    if (ch->prod.reserving)
        return -EBUSY;
    const uint8_t *src = data;
    uint32_t n = 0;
    for (; n < count; n++) {
        if (!src && lens[n])
            break;
        struct op op = {.len = lens[n]};
        rc = n == 0 ? wait_ready(ch, &op, timeout_ns)
                    : shm__ring_reserve(&ch->ring, &ch->prod, op.len, &op.ptr);
        if (rc)
            break;
        if (op.len)
            memcpy(op.ptr, src, op.len);
        src += op.len;
        shm__ring_commit(&ch->ring, &ch->prod, op.len);
    }
    if (n == 0)
        return rc ? rc : -EINVAL;
    producer_publish(ch);
    return (int)n;
}

/* ---- consumer --------------------------------------------------------------------- */

static inline int do_peek(shm_channel_t *ch, const void **ptr, uint64_t *len, int64_t timeout_ns)
{
    int rc = check_role(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    if (!ptr || !len)
        return -EINVAL;
    struct op op = {0};
    if ((rc = wait_ready(ch, &op, timeout_ns)) != 0)
        return rc;
    *ptr = op.ptr;
    *len = op.len;
    return 0;
}

static inline int do_release(shm_channel_t *ch)
{
    int rc = check_role(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    if ((rc = shm__ring_release(&ch->cons)) != 0)
        return rc;
    consumer_publish(ch);
    return 0;
}

int shm_channel_peek(shm_channel_t *ch, const void **ptr, uint64_t *len, int64_t timeout_ns)
{
    if (ch && ch->role == SHM_CHANNEL_SUBSCRIBER)
        return shm__bc_peek(ch, ptr, len, timeout_ns);
    if (is_service(ch))
        return shm__sv_peek(ch, ptr, len, timeout_ns);
    if (ch && ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return shm__cp_peek(ch, ptr, len, timeout_ns);
    return do_peek(ch, ptr, len, timeout_ns);
}

int shm_channel_release(shm_channel_t *ch)
{
    if (ch && ch->role == SHM_CHANNEL_SUBSCRIBER)
        return shm__bc_release(ch);
    if (is_service(ch))
        return shm__sv_release(ch);
    if (ch && ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return shm__cp_release(ch);
    return do_release(ch);
}

/* shm_channel_read in general: every kind, every error, the wait. */
static int __attribute__((noinline)) read_general(shm_channel_t *ch, void *buf, uint64_t cap,
                                                  uint64_t *len, int64_t timeout_ns)
{
    if (!len || (!buf && cap))
        return -EINVAL;
    if (ch && ch->kind == SHM_CHANNEL_KIND_STREAM)
        goto stream; /* the hot path first: none of the other kinds' tests can hold */
    if (ch && ch->role == SHM_CHANNEL_SUBSCRIBER)
        return shm__bc_recv(ch, buf, cap, len, NULL, timeout_ns);
    if (is_service(ch))
        return shm__sv_read(ch, buf, cap, len, timeout_ns);
    if (ch && ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return shm__cp_read(ch, buf, cap, len, timeout_ns);
stream:;
    /* do_peek + copy + do_release, with each check made once. */
    int rc = check_role(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    struct op op = {0};
    const void *src = NULL;
    rc = shm__ring_peek(&ch->ring, &ch->cons, &src, &op.len);
    op.ptr = (void *)(uintptr_t)src;
    if (__builtin_expect(rc == -EAGAIN, 0))
        rc = wait_ready_slow(ch, &op, timeout_ns);
    if (rc)
        return rc;
    *len = op.len;
    if (op.len > cap)
        return -EMSGSIZE; /* the message stays peeked: the next read returns it */
    if (op.len)
        memcpy(buf, op.ptr, op.len);
    shm__ring_release(&ch->cons); /* cannot fail: peeked */
    consumer_publish(ch);
    return 0;
}

/* The hot path first, as shm_channel_write: a stream consumer with a message ready by its
 * cached write position (or by one load of write_pos) that fits `cap`. */
int shm_channel_read(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
                     int64_t timeout_ns)
{
    if (__builtin_expect(ch && ch->kind == SHM_CHANNEL_KIND_STREAM &&
                             ch->role == SHM_CHANNEL_CONSUMER && len && (buf || !cap),
                         1)) {
        int rc = shm__ring_read(&ch->ring, &ch->cons, buf, cap, len);
        if (__builtin_expect(rc != SHM__RING_SLOW, 1)) {
            consumer_wake_if(ch, rc);
            return 0;
        }
    }
    return read_general(ch, buf, cap, len, timeout_ns);
}

int shm_channel_read_batch(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *lens,
                           uint32_t max_count, int64_t timeout_ns)
{
    if (ch && ch->role == SHM_CHANNEL_SUBSCRIBER)
        return shm__bc_read_batch(ch, buf, cap, lens, max_count, timeout_ns);
    if (is_service(ch))
        return -EOPNOTSUPP;
    if (ch && ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return shm__cp_read_batch(ch, buf, cap, lens, max_count, timeout_ns);
    int rc = check_role(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    if ((rc = shm__batch_read_args(buf, cap, lens, max_count)) != 0)
        return rc < 0 ? rc : 0;
    struct op op = {0};
    if ((rc = wait_ready(ch, &op, timeout_ns)) != 0)
        return rc;
    if (op.len > cap) {
        lens[0] = op.len;
        return -EMSGSIZE;
    }
    uint8_t *dst = buf;
    uint64_t used = 0;
    uint32_t n = 0;
    for (;;) {
        if (op.len)
            memcpy(dst + used, op.ptr, op.len);
        used += op.len;
        lens[n++] = op.len;
        shm__ring_release(&ch->cons);
        if (n == max_count)
            break;
        const void *p;
        if (shm__ring_peek(&ch->ring, &ch->cons, &p, &op.len) != 0)
            break; /* empty, or corrupt: the next call reports it */
        op.ptr = (void *)(uintptr_t)p;
        if (op.len > cap - used)
            break; /* stays peeked for the next call */
    }
    consumer_publish(ch);
    return (int)n;
}

/* ---- closing, unlinking, inspection ---------------------------------------------- */

/* A stream is finished (its last handle unlinks it) once end-of-stream was marked and
 * nothing is left unread. */
static int stream_finished(void *arg)
{
    const struct shm__header *h = arg;
    return shm__load_acquire(&h->producer_state) == SHM_CHANNEL_PEER_CLOSED &&
           shm__load_acquire(&h->write_pos) == shm__load_acquire(&h->read_pos);
}

/* End the role (spec §5.3 step 4, §5.9) and drop the locks; the mapping stays. */
static void end_role(shm_channel_t *ch)
{
    if (ch->kind == SHM_CHANNEL_KIND_BROADCAST) {
        shm__bc_end_role(ch);
        return;
    }
    if (ch->kind == SHM_CHANNEL_KIND_SERVICE) {
        shm__sv_end_role(ch);
        return;
    }
    if (ch->kind == SHM_CHANNEL_KIND_COMPAT) {
        shm__cp_end_role(ch);
        return;
    }
    struct shm__header *h = ch->ring.hdr;
    if (ch->role == SHM_CHANNEL_PRODUCER) {
        if (ch->prod.reserving)
            shm__ring_abort(&ch->prod);
        /* No longer publishing: a successor of any layout finds "fence" (§5.10). */
        shm__hs_advertise(&h->producer_handshake, SHM__HS_FENCE);
        /* Release: every published record precedes end-of-stream. */
        shm__store_release(&h->producer_state, SHM_CHANNEL_PEER_CLOSED);
        shm__fence_seq_cst();
        wake(&h->write_seq, NULL);
        shm__lock_drop(ch->seg.fd, SHM__LOCK_PRODUCER);
    } else if (ch->role == SHM_CHANNEL_CONSUMER) {
        /* A peeked, unreleased message stays for the next consumer. */
        shm__hs_advertise(&h->consumer_handshake, SHM__HS_FENCE);
        shm__store_release(&h->consumer_state, SHM_CHANNEL_PEER_CLOSED);
        shm__fence_seq_cst();
        wake(&h->read_seq, NULL);
        shm__lock_drop(ch->seg.fd, SHM__LOCK_CONSUMER);
    }
    shm__seg_end(&ch->seg, stream_finished, h);
}

int shm_channel_detach(shm_channel_t *ch)
{
    if (!ch)
        return -EINVAL;
    if (ch->detached)
        return 0;
    end_role(ch);
    ch->detached = 1;
    /* From now on the handle has no role: every call but close/detach gets -EBADF. */
    ch->role = 0;
    /* Keep every address valid, but never again let this handle's views reach the shared
     * segment. */
    shm__seg_privatise(&ch->seg);
    return 0;
}

void shm_channel_close(shm_channel_t *ch)
{
    if (!ch)
        return;
    if (!ch->detached)
        end_role(ch);
    shm__seg_release(&ch->seg);
    shm__sv_free(ch);
    shm__cp_fini(ch); /* compat bounce buffers (none for other kinds) */
    free(ch);
}

int shm_channel_unlink(const char *name, uint32_t flags)
{
    char clean[SHM_CHANNEL_NAME_MAX + 1];
    if (flags & SHM_CHANNEL_COMPAT)
        return shm__cp_unlink(name, flags);
    int rc = shm__name_check(name, clean);
    if (rc)
        return rc;
    if (flags & ~(uint32_t)SHM_CHANNEL_FORCE)
        return -EINVAL;
    int dirfd = shm__dir_open();
    if (dirfd < 0)
        return dirfd;
    int fd = -1;
    rc = shm__segment_open(dirfd, clean, 1, &fd);
    if (rc == 0 && !(flags & SHM_CHANNEL_FORCE))
        rc = shm__lock_try(fd, SHM__LOCK_ATTACH, 1);
    if (rc == 0 && !(flags & SHM_CHANNEL_FORCE)) {
        /* Only a channel segment is removed without FORCE (spec §5.9): its magic is set
         * (while we hold byte 2 exclusively no creator is at work, so zero is not one). */
        uint8_t magic[8];
        rc = shm__segment_read_header(fd, magic, sizeof magic);
        if (rc == -EAGAIN || (rc == 0 && memcmp(magic, SHM__MAGIC, 8) != 0))
            rc = -EPROTO;
    }
    if (rc == -EACCES && (flags & SHM_CHANNEL_FORCE))
        rc = 0; /* unreadable to us, but the directory may still let us remove it */
    if (rc == 0 && unlinkat(dirfd, clean, 0) != 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    close(dirfd);
    return rc;
}

int shm_channel_stat(shm_channel_t *ch, shm_channel_stat_t *st)
{
    if (!ch || !st)
        return -EINVAL;
    if (ch->detached)
        return -EBADF;
    memset(st, 0, sizeof(*st));
    if (ch->kind == SHM_CHANNEL_KIND_BROADCAST) {
        shm__bc_stat(ch, st);
        return 0;
    }
    if (ch->kind == SHM_CHANNEL_KIND_SERVICE) {
        shm__sv_stat(ch, st);
        return 0;
    }
    if (ch->kind == SHM_CHANNEL_KIND_COMPAT) {
        shm__cp_stat(ch, st);
        return 0;
    }
    const struct shm__header *h = ch->ring.hdr;
    st->kind = shm__load_relaxed(&h->kind);
    st->layout_major = shm__load_relaxed(&h->layout_major);
    st->layout_minor = shm__load_relaxed(&h->layout_minor);
    st->capacity = ch->ring.capacity;
    st->max_payload = ch->ring.max_payload;
    st->read_pos = shm__load_acquire(&h->read_pos);
    st->write_pos = shm__load_acquire(&h->write_pos);
    st->used = st->write_pos - st->read_pos;
    st->msgs_written = shm__load_relaxed(&h->msgs_written);
    st->bytes_written = shm__load_relaxed(&h->bytes_written);
    st->msgs_read = shm__load_relaxed(&h->msgs_read);
    st->bytes_read = shm__load_relaxed(&h->bytes_read);
    st->full_events = shm__load_relaxed(&h->full_events);
    st->empty_events = shm__load_relaxed(&h->empty_events);
    st->producer_wakes = shm__load_relaxed(&h->producer_wakes);
    st->consumer_wakes = shm__load_relaxed(&h->consumer_wakes);
    st->producer_sleeps = shm__load_relaxed(&h->producer_sleeps);
    st->consumer_sleeps = shm__load_relaxed(&h->consumer_sleeps);
    st->producer_state = shm__load_relaxed(&h->producer_state);
    st->consumer_state = shm__load_relaxed(&h->consumer_state);
    st->producer_epoch = shm__load_relaxed(&h->producer_epoch);
    st->consumer_epoch = shm__load_relaxed(&h->consumer_epoch);
    st->creator_pid = shm__load_relaxed(&h->creator_pid);
    st->created_ns = shm__load_relaxed(&h->created_ns);
    /* Our own locks are invisible to F_OFD_GETLK on our descriptor: count our role. */
    st->producer_alive = ch->role == SHM_CHANNEL_PRODUCER ||
                         shm__lock_held(ch->seg.fd, SHM__LOCK_PRODUCER) == 1;
    st->consumer_alive = ch->role == SHM_CHANNEL_CONSUMER ||
                         shm__lock_held(ch->seg.fd, SHM__LOCK_CONSUMER) == 1;
    st->in_use = ch->role != SHM_CHANNEL_OBSERVER ||
                 shm__lock_held(ch->seg.fd, SHM__LOCK_ATTACH) == 1;
    return 0;
}

int shm__hook_share_mapping(shm_channel_t *dst, const shm_channel_t *src)
{
    struct stat a, b;
    if (!dst || !src || !dst->seg.writable || !src->seg.writable ||
        dst->seg.map_len != src->seg.map_len || dst->kind != src->kind ||
        fstat(dst->seg.fd, &a) != 0 || fstat(src->seg.fd, &b) != 0 || a.st_dev != b.st_dev ||
        a.st_ino != b.st_ino)
        return -EINVAL;
    shm__unmap(dst->seg.base, dst->seg.map_len);
    dst->seg.base = NULL;
    if (dst->kind == SHM_CHANNEL_KIND_COMPAT) {
        shm__compat_bind(&dst->cp, src->seg.base, (size_t)dst->seg.map_len);
    } else if (dst->kind == SHM_CHANNEL_KIND_BROADCAST) {
        shm__bcast_bind(&dst->bc, src->seg.base, &dst->bc.g);
        if (dst->role == SHM_CHANNEL_SUBSCRIBER)
            dst->sub.entry = &dst->bc.subs[dst->sub.index];
    } else if (dst->kind == SHM_CHANNEL_KIND_SERVICE) {
        shm__svc_bind(&dst->svc, src->seg.base, &dst->svc.g);
        if (dst->role == SHM_CHANNEL_CLIENT) {
            dst->cli.line = shm__svc_line(&dst->svc, dst->cli.index);
            dst->cli.rq = shm__svc_req(&dst->svc, dst->cli.index);
            dst->cli.rs = shm__svc_resp(&dst->svc, dst->cli.index);
        }
    } else {
        shm__ring_bind(&dst->ring, src->seg.base, dst->ring.capacity);
    }
    return 0;
}

uint64_t shm_channel_max_payload(shm_channel_t *ch)
{
    if (!ch)
        return 0;
    if (ch->kind == SHM_CHANNEL_KIND_SERVICE)
        return ch->svc.g.max_request > ch->svc.g.max_response ? ch->svc.g.max_request
                                                              : ch->svc.g.max_response;
    if (ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return ch->cp.capacity - SHM__COMPAT_PREFIX;
    return ch->kind == SHM_CHANNEL_KIND_BROADCAST ? ch->bc.g.max_payload : ch->ring.max_payload;
}

uint64_t shm_channel_capacity(shm_channel_t *ch)
{
    if (!ch)
        return 0;
    if (ch->kind == SHM_CHANNEL_KIND_SERVICE)
        return ch->svc.g.capacity;
    if (ch->kind == SHM_CHANNEL_KIND_COMPAT)
        return ch->cp.capacity;
    return ch->kind == SHM_CHANNEL_KIND_BROADCAST ? ch->bc.g.capacity : ch->ring.capacity;
}

int shm_channel_set_spin(shm_channel_t *ch, uint64_t spin_ns)
{
    if (!ch || spin_ns > 10000000000ull)
        return -EINVAL;
    ch->spin_ns = spin_ns;
    return 0;
}

const char *shm_channel_dir(void)
{
    const char *d = getenv("SHM_CHANNEL_DIR");
    return d && *d ? d : "/dev/shm";
}

const char *shm_channel_strerror(int err)
{
    if (err > 0 || err < -4095) /* not a -errno; and -INT_MIN would overflow */
        return "unknown error";
    switch (-err) {
    case 0: return "success";
    case EINVAL: return "invalid argument (check the name, role, flags, capacity and sizes)";
    case ENOENT: return "no such channel (open with SHM_CHANNEL_CREATE to create it)";
    case EEXIST: return "the channel already exists";
    case EBUSY: return "busy: the role is held by a live process, or a reservation is outstanding, or the channel is in use";
    case EACCES: return "permission denied: the segment belongs to another user or is more permissive than requested, or the name is not a regular file";
    case ENOSPC: return "not enough shared memory for the segment (is /dev/shm full or small?)";
    case ENOMEM: return "out of memory";
    case EPROTO: return "not a shm_channel segment (bad magic)";
    case EPROTONOSUPPORT: return "unsupported segment layout major version";
    case EPROTOTYPE: return "wrong kind of channel: a segment of one kind (stream, broadcast, service) opened as another";
    case EMEDIUMTYPE: return "the broadcast channel's type tag is not the one required";
    case EUSERS: return "every subscriber entry of the broadcast channel, or every client slot of the service, is taken";
    case ESTALE: return "stale: the view was overwritten by the publisher while it was held, or the client gave up on the request being answered";
    case ECONNRESET: return "the server that had the request is gone and another has attached: send it again";
    case EOPNOTSUPP: return "not supported on this kind of channel or role";
    case EOVERFLOW: return "message numbers exhausted";
    case EBADMSG: return "corrupt segment: a header field, position or record is out of range, or its pages are not all allocated";
    case ETIMEDOUT: return "timed out";
    case EAGAIN: return "would block: the ring is full (writer) or empty (reader), or the file is not yet a complete segment (observer)";
    case EINTR: return "interrupted by a signal";
    case EMSGSIZE: return "message too large for the channel, or buffer too small for the message";
    case EPIPE: return "end of stream: the peer closed the channel";
    case EOWNERDEAD: return "the peer process died";
    case EBADF: return "wrong role for this call";
    case EIDRM: return "compat channel: the segment's name was unlinked (a peer replaced or removed it) and nothing is left to read, or the ring is full";
    default: break;
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *s = strerrordesc_np(-err);
    if (s)
        return s;
#endif
    return "unknown error";
}

uint32_t shm_channel_version(void)
{
    return (SHM_CHANNEL_VERSION_MAJOR << 16) | (SHM_CHANNEL_VERSION_MINOR << 8) |
           SHM_CHANNEL_VERSION_PATCH;
}

const char *shm_channel_version_string(void)
{
    return "1.0.0";
}

/* ---- batch peek and the mapping window (issue 14) ---------------------------------- */

int shm_channel_peek_batch(shm_channel_t *ch, const void **ptrs, uint64_t *lens,
                           uint32_t max_count, int64_t timeout_ns)
{
    int rc = check_role(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    if (ch->kind != SHM_CHANNEL_KIND_STREAM)
        return -EOPNOTSUPP;
    if (max_count == 0)
        return 0;
    if (!ptrs || !lens || max_count > INT32_MAX)
        return -EINVAL;
    struct op op = {0};
    if ((rc = wait_ready(ch, &op, timeout_ns)) != 0)
        return rc;
    /* The first message is peeked, held as shm_channel_peek() holds it. The others are
     * found from a copy of the consumer's private state: a release in the copy moves only
     * the copy's position, so nothing is released, in the segment or in the handle. */
    struct shm__ring_consumer walk = ch->cons;
    const void *p = op.ptr;
    uint64_t len = op.len;
    uint32_t n = 0;
    for (;;) {
        ptrs[n] = p;
        lens[n] = len;
        if (++n == max_count)
            break;
        shm__ring_release(&walk);
        if (shm__ring_peek(&ch->ring, &walk, &p, &len) != 0)
            break; /* none ready, or corrupt: the next call reports it */
    }
    if (walk.peeking)
        shm__ring_release(&walk); /* the copy now has all n released */
    ch->batch.start = ch->cons.rpos;
    ch->batch.n = n;
    ch->batch.after = walk;
    return (int)n;
}

int shm_channel_release_n(shm_channel_t *ch, uint32_t n)
{
    int rc = check_role(ch, SHM_CHANNEL_CONSUMER);
    if (rc)
        return rc;
    if (ch->kind != SHM_CHANNEL_KIND_STREAM)
        return -EOPNOTSUPP;
    if (n == 0)
        return 0;
    /* The batch is still held only if nothing was released since it was peeked. */
    if (n > ch->batch.n || !ch->cons.peeking || ch->cons.rpos != ch->batch.start)
        return -EINVAL;
    if (n == ch->batch.n) { /* all of them: the state the batch peek's walk reached */
        ch->batch.n = 0;
        ch->cons = ch->batch.after;
        consumer_publish(ch);
        return 0;
    }
    ch->batch.n = 0;
    /* Each of the n messages lies below the write_pos seen by the batch peek: walking them
     * again finds the same records (a segment changed since gives -EBADMSG). */
    for (uint32_t i = 0; i < n; i++) {
        const void *p;
        uint64_t len;
        if ((rc = shm__ring_peek(&ch->ring, &ch->cons, &p, &len)) != 0)
            break;
        shm__ring_release(&ch->cons);
    }
    consumer_publish(ch);
    return rc;
}

int shm_channel_mapping(shm_channel_t *ch, void **base, uint64_t *len)
{
    if (!ch || !base || !len)
        return -EINVAL;
    *base = ch->seg.base;
    *len = ch->seg.map_len;
    return 0;
}

/* ---- one-try write and read with few arguments (issue 14, bindings) ----------------------
 * Thin wrappers over shm_channel_write()/shm_channel_read() with timeout 0: a binding whose
 * per-call cost grows with the number of arguments (cffi's ABI mode: ~800 instructions an
 * argument) tries these first and makes the waiting call only when they return -EAGAIN. */

int shm_channel_try_write(shm_channel_t *ch, const void *data, uint64_t len)
{
    return shm_channel_write(ch, data, len, 0);
}

int64_t shm_channel_try_read(shm_channel_t *ch, void *buf, uint64_t cap)
{
    uint64_t len = 0;
    int rc = shm_channel_read(ch, buf, cap, &len, 0);
    return rc ? rc : (int64_t)len;
}

/* ---- end of one-try write and read ------------------------------------------------------ */

/* ---- one-try zero copy with few arguments (issue 14, bindings) ---------------------------
 * Thin wrappers over shm_channel_reserve()/shm_channel_peek() with timeout 0 that return the
 * view's offset in the handle's mapping (a binding holds one buffer over the mapping and
 * slices it) or -errno: one argument, no pointer out-parameter, for the same reason as the
 * one-try write and read above. */

static int64_t mapping_offset(const shm_channel_t *ch, const void *p, uint64_t len)
{
    uintptr_t base = (uintptr_t)ch->seg.base, at = (uintptr_t)p;
    if (at < base || at - base > ch->seg.map_len || len > ch->seg.map_len - (at - base))
        return -ERANGE;
    return (int64_t)(at - base);
}

int64_t shm_channel_try_reserve(shm_channel_t *ch, uint64_t len)
{
    void *p;
    int rc = shm_channel_reserve(ch, len, &p, 0);
    if (rc)
        return rc;
    int64_t off = mapping_offset(ch, p, len);
    if (off < 0)
        shm_channel_abort(ch);
    return off;
}

int64_t shm_channel_try_peek(shm_channel_t *ch, uint64_t *len)
{
    const void *p;
    if (!len)
        return -EINVAL;
    int rc = shm_channel_peek(ch, &p, len, 0);
    return rc ? rc : mapping_offset(ch, p, *len);
}

/* ---- end of one-try zero copy ----------------------------------------------------------- */
