#include "compat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the compat layout is little-endian; a big-endian port must byte-swap every u32"
#endif

uint32_t shm__compat_capacity_for(uint64_t size)
{
    if (size < SHM__COMPAT_HEADER + SHM__COMPAT_MIN_CAPACITY)
        return 0;
    uint64_t room = size - SHM__COMPAT_HEADER;
    uint64_t cap = SHM__COMPAT_MAX_CAPACITY;
    while (cap > room)
        cap >>= 1;
    return (uint32_t)cap;
}

int shm__compat_format(void *base, size_t len, uint32_t start)
{
    uint32_t cap = shm__compat_capacity_for(len);
    if (!cap)
        return -EINVAL;
    uint8_t *b = base;
    shm__store_relaxed((uint32_t *)(void *)(b + SHM__COMPAT_HEAD_OFF), start);
    shm__store_relaxed((uint32_t *)(void *)(b + SHM__COMPAT_TAIL_OFF), start);
    shm__store_relaxed((uint32_t *)(void *)(b + SHM__COMPAT_RESERVED_OFF), 0u);
    /* Release, capacity last: an opener that sees a non-zero capacity sees the indices. */
    shm__store_release((uint32_t *)(void *)(b + SHM__COMPAT_CAPACITY_OFF), cap);
    return 0;
}

int shm__compat_bind(struct shm__compat *r, void *base, size_t len)
{
    if (len < SHM__COMPAT_HEADER)
        return -EAGAIN;
    uint8_t *b = base;
    uint32_t cap = shm__load_acquire((uint32_t *)(void *)(b + SHM__COMPAT_CAPACITY_OFF));
    if (cap == 0)
        return -EAGAIN;
    if (cap < SHM__COMPAT_MIN_CAPACITY || cap > SHM__COMPAT_MAX_CAPACITY || (cap & (cap - 1)))
        return -EBADMSG;
    if ((uint64_t)len != (uint64_t)cap + SHM__COMPAT_HEADER)
        return -EBADMSG;
    r->head = (uint32_t *)(void *)(b + SHM__COMPAT_HEAD_OFF);
    r->tail = (uint32_t *)(void *)(b + SHM__COMPAT_TAIL_OFF);
    r->data = b + SHM__COMPAT_HEADER;
    r->capacity = cap;
    r->mask = cap - 1;
    return 0;
}

/* Copy n bytes in at ring position pos, split byte by byte at the wrap. */
static void copy_in(const struct shm__compat *r, uint32_t pos, const void *src, uint32_t n)
{
    uint32_t off = pos & r->mask;
    uint32_t first = r->capacity - off < n ? r->capacity - off : n;
    memcpy(r->data + off, src, first);
    memcpy(r->data, (const uint8_t *)src + first, n - first);
}

static void copy_out(const struct shm__compat *r, uint32_t pos, void *dst, uint32_t n)
{
    uint32_t off = pos & r->mask;
    uint32_t first = r->capacity - off < n ? r->capacity - off : n;
    memcpy(dst, r->data + off, first);
    memcpy((uint8_t *)dst + first, r->data, n - first);
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    uint8_t *b = realloc(*buf, need);
    if (!b)
        return -ENOMEM;
    *buf = b;
    *cap = need;
    return 0;
}

/*
 * Load the peer's index with acquire ordering (the peer wrote everything below its head, or
 * read everything below its tail, before storing it) and accept it only when it is in range
 * against our own index: head - tail <= capacity as u32. A Python peer writes its index byte
 * by byte, so we may see a mix of old and new bytes; such a value is at most the true one and
 * is either out of range (re-read) or a smaller, still valid, index. Returns 1 with *out, or
 * 0 when every re-read was out of range. `peer_is_head`: the peer's index is the head.
 */
static int load_peer(const struct shm__compat *r, const uint32_t *word, uint32_t mine,
                     int peer_is_head, uint32_t *out, uint64_t *rereads)
{
    for (uint32_t i = 0; i < SHM__COMPAT_REREADS; i++) {
        uint32_t v = shm__load_acquire(word);
        uint32_t dist = peer_is_head ? v - mine : mine - v;
        if (dist <= r->capacity) {
            *out = v;
            return 1;
        }
        (*rereads)++;
        shm__cpu_relax();
    }
    return 0;
}

/* After a try found the peer's index out of range: count it, report no progress. */
static int bad_try(uint32_t *bad_tries)
{
    if (*bad_tries < UINT32_MAX)
        (*bad_tries)++;
    return -EAGAIN;
}

int shm__compat_producer_attach(const struct shm__compat *r, struct shm__compat_producer *p)
{
    memset(p, 0, sizeof(*p));
    /* Our own index: no other producer writes it. */
    p->head = shm__load_relaxed(r->head);
    if (!load_peer(r, r->tail, p->head, 0, &p->tail_cache, &p->rereads))
        return -EAGAIN;
    return 0;
}

int shm__compat_consumer_attach(const struct shm__compat *r, struct shm__compat_consumer *c)
{
    memset(c, 0, sizeof(*c));
    c->tail = shm__load_relaxed(r->tail);
    if (!load_peer(r, r->head, c->tail, 1, &c->head_cache, &c->rereads))
        return -EAGAIN;
    return 0;
}

void shm__compat_producer_fini(struct shm__compat_producer *p)
{
    free(p->bounce);
    p->bounce = NULL;
    p->bounce_cap = 0;
}

void shm__compat_consumer_fini(struct shm__compat_consumer *c)
{
    free(c->bounce);
    c->bounce = NULL;
    c->bounce_cap = 0;
}

/* Producer: 0 if a record of `total` bytes fits, else -EAGAIN / -EBADMSG. */
static int room_for(const struct shm__compat *r, struct shm__compat_producer *p, uint32_t total)
{
    if (p->head + total - p->tail_cache <= r->capacity)
        return 0;
    uint32_t t;
    if (!load_peer(r, r->tail, p->head, 0, &t, &p->rereads))
        return bad_try(&p->bad_tries);
    p->bad_tries = 0;
    /* Keep the newer of the cached and the loaded tail: a torn load may be an older one. */
    if (p->head - t < p->head - p->tail_cache)
        p->tail_cache = t;
    return p->head + total - p->tail_cache <= r->capacity ? 0 : -EAGAIN;
}

int shm__compat_reserve(const struct shm__compat *r, struct shm__compat_producer *p,
                        uint32_t len, void **ptr)
{
    if (p->reserving)
        return -EBUSY;
    if (len == 0)
        return -EINVAL;
    if (len > r->capacity - SHM__COMPAT_PREFIX)
        return -EMSGSIZE;
    int rc = room_for(r, p, SHM__COMPAT_PREFIX + len);
    if (rc)
        return rc;
    uint32_t off = (p->head + SHM__COMPAT_PREFIX) & r->mask;
    if (off + len <= r->capacity) {
        p->reserve_ptr = r->data + off;
    } else {
        rc = grow(&p->bounce, &p->bounce_cap, len);
        if (rc)
            return rc;
        p->reserve_ptr = p->bounce;
    }
    p->reserve_len = len;
    p->reserving = 1;
    *ptr = p->reserve_ptr;
    return 0;
}

int shm__compat_commit(const struct shm__compat *r, struct shm__compat_producer *p,
                       uint32_t len)
{
    if (!p->reserving || len == 0 || len > p->reserve_len)
        return -EINVAL;
    if (p->reserve_ptr == p->bounce)
        copy_in(r, p->head + SHM__COMPAT_PREFIX, p->bounce, len);
    uint8_t prefix[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                         (uint8_t)(len >> 24)};
    copy_in(r, p->head, prefix, SHM__COMPAT_PREFIX);
    p->head += SHM__COMPAT_PREFIX + len;
    p->reserving = 0;
    /* Release, one aligned 32-bit store: the record is written before the peer sees it, and
     * the peer never sees a torn head from us. */
    shm__store_release(r->head, p->head);
    return 0;
}

int shm__compat_abort(struct shm__compat_producer *p)
{
    if (!p->reserving)
        return -EINVAL;
    p->reserving = 0;
    return 0;
}

int shm__compat_write(const struct shm__compat *r, struct shm__compat_producer *p,
                      const void *buf, uint32_t len)
{
    if (p->reserving)
        return -EBUSY;
    if (len == 0)
        return -EINVAL;
    if (len > r->capacity - SHM__COMPAT_PREFIX)
        return -EMSGSIZE;
    int rc = room_for(r, p, SHM__COMPAT_PREFIX + len);
    if (rc)
        return rc;
    uint8_t prefix[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                         (uint8_t)(len >> 24)};
    copy_in(r, p->head, prefix, SHM__COMPAT_PREFIX);
    copy_in(r, p->head + SHM__COMPAT_PREFIX, buf, len);
    p->head += SHM__COMPAT_PREFIX + len;
    shm__store_release(r->head, p->head); /* as in commit */
    return 0;
}

/* Consumer: 0 if at least `need` bytes are published past our tail, else -EAGAIN/-EBADMSG. */
static int avail_at_least(const struct shm__compat *r, struct shm__compat_consumer *c,
                          uint32_t need)
{
    if (c->head_cache - c->tail >= need)
        return 0;
    uint32_t h;
    if (!load_peer(r, r->head, c->tail, 1, &h, &c->rereads))
        return bad_try(&c->bad_tries);
    c->bad_tries = 0;
    /* Keep the newer of the cached and the loaded head: a torn load may be an older one,
     * and never a newer one than the producer published. */
    if (h - c->tail > c->head_cache - c->tail)
        c->head_cache = h;
    return c->head_cache - c->tail >= need ? 0 : -EAGAIN;
}

/* Consumer: the length of the complete record at our tail. 0, -EAGAIN, -EBADMSG. */
static int next_record(const struct shm__compat *r, struct shm__compat_consumer *c,
                       uint32_t *len)
{
    int rc = avail_at_least(r, c, SHM__COMPAT_PREFIX);
    if (rc)
        return rc;
    uint8_t prefix[4];
    copy_out(r, c->tail, prefix, SHM__COMPAT_PREFIX);
    uint32_t n = (uint32_t)prefix[0] | (uint32_t)prefix[1] << 8 | (uint32_t)prefix[2] << 16 |
                 (uint32_t)prefix[3] << 24;
    if (n > r->capacity - SHM__COMPAT_PREFIX)
        return -EBADMSG;
    rc = avail_at_least(r, c, SHM__COMPAT_PREFIX + n);
    if (rc)
        return rc;
    *len = n;
    return 0;
}

int shm__compat_peek(const struct shm__compat *r, struct shm__compat_consumer *c,
                     const void **ptr, uint32_t *len)
{
    if (c->peeking) {
        *ptr = c->peek_ptr;
        *len = c->peek_len;
        return 0;
    }
    uint32_t n;
    int rc = next_record(r, c, &n);
    if (rc)
        return rc;
    uint32_t off = (c->tail + SHM__COMPAT_PREFIX) & r->mask;
    if (off + n <= r->capacity) {
        c->peek_ptr = r->data + off;
    } else {
        rc = grow(&c->bounce, &c->bounce_cap, n);
        if (rc)
            return rc;
        copy_out(r, c->tail + SHM__COMPAT_PREFIX, c->bounce, n);
        c->peek_ptr = c->bounce;
    }
    c->peek_len = n;
    c->peeking = 1;
    *ptr = c->peek_ptr;
    *len = n;
    return 0;
}

int shm__compat_release(const struct shm__compat *r, struct shm__compat_consumer *c)
{
    if (!c->peeking)
        return -EINVAL;
    c->tail += SHM__COMPAT_PREFIX + c->peek_len;
    c->peeking = 0;
    /* Release, one aligned 32-bit store: our reads of the record are done before the
     * producer may overwrite it. */
    shm__store_release(r->tail, c->tail);
    return 0;
}

int shm__compat_read(const struct shm__compat *r, struct shm__compat_consumer *c, void *buf,
                     uint32_t cap, uint32_t *len)
{
    if (!c->peeking) {
        uint32_t n;
        int rc = next_record(r, c, &n);
        if (rc)
            return rc;
        *len = n;
        if (n > cap)
            return -EMSGSIZE;
        if (n)
            copy_out(r, c->tail + SHM__COMPAT_PREFIX, buf, n);
        c->tail += SHM__COMPAT_PREFIX + n;
        shm__store_release(r->tail, c->tail); /* as in release */
        return 0;
    }
    /* A record already peeked: copy it from where peek put it. */
    *len = c->peek_len;
    if (c->peek_len > cap)
        return -EMSGSIZE;
    if (c->peek_len)
        memcpy(buf, c->peek_ptr, c->peek_len);
    return shm__compat_release(r, c);
}

uint64_t shm__compat_backoff(uint64_t *state, uint64_t waited_ns, uint64_t spin_ns)
{
    if (waited_ns < spin_ns)
        return 0;
    uint64_t s = *state ? *state * 2 : SHM__COMPAT_SLEEP_MIN_NS;
    if (s > SHM__COMPAT_SLEEP_MAX_NS)
        s = SHM__COMPAT_SLEEP_MAX_NS;
    *state = s;
    return s;
}

int shm__compat_streak(uint32_t bad_tries, uint64_t *since_ns, uint64_t now_ns)
{
    if (!bad_tries) {
        *since_ns = 0;
        return 0;
    }
    if (!*since_ns)
        *since_ns = now_ns;
    return now_ns - *since_ns >= SHM__COMPAT_BAD_NS ? -EBADMSG : 0;
}
