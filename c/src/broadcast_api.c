/* The broadcast kind's side of the public entry points (spec/broadcast.md): the role
 * locks, the subscriber table, waiting on the futex, end-of-stream and publisher death.
 * The algorithm is broadcast.c; the segment lifecycle is segment.c; channel.c dispatches
 * the calls both kinds share here. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomics.h"
#include "handle.h"
#include "hooks.h"
#include "os.h"
#include "handshake.h"
#include "wait.h"

static int role_is(const shm_channel_t *ch, uint32_t role)
{
    if (!ch)
        return -EINVAL;
    if (ch->detached)
        return -EBADF;
    return ch->role == role ? 0 : -EBADF;
}

/* ---- opening and closing ---------------------------------------------------------- */

int shm__bc_config(const shm_channel_broadcast_config_t *cfg, struct shm__bcast_geom *g)
{
    static const shm_channel_broadcast_config_t none;
    if (!cfg)
        cfg = &none;
    for (int i = 0; i < 4; i++)
        if (cfg->reserved[i])
            return -EINVAL;
    return shm__bcast_geometry(g, cfg->max_payload, cfg->depth, cfg->max_subscribers,
                               cfg->type_tag);
}

/* Take a subscriber entry (spec §5.9): the first whose lock is free, from a start that
 * spreads concurrent joiners. */
static int claim_entry(void *arg, uint32_t i)
{
    shm_channel_t *ch = arg;
    return shm__bcast_sub_join(&ch->bc, &ch->sub, i, (uint32_t)getpid());
}

static int join(shm_channel_t *ch)
{
    struct shm__bcast *b = &ch->bc;
    uint32_t n = b->g.max_subscribers;
    return shm__seg_take_slot(&ch->seg, SHM__BCAST_LOCK_SUB_BASE, n,
                              (uint32_t)(shm__load_relaxed(&b->hdr->joins) % n), claim_entry, ch);
}

/* Reclaim every entry whose owner died attached (spec §5.9): an entry that reads attached
 * is reclaimed only while its lock is held here (taken without waiting, then released), so
 * the owner is certainly gone and nobody can join it meanwhile; shm__bcast_reclaim looks at
 * the state again under the lock. Returns the number reclaimed. */
static uint32_t reclaim_dead(shm_channel_t *ch)
{
    struct shm__bcast *b = &ch->bc;
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->g.max_subscribers; i++) {
        if (shm__load_relaxed(&b->subs[i].state) != SHM_CHANNEL_PEER_ATTACHED)
            continue;
        int byte = SHM__BCAST_LOCK_SUB_BASE + (int)i;
        if (shm__lock_try(ch->seg.fd, byte, 1) != 0)
            continue; /* alive (or joining, or being reclaimed by someone else) */
        n += (uint32_t)shm__bcast_reclaim(b, i);
        shm__lock_drop(ch->seg.fd, byte);
    }
    return n;
}

/* shm_channel_reclaim (shm_channel.h): a writable attachment without a role (the shared
 * attach lock only, as every handle), header and table mapped, reclaim_dead; closing the
 * file drops the attach lock and never unlinks. */
int shm_channel_reclaim(const char *name, uint32_t flags)
{
    if (flags)
        return -EINVAL;
    shm_channel_t *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    ch->seg.fd = ch->seg.dirfd = -1;
    ch->seg.writable = 1;
    ch->role = SHM_CHANNEL_OBSERVER;
    int rc, created = 0;
    struct shm__seg_info info;
    if ((rc = shm__name_check(name, ch->seg.name)) != 0)
        goto out;
    if ((ch->seg.dirfd = shm__dir_open()) < 0) {
        rc = ch->seg.dirfd;
        goto out;
    }
    /* The owner and mode checks of an open with mode 0 (0600), as every other open. */
    if ((rc = shm__seg_attach(&ch->seg, 0, 0600, NULL, &created)) != 0)
        goto out;
    if ((rc = shm__seg_validate(ch->seg.fd, 0, SHM__KIND_BROADCAST, &info)) != 0)
        goto out;
    if ((rc = shm__seg_map(&ch->seg, info.bcast.slots_offset)) != 0)
        goto out;
    shm__bcast_bind(&ch->bc, ch->seg.base, &info.bcast);
    rc = (int)reclaim_dead(ch);
out:
    shm__seg_release(&ch->seg);
    free(ch);
    return rc;
}

int shm__bc_attach(shm_channel_t *ch, uint32_t flags, const shm_channel_broadcast_config_t *cfg,
                   const struct shm__seg_info *info)
{
    const struct shm__bcast_geom *g = &info->bcast;
    int rc;
    /* Given parameters must be the segment's (spec §4 steps 5-6), checked before mapping. */
    if (cfg) {
        if ((cfg->max_payload && cfg->max_payload != g->max_payload) ||
            (cfg->depth && cfg->depth != g->depth) ||
            (cfg->max_subscribers && cfg->max_subscribers != g->max_subscribers))
            return -EINVAL;
        if ((rc = shm__bcast_check_type(g, cfg->type_tag)) != 0)
            return rc;
    }
    /* An observer maps the header and the subscriber table, never the slots. */
    if ((rc = shm__seg_map(&ch->seg, ch->seg.writable ? g->segment_size : g->slots_offset)) != 0)
        return rc;
    shm__bcast_bind(&ch->bc, ch->seg.base, g);
    if (ch->role == SHM_CHANNEL_PUBLISHER) {
        if ((rc = shm__lock_try(ch->seg.fd, SHM__BCAST_LOCK_PUBLISHER, 1)) != 0)
            return rc;
        /* A new publisher clears the table of dead subscribers first (their counts in
         * `subscribers` and `waiting`), then decides whether sleepers need a wake. */
        reclaim_dead(ch);
        uint32_t hs = shm__bcast_hook_membarrier_publisher ? shm__hs_register() : SHM__HS_FENCE;
        if ((rc = shm__bcast_pub_attach_hs(&ch->bc, &ch->pub, hs)) != 0)
            return rc;
        if (ch->pub.attach_wake) /* spec §5.7: the wake a predecessor may have owed */
            shm__futex_wake(&ch->bc.hdr->notify_seq);
        return 0;
    }
    if (ch->role == SHM_CHANNEL_SUBSCRIBER) {
        if ((rc = join(ch)) == 0 && (flags & SHM_CHANNEL_FROM_OLDEST))
            shm__bcast_sub_rewind(&ch->bc, &ch->sub);
        return rc;
    }
    return 0;
}

/* The last handle unlinks a broadcast channel whose publisher closed cleanly (§5.10). */
static int finished(void *arg)
{
    const struct shm__bcast *b = arg;
    return shm__bcast_publisher_state(b) == SHM_CHANNEL_PEER_CLOSED;
}

void shm__bc_end_role(shm_channel_t *ch)
{
    struct shm__bcast *b = &ch->bc;
    if (ch->role == SHM_CHANNEL_PUBLISHER) {
        if (shm__bcast_pub_close(b, &ch->pub))
            shm__futex_wake(&b->hdr->notify_seq);
        shm__lock_drop(ch->seg.fd, SHM__BCAST_LOCK_PUBLISHER);
    } else if (ch->role == SHM_CHANNEL_SUBSCRIBER) {
        shm__bcast_sub_leave(b, &ch->sub);
        shm__lock_drop(ch->seg.fd, SHM__BCAST_LOCK_SUB_BASE + (int)ch->sub.index);
    }
    shm__seg_end(&ch->seg, finished, b);
}

/* ---- publisher -------------------------------------------------------------------- */

/* hooks.h: 0 the wake chain; 1 a "publisher wakes all" side; 2 a woken sleeper stops. */
int shm__hook_bcast_chain = 0;

/* P5 of a publish (spec §5.7): start the chain. The sleepers of the value P4 replaced are
 * woken by the chain, SHM__BCAST_CHAIN_ROOT of them by this call, whatever their number. */
static void wake_chain(shm_channel_t *ch)
{
    uint32_t *word = &ch->bc.hdr->notify_seq;
    if (shm__hook_bcast_chain == 1)
        shm__futex_wake(word);
    else
        shm__futex_wake_bits(word, SHM__BCAST_CHAIN_ROOT, shm__bcast_pub_wake_bits(&ch->bc));
}

static int publish(shm_channel_t *ch)
{
    if (shm__bcast_publish(&ch->bc, &ch->pub))
        wake_chain(ch);
    return 0;
}

int shm__bc_write(shm_channel_t *ch, const void *data, uint64_t len)
{
    int rc = shm__bcast_write(&ch->bc, &ch->pub, data, len);
    if (rc < 0)
        return rc;
    if (rc)
        wake_chain(ch);
    return 0;
}

int shm__bc_write_batch(shm_channel_t *ch, const void *data, const uint64_t *lens,
                        uint32_t count)
{
    int rc = shm__batch_write_args(lens, count);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    const uint8_t *src = data;
    uint32_t n = 0;
    for (; n < count; n++) {
        if (!src && lens[n]) {
            rc = -EINVAL;
            break;
        }
        if ((rc = shm__bc_write(ch, src, lens[n])) != 0)
            break;
        src += lens[n];
    }
    return n ? (int)n : rc;
}

int shm__bc_reserve(shm_channel_t *ch, uint64_t len, void **ptr)
{
    if (!ptr)
        return -EINVAL;
    return shm__bcast_reserve(&ch->bc, &ch->pub, len, ptr);
}

int shm__bc_commit(shm_channel_t *ch, uint64_t len)
{
    int rc = shm__bcast_commit(&ch->bc, &ch->pub, len);
    return rc ? rc : publish(ch);
}

int shm__bc_abort(shm_channel_t *ch)
{
    return shm__bcast_abort(&ch->pub);
}

/* ---- subscriber ------------------------------------------------------------------- */

/* What one wait is for: a copy (view NULL) or a view of the next message. */
struct want {
    void *buf;
    uint64_t cap;
    uint64_t *len;
    uint64_t *missed;
    const void **view;
};

static int try_once(shm_channel_t *ch, struct want *w)
{
    if (w->view) {
        uint64_t missed;
        return shm__bcast_peek(&ch->bc, &ch->sub, 0, w->view, w->len, &missed, NULL);
    }
    return shm__bcast_next(&ch->bc, &ch->sub, w->buf, w->cap, w->len, w->missed);
}

/* Nothing to read: the publisher's verdict (spec §5.8), and if there is one, one more
 * try, since everything it published before it went is readable first. */
static int settle(shm_channel_t *ch, struct want *w, int force)
{
    struct shm__bcast_header *h = ch->bc.hdr;
    int rc = shm__peer_status(ch->seg.fd, &h->publisher_state, &h->publisher_epoch,
                              SHM__BCAST_LOCK_PUBLISHER, &ch->peer, force);
    if (rc == -EAGAIN)
        return rc;
    int again = try_once(ch, w);
    return again == -EAGAIN ? rc : again;
}

/* What wait_next waits with (wait.h). */
struct bc_wait {
    shm_channel_t *ch;
    struct want *w;
    uint64_t slice_cap_ns;
};

static int bc_try(void *arg)
{
    struct bc_wait *b = arg;
    return try_once(b->ch, b->w);
}

static int bc_settle(void *arg, int force)
{
    struct bc_wait *b = arg;
    return settle(b->ch, b->w, force);
}

static uint32_t bc_prepare(void *arg, uint32_t **word)
{
    struct bc_wait *b = arg;
    struct shm__bcast_header *h = b->ch->bc.hdr;
    *word = &h->notify_seq;
    uint32_t seen = shm__bcast_wait_prepare(&b->ch->bc, &b->ch->sub);
    /* S3 (spec §5.7): after the full fence, the membarrier a publisher that publishes
     * without a fence relies on; if it cannot be issued, look again every millisecond. */
    b->slice_cap_ns = shm__hs_sleeper_barrier(&h->publisher_handshake) != 0
                          ? SHM__HS_UNSURE_SLICE_NS : 0;
    return seen;
}

/* S5 (spec §5.7): sleep as a waiter of this value's bits. Woken by a wake call, this
 * sleeper is a link of the chain: before anything else it wakes the next ones (at most
 * SHM__BCAST_CHAIN_FANOUT sleepers of the same value). A timeout, EINTR or a word that
 * moved before the sleep is no link: nothing to pass on. A link killed before it passes
 * the wake on leaves the sleepers behind it to their slice (≤ the liveness slice). */
static int bc_sleep(void *arg, uint32_t *word, uint32_t seen, uint64_t slice_ns)
{
    (void)arg;
    if (shm__hook_bcast_chain == 1)
        return shm__futex_wait(word, seen, slice_ns);
    uint32_t bits = shm__bcast_chain_bits(seen);
    int r = shm__futex_wait_bits(word, seen, slice_ns, bits);
    if (r != 1)
        return r;
    if (__builtin_expect(shm__hook_bcast_chain == 2, 0))
        raise(SIGSTOP); /* the test's dead link: stopped here, then killed */
    shm__futex_wake_bits(word, SHM__BCAST_CHAIN_FANOUT, bits);
    return 0;
}

static void bc_done(void *arg)
{
    struct bc_wait *b = arg;
    shm__bcast_wait_done(&b->ch->bc, &b->ch->sub);
}

/* Spin for spin_ns, then sleep on notify_seq (spec §5.7): before EVERY futex wait
 * (the first, and after each return: a wake, a timeout of the slice, EINTR, a spurious
 * return) count in and mark a wake as owed again, then re-check; re-check the publisher
 * every slice (wait.c). */
static int wait_next(shm_channel_t *ch, struct want *w, int64_t timeout_ns)
{
    struct bc_wait bw = {ch, w, 0};
    struct shm__wait wt = {.try_once = bc_try,
                           .settle = bc_settle,
                           .prepare = bc_prepare,
                           .sleep = bc_sleep,
                           .done = bc_done,
                           .arg = &bw,
                           .spin_ns = ch->spin_ns,
                           .slice_cap_ns = &bw.slice_cap_ns};
    return shm__wait_run(&wt, timeout_ns);
}

int shm__bc_recv(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len, uint64_t *missed,
                 int64_t timeout_ns)
{
    uint64_t m;
    struct want w = {buf, cap, len, missed ? missed : &m, NULL};
    return wait_next(ch, &w, timeout_ns);
}

int shm__bc_read_batch(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *lens,
                       uint32_t max_count, int64_t timeout_ns)
{
    int rc = shm__batch_read_args(buf, cap, lens, max_count);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    uint8_t *dst = buf;
    uint64_t used = 0;
    uint32_t n = 0;
    for (;;) {
        uint64_t len;
        rc = shm__bc_recv(ch, dst ? dst + used : NULL, cap - used, &len, NULL,
                          n == 0 ? timeout_ns : 0);
        if (rc) {
            if (n == 0 && rc == -EMSGSIZE)
                lens[0] = len;
            break;
        }
        lens[n++] = len;
        used += len;
        if (n == max_count)
            break;
    }
    return n ? (int)n : rc;
}

int shm__bc_peek(shm_channel_t *ch, const void **ptr, uint64_t *len, int64_t timeout_ns)
{
    if (!ptr || !len)
        return -EINVAL;
    struct want w = {NULL, 0, len, NULL, ptr};
    return wait_next(ch, &w, timeout_ns);
}

int shm__bc_release(shm_channel_t *ch)
{
    return shm__bcast_release(&ch->bc, &ch->sub);
}

int shm_channel_recv(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
                     uint64_t *missed, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_SUBSCRIBER);
    if (rc)
        return rc;
    if (!len || (!buf && cap))
        return -EINVAL;
    return shm__bc_recv(ch, buf, cap, len, missed, timeout_ns);
}

int shm_channel_read_latest(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
                            int32_t *is_new, uint64_t *missed)
{
    int rc = role_is(ch, SHM_CHANNEL_SUBSCRIBER);
    if (rc)
        return rc;
    if (!len || (!buf && cap))
        return -EINVAL;
    int fresh;
    uint64_t m;
    if ((rc = shm__bcast_latest(&ch->bc, &ch->sub, buf, cap, len, &fresh, &m)) != 0)
        return rc;
    if (is_new)
        *is_new = fresh;
    if (missed)
        *missed = m;
    return 0;
}

int shm_channel_peek_latest(shm_channel_t *ch, const void **ptr, uint64_t *len, int32_t *is_new,
                            uint64_t *missed)
{
    int rc = role_is(ch, SHM_CHANNEL_SUBSCRIBER);
    if (rc)
        return rc;
    if (!ptr || !len)
        return -EINVAL;
    int fresh;
    uint64_t m;
    if ((rc = shm__bcast_peek(&ch->bc, &ch->sub, 1, ptr, len, &m, &fresh)) != 0)
        return rc;
    if (is_new)
        *is_new = fresh;
    if (missed)
        *missed = m;
    return 0;
}

/* ---- inspection ------------------------------------------------------------------- */

static int any_subscriber_alive(shm_channel_t *ch)
{
    if (ch->role == SHM_CHANNEL_SUBSCRIBER)
        return 1;
    /* One F_OFD_GETLK over the whole table: is any entry held? */
    return shm__lock_held_range(ch->seg.fd, SHM__BCAST_LOCK_SUB_BASE,
                                (int)ch->bc.g.max_subscribers) == 1;
}

void shm__bc_stat(shm_channel_t *ch, shm_channel_stat_t *st)
{
    const struct shm__bcast_header *h = ch->bc.hdr;
    const struct shm__bcast_geom *g = &ch->bc.g;
    st->kind = SHM_CHANNEL_KIND_BROADCAST;
    st->layout_major = shm__load_relaxed(&h->layout_major);
    st->layout_minor = shm__load_relaxed(&h->layout_minor);
    st->capacity = g->capacity;
    st->max_payload = g->max_payload;
    st->msgs_written = shm__load_relaxed(&h->msgs_written);
    st->bytes_written = shm__load_relaxed(&h->bytes_written);
    st->producer_wakes = shm__load_relaxed(&h->publisher_wakes);
    st->producer_state = shm__load_relaxed(&h->publisher_state);
    st->producer_epoch = shm__load_relaxed(&h->publisher_epoch);
    st->creator_pid = shm__load_relaxed(&h->creator_pid);
    st->created_ns = shm__load_relaxed(&h->created_ns);
    st->producer_alive = ch->role == SHM_CHANNEL_PUBLISHER ||
                         shm__lock_held(ch->seg.fd, SHM__BCAST_LOCK_PUBLISHER) == 1;
    st->consumer_alive = any_subscriber_alive(ch);
    st->in_use = ch->role != SHM_CHANNEL_OBSERVER ||
                 shm__lock_held(ch->seg.fd, SHM__LOCK_ATTACH) == 1;
}

static int bcast_handle(shm_channel_t *ch)
{
    if (!ch)
        return -EINVAL;
    if (ch->detached)
        return -EBADF;
    return ch->kind == SHM_CHANNEL_KIND_BROADCAST ? 0 : -EPROTOTYPE;
}

int shm_channel_broadcast_stat(shm_channel_t *ch, shm_channel_broadcast_stat_t *st)
{
    int rc = bcast_handle(ch);
    if (rc || !st)
        return rc ? rc : -EINVAL;
    const struct shm__bcast_header *h = ch->bc.hdr;
    const struct shm__bcast_geom *g = &ch->bc.g;
    memset(st, 0, sizeof(*st));
    st->pub_seq = shm__load_acquire(&h->pub_seq);
    st->depth = g->depth;
    st->max_subscribers = g->max_subscribers;
    st->subscribers = shm__load_relaxed(&h->subscribers);
    st->sleepers = shm__load_relaxed(&h->waiting) >> 1; /* bits 1-31: counted in */
    st->joins = shm__load_relaxed(&h->joins);
    st->reclaims = shm__load_relaxed(&h->reclaims);
    st->type_len = g->type_len;
    memcpy(st->type_tag, g->type_tag, g->type_len); /* the private, validated copy */
    return 0;
}

int shm_channel_sub_stat(shm_channel_t *ch, int64_t index, shm_channel_sub_stat_t *st)
{
    int rc = bcast_handle(ch);
    if (rc || !st)
        return rc ? rc : -EINVAL;
    struct shm__bcast *b = &ch->bc;
    memset(st, 0, sizeof(*st));
    if (index < 0) {
        if (index != -1 || ch->role != SHM_CHANNEL_SUBSCRIBER)
            return -EINVAL;
        const struct shm__bcast_sub *s = &ch->sub;
        st->index = s->index;
        st->state = SHM_CHANNEL_PEER_ATTACHED;
        st->alive = 1;
        st->pid = (uint32_t)getpid();
        st->epoch = shm__load_relaxed(&s->entry->epoch);
        st->next_seq = s->next;
        st->delivered = s->delivered;
        st->missed = s->missed;
        st->delivered_bytes = s->delivered_bytes;
        st->lag = shm__bcast_lag(b, s);
        st->sleeps = shm__load_relaxed(&s->entry->sleeps);
        st->last_missed = s->last_reported;
        return 0;
    }
    if ((uint64_t)index >= b->g.max_subscribers)
        return -EINVAL;
    const struct shm__bcast_sub_entry *e = &b->subs[index];
    st->index = (uint32_t)index;
    st->state = shm__load_acquire(&e->state);
    if (st->state == SHM_CHANNEL_PEER_NONE)
        return -ENOENT;
    st->alive = (ch->role == SHM_CHANNEL_SUBSCRIBER && ch->sub.index == (uint32_t)index) ||
                shm__lock_held(ch->seg.fd, SHM__BCAST_LOCK_SUB_BASE + (int)index) == 1;
    st->pid = shm__load_relaxed(&e->pid);
    st->epoch = shm__load_relaxed(&e->epoch);
    st->next_seq = shm__load_relaxed(&e->next_seq);
    st->delivered = shm__load_relaxed(&e->delivered);
    st->missed = shm__load_relaxed(&e->missed);
    st->delivered_bytes = shm__load_relaxed(&e->delivered_bytes);
    st->sleeps = shm__load_relaxed(&e->sleeps);
    uint64_t p = shm__load_relaxed(&b->hdr->pub_seq);
    st->lag = p >= st->next_seq ? p - st->next_seq + 1 : 0;
    return 0;
}
