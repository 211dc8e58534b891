/* The service algorithm over a plain buffer (spec/service.md). Every shared word is read
 * once into a local and checked there; every loop is bounded by max_clients or a constant. */
#include "service.h"

#include <errno.h>
#include <string.h>

#include "atomics.h"
#include "hooks.h"
#include "segment.h"
#include "shm_channel.h"

uint64_t shm__hook_svc_answer_delay_ns = 0;

static uint64_t align_up(uint64_t n, uint64_t a)
{
    return (n + a - 1) & ~(a - 1);
}

static uint64_t word_of(uint64_t seq, uint32_t phase)
{
    return seq << 2 | phase;
}

static int derive(struct shm__svc_geom *g, uint64_t max_request, uint64_t max_response,
                  uint32_t max_clients)
{
    if (max_request > SHM__SVC_MAX_MSG || max_response > SHM__SVC_MAX_MSG)
        return -1;
    if (max_clients < 1 || max_clients > SHM__SVC_MAX_CLIENTS)
        return -1;
    g->max_request = max_request;
    g->max_response = max_response;
    g->max_clients = max_clients;
    g->response_offset = SHM__SVC_LINE + align_up(SHM__SVC_AREA_HEADER + max_request,
                                                  SHM__SVC_LINE);
    g->slot_stride = g->response_offset + align_up(SHM__SVC_AREA_HEADER + max_response,
                                                   SHM__SVC_LINE);
    g->capacity = (uint64_t)max_clients * g->slot_stride; /* < 2^10 * 2^32: no overflow */
    g->segment_size = SHM__SVC_SLOTS_OFFSET + g->capacity;
    return 0;
}

int shm__svc_geometry(struct shm__svc_geom *g, uint64_t max_request, uint64_t max_response,
                      uint32_t max_clients)
{
    memset(g, 0, sizeof(*g));
    if (derive(g, max_request ? max_request : SHM__SVC_DEFAULT_MSG,
               max_response ? max_response : SHM__SVC_DEFAULT_MSG,
               max_clients ? max_clients : SHM__SVC_DEFAULT_CLIENTS))
        return -EINVAL;
    return 0;
}

int shm__svc_check_params(const struct shm__svc_geom *g, uint64_t max_request,
                          uint64_t max_response, uint32_t max_clients)
{
    if ((max_request && max_request != g->max_request) ||
        (max_response && max_response != g->max_response) ||
        (max_clients && max_clients != g->max_clients))
        return -EINVAL;
    return 0;
}

void shm__svc_format(void *base, const struct shm__svc_geom *g, uint32_t creator_pid,
                     uint64_t created_ns)
{
    struct shm__svc_header *h = base;
    h->layout_major = SHM_CHANNEL_LAYOUT_MAJOR;
    h->layout_minor = SHM_CHANNEL_LAYOUT_MINOR;
    h->kind = SHM__KIND_SERVICE;
    h->header_size = SHM_CHANNEL_HEADER_SIZE;
    h->capacity = g->capacity;
    h->max_payload = g->max_request > g->max_response ? g->max_request : g->max_response;
    h->segment_size = g->segment_size;
    h->created_ns = created_ns;
    h->creator_pid = creator_pid;
    h->slot_stride = g->slot_stride;
    h->max_request = g->max_request;
    h->max_response = g->max_response;
    h->max_clients = g->max_clients;
    h->slots_offset = SHM__SVC_SLOTS_OFFSET;
    h->response_offset = g->response_offset;
    /* Magic last: an opener that sees it sees every field above (streams §5.1 step 4). */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(h->magic, SHM__MAGIC, 8);
}

int shm__svc_validate(const void *base, uint64_t file_size, struct shm__svc_geom *g)
{
    const struct shm__svc_header *h = base;
    /* The identity line is the one every kind shares (magic, layout major, kind). */
    int rc = shm__identity_check(base, file_size, SHM__KIND_SERVICE);
    if (rc)
        return rc;
    uint32_t header_size = shm__load_relaxed(&h->header_size);
    uint64_t capacity = shm__load_relaxed(&h->capacity);
    uint64_t max_payload = shm__load_relaxed(&h->max_payload);
    uint64_t segment_size = shm__load_relaxed(&h->segment_size);
    uint64_t slot_stride = shm__load_relaxed(&h->slot_stride);
    uint64_t max_request = shm__load_relaxed(&h->max_request);
    uint64_t max_response = shm__load_relaxed(&h->max_response);
    uint32_t max_clients = shm__load_relaxed(&h->max_clients);
    uint64_t slots_offset = shm__load_relaxed(&h->slots_offset);
    uint64_t response_offset = shm__load_relaxed(&h->response_offset);
    struct shm__svc_geom d;
    memset(&d, 0, sizeof d);
    if (header_size != SHM_CHANNEL_HEADER_SIZE || slots_offset != SHM__SVC_SLOTS_OFFSET)
        return -EBADMSG;
    if (derive(&d, max_request, max_response, max_clients))
        return -EBADMSG;
    if (max_payload != (max_request > max_response ? max_request : max_response) ||
        slot_stride != d.slot_stride || response_offset != d.response_offset ||
        capacity != d.capacity || segment_size != d.segment_size)
        return -EBADMSG;
    if (file_size < segment_size)
        return -EBADMSG;
    *g = d;
    return 0;
}

void shm__svc_bind(struct shm__svc *s, void *base, const struct shm__svc_geom *g)
{
    s->hdr = base;
    s->slots = (uint8_t *)base + SHM__SVC_SLOTS_OFFSET;
    s->g = *g;
}

struct shm__svc_client_line *shm__svc_line(const struct shm__svc *s, uint32_t i)
{
    return (struct shm__svc_client_line *)(void *)(s->slots + (uint64_t)i * s->g.slot_stride);
}

struct shm__svc_req_area *shm__svc_req(const struct shm__svc *s, uint32_t i)
{
    return (struct shm__svc_req_area *)(void *)(s->slots + (uint64_t)i * s->g.slot_stride +
                                                SHM__SVC_LINE);
}

struct shm__svc_resp_area *shm__svc_resp(const struct shm__svc *s, uint32_t i)
{
    return (struct shm__svc_resp_area *)(void *)(s->slots + (uint64_t)i * s->g.slot_stride +
                                                 s->g.response_offset);
}

static uint32_t ready_words(const struct shm__svc *s)
{
    return (s->g.max_clients + 63) / 64;
}

/* Withdraw a queued request seq (client gave up, or its slot is reclaimed): 1 if this call
 * moved QUEUED(seq) to FREE(seq), so the server never takes it. */
static int withdraw(struct shm__svc_req_area *rq, uint64_t seq)
{
    uint64_t want = word_of(seq, SHM__SVC_QUEUED);
    return __atomic_compare_exchange_n(&rq->req, &want, word_of(seq, SHM__SVC_FREE), 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Decrement a shared count unless it is zero (a hostile writer may have zeroed it). */
static void count_down(uint32_t *c)
{
    uint32_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
    for (int i = 0; i < 1000 && v != 0; i++)
        if (__atomic_compare_exchange_n(c, &v, v - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return;
}

/* ---- server ------------------------------------------------------------------------- */

/* After the server stored a word a client may wait for (resp, or FREE in req): full fence,
 * then the client's flag (the mirror of shm__svc_client_wait_prepare). 1 = wake needed, and
 * resp_wake has been changed so that a sleeper's FUTEX_WAIT cannot miss it. */
static int client_wake_needed(struct shm__svc *s, uint32_t i)
{
    shm__fence_seq_cst();
    if (shm__load_relaxed(&shm__svc_line(s, i)->waiting) == 0)
        return 0;
    struct shm__svc_resp_area *rs = shm__svc_resp(s, i);
    shm__store_release(&rs->resp_wake, shm__load_relaxed(&rs->resp_wake) + 1);
    shm__counter_add(&s->hdr->server_wakes, 1);
    return 1;
}

/* A server moves a slot out of TAKEN(seq): the request buffer is the client's again. */
static int free_taken(struct shm__svc *s, uint32_t i, uint64_t seq)
{
    /* Release: our reads of the request are done before the client writes the next. */
    shm__store_release(&shm__svc_req(s, i)->req, word_of(seq, SHM__SVC_FREE));
    return client_wake_needed(s, i);
}

static void announce(struct shm__svc *s, shm__svc_wake_fn wake, void *arg)
{
    struct shm__svc_header *h = s->hdr;
    shm__store_release(&h->server_seq, shm__load_relaxed(&h->server_seq) + 1);
    if (wake)
        wake(&h->server_seq, arg);
}

uint32_t shm__svc_server_attach(struct shm__svc *s, struct shm__svc_server *v,
                                shm__svc_wake_fn wake, void *arg)
{
    struct shm__svc_header *h = s->hdr;
    memset(v, 0, sizeof(*v));
    /* A predecessor that died holding requests in place: free them (its answers will never
     * come; the clients see its death, §5.7). Queued requests are marked pending, since a
     * dead predecessor may have collected their ready bits: they are addressed to it, and
     * this server drops them when it meets them (§5.4 step 4), freeing their slots. */
    for (uint32_t i = 0; i < s->g.max_clients; i++) {
        uint64_t w = shm__load_acquire(&shm__svc_req(s, i)->req);
        if ((w & 3) == SHM__SVC_QUEUED)
            v->pending[i / 64] |= 1ull << (i % 64);
        if ((w & 3) == SHM__SVC_TAKEN && free_taken(s, i, w >> 2) && wake)
            wake(&shm__svc_resp(s, i)->resp_wake, arg);
    }
    v->epoch = shm__load_relaxed(&h->server_epoch) + 1;
    if (v->epoch == 0)
        v->epoch = 1; /* 0 means "any server" in a client's check */
    shm__store_relaxed(&h->server_waiting, 0u);
    shm__store_relaxed(&h->server_epoch, v->epoch);
    /* Release: the epoch is visible no later than the state (streams §5.3 step 3). */
    shm__store_release(&h->server_state, (uint32_t)SHM_CHANNEL_PEER_ATTACHED);
    announce(s, wake, arg);
    return v->epoch;
}

/* Collect the ready bits into the private pending set, once it is empty: a client that
 * queues again is served after every client collected with it (fair batches). */
static int collect(struct shm__svc *s, struct shm__svc_server *v)
{
    uint32_t n = ready_words(s);
    uint64_t any = 0;
    for (uint32_t w = 0; w < n; w++)
        any |= v->pending[w];
    if (any)
        return 1;
    uint64_t last = s->g.max_clients % 64 ? (1ull << (s->g.max_clients % 64)) - 1 : ~0ull;
    for (uint32_t w = 0; w < n; w++) {
        uint64_t *word = &s->hdr->ready[w];
        if (shm__load_relaxed(word) == 0)
            continue;
        /* Acquire: the client queued its request (release) before setting its bit. */
        uint64_t bits = __atomic_exchange_n(word, 0, __ATOMIC_ACQUIRE);
        v->pending[w] = bits & (w == n - 1 ? last : ~0ull); /* bits past max_clients: noise */
        any |= v->pending[w];
    }
    return any != 0;
}

int shm__svc_receive(struct shm__svc *s, struct shm__svc_server *v, struct shm__svc_request *r)
{
    struct shm__svc_header *h = s->hdr;
    uint32_t n = ready_words(s);
    /* Each pass serves or discards one pending bit; at most two collections. */
    for (int round = 0; round < 2; round++) {
        if (!collect(s, v))
            return -EAGAIN;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t w = (v->cursor + k) % n;
            while (v->pending[w]) {
                uint32_t b = (uint32_t)__builtin_ctzll(v->pending[w]);
                v->pending[w] &= v->pending[w] - 1;
                uint32_t i = w * 64 + b;
                struct shm__svc_req_area *rq = shm__svc_req(s, i);
                uint64_t word = shm__load_acquire(&rq->req);
                if ((word & 3) != SHM__SVC_QUEUED)
                    continue; /* withdrawn, or a stale bit */
                uint64_t seq = word >> 2;
                /* Acquire: the request's length, epoch and bytes are visible. */
                if (!__atomic_compare_exchange_n(&rq->req, &word, word_of(seq, SHM__SVC_TAKEN),
                                                 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
                    continue; /* the client withdrew it just now */
                uint32_t len = shm__load_relaxed(&rq->len);
                uint32_t epoch = shm__load_relaxed(&rq->server_epoch);
                if (epoch != v->epoch || len > s->g.max_request) {
                    shm__counter_add(epoch != v->epoch ? &h->expired : &h->invalid, 1);
                    free_taken(s, i, seq); /* its client learns from the server check */
                    continue;
                }
                shm__counter_add(&h->requests_taken, 1);
                v->held[i].seq = seq;
                v->held[i].owed = 1;
                v->held[i].in_place = 1;
                v->cursor = (w + 1) % n;
                r->slot = i;
                r->seq = seq;
                r->ptr = (const uint8_t *)rq + SHM__SVC_AREA_HEADER;
                r->len = len;
                return 0;
            }
        }
    }
    return -EAGAIN;
}

static struct shm__svc_held *held_of(struct shm__svc *s, struct shm__svc_server *v,
                                     uint32_t slot, uint64_t seq)
{
    if (slot >= s->g.max_clients || !v->held[slot].owed || v->held[slot].seq != seq)
        return NULL;
    return &v->held[slot];
}

int shm__svc_release_request(struct shm__svc *s, struct shm__svc_server *v, uint32_t slot,
                             uint64_t seq)
{
    struct shm__svc_held *hd = held_of(s, v, slot, seq);
    if (!hd || !hd->in_place)
        return -EINVAL;
    hd->in_place = 0;
    return free_taken(s, slot, seq);
}

int shm__svc_drop(struct shm__svc *s, struct shm__svc_server *v, uint32_t slot, uint64_t seq)
{
    struct shm__svc_held *hd = held_of(s, v, slot, seq);
    if (!hd || (v->reserving && v->reserve_slot == slot))
        return -EINVAL;
    hd->owed = 0;
    if (!hd->in_place)
        return 0;
    hd->in_place = 0;
    return free_taken(s, slot, seq);
}

int shm__svc_respond_reserve(struct shm__svc *s, struct shm__svc_server *v, uint32_t slot,
                             uint64_t seq, uint64_t len, void **ptr)
{
    if (v->reserving)
        return -EBUSY;
    if (slot < s->g.max_clients && v->held[slot].seq > seq)
        return -ESTALE; /* a newer request of that client was received since */
    struct shm__svc_held *hd = held_of(s, v, slot, seq);
    if (!hd)
        return -EINVAL;
    if (len > s->g.max_response)
        return -EMSGSIZE;
    if (!hd->in_place) {
        /* Received by copy: the client may have given up and sent a newer request. Then
         * this answer is stale; it is dropped without touching the response buffer, which
         * belongs to the newer request now. (A client that gives up after this check reads
         * the buffer only when resp names its newer request: §6 (d).) */
        uint64_t w = shm__load_acquire(&shm__svc_req(s, slot)->req);
        if ((w >> 2) != seq) {
            hd->owed = 0;
            shm__counter_add(&s->hdr->stale_responses, 1);
            return -ESTALE;
        }
    }
    v->reserving = 1;
    v->reserve_slot = slot;
    v->reserve_len = len;
    *ptr = (uint8_t *)shm__svc_resp(s, slot) + SHM__SVC_AREA_HEADER;
    return 0;
}

int shm__svc_respond_commit(struct shm__svc *s, struct shm__svc_server *v, uint64_t len)
{
    if (!v->reserving || len > v->reserve_len)
        return -EINVAL;
    uint32_t i = v->reserve_slot;
    struct shm__svc_held *hd = &v->held[i];
    struct shm__svc_resp_area *rs = shm__svc_resp(s, i);
    v->reserving = 0;
    hd->owed = 0;
    shm__store_relaxed(&rs->len, (uint32_t)len);
    /* Free the request first: a client that sees its answer may send the next request at
     * once, and finds its buffer free (resp's release orders this store before it). */
    if (hd->in_place) {
        hd->in_place = 0;
        shm__store_release(&shm__svc_req(s, i)->req, word_of(hd->seq, SHM__SVC_FREE));
    }
    shm__hook_pause(shm__hook_svc_answer_delay_ns);
    shm__counter_add(&s->hdr->responses, 1);
    /* Release: the response's length and bytes are written before it is named. */
    shm__store_release(&rs->resp, hd->seq);
    return client_wake_needed(s, i);
}

int shm__svc_respond(struct shm__svc *s, struct shm__svc_server *v, uint32_t slot,
                     uint64_t seq, const void *data, uint64_t len)
{
    void *ptr;
    int rc = shm__svc_respond_reserve(s, v, slot, seq, len, &ptr);
    if (rc)
        return rc;
    if (len)
        memcpy(ptr, data, len);
    return shm__svc_respond_commit(s, v, len);
}

uint32_t shm__svc_server_wait_prepare(struct shm__svc *s)
{
    struct shm__svc_header *h = s->hdr;
    uint32_t seen = shm__load_acquire(&h->doorbell);
    shm__store_relaxed(&h->server_waiting, 1u);
    shm__counter_add(&h->server_sleeps, 1);
    /* Store the flag, then load the ready bits (the caller's re-try): a client does the
     * mirror image (set its bit, load the flag), so one of us sees the other (§6 (c)). */
    shm__fence_seq_cst();
    return seen;
}

void shm__svc_server_wait_done(struct shm__svc *s)
{
    shm__store_relaxed(&s->hdr->server_waiting, 0u);
}

int shm__svc_slot_attached(const struct shm__svc *s, uint32_t i)
{
    return i < s->g.max_clients &&
           shm__load_acquire(&shm__svc_line(s, i)->state) == SHM_CHANNEL_PEER_ATTACHED;
}

int shm__svc_reclaim(struct shm__svc *s, struct shm__svc_server *v, uint32_t i)
{
    struct shm__svc_header *h = s->hdr;
    if (!shm__svc_slot_attached(s, i))
        return 0;
    uint64_t w = shm__load_acquire(&shm__svc_req(s, i)->req);
    if ((w & 3) == SHM__SVC_QUEUED)
        withdraw(shm__svc_req(s, i), w >> 2); /* nobody waits for its answer */
    shm__store_relaxed(&shm__svc_line(s, i)->waiting, 0u);
    count_down(&h->clients);
    shm__store_release(&shm__svc_line(s, i)->state, (uint32_t)SHM_CHANNEL_PEER_CLOSED);
    __atomic_fetch_add(&h->reclaims, 1, __ATOMIC_RELAXED);
    if (v) {
        /* A request held in place stays TAKEN until released: the server still reads it. */
        if (!v->held[i].in_place)
            v->held[i].owed = 0;
        shm__counter_add(&h->reaped, 1);
    }
    return 1;
}

void shm__svc_server_close(struct shm__svc *s, struct shm__svc_server *v,
                           shm__svc_wake_fn wake, void *arg)
{
    struct shm__svc_header *h = s->hdr;
    v->reserving = 0;
    for (uint32_t i = 0; i < s->g.max_clients; i++) {
        if (v->held[i].owed && v->held[i].in_place)
            free_taken(s, i, v->held[i].seq);
        v->held[i].owed = v->held[i].in_place = 0;
    }
    /* Release: every answer given is visible before the close (a client re-checks its
     * answer after seeing state 2: §5.7). */
    shm__store_release(&h->server_state, (uint32_t)SHM_CHANNEL_PEER_CLOSED);
    shm__fence_seq_cst();
    for (uint32_t i = 0; i < s->g.max_clients; i++)
        if (client_wake_needed(s, i) && wake)
            wake(&shm__svc_resp(s, i)->resp_wake, arg);
    announce(s, wake, arg);
}

/* ---- client ------------------------------------------------------------------------- */

int shm__svc_client_join(struct shm__svc *s, struct shm__svc_client *c, uint32_t index,
                         uint32_t pid)
{
    struct shm__svc_header *h = s->hdr;
    if (index >= s->g.max_clients)
        return -EINVAL;
    int reclaimed = shm__svc_reclaim(s, NULL, index);
    memset(c, 0, sizeof(*c));
    c->index = index;
    c->line = shm__svc_line(s, index);
    c->rq = shm__svc_req(s, index);
    c->rs = shm__svc_resp(s, index);
    uint64_t w = shm__load_acquire(&c->rq->req);
    if ((w & 3) == 3)
        return -EBADMSG;
    if ((w & 3) == SHM__SVC_QUEUED)
        withdraw(c->rq, w >> 2); /* a left-over request of a predecessor */
    /* Continue the slot's numbering: every answer to a predecessor names a number at most
     * this one, and ours start above it, so none is ever taken for ours. */
    c->seq = w >> 2;
    struct shm__svc_client_line *l = c->line;
    shm__store_relaxed(&l->waiting, 0u);
    shm__store_relaxed(&l->pid, pid);
    shm__store_relaxed(&l->epoch, shm__load_relaxed(&l->epoch) + 1);
    shm__store_relaxed(&l->requests, 0);
    shm__store_relaxed(&l->responses, 0);
    shm__store_relaxed(&l->timeouts, 0);
    shm__store_relaxed(&l->withdrawn, 0);
    shm__store_relaxed(&l->sleeps, 0);
    shm__store_release(&l->state, (uint32_t)SHM_CHANNEL_PEER_ATTACHED);
    __atomic_fetch_add(&h->clients, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&h->joins, 1, __ATOMIC_RELAXED);
    return reclaimed;
}

void shm__svc_client_leave(struct shm__svc *s, struct shm__svc_client *c)
{
    if (c->awaiting)
        shm__svc_cancel(s, c, 0);
    c->reserving = 0;
    shm__store_relaxed(&c->line->waiting, 0u);
    shm__store_release(&c->line->state, (uint32_t)SHM_CHANNEL_PEER_CLOSED);
    count_down(&s->hdr->clients);
}

int shm__svc_server_verdict(const struct shm__svc *s, uint32_t addressed, uint32_t *epoch,
                            shm__svc_lock_fn lock_held, void *arg)
{
    struct shm__svc_header *h = s->hdr;
    uint32_t s1 = shm__load_acquire(&h->server_state);
    uint32_t e1 = shm__load_relaxed(&h->server_epoch);
    if (addressed && e1 != addressed)
        return -ECONNRESET; /* epochs only grow by attaches: ours is gone */
    if (s1 == SHM_CHANNEL_PEER_CLOSED)
        return -EPIPE;
    if (s1 != SHM_CHANNEL_PEER_ATTACHED)
        return addressed ? 0 : -EAGAIN; /* none yet, or an unknown value: no verdict */
    if (lock_held(arg)) {
        *epoch = e1;
        return 0;
    }
    /* Lock free: closed or died. Look again after a full fence (streams §5.7 step 4). */
    shm__fence_seq_cst();
    uint32_t s2 = shm__load_acquire(&h->server_state);
    uint32_t e2 = shm__load_relaxed(&h->server_epoch);
    if (e2 != e1)
        return addressed ? -ECONNRESET : -EAGAIN; /* a newer server: look again */
    if (s2 == SHM_CHANNEL_PEER_CLOSED)
        return -EPIPE;
    if (s2 == SHM_CHANNEL_PEER_ATTACHED)
        return -EOWNERDEAD;
    return addressed ? 0 : -EAGAIN;
}

int shm__svc_request_reserve(struct shm__svc *s, struct shm__svc_client *c, uint64_t len,
                             void **ptr)
{
    if (c->awaiting || c->reserving)
        return -EBUSY;
    if (len > s->g.max_request)
        return -EMSGSIZE;
    if (c->seq >= SHM__SVC_MAX_SEQ)
        return -EOVERFLOW;
    /* Acquire: the server's reads of our previous request are done (it stored FREE). */
    uint64_t w = shm__load_acquire(&c->rq->req);
    if ((w >> 2) != c->seq || (w & 3) == SHM__SVC_QUEUED || (w & 3) == 3)
        return -EBADMSG; /* only we queue in this slot, and only numbers we chose */
    if ((w & 3) == SHM__SVC_TAKEN)
        return -EBUSY; /* the server still reads our abandoned request in place */
    c->reserving = 1;
    c->reserve_len = len;
    *ptr = (uint8_t *)c->rq + SHM__SVC_AREA_HEADER;
    return 0;
}

int shm__svc_request_commit(struct shm__svc *s, struct shm__svc_client *c, uint64_t len,
                            uint32_t epoch)
{
    struct shm__svc_header *h = s->hdr;
    if (!c->reserving || len > c->reserve_len)
        return -EINVAL;
    c->reserving = 0;
    c->seq++;
    c->epoch = epoch;
    c->awaiting = 1;
    shm__store_relaxed(&c->rq->len, (uint32_t)len);
    shm__store_relaxed(&c->rq->server_epoch, epoch);
    shm__counter_add(&c->line->requests, 1);
    /* Release: length, epoch and bytes are written before the request is queued. */
    shm__store_release(&c->rq->req, word_of(c->seq, SHM__SVC_QUEUED));
    /* Release: the server's acquire exchange of the word sees the queued request. */
    __atomic_fetch_or(&h->ready[c->index / 64], 1ull << (c->index % 64), __ATOMIC_RELEASE);
    /* Set the bit, then load the server's flag (the mirror of its wait_prepare). */
    shm__fence_seq_cst();
    if (shm__load_relaxed(&h->server_waiting) == 0)
        return 0;
    __atomic_fetch_add(&h->doorbell, 1, __ATOMIC_RELEASE);
    return 1;
}

int shm__svc_request(struct shm__svc *s, struct shm__svc_client *c, const void *data,
                     uint64_t len, uint32_t epoch)
{
    void *ptr;
    int rc = shm__svc_request_reserve(s, c, len, &ptr);
    if (rc)
        return rc;
    if (len)
        memcpy(ptr, data, len);
    return shm__svc_request_commit(s, c, len, epoch);
}

int shm__svc_response(struct shm__svc *s, struct shm__svc_client *c, void *buf, uint64_t cap,
                      const void **view, uint64_t *len)
{
    if (!c->awaiting)
        return -EINVAL;
    /* Acquire: the response's length and bytes are visible. */
    uint64_t r = shm__load_acquire(&c->rs->resp);
    if (r > c->seq)
        return -EBADMSG; /* no request of that number was ever sent in this slot */
    if (r != c->seq)
        return -EAGAIN; /* not yet; an older number is a stale answer, never ours */
    uint32_t l = shm__load_relaxed(&c->rs->len);
    if (l > s->g.max_response)
        return -EBADMSG;
    *len = l;
    const uint8_t *p = (const uint8_t *)c->rs + SHM__SVC_AREA_HEADER;
    if (view) {
        *view = p;
    } else {
        if (l > cap)
            return -EMSGSIZE;
        if (l)
            memcpy(buf, p, l);
    }
    c->awaiting = 0;
    shm__counter_add(&c->line->responses, 1);
    return 0;
}

int shm__svc_cancel(struct shm__svc *s, struct shm__svc_client *c, int timed_out)
{
    (void)s;
    if (!c->awaiting)
        return -EINVAL;
    c->awaiting = 0;
    if (timed_out)
        shm__counter_add(&c->line->timeouts, 1);
    if (withdraw(c->rq, c->seq)) {
        shm__counter_add(&c->line->withdrawn, 1);
        return 1;
    }
    return 0;
}

uint32_t shm__svc_client_wait_prepare(struct shm__svc *s, struct shm__svc_client *c)
{
    (void)s;
    uint32_t seen = shm__load_acquire(&c->rs->resp_wake);
    shm__store_relaxed(&c->line->waiting, 1u);
    shm__counter_add(&c->line->sleeps, 1);
    /* Store the flag, then load resp / req / the server's state (the caller's re-check):
     * the server stores those, then loads the flag. */
    shm__fence_seq_cst();
    return seen;
}

void shm__svc_client_wait_done(struct shm__svc_client *c)
{
    shm__store_relaxed(&c->line->waiting, 0u);
}
