#include "ring.h"

#include <errno.h>
#include <string.h>

#include "atomics.h"
#include "handshake.h"
#include "segment.h"
#include "shm_channel.h"

void shm__ring_format(struct shm__header *h, uint64_t capacity, uint32_t creator_pid,
                      uint64_t created_ns)
{
    h->layout_major = SHM_CHANNEL_LAYOUT_MAJOR;
    h->layout_minor = SHM__STREAM_LAYOUT_MINOR;
    h->kind = SHM_CHANNEL_KIND_STREAM;
    h->header_size = SHM_CHANNEL_HEADER_SIZE;
    h->capacity = capacity;
    h->max_payload = shm__max_payload_for(capacity);
    h->segment_size = SHM_CHANNEL_HEADER_SIZE + capacity;
    h->created_ns = created_ns;
    h->creator_pid = creator_pid;
    /* Magic last: an opener that sees it sees every field above (spec: Creation, step 4). */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(h->magic, SHM__MAGIC, 8);
}

int shm__ring_validate(const struct shm__header *h, uint64_t file_size, uint64_t *segment_size)
{
    int rc = shm__identity_check(h, file_size, SHM_CHANNEL_KIND_STREAM);
    if (rc)
        return rc;
    uint32_t header_size = shm__load_relaxed(&h->header_size);
    uint64_t cap = shm__load_relaxed(&h->capacity);
    uint64_t max_payload = shm__load_relaxed(&h->max_payload);
    uint64_t seg = shm__load_relaxed(&h->segment_size);
    if (header_size != SHM_CHANNEL_HEADER_SIZE)
        return -EBADMSG;
    if (cap < SHM_CHANNEL_MIN_CAPACITY || cap > SHM_CHANNEL_MAX_CAPACITY || (cap & (cap - 1)))
        return -EBADMSG;
    if (max_payload != shm__max_payload_for(cap) || seg != header_size + cap)
        return -EBADMSG;
    if (file_size < seg)
        return -EBADMSG;
    *segment_size = seg;
    return 0;
}

void shm__ring_bind(struct shm__ring *r, void *base, uint64_t capacity)
{
    r->hdr = base;
    r->data = (uint8_t *)base + SHM_CHANNEL_HEADER_SIZE;
    r->capacity = capacity;
    r->mask = r->capacity - 1;
    r->max_payload = shm__max_payload_for(r->capacity);
}

int shm__ring_producer_attach(const struct shm__ring *r, struct shm__ring_producer *p)
{
    memset(p, 0, sizeof(*p));
    /* Acquire on read_pos: the consumer's copies out of released records are done. */
    uint64_t rpos = shm__load_acquire(&r->hdr->read_pos);
    uint64_t wpos = shm__load_relaxed(&r->hdr->write_pos);
    if (!shm__ring_positions_ok(r, wpos, rpos))
        return -EBADMSG;
    p->wpos = wpos;
    p->rpos_cache = rpos;
    /* A predecessor's counts go on (a dead producer's last stores are visible: its death was
     * established before this attach). */
    p->msgs = shm__load_relaxed(&r->hdr->msgs_written);
    p->bytes = shm__load_relaxed(&r->hdr->bytes_written);
    return 0;
}

int shm__ring_consumer_attach(const struct shm__ring *r, struct shm__ring_consumer *c)
{
    memset(c, 0, sizeof(*c));
    uint64_t rpos = shm__load_relaxed(&r->hdr->read_pos);
    /* Acquire on write_pos: every record below it is completely written. */
    uint64_t wpos = shm__load_acquire(&r->hdr->write_pos);
    if (!shm__ring_positions_ok(r, wpos, rpos))
        return -EBADMSG;
    c->rpos = rpos;
    c->wpos_cache = wpos;
    c->msgs = shm__load_relaxed(&r->hdr->msgs_read);
    c->bytes = shm__load_relaxed(&r->hdr->bytes_read);
    return 0;
}

static void put_record_header(const struct shm__ring *r, uint64_t pos, uint32_t len,
                              uint32_t type)
{
    uint64_t word = (uint64_t)len | ((uint64_t)type << 32);
    shm__store_relaxed((uint64_t *)(void *)(r->data + (pos & r->mask)), word);
}

int shm__ring_reserve_slow(const struct shm__ring *r, struct shm__ring_producer *p, uint64_t len,
                           void **ptr)
{
    if (p->reserving)
        return -EBUSY;
    if (len > r->max_payload)
        return -EMSGSIZE;
    uint64_t total = SHM__RECORD_HEADER + shm__align8(len);
    uint64_t off = p->wpos & r->mask;
    uint64_t contig = r->capacity - off;
    uint64_t need = total <= contig ? total : contig + total;
    if (p->wpos + need - p->rpos_cache > r->capacity) {
        /* Acquire: the consumer has finished reading what it released. */
        uint64_t rpos = shm__load_acquire(&r->hdr->read_pos);
        if (!shm__ring_positions_ok(r, p->wpos, rpos))
            return -EBADMSG;
        p->rpos_cache = rpos;
        if (p->wpos + need - rpos > r->capacity)
            return -EAGAIN;
    }
    p->reserve_start = p->wpos;
    if (total > contig) {
        put_record_header(r, p->wpos, (uint32_t)(contig - SHM__RECORD_HEADER), SHM__REC_PADDING);
        p->wpos += contig;
        off = 0;
    }
    p->reserve_at = p->wpos;
    p->reserve_len = len;
    p->reserving = 1;
    *ptr = r->data + off + SHM__RECORD_HEADER;
    shm__ring_prefetch(r, p, total);
    return 0;
}

int shm__ring_abort(struct shm__ring_producer *p)
{
    if (!p->reserving)
        return -EINVAL;
    p->wpos = p->reserve_start;
    p->reserving = 0;
    return 0;
}

int shm__ring_peek_slow(const struct shm__ring *r, struct shm__ring_consumer *c, const void **ptr,
                        uint64_t *len)
{
    if (c->peeking) {
        *ptr = c->peek_ptr;
        *len = c->peek_len;
        return 0;
    }
    for (;;) {
        if (c->rpos == c->wpos_cache) {
            /* Acquire: every record below write_pos is completely written. */
            uint64_t wpos = shm__load_acquire(&r->hdr->write_pos);
            if (!shm__ring_positions_ok(r, wpos, c->rpos))
                return -EBADMSG;
            c->wpos_cache = wpos;
            if (wpos == c->rpos)
                return -EAGAIN;
        }
        uint64_t avail = c->wpos_cache - c->rpos;
        uint64_t off = c->rpos & r->mask;
        /* One load of the record header: a writer changing it under us cannot make us
         * check one value and use another. */
        uint64_t word = shm__load_relaxed((const uint64_t *)(const void *)(r->data + off));
        uint64_t rlen = (uint32_t)word;
        uint32_t type = (uint32_t)(word >> 32);
        if (type == SHM__REC_PADDING) {
            uint64_t total = r->capacity - off;
            if (rlen != total - SHM__RECORD_HEADER || total > avail)
                return -EBADMSG;
            c->rpos += total; /* each pass consumes at least 8 bytes of avail: bounded */
            continue;
        }
        if (type != SHM__REC_MESSAGE || rlen > r->max_payload)
            return -EBADMSG;
        uint64_t total = SHM__RECORD_HEADER + shm__align8(rlen);
        if (off + total > r->capacity || total > avail)
            return -EBADMSG;
        c->peek_ptr = r->data + off + SHM__RECORD_HEADER;
        c->peek_len = rlen;
        c->peek_next = c->rpos + total;
        c->peeking = 1;
        *ptr = c->peek_ptr;
        *len = rlen;
        return 0;
    }
}
