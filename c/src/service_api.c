/* The service kind's side of the public entry points (spec/service.md, kind 4): the role
 * locks (server byte 0, one byte per client slot), waiting (wait.c), server liveness and
 * client reaping, and the calls of both roles. The algorithm is service.c; the segment
 * lifecycle is segment.c; channel.c dispatches the calls every kind shares here. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomics.h"
#include "handle.h"
#include "hooks.h"
#include "os.h"
#include "wait.h"

/* A client re-checks a live server's lock at most this often before sending (a request to
 * a server that died meanwhile is caught by the wait for its answer). */
#define SERVER_CHECK_NS 10000000ull

/* What the handle knows privately besides the algorithm's state. */
struct shm__sv_state {
    /* client */
    uint32_t live_epoch;         /* the server epoch last found alive by its lock */
    uint64_t next_check_ns;      /* when to look at its lock again */
    int have_resp;               /* the response to the last request was read */
    const void *resp_ptr;        /* ... in place, valid until the next request */
    uint64_t resp_len;
    int view;                    /* a view was handed out by peek and not released */
    uint32_t reserve_epoch;      /* the server a reserved request will be addressed to */
    /* server */
    int stashed;                 /* a request received by copy that did not fit */
    struct shm__svc_request stash;
    uint64_t reaped[SHM__SVC_READY_WORDS]; /* slots reaped, not yet reported */
    uint64_t next_reap_ns;
};

static int role_is(const shm_channel_t *ch, uint32_t role)
{
    if (!ch)
        return -EINVAL;
    if (ch->detached)
        return -EBADF;
    return ch->role == role ? 0 : -EBADF;
}

static uint64_t deadline_of(int64_t timeout_ns)
{
    return timeout_ns < 0 ? UINT64_MAX : shm__now_ns() + (uint64_t)timeout_ns;
}

static int64_t left_of(uint64_t deadline)
{
    if (deadline == UINT64_MAX)
        return -1;
    uint64_t now = shm__now_ns();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

static void wake_word(uint32_t *word, void *arg)
{
    (void)arg;
    shm__futex_wake(word);
}

/* The server's lock (byte 0) is held by someone; an error counts as held (no verdict). */
static int server_lock_held(void *arg)
{
    const shm_channel_t *ch = arg;
    return shm__lock_held(ch->seg.fd, SHM__SVC_LOCK_SERVER) != 0;
}

/* ---- opening and closing ---------------------------------------------------------- */

int shm__sv_config(const shm_channel_service_config_t *cfg, struct shm__svc_geom *g)
{
    static const shm_channel_service_config_t none;
    if (!cfg)
        cfg = &none;
    if (cfg->reserved0)
        return -EINVAL;
    for (int i = 0; i < 4; i++)
        if (cfg->reserved[i])
            return -EINVAL;
    return shm__svc_geometry(g, cfg->max_request, cfg->max_response, cfg->max_clients);
}

/* Take a client slot (spec §5.3): the first whose lock is free, from a start that spreads
 * concurrent joiners. */
static int claim_client(void *arg, uint32_t i)
{
    shm_channel_t *ch = arg;
    return shm__svc_client_join(&ch->svc, &ch->cli, i, (uint32_t)getpid());
}

static int join(shm_channel_t *ch)
{
    struct shm__svc *s = &ch->svc;
    uint32_t n = s->g.max_clients;
    return shm__seg_take_slot(&ch->seg, SHM__SVC_LOCK_CLIENT_BASE, n,
                              (uint32_t)(shm__load_relaxed(&s->hdr->joins) % n), claim_client, ch);
}

int shm__sv_attach(shm_channel_t *ch, const shm_channel_service_config_t *cfg,
                   const struct shm__seg_info *info)
{
    const struct shm__svc_geom *g = &info->svc;
    int rc;
    /* Given parameters must be the segment's (spec §4 step 5), checked before mapping. */
    if (cfg && shm__svc_check_params(g, cfg->max_request, cfg->max_response, cfg->max_clients))
        return -EINVAL;
    if (!(ch->sv = calloc(1, sizeof(*ch->sv))))
        return -ENOMEM;
    if ((rc = shm__seg_map(&ch->seg, g->segment_size)) != 0)
        return rc;
    shm__svc_bind(&ch->svc, ch->seg.base, g);
    if (ch->role == SHM_CHANNEL_SERVER) {
        if ((rc = shm__lock_try(ch->seg.fd, SHM__SVC_LOCK_SERVER, 1)) != 0)
            return rc;
        if (!(ch->srv = calloc(1, sizeof(*ch->srv)))) {
            shm__lock_drop(ch->seg.fd, SHM__SVC_LOCK_SERVER);
            return -ENOMEM;
        }
        shm__svc_server_attach(&ch->svc, ch->srv, wake_word, NULL);
        return 0;
    }
    if (ch->role == SHM_CHANNEL_CLIENT)
        return join(ch);
    return 0;
}

/* The last handle unlinks a service whose server closed cleanly (spec §5.11): no live
 * handle is attached, so no live client either. */
static int finished(void *arg)
{
    const struct shm__svc_header *h = arg;
    return shm__load_acquire(&h->server_state) == SHM_CHANNEL_PEER_CLOSED;
}

void shm__sv_end_role(shm_channel_t *ch)
{
    struct shm__svc *s = &ch->svc;
    if (ch->role == SHM_CHANNEL_SERVER && ch->srv) {
        shm__svc_server_close(s, ch->srv, wake_word, NULL);
        /* State 2 is stored before the lock goes (the two-look rule, spec §5.7). */
        shm__lock_drop(ch->seg.fd, SHM__SVC_LOCK_SERVER);
    } else if (ch->role == SHM_CHANNEL_CLIENT) {
        shm__svc_client_leave(s, &ch->cli);
        shm__lock_drop(ch->seg.fd, SHM__SVC_LOCK_CLIENT_BASE + (int)ch->cli.index);
    }
    if (ch->svc.hdr)
        shm__seg_end(&ch->seg, finished, s->hdr);
}

void shm__sv_free(shm_channel_t *ch)
{
    free(ch->srv);
    free(ch->sv);
    ch->srv = NULL;
    ch->sv = NULL;
}

/* ---- client: the server, the request buffer, the response ------------------------- */

/* A live server's epoch, for a request about to be sent (spec §5.7, "any"): 0 and *epoch,
 * -EAGAIN (none attached yet), -EPIPE, -EOWNERDEAD. The lock is looked at no more than
 * every SERVER_CHECK_NS for the same attach, unless force. */
static int live_server(shm_channel_t *ch, uint32_t *epoch, int force)
{
    struct shm__sv_state *sv = ch->sv;
    const struct shm__svc_header *h = ch->svc.hdr;
    uint32_t st = shm__load_acquire(&h->server_state);
    uint32_t e = shm__load_relaxed(&h->server_epoch);
    uint64_t now = shm__now_ns();
    if (!force && st == SHM_CHANNEL_PEER_ATTACHED && e == sv->live_epoch && e &&
        now < sv->next_check_ns) {
        *epoch = e;
        return 0;
    }
    int rc = shm__svc_server_verdict(&ch->svc, 0, epoch, server_lock_held, ch);
    if (rc == 0) {
        sv->live_epoch = *epoch;
        sv->next_check_ns = now + SERVER_CHECK_NS;
    }
    return rc;
}

/* Waiting for a server: on server_seq, which every attach and close changes. */
struct server_wait {
    shm_channel_t *ch;
    uint32_t epoch;
    int any; /* wait_server(): a closed or dead server is no verdict, wait for a successor */
};

static int server_try(void *arg)
{
    struct server_wait *w = arg;
    int rc = live_server(w->ch, &w->epoch, 1);
    if (w->any && (rc == -EPIPE || rc == -EOWNERDEAD))
        return -EAGAIN;
    return rc;
}

static uint32_t server_prepare(void *arg, uint32_t **word)
{
    struct server_wait *w = arg;
    *word = &w->ch->svc.hdr->server_seq;
    /* Load the word, then look at the state (the caller's re-try): an attach stores the
     * state, then changes the word, so either we see the state or the wait returns. */
    uint32_t seen = shm__load_acquire(*word);
    shm__fence_seq_cst();
    return seen;
}

static int wait_for_server(shm_channel_t *ch, uint32_t *epoch, int any, int64_t timeout_ns)
{
    struct server_wait sw = {ch, 0, any};
    struct shm__wait w = {.try_once = server_try, .prepare = server_prepare, .arg = &sw};
    int rc = shm__wait_run(&w, timeout_ns);
    if (rc == 0)
        *epoch = sw.epoch;
    return rc;
}

/* The request buffer: free unless the server still reads a request we gave up on. */
struct reserve_wait {
    shm_channel_t *ch;
    uint64_t len;
    void *ptr;
};

static int reserve_try(void *arg)
{
    struct reserve_wait *w = arg;
    int rc = shm__svc_request_reserve(&w->ch->svc, &w->ch->cli, w->len, &w->ptr);
    return rc == -EBUSY ? -EAGAIN : rc;
}

static int reserve_settle(void *arg, int force)
{
    struct reserve_wait *w = arg;
    uint32_t e;
    /* A server that died holding it: its successor frees it at attach; until then, the
     * death is the verdict. None attached yet: keep waiting. */
    int rc = live_server(w->ch, &e, force);
    if (rc == 0 || rc == -EAGAIN)
        return -EAGAIN;
    int again = reserve_try(w);
    return again == -EAGAIN ? rc : again;
}

static uint32_t client_prepare(void *arg, uint32_t **word)
{
    shm_channel_t *ch = *(shm_channel_t **)arg;
    *word = &ch->cli.rs->resp_wake;
    return shm__svc_client_wait_prepare(&ch->svc, &ch->cli);
}

static void client_done(void *arg)
{
    shm_channel_t *ch = *(shm_channel_t **)arg;
    shm__svc_client_wait_done(&ch->cli);
}

/* Forget the previous response (its view ends) and give up a request still pending. */
static void new_request(shm_channel_t *ch)
{
    struct shm__sv_state *sv = ch->sv;
    sv->have_resp = 0;
    sv->view = 0;
    if (ch->cli.awaiting)
        shm__svc_cancel(&ch->svc, &ch->cli, 0);
}

/* Space for the next request: a live server (waited for if none ever attached), and the
 * buffer (waited for while the server still reads an abandoned request). */
static int client_reserve(shm_channel_t *ch, uint64_t len, void **ptr, uint32_t *epoch,
                          int64_t timeout_ns)
{
    if (ch->cli.reserving)
        return -EBUSY;
    if (len > ch->svc.g.max_request)
        return -EMSGSIZE;
    new_request(ch);
    uint64_t deadline = deadline_of(timeout_ns);
    int rc = live_server(ch, epoch, 0);
    if (rc == -EAGAIN)
        rc = wait_for_server(ch, epoch, 0, timeout_ns);
    if (rc)
        return rc;
    struct reserve_wait rw = {ch, len, NULL};
    struct shm__wait w = {.try_once = reserve_try, .settle = reserve_settle,
                          .prepare = client_prepare, .done = client_done, .arg = &rw,
                          .spin_ns = ch->spin_ns};
    if ((rc = shm__wait_run(&w, left_of(deadline))) != 0)
        return rc;
    *ptr = rw.ptr;
    return 0;
}

static int client_commit(shm_channel_t *ch, uint64_t len, uint32_t epoch)
{
    int rc = shm__svc_request_commit(&ch->svc, &ch->cli, len, epoch);
    if (rc == 1)
        shm__futex_wake(&ch->svc.hdr->doorbell);
    return rc < 0 ? rc : 0;
}

/* Waiting for the response to the pending request. */
struct response_wait {
    shm_channel_t *ch; /* first: client_prepare reads it */
    void *buf;
    uint64_t cap;
    const void **view;
    uint64_t *len;
};

static int response_try(void *arg)
{
    struct response_wait *w = arg;
    return shm__svc_response(&w->ch->svc, &w->ch->cli, w->buf, w->cap, w->view, w->len);
}

static int response_settle(void *arg, int force)
{
    struct response_wait *w = arg;
    shm_channel_t *ch = w->ch;
    (void)force; /* one lock query per sleeping round, as streams */
    uint32_t e;
    int rc = shm__svc_server_verdict(&ch->svc, ch->cli.epoch, &e, server_lock_held, ch);
    if (rc == 0 || rc == -EAGAIN)
        return -EAGAIN;
    /* The server's last answer was stored before its close (or death): look once more. */
    int again = response_try(w);
    return again == -EAGAIN ? rc : again;
}

/* Wait for the response. A failure gives the request up (spec §5.8), except -EBADMSG and,
 * unless `request` (the one-call round trip), -EAGAIN: a poll with timeout 0. */
static int client_response(shm_channel_t *ch, void *buf, uint64_t cap, const void **view,
                           uint64_t *len, int64_t timeout_ns, int request)
{
    struct shm__sv_state *sv = ch->sv;
    if (sv->have_resp && view) {
        *view = sv->resp_ptr;
        *len = sv->resp_len;
        sv->view = 1;
        return 0;
    }
    if (!ch->cli.awaiting)
        return -EINVAL;
    const void *p = NULL;
    struct response_wait rw = {ch, buf, cap, &p, len};
    struct shm__wait w = {.try_once = response_try, .settle = response_settle,
                          .prepare = client_prepare, .done = client_done, .arg = &rw,
                          .spin_ns = ch->spin_ns};
    /* Always in place first: a copy that does not fit leaves the answer readable. */
    int rc = shm__wait_run(&w, timeout_ns);
    if (rc == 0) {
        sv->have_resp = 1;
        sv->resp_ptr = p;
        sv->resp_len = *len;
        if (view) {
            *view = p;
            sv->view = 1;
            return 0;
        }
        if (*len > cap)
            return -EMSGSIZE;
        if (*len && buf)
            memcpy(buf, p, *len);
        return 0;
    }
    if (rc == -EAGAIN) {
        if (!request)
            return rc; /* still pending: poll again */
        rc = -ETIMEDOUT;
    }
    if (rc != -EBADMSG && ch->cli.awaiting)
        shm__svc_cancel(&ch->svc, &ch->cli, rc == -ETIMEDOUT || rc == -EINTR);
    return rc;
}

int shm_channel_request(shm_channel_t *ch, const void *req, uint64_t req_len, void *resp,
                        uint64_t resp_cap, uint64_t *resp_len, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_CLIENT);
    if (rc)
        return rc;
    if ((!req && req_len) || (!resp && resp_cap) || !resp_len)
        return -EINVAL;
    uint64_t deadline = deadline_of(timeout_ns);
    void *dst;
    uint32_t epoch;
    if ((rc = client_reserve(ch, req_len, &dst, &epoch, timeout_ns)) != 0)
        return rc == -EAGAIN ? -ETIMEDOUT : rc;
    if (req_len)
        memcpy(dst, req, req_len);
    if ((rc = client_commit(ch, req_len, epoch)) != 0)
        return rc;
    return client_response(ch, resp, resp_cap, NULL, resp_len, left_of(deadline), 1);
}

int shm_channel_response(shm_channel_t *ch, const void **ptr, uint64_t *len, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_CLIENT);
    if (rc)
        return rc;
    if (!ptr || !len)
        return -EINVAL;
    return client_response(ch, NULL, 0, ptr, len, timeout_ns, 0);
}

int shm_channel_wait_server(shm_channel_t *ch, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_CLIENT);
    if (rc)
        return rc;
    uint32_t epoch;
    rc = wait_for_server(ch, &epoch, 1, timeout_ns);
    return rc == -EAGAIN ? -ETIMEDOUT : rc;
}

/* The shared calls on a client handle (channel.c dispatches them here). */
int shm__sv_write(shm_channel_t *ch, const void *data, uint64_t len, int64_t timeout_ns)
{
    if (ch->role != SHM_CHANNEL_CLIENT)
        return ch->role == SHM_CHANNEL_SERVER ? -EOPNOTSUPP : -EBADF;
    void *dst;
    uint32_t epoch;
    int rc = client_reserve(ch, len, &dst, &epoch, timeout_ns);
    if (rc)
        return rc;
    if (len)
        memcpy(dst, data, len);
    return client_commit(ch, len, epoch);
}

int shm__sv_reserve(shm_channel_t *ch, uint64_t len, void **ptr, int64_t timeout_ns)
{
    if (ch->role != SHM_CHANNEL_CLIENT)
        return ch->role == SHM_CHANNEL_SERVER ? -EOPNOTSUPP : -EBADF;
    if (!ptr)
        return -EINVAL;
    uint32_t epoch;
    int rc = client_reserve(ch, len, ptr, &epoch, timeout_ns);
    if (rc == 0)
        ch->sv->reserve_epoch = epoch; /* commit addresses the request to it */
    return rc;
}

int shm__sv_commit(shm_channel_t *ch, uint64_t len)
{
    if (ch->role != SHM_CHANNEL_CLIENT)
        return ch->role == SHM_CHANNEL_SERVER ? -EOPNOTSUPP : -EBADF;
    if (!ch->cli.reserving)
        return -EINVAL;
    return client_commit(ch, len, ch->sv->reserve_epoch);
}

int shm__sv_read(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len, int64_t timeout_ns)
{
    if (ch->role != SHM_CHANNEL_CLIENT)
        return ch->role == SHM_CHANNEL_SERVER ? -EOPNOTSUPP : -EBADF;
    if (ch->sv->have_resp) { /* read again after -EMSGSIZE */
        *len = ch->sv->resp_len;
        if (*len > cap)
            return -EMSGSIZE;
        if (*len)
            memcpy(buf, ch->sv->resp_ptr, *len);
        return 0;
    }
    return client_response(ch, buf, cap, NULL, len, timeout_ns, 0);
}

int shm__sv_peek(shm_channel_t *ch, const void **ptr, uint64_t *len, int64_t timeout_ns)
{
    if (ch->role != SHM_CHANNEL_CLIENT)
        return ch->role == SHM_CHANNEL_SERVER ? -EOPNOTSUPP : -EBADF;
    if (!ptr || !len)
        return -EINVAL;
    return client_response(ch, NULL, 0, ptr, len, timeout_ns, 0);
}

int shm__sv_release(shm_channel_t *ch)
{
    if (ch->role != SHM_CHANNEL_CLIENT)
        return ch->role == SHM_CHANNEL_SERVER ? -EOPNOTSUPP : -EBADF;
    if (!ch->sv->view)
        return -EINVAL;
    ch->sv->view = 0;
    return 0;
}

int shm__sv_abort(shm_channel_t *ch)
{
    if (ch->role == SHM_CHANNEL_CLIENT) {
        if (!ch->cli.reserving)
            return -EINVAL;
        ch->cli.reserving = 0;
        return 0;
    }
    if (ch->role == SHM_CHANNEL_SERVER) {
        if (!ch->srv->reserving)
            return -EINVAL;
        ch->srv->reserving = 0; /* the request stays owed */
        return 0;
    }
    return -EBADF;
}

/* ---- server ----------------------------------------------------------------------- */

/* Reclaim the slots of dead clients (spec §5.3): attached, and their lock is free. */
static void reap_dead(shm_channel_t *ch)
{
    struct shm__svc *s = &ch->svc;
    for (uint32_t i = 0; i < s->g.max_clients; i++) {
        if (!shm__svc_slot_attached(s, i))
            continue;
        int byte = SHM__SVC_LOCK_CLIENT_BASE + (int)i;
        if (shm__lock_try(ch->seg.fd, byte, 1) != 0)
            continue;
        if (shm__svc_reclaim(s, ch->srv, i)) {
            ch->sv->reaped[i / 64] |= 1ull << (i % 64);
            struct shm__sv_state *sv = ch->sv;
            if (sv->stashed && sv->stash.slot == i && !ch->srv->held[i].owed)
                sv->stashed = 0;
        }
        shm__lock_drop(ch->seg.fd, byte);
    }
}

struct receive_wait {
    shm_channel_t *ch;
    struct shm__svc_request r;
};

static int receive_try(void *arg)
{
    struct receive_wait *w = arg;
    struct shm__sv_state *sv = w->ch->sv;
    if (sv->stashed) {
        w->r = sv->stash;
        return 0;
    }
    return shm__svc_receive(&w->ch->svc, w->ch->srv, &w->r);
}

/* Nothing to serve: reap dead clients once per liveness slice (spec §5.3). */
static int receive_settle(void *arg, int force)
{
    struct receive_wait *w = arg;
    struct shm__sv_state *sv = w->ch->sv;
    (void)force;
    uint64_t now = shm__now_ns();
    if (now >= sv->next_reap_ns) {
        sv->next_reap_ns = now + shm__hook_liveness_slice_ns;
        reap_dead(w->ch);
    }
    return -EAGAIN;
}

static uint32_t server_sleep_prepare(void *arg, uint32_t **word)
{
    struct receive_wait *w = arg;
    *word = &w->ch->svc.hdr->doorbell;
    return shm__svc_server_wait_prepare(&w->ch->svc);
}

static void server_sleep_done(void *arg)
{
    struct receive_wait *w = arg;
    shm__svc_server_wait_done(&w->ch->svc);
}

static int server_receive(shm_channel_t *ch, struct shm__svc_request *r, int64_t timeout_ns)
{
    struct receive_wait rw = {ch, {0}};
    struct shm__wait w = {.try_once = receive_try, .settle = receive_settle,
                          .prepare = server_sleep_prepare, .done = server_sleep_done,
                          .arg = &rw, .spin_ns = ch->spin_ns};
    int rc = shm__wait_run(&w, timeout_ns);
    if (rc == 0)
        *r = rw.r;
    return rc;
}

static void id_of(const struct shm__svc_request *r, shm_channel_request_id_t *id)
{
    id->client = r->slot;
    id->reserved = 0;
    id->seq = r->seq;
}

static void unstash(shm_channel_t *ch, const shm_channel_request_id_t *id)
{
    struct shm__sv_state *sv = ch->sv;
    if (sv->stashed && sv->stash.slot == id->client && sv->stash.seq == id->seq)
        sv->stashed = 0;
}

int shm_channel_receive(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
                        shm_channel_request_id_t *id, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_SERVER);
    if (rc)
        return rc;
    if (!len || !id || (!buf && cap))
        return -EINVAL;
    struct shm__svc_request r;
    if ((rc = server_receive(ch, &r, timeout_ns)) != 0)
        return rc;
    id_of(&r, id);
    *len = r.len;
    if (r.len > cap) {
        ch->sv->stash = r; /* held in place: the next receive returns it */
        ch->sv->stashed = 1;
        return -EMSGSIZE;
    }
    ch->sv->stashed = 0;
    if (r.len)
        memcpy(buf, r.ptr, r.len);
    if (shm__svc_release_request(&ch->svc, ch->srv, r.slot, r.seq) == 1)
        shm__futex_wake(&shm__svc_resp(&ch->svc, r.slot)->resp_wake);
    return 0;
}

int shm_channel_receive_peek(shm_channel_t *ch, const void **ptr, uint64_t *len,
                             shm_channel_request_id_t *id, int64_t timeout_ns)
{
    int rc = role_is(ch, SHM_CHANNEL_SERVER);
    if (rc)
        return rc;
    if (!ptr || !len || !id)
        return -EINVAL;
    struct shm__svc_request r;
    if ((rc = server_receive(ch, &r, timeout_ns)) != 0)
        return rc;
    ch->sv->stashed = 0;
    id_of(&r, id);
    *ptr = r.ptr;
    *len = r.len;
    return 0;
}

static int server_id(shm_channel_t *ch, const shm_channel_request_id_t *id)
{
    int rc = role_is(ch, SHM_CHANNEL_SERVER);
    if (rc)
        return rc;
    if (!id || id->reserved || id->client >= ch->svc.g.max_clients)
        return -EINVAL;
    return 0;
}

int shm_channel_receive_release(shm_channel_t *ch, const shm_channel_request_id_t *id)
{
    int rc = server_id(ch, id);
    if (rc)
        return rc;
    if (ch->srv->reserving && ch->srv->reserve_slot == id->client)
        return -EBUSY;
    if ((rc = shm__svc_release_request(&ch->svc, ch->srv, id->client, id->seq)) < 0)
        return rc;
    unstash(ch, id);
    if (rc == 1)
        shm__futex_wake(&shm__svc_resp(&ch->svc, id->client)->resp_wake);
    return 0;
}

int shm_channel_respond_reserve(shm_channel_t *ch, const shm_channel_request_id_t *id,
                                uint64_t len, void **ptr)
{
    int rc = server_id(ch, id);
    if (rc)
        return rc;
    if (!ptr)
        return -EINVAL;
    rc = shm__svc_respond_reserve(&ch->svc, ch->srv, id->client, id->seq, len, ptr);
    if (rc == -ESTALE)
        unstash(ch, id);
    return rc;
}

int shm_channel_respond_commit(shm_channel_t *ch, const shm_channel_request_id_t *id,
                               uint64_t len)
{
    int rc = server_id(ch, id);
    if (rc)
        return rc;
    struct shm__svc_server *v = ch->srv;
    if (!v->reserving || v->reserve_slot != id->client || v->held[id->client].seq != id->seq)
        return -EINVAL;
    if ((rc = shm__svc_respond_commit(&ch->svc, v, len)) < 0)
        return rc;
    unstash(ch, id);
    if (rc == 1)
        shm__futex_wake(&shm__svc_resp(&ch->svc, id->client)->resp_wake);
    return 0;
}

int shm_channel_respond(shm_channel_t *ch, const shm_channel_request_id_t *id, const void *data,
                        uint64_t len)
{
    if (!data && len)
        return -EINVAL;
    void *ptr;
    int rc = shm_channel_respond_reserve(ch, id, len, &ptr);
    if (rc)
        return rc;
    if (len)
        memcpy(ptr, data, len);
    return shm_channel_respond_commit(ch, id, len);
}

int shm_channel_drop(shm_channel_t *ch, const shm_channel_request_id_t *id)
{
    int rc = server_id(ch, id);
    if (rc)
        return rc;
    if ((rc = shm__svc_drop(&ch->svc, ch->srv, id->client, id->seq)) < 0)
        return rc;
    unstash(ch, id);
    if (rc == 1)
        shm__futex_wake(&shm__svc_resp(&ch->svc, id->client)->resp_wake);
    return 0;
}

int shm_channel_reap(shm_channel_t *ch, uint32_t *dead, uint32_t cap)
{
    int rc = role_is(ch, SHM_CHANNEL_SERVER);
    if (rc)
        return rc;
    if (!dead && cap)
        return -EINVAL;
    reap_dead(ch);
    struct shm__sv_state *sv = ch->sv;
    uint32_t n = 0;
    for (uint32_t w = 0; w < SHM__SVC_READY_WORDS && n < cap; w++)
        while (sv->reaped[w] && n < cap) {
            uint32_t b = (uint32_t)__builtin_ctzll(sv->reaped[w]);
            sv->reaped[w] &= sv->reaped[w] - 1;
            dead[n++] = w * 64 + b;
        }
    return (int)n;
}

/* ---- inspection ------------------------------------------------------------------- */

static int own_slot(const shm_channel_t *ch, uint32_t i)
{
    return ch->role == SHM_CHANNEL_CLIENT && ch->cli.index == i;
}

static uint32_t live_clients(shm_channel_t *ch)
{
    struct shm__svc *s = &ch->svc;
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->g.max_clients; i++)
        if (own_slot(ch, i) ||
            (shm__svc_slot_attached(s, i) &&
             shm__lock_held(ch->seg.fd, SHM__SVC_LOCK_CLIENT_BASE + (int)i) == 1))
            n++;
    return n;
}

void shm__sv_stat(shm_channel_t *ch, shm_channel_stat_t *st)
{
    const struct shm__svc_header *h = ch->svc.hdr;
    const struct shm__svc_geom *g = &ch->svc.g;
    st->kind = SHM_CHANNEL_KIND_SERVICE;
    st->layout_major = shm__load_relaxed(&h->layout_major);
    st->layout_minor = shm__load_relaxed(&h->layout_minor);
    st->capacity = g->capacity;
    st->max_payload = g->max_request > g->max_response ? g->max_request : g->max_response;
    st->msgs_written = shm__load_relaxed(&h->requests_taken);
    st->msgs_read = shm__load_relaxed(&h->responses);
    st->producer_wakes = shm__load_relaxed(&h->server_wakes);
    st->producer_sleeps = shm__load_relaxed(&h->server_sleeps);
    st->producer_state = shm__load_relaxed(&h->server_state);
    st->producer_epoch = shm__load_relaxed(&h->server_epoch);
    st->creator_pid = shm__load_relaxed(&h->creator_pid);
    st->created_ns = shm__load_relaxed(&h->created_ns);
    st->producer_alive = ch->role == SHM_CHANNEL_SERVER ||
                         shm__lock_held(ch->seg.fd, SHM__SVC_LOCK_SERVER) == 1;
    st->consumer_alive = ch->role == SHM_CHANNEL_CLIENT ||
                         shm__lock_held_range(ch->seg.fd, SHM__SVC_LOCK_CLIENT_BASE,
                                              (int)g->max_clients) == 1;
    st->in_use = ch->role != SHM_CHANNEL_OBSERVER ||
                 shm__lock_held(ch->seg.fd, SHM__LOCK_ATTACH) == 1;
}

int shm_channel_service_stat(shm_channel_t *ch, shm_channel_service_stat_t *st)
{
    if (!ch || !st)
        return -EINVAL;
    if (ch->detached)
        return -EBADF;
    if (ch->kind != SHM_CHANNEL_KIND_SERVICE)
        return -EPROTOTYPE;
    struct shm__svc *s = &ch->svc;
    const struct shm__svc_header *h = s->hdr;
    memset(st, 0, sizeof(*st));
    st->max_request = s->g.max_request;
    st->max_response = s->g.max_response;
    st->max_clients = s->g.max_clients;
    st->clients = shm__load_relaxed(&h->clients);
    st->live_clients = live_clients(ch);
    st->server_state = shm__load_acquire(&h->server_state);
    st->server_epoch = shm__load_relaxed(&h->server_epoch);
    st->server_alive = ch->role == SHM_CHANNEL_SERVER ||
                       shm__lock_held(ch->seg.fd, SHM__SVC_LOCK_SERVER) == 1;
    st->joins = shm__load_relaxed(&h->joins);
    st->reclaims = shm__load_relaxed(&h->reclaims);
    st->reaped = shm__load_relaxed(&h->reaped);
    st->requests = shm__load_relaxed(&h->requests_taken);
    st->responses = shm__load_relaxed(&h->responses);
    st->stale = shm__load_relaxed(&h->stale_responses);
    st->expired = shm__load_relaxed(&h->expired);
    st->invalid = shm__load_relaxed(&h->invalid);
    st->server_sleeps = shm__load_relaxed(&h->server_sleeps);
    st->server_wakes = shm__load_relaxed(&h->server_wakes);
    for (uint32_t i = 0; i < s->g.max_clients; i++) {
        if (!shm__svc_slot_attached(s, i))
            continue;
        const struct shm__svc_client_line *l = shm__svc_line(s, i);
        st->client_sleeps += shm__load_relaxed(&l->sleeps);
        st->client_timeouts += shm__load_relaxed(&l->timeouts);
    }
    return 0;
}
