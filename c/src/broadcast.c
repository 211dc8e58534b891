/* The broadcast algorithm over a plain buffer (spec/broadcast.md). Every shared word is
 * read once into a local and checked there; every loop is bounded. */
#define _GNU_SOURCE /* strnlen, EMEDIUMTYPE */
#include "broadcast.h"

#include <errno.h>
#include <string.h>

#include "atomics.h"
#include "handshake.h"
#include "segment.h"
#include "shm_channel.h"

void (*shm__bcast_hook_after_copy)(void *arg);
void (*shm__bcast_hook_before_wake_check)(void *arg);
void (*shm__bcast_hook_after_register)(void *arg);
void *shm__bcast_hook_arg;
int shm__bcast_hook_membarrier_publisher;

/* Under ThreadSanitizer the payload copies race with the publisher by design (a seqlock:
 * a racing copy is detected and discarded). TSan cannot know that, so there the copies are
 * made of relaxed 8-byte atomic accesses, which it does model; elsewhere they are memcpy. */
#if defined(__SANITIZE_THREAD__)
#define BCAST_ATOMIC_COPY 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BCAST_ATOMIC_COPY 1
#endif
#endif

static uint64_t align_up(uint64_t n, uint64_t a)
{
    return (n + a - 1) & ~(a - 1);
}

/* Copy out of a slot payload (8-byte aligned; the slot has room for the whole last word). */
static void copy_out(void *dst, const uint8_t *src, uint64_t n)
{
    if (n == 0)
        return;
#ifdef BCAST_ATOMIC_COPY
    const uint64_t *w = (const uint64_t *)(const void *)src;
    uint8_t *d = dst;
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = shm__load_relaxed(&w[i / 8]);
        memcpy(d + i, &v, 8);
    }
    if (i < n) {
        uint64_t v = shm__load_relaxed(&w[i / 8]);
        memcpy(d + i, &v, n - i);
    }
#else
    memcpy(dst, src, n);
#endif
}

/* Copy into a slot payload (8-byte aligned, room for the whole last word). */
static void copy_in(uint8_t *dst, const void *src, uint64_t n)
{
    if (n == 0)
        return;
#ifdef BCAST_ATOMIC_COPY
    uint64_t *w = (uint64_t *)(void *)dst;
    const uint8_t *s = src;
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        shm__store_relaxed(&w[i / 8], v);
    }
    if (i < n) {
        uint64_t v = 0;
        memcpy(&v, s + i, n - i);
        shm__store_relaxed(&w[i / 8], v);
    }
#else
    memcpy(dst, src, n);
#endif
}

static int tag_ok(const uint8_t *t, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (t[i] < 0x20 || t[i] > 0x7e)
            return 0;
    return 1;
}

static int derive(struct shm__bcast_geom *g, uint64_t max_payload, uint32_t depth,
                  uint32_t max_subscribers)
{
    if (max_payload < 1 || max_payload > SHM__BCAST_MAX_PAYLOAD)
        return -1;
    if (depth < SHM__BCAST_MIN_DEPTH || depth > SHM__BCAST_MAX_DEPTH)
        return -1;
    if (max_subscribers < 1 || max_subscribers > SHM__BCAST_MAX_SUBS)
        return -1;
    g->max_payload = max_payload;
    g->depth = depth;
    g->max_subscribers = max_subscribers;
    g->slot_stride = align_up(SHM__BCAST_SLOT_HEADER + max_payload, SHM__BCAST_SLOT_ALIGN);
    g->slots_offset = SHM__BCAST_SUBS_OFFSET +
                      align_up((uint64_t)max_subscribers * SHM__BCAST_SUB_SIZE, 4096);
    g->capacity = (uint64_t)depth * g->slot_stride; /* < 2^24 * 2^32: no overflow */
    g->segment_size = g->slots_offset + g->capacity;
    if (g->segment_size > SHM__BCAST_MAX_SEGMENT)
        return -1;
    return 0;
}

int shm__bcast_geometry(struct shm__bcast_geom *g, uint64_t max_payload, uint32_t depth,
                        uint32_t max_subscribers, const char *type_tag)
{
    memset(g, 0, sizeof(*g));
    if (derive(g, max_payload ? max_payload : SHM__BCAST_DEFAULT_PAYLOAD,
               depth ? depth : SHM__BCAST_DEFAULT_DEPTH,
               max_subscribers ? max_subscribers : SHM__BCAST_DEFAULT_SUBS))
        return -EINVAL;
    if (type_tag) {
        size_t n = strnlen(type_tag, SHM__BCAST_TAG_MAX + 1);
        if (n > SHM__BCAST_TAG_MAX || !tag_ok((const uint8_t *)type_tag, n))
            return -EINVAL;
        memcpy(g->type_tag, type_tag, n);
        g->type_len = (uint32_t)n;
    }
    return 0;
}

void shm__bcast_format(void *base, const struct shm__bcast_geom *g, uint32_t creator_pid,
                       uint64_t created_ns)
{
    struct shm__bcast_header *h = base;
    h->layout_major = SHM_CHANNEL_LAYOUT_MAJOR;
    h->layout_minor = SHM__BCAST_LAYOUT_MINOR;
    h->kind = SHM__KIND_BROADCAST;
    h->header_size = SHM_CHANNEL_HEADER_SIZE;
    h->capacity = g->capacity;
    h->max_payload = g->max_payload;
    h->segment_size = g->segment_size;
    h->created_ns = created_ns;
    h->creator_pid = creator_pid;
    h->slot_stride = g->slot_stride;
    h->depth = g->depth;
    h->max_subscribers = g->max_subscribers;
    h->subs_offset = SHM__BCAST_SUBS_OFFSET;
    h->slots_offset = g->slots_offset;
    h->type_len = g->type_len;
    memcpy(h->type_tag, g->type_tag, g->type_len);
    /* Magic last: an opener that sees it sees every field above (spec §5.1). */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(h->magic, SHM__MAGIC, 8);
}

int shm__bcast_validate(const void *base, uint64_t file_size, struct shm__bcast_geom *g)
{
    const struct shm__bcast_header *h = base;
    int rc = shm__identity_check(base, file_size, SHM__KIND_BROADCAST);
    if (rc)
        return rc;
    uint32_t header_size = shm__load_relaxed(&h->header_size);
    uint64_t capacity = shm__load_relaxed(&h->capacity);
    uint64_t max_payload = shm__load_relaxed(&h->max_payload);
    uint64_t segment_size = shm__load_relaxed(&h->segment_size);
    uint64_t slot_stride = shm__load_relaxed(&h->slot_stride);
    uint32_t depth = shm__load_relaxed(&h->depth);
    uint32_t max_subs = shm__load_relaxed(&h->max_subscribers);
    uint64_t subs_offset = shm__load_relaxed(&h->subs_offset);
    uint64_t slots_offset = shm__load_relaxed(&h->slots_offset);
    uint32_t type_len = shm__load_relaxed(&h->type_len);
    struct shm__bcast_geom d;
    memset(&d, 0, sizeof d);
    if (header_size != SHM_CHANNEL_HEADER_SIZE || subs_offset != SHM__BCAST_SUBS_OFFSET)
        return -EBADMSG;
    if (derive(&d, max_payload, depth, max_subs))
        return -EBADMSG;
    if (slot_stride != d.slot_stride || slots_offset != d.slots_offset ||
        capacity != d.capacity || segment_size != d.segment_size)
        return -EBADMSG;
    if (type_len > SHM__BCAST_TAG_MAX)
        return -EBADMSG;
    for (uint32_t i = 0; i < type_len; i++)
        d.type_tag[i] = (char)shm__load_relaxed(&h->type_tag[i]);
    if (!tag_ok((const uint8_t *)d.type_tag, type_len))
        return -EBADMSG;
    d.type_len = type_len;
    if (file_size < segment_size)
        return -EBADMSG;
    *g = d;
    return 0;
}

int shm__bcast_check_type(const struct shm__bcast_geom *g, const char *want)
{
    if (!want || !*want)
        return 0;
    size_t n = strnlen(want, SHM__BCAST_TAG_MAX + 1);
    if (n != g->type_len || memcmp(want, g->type_tag, n) != 0)
        return -EMEDIUMTYPE;
    return 0;
}

void shm__bcast_bind(struct shm__bcast *b, void *base, const struct shm__bcast_geom *g)
{
    b->hdr = base;
    b->subs = (struct shm__bcast_sub_entry *)(void *)((uint8_t *)base + SHM__BCAST_SUBS_OFFSET);
    b->slots = (uint8_t *)base + g->slots_offset;
    b->g = *g;
    b->depth_mask = (g->depth & (g->depth - 1)) == 0 ? g->depth - 1 : 0;
}

static struct shm__bcast_slot *slot_of(const struct shm__bcast *b, uint64_t m)
{
    uint64_t i = b->depth_mask ? (m & b->depth_mask) : (m % b->g.depth);
    return (struct shm__bcast_slot *)(void *)(b->slots + i * b->g.slot_stride);
}

static uint8_t *payload_of(struct shm__bcast_slot *sl)
{
    return (uint8_t *)sl + SHM__BCAST_SLOT_HEADER;
}

/* ---- publisher ---------------------------------------------------------------------- */

#define WAIT_OWED 1u  /* bit 0 of waiting: a wake is owed */
#define WAIT_ONE 2u   /* one subscriber counted in, in bits 1-31 */

int shm__bcast_pub_attach(struct shm__bcast *b, struct shm__bcast_pub *p)
{
    return shm__bcast_pub_attach_hs(b, p, SHM__HS_FENCE);
}

int shm__bcast_pub_attach_hs(struct shm__bcast *b, struct shm__bcast_pub *p, uint32_t hs)
{
    struct shm__bcast_header *h = b->hdr;
    memset(p, 0, sizeof(*p));
    /* Continue after the last published message. A message a dead predecessor was
     * writing (or had committed but not published) is written again under its number. */
    p->seq = shm__load_acquire(&h->pub_seq);
    if (p->seq > SHM__BCAST_MAX_SEQ)
        return -EBADMSG;
    p->hs = hs;
    /* The handshake word before the fence below: a sleeper that registered before that
     * fence is woken here; one that registers after it sees the word (spec §5.7). */
    shm__hs_advertise(&h->publisher_handshake, hs);
    shm__store_relaxed(&h->publisher_epoch, shm__load_relaxed(&h->publisher_epoch) + 1);
    shm__store_release(&h->publisher_state, (uint32_t)SHM_CHANNEL_PEER_ATTACHED);
    /* A predecessor killed between taking a wake and making it (§5.7 P4-P6) leaves
     * sleepers whose wake is gone: if any subscriber is counted in, wake everyone once. */
    shm__fence_seq_cst();
    p->attach_wake = shm__load_relaxed(&h->waiting) >= WAIT_ONE;
    if (p->attach_wake) {
        shm__store_release(&h->notify_seq, shm__load_relaxed(&h->notify_seq) + 1);
        shm__counter_add(&h->publisher_wakes, 1);
    }
    return 0;
}

int shm__bcast_reserve(struct shm__bcast *b, struct shm__bcast_pub *p, uint64_t len,
                       void **ptr)
{
    if (p->reserving || p->committed)
        return -EBUSY;
    if (len > b->g.max_payload)
        return -EMSGSIZE;
    if (p->seq >= SHM__BCAST_MAX_SEQ)
        return -EOVERFLOW; /* 2^63 - 2 messages: never in practice */
    uint64_t m = p->seq + 1;
    struct shm__bcast_slot *sl = slot_of(b, m);
    /* Release: a reader that sees this stamp also sees pub_seq = m - 1 (spec §5.3 step 2).
     * Then a release fence: the stamp is ordered before every payload store, so a reader
     * whose copy saw a new byte sees a changed stamp on its re-check. */
    shm__store_release(&sl->stamp, 2 * m + 1);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    p->reserving = 1;
    p->reserve_len = len;
    *ptr = payload_of(sl);
    return 0;
}

int shm__bcast_commit(struct shm__bcast *b, struct shm__bcast_pub *p, uint64_t len)
{
    if (!p->reserving || len > p->reserve_len)
        return -EINVAL;
    uint64_t m = p->seq + 1;
    struct shm__bcast_slot *sl = slot_of(b, m);
    shm__store_relaxed(&sl->length, (uint32_t)len);
    /* Release: length and payload are written before the slot reads as complete. */
    shm__store_release(&sl->stamp, 2 * m);
    p->reserving = 0;
    p->committed = 1;
    p->committed_len = len;
    return 0;
}

int shm__bcast_abort(struct shm__bcast_pub *p)
{
    if (!p->reserving)
        return -EINVAL;
    p->reserving = 0; /* the slot keeps its odd stamp: its old message is gone */
    return 0;
}

/* After a store readers wait for (a slot's stamp and pub_seq, or publisher_state): order
 * it before the load of the waiting word, then load it (the mirror of
 * shm__bcast_wait_prepare, spec §5.7 steps P2-P5). `fence`: a full fence; else only the
 * compiler is kept from moving the load up, and every sleeper issues a membarrier instead
 * (the publisher advertised SHM__HS_MEMBARRIER). A wake is taken only if one is owed, so
 * there is at most one wake call per sleep episode, and none while no subscriber has counted
 * in since the last one. */
static int wake_needed(struct shm__bcast_header *h, int fence)
{
    if (shm__bcast_hook_before_wake_check)
        shm__bcast_hook_before_wake_check(shm__bcast_hook_arg);
    if (fence)
        shm__fence_seq_cst();
    else
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if ((shm__load_relaxed(&h->waiting) & WAIT_OWED) == 0)
        return 0;
    /* Take the owed wake. Only the taker wakes; it changes notify_seq AFTER taking, so a
     * sleeper whose registration it took loaded `seen` before that change. */
    if ((__atomic_fetch_and(&h->waiting, ~WAIT_OWED, __ATOMIC_SEQ_CST) & WAIT_OWED) == 0)
        return 0;
    shm__store_release(&h->notify_seq, shm__load_relaxed(&h->notify_seq) + 1);
    shm__counter_add(&h->publisher_wakes, 1);
    return 1;
}

int shm__bcast_publish(struct shm__bcast *b, struct shm__bcast_pub *p)
{
    struct shm__bcast_header *h = b->hdr;
    if (!p->committed)
        return 0;
    shm__counter_add(&h->msgs_written, 1);
    shm__counter_add(&h->bytes_written, p->committed_len);
    p->seq++;
    p->committed = 0;
    /* Release: the complete slot is visible before its number is. */
    shm__store_release(&h->pub_seq, p->seq);
    return wake_needed(h, p->hs != SHM__HS_MEMBARRIER);
}

int shm__bcast_write(struct shm__bcast *b, struct shm__bcast_pub *p, const void *data,
                     uint64_t len)
{
    void *ptr;
    int rc = shm__bcast_reserve(b, p, len, &ptr);
    if (rc)
        return rc;
    copy_in(ptr, data, len);
    shm__bcast_commit(b, p, len);
    return shm__bcast_publish(b, p);
}

int shm__bcast_pub_close(struct shm__bcast *b, struct shm__bcast_pub *p)
{
    struct shm__bcast_header *h = b->hdr;
    if (p->reserving)
        shm__bcast_abort(p);
    if (p->committed)
        shm__bcast_publish(b, p);
    /* Fence-only from here (spec §5.8): whoever publishes next, of either kind, is never
     * taken for a membarrier publisher; this close's own wake check fences. */
    shm__hs_advertise(&h->publisher_handshake, SHM__HS_FENCE);
    shm__store_release(&h->publisher_state, (uint32_t)SHM_CHANNEL_PEER_CLOSED);
    return wake_needed(h, 1);
}

/* ---- subscriber --------------------------------------------------------------------- */

/* Decrement a shared count unless it is zero (a hostile writer may have zeroed it). */
static void count_down(uint32_t *c)
{
    uint32_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
    for (int i = 0; i < 1000 && v != 0; i++)
        if (__atomic_compare_exchange_n(c, &v, v - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return;
}

/* Count one subscriber out of waiting (§5.7 S6): the last one out (count 0) also clears
 * an owed wake, in the same atomic step, since nobody is left to need it. Never below 0. */
static void wait_uncount(uint32_t *w)
{
    uint32_t v = __atomic_load_n(w, __ATOMIC_RELAXED);
    for (int i = 0; i < 1000 && v >= WAIT_ONE; i++) {
        uint32_t nv = v - WAIT_ONE;
        if (nv < WAIT_ONE)
            nv = 0;
        if (__atomic_compare_exchange_n(w, &v, nv, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return;
    }
}

int shm__bcast_reclaim(struct shm__bcast *b, uint32_t index)
{
    struct shm__bcast_header *h = b->hdr;
    if (index >= b->g.max_subscribers)
        return 0;
    struct shm__bcast_sub_entry *e = &b->subs[index];
    if (shm__load_acquire(&e->state) != SHM_CHANNEL_PEER_ATTACHED)
        return 0;
    if (__atomic_exchange_n(&e->sleeping, 0, __ATOMIC_SEQ_CST) != 0)
        wait_uncount(&h->waiting);
    count_down(&h->subscribers);
    shm__store_release(&e->state, (uint32_t)SHM_CHANNEL_PEER_CLOSED);
    __atomic_fetch_add(&h->reclaims, 1, __ATOMIC_RELAXED);
    return 1;
}

static void sync_entry(struct shm__bcast_sub *s)
{
    struct shm__bcast_sub_entry *e = s->entry;
    shm__store_relaxed(&e->next_seq, s->next);
    shm__store_relaxed(&e->delivered, s->delivered);
    shm__store_relaxed(&e->missed, s->missed);
    shm__store_relaxed(&e->delivered_bytes, s->delivered_bytes);
}

int shm__bcast_sub_join(struct shm__bcast *b, struct shm__bcast_sub *s, uint32_t index,
                        uint32_t pid)
{
    struct shm__bcast_header *h = b->hdr;
    if (index >= b->g.max_subscribers)
        return -EINVAL;
    int reclaimed = shm__bcast_reclaim(b, index);
    memset(s, 0, sizeof(*s));
    s->index = index;
    s->entry = &b->subs[index];
    struct shm__bcast_sub_entry *e = s->entry;
    shm__store_relaxed(&e->sleeping, 0u);
    shm__store_relaxed(&e->sleeps, 0);
    shm__store_relaxed(&e->pid, pid);
    shm__store_relaxed(&e->epoch, shm__load_relaxed(&e->epoch) + 1);
    uint64_t p = shm__load_acquire(&h->pub_seq);
    s->pub_seen = p;
    s->next = p ? p : 1; /* the latest message first, at once */
    sync_entry(s);
    shm__store_release(&e->state, (uint32_t)SHM_CHANNEL_PEER_ATTACHED);
    __atomic_fetch_add(&h->subscribers, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&h->joins, 1, __ATOMIC_RELAXED);
    return reclaimed;
}

void shm__bcast_sub_rewind(struct shm__bcast *b, struct shm__bcast_sub *s)
{
    uint64_t p = s->pub_seen;
    s->next = p >= b->g.depth ? p - b->g.depth + 1 : 1;
    sync_entry(s);
}

void shm__bcast_sub_leave(struct shm__bcast *b, struct shm__bcast_sub *s)
{
    struct shm__bcast_header *h = b->hdr;
    struct shm__bcast_sub_entry *e = s->entry;
    s->peeking = 0;
    sync_entry(s);
    if (__atomic_exchange_n(&e->sleeping, 0, __ATOMIC_SEQ_CST) != 0)
        wait_uncount(&h->waiting);
    shm__store_release(&e->state, (uint32_t)SHM_CHANNEL_PEER_CLOSED);
    count_down(&h->subscribers);
}

/* pub_seq with acquire: every message up to it is complete in its slot (or already
 * overwritten by a later one). It never goes back; if it does, the segment is corrupt. */
static int load_pub(const struct shm__bcast *b, struct shm__bcast_sub *s, uint64_t *out)
{
    uint64_t p = shm__load_acquire(&b->hdr->pub_seq);
    if (p < s->pub_seen || p > SHM__BCAST_MAX_SEQ)
        return -EBADMSG;
    s->pub_seen = p;
    *out = p;
    return 0;
}

#define R_OK 0
#define R_LAPPED 1
#define R_TOOSMALL 2

/* A slot that should hold published message m holds stamp st != 2m instead. Legitimate
 * only if a later message n of the same slot is being written or complete, with n at most
 * one past the newest published: then R_LAPPED and *lap = n. Else -EBADMSG. */
static int classify(const struct shm__bcast *b, struct shm__bcast_sub *s, uint64_t m,
                    uint64_t st, uint64_t *lap)
{
    uint64_t n = st >> 1;
    if (n <= m || (n - m) % b->g.depth != 0)
        return -EBADMSG;
    uint64_t p;
    int rc = load_pub(b, s, &p);
    if (rc)
        return rc;
    /* Acquire on the stamp (it was stored with release after pub_seq = n - 1) makes this
     * load see at least n - 1. */
    if (n > p + 1)
        return -EBADMSG;
    *lap = n;
    return R_LAPPED;
}

/* Read published message m (m <= pub_seq, loaded with acquire): copy it into buf (cap
 * bytes), or, with view != NULL, hand out a pointer to it. */
static int read_slot_at(const struct shm__bcast *b, struct shm__bcast_sub *s, uint64_t m,
                        uint64_t st1, void *buf, uint64_t cap, const uint8_t **view,
                        uint64_t *len, uint64_t *lap)
{
    struct shm__bcast_slot *sl = slot_of(b, m);
    if (st1 != 2 * m)
        return classify(b, s, m, st1, lap);
    uint64_t l = shm__load_relaxed(&sl->length);
    int fits = l <= b->g.max_payload && (view || l <= cap);
    if (fits) {
        if (view) {
            *view = payload_of(sl);
        } else {
            copy_out(buf, payload_of(sl), l);
            if (shm__bcast_hook_after_copy)
                shm__bcast_hook_after_copy(shm__bcast_hook_arg);
        }
    }
    /* Acquire fence, then the stamp again: if any byte we read came from a later write,
     * the stamp that write began with is visible now (spec §5.4 step 4). */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    /* Acquire here too: if st2 names a later message, classify's load of pub_seq must see
     * what preceded that stamp (spec §6 (c)). */
    uint64_t st2 = shm__load_acquire(&sl->stamp);
    if (st2 != st1)
        return classify(b, s, m, st2, lap);
    if (l > b->g.max_payload)
        return -EBADMSG;
    *len = l;
    return fits ? R_OK : R_TOOSMALL;
}

static int read_slot(const struct shm__bcast *b, struct shm__bcast_sub *s, uint64_t m,
                     void *buf, uint64_t cap, const uint8_t **view, uint64_t *len,
                     uint64_t *lap)
{
    /* Acquire: the length and payload of the message with this stamp are visible. */
    uint64_t st1 = shm__load_acquire(&slot_of(b, m)->stamp);
    return read_slot_at(b, s, m, st1, buf, cap, view, len, lap);
}

/* The next message, loading pub_seq only when this subscriber has caught up with the last
 * value it loaded (spec §5.4 step 0): a subscriber that is behind reads the messages it
 * knows are published by their stamps alone, so it adds no load of the line the publisher
 * writes on every publish; one that has caught up waits on pub_seq, written once per
 * message, rather than on the slot, which the publisher writes several times per message.
 * R_OK / R_TOOSMALL / -errno as read_slot; -EAGAIN: nothing new; R_SLOW: lapped or
 * corrupt, the full procedure decides. *tried: a copy was made (one of the passes). */
#define R_SLOW 3
static int next_fast(const struct shm__bcast *b, struct shm__bcast_sub *s, void *buf,
                     uint64_t cap, const uint8_t **view, uint64_t *len, int *tried)
{
    uint64_t n = s->next, lap = 0;
    if (n > s->pub_seen) {
        uint64_t p;
        int rc = load_pub(b, s, &p);
        if (rc)
            return rc;
        if (n > p)
            return -EAGAIN;
    }
    /* n <= a pub_seq loaded with acquire: the stamp is 2n or a later message's (§6 (a)). */
    uint64_t st = shm__load_acquire(&slot_of(b, n)->stamp);
    if (st != 2 * n)
        return R_SLOW;
    *tried = 1;
    int rc = read_slot_at(b, s, n, st, buf, cap, view, len, &lap);
    return rc == R_LAPPED ? R_SLOW : rc;
}

static void skip(struct shm__bcast_sub *s, uint64_t k)
{
    s->next += k;
    s->missed += k;
    s->last_missed += k; /* pending until the next delivery reports it */
}

static void deliver(struct shm__bcast_sub *s, uint64_t m, uint64_t len, uint64_t *missed)
{
    *missed = s->last_missed;
    s->last_reported = *missed;
    s->last_missed = 0;
    s->next = m + 1;
    s->delivered++;
    s->delivered_bytes += len;
    sync_entry(s);
}

/* Find and read the next message (latest = 0) or the newest (latest = 1). On success
 * *seq is its number; the caller accounts for it. */
static int locate(struct shm__bcast *b, struct shm__bcast_sub *s, int latest, void *buf,
                  uint64_t cap, const uint8_t **view, uint64_t *len, uint64_t *seq)
{
    int tries = 0;
    if (!latest) {
        int rc = next_fast(b, s, buf, cap, view, len, &tries);
        if (rc == R_OK) {
            *seq = s->next;
            return 0;
        }
        if (rc == R_TOOSMALL)
            return -EMSGSIZE;
        if (rc != R_SLOW)
            return rc;
    }
    for (; tries < SHM__BCAST_MAX_TRIES; tries++) {
        uint64_t p, lap = 0;
        int rc = load_pub(b, s, &p);
        if (rc)
            return rc;
        uint64_t m;
        if (latest) {
            if (p == 0)
                return -EAGAIN;
            m = p;
        } else {
            if (s->next > p)
                return -EAGAIN;
            uint64_t oldest = p >= b->g.depth ? p - b->g.depth + 1 : 1;
            if (s->next < oldest)
                skip(s, oldest - s->next);
            m = s->next;
        }
        rc = read_slot(b, s, m, buf, cap, view, len, &lap);
        if (rc == R_OK) {
            *seq = m;
            return 0;
        }
        if (rc == R_TOOSMALL)
            return -EMSGSIZE;
        if (rc != R_LAPPED)
            return rc;
        /* Message lap (> m, same slot) has begun: lap - depth + 1 .. lap - 1 are intact. */
        if (!latest && lap - b->g.depth + 1 > s->next)
            skip(s, lap - b->g.depth + 1 - s->next);
    }
    return -EAGAIN;
}

/* Account for reading message m as "latest": is it new, and what was skipped to get to it. */
static void take_latest(struct shm__bcast_sub *s, uint64_t m, uint64_t len, int *is_new,
                        uint64_t *missed)
{
    if (m >= s->next) {
        skip(s, m - s->next);
        deliver(s, m, len, missed);
        *is_new = 1;
    } else {
        *missed = 0;
        *is_new = 0;
    }
}

int shm__bcast_next(struct shm__bcast *b, struct shm__bcast_sub *s, void *buf, uint64_t cap,
                    uint64_t *len, uint64_t *missed)
{
    uint64_t m;
    if (s->peeking)
        return -EBUSY;
    int rc = locate(b, s, 0, buf, cap, NULL, len, &m);
    if (rc) {
        sync_entry(s);
        return rc;
    }
    deliver(s, m, *len, missed);
    return 0;
}

int shm__bcast_latest(struct shm__bcast *b, struct shm__bcast_sub *s, void *buf, uint64_t cap,
                      uint64_t *len, int *is_new, uint64_t *missed)
{
    uint64_t m;
    if (s->peeking)
        return -EBUSY;
    int rc = locate(b, s, 1, buf, cap, NULL, len, &m);
    if (rc)
        return rc;
    take_latest(s, m, *len, is_new, missed);
    return 0;
}

int shm__bcast_peek(struct shm__bcast *b, struct shm__bcast_sub *s, int latest,
                    const void **ptr, uint64_t *len, uint64_t *missed, int *is_new)
{
    if (s->peeking) { /* the same view, with the same report */
        *ptr = s->peek_ptr;
        *len = s->peek_len;
        *missed = s->peek_missed;
        if (is_new)
            *is_new = s->peek_seq >= s->next;
        return 0;
    }
    const uint8_t *view = NULL;
    uint64_t m;
    int rc = locate(b, s, latest, NULL, 0, &view, len, &m);
    if (rc) {
        sync_entry(s);
        return rc;
    }
    int fresh = m >= s->next;
    if (fresh) {
        skip(s, m - s->next);
        *missed = s->last_missed;
        s->last_reported = *missed;
        s->last_missed = 0;
        sync_entry(s);
    } else {
        *missed = 0;
    }
    if (is_new)
        *is_new = fresh;
    s->peeking = 1;
    s->peek_missed = *missed;
    s->peek_seq = m;
    s->peek_len = *len;
    s->peek_ptr = view;
    *ptr = view;
    return 0;
}

int shm__bcast_release(struct shm__bcast *b, struct shm__bcast_sub *s)
{
    if (!s->peeking)
        return -EINVAL;
    uint64_t m = s->peek_seq;
    s->peeking = 0;
    /* Acquire fence: the caller's reads of the view are done before the stamp is read;
     * if the publisher had begun to overwrite any byte they saw, its stamp shows now. */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    int intact = shm__load_relaxed(&slot_of(b, m)->stamp) == 2 * m;
    if (m < s->next) /* a latest view of a message delivered before: no new accounting */
        return intact ? 0 : -ESTALE;
    s->next = m + 1;
    if (intact) {
        s->delivered++;
        s->delivered_bytes += s->peek_len;
    } else {
        s->missed++;
    }
    sync_entry(s);
    return intact ? 0 : -ESTALE;
}

uint32_t shm__bcast_wait_prepare(struct shm__bcast *b, struct shm__bcast_sub *s)
{
    struct shm__bcast_header *h = b->hdr;
    struct shm__bcast_sub_entry *e = s->entry;
    /* S1: seen BEFORE the registration: a publisher that takes this registration changes
     * notify_seq after taking it, so seen is older than that change. */
    uint32_t seen = shm__load_acquire(&h->notify_seq);
    /* S2: count in, then mark a wake as owed, before EVERY sleep: the publisher may have
     * taken (and spent) an earlier registration. Count before mark: once marked, the count
     * includes this subscriber, so no other subscriber's count-out (S6) can clear the mark.
     * Then the entry's flag: a subscriber killed in between leaves the count one too high
     * (corrected when its entry is reclaimed), never too low. */
    __atomic_fetch_add(&h->waiting, WAIT_ONE, __ATOMIC_SEQ_CST);
    __atomic_fetch_or(&h->waiting, WAIT_OWED, __ATOMIC_SEQ_CST);
    shm__store_relaxed(&e->sleeping, 1u);
    shm__counter_add(&e->sleeps, 1);
    if (shm__bcast_hook_after_register)
        shm__bcast_hook_after_register(shm__bcast_hook_arg);
    /* S3: store waiting, then load pub_seq / publisher_state (the caller's re-check, S4):
     * the publisher does the mirror image, so one of us sees the other. */
    shm__fence_seq_cst();
    return seen;
}

void shm__bcast_wait_done(struct shm__bcast *b, struct shm__bcast_sub *s)
{
    /* S6. Flag first, count out second (the reverse of wait_prepare). */
    shm__store_relaxed(&s->entry->sleeping, 0u);
    wait_uncount(&b->hdr->waiting);
}

/* ---- the wake chain (spec §5.7 S5, P5) ---------------------------------------------- */

/* One bit per value of notify_seq modulo 32: the sleepers of a value are a chain of their
 * own, which the sleepers of the next values (other bits) cannot take links of. */
uint32_t shm__bcast_chain_bits(uint32_t seen)
{
    return 1u << (seen & 31u);
}

/* The bits of the sleepers the publisher's last P4 is for: those that loaded the value it
 * replaced. notify_seq is the publisher's own word (it alone stores it), so this load reads
 * its own last store. */
uint32_t shm__bcast_pub_wake_bits(const struct shm__bcast *b)
{
    return shm__bcast_chain_bits(shm__load_relaxed(&b->hdr->notify_seq) - 1u);
}

uint32_t shm__bcast_publisher_state(const struct shm__bcast *b)
{
    return shm__load_acquire(&b->hdr->publisher_state);
}

uint64_t shm__bcast_lag(const struct shm__bcast *b, const struct shm__bcast_sub *s)
{
    uint64_t p = shm__load_relaxed(&b->hdr->pub_seq);
    return p >= s->next ? p - s->next + 1 : 0;
}
