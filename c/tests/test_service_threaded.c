/* The service algorithm with real threads over one plain buffer (the TSan target): one server
 * thread and many client threads, real futexes (the doorbell and each slot's resp_wake),
 * checksummed requests and responses. The server holds several requests at once and answers
 * them in a random order, copies some requests out and reads others in place, drops some,
 * and answers some only after their client gave up; clients time out, come back with the
 * next request, and leave and re-join their slot. Every answer a client accepts must be the
 * answer to the request it is waiting for, intact: 0 misrouted, 0 torn, 0 lost. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ct.h"
#include "service.h"

TestSuite(svc_threads, .timeout = 500);

#define NCLIENTS 16
#define MAXMSG 200u
#define SEED_REQ 0x5E7F1CEull
#define SEED_RESP 0xA75EE75ull
#define NORMAL_WAIT_NS (20 * CT_SEC) /* a lost answer or wake-up shows as a timeout */
#define GIVEUP_NS (2 * CT_MS)

enum kind { NORMAL, SLOW, DROP };

struct shared {
    struct shm__svc s;
    uint64_t per_client;
    int clients_done;
    /* server results */
    uint64_t served, dropped, late_written, late_stale, bad_requests, normal_stale;
};

struct client {
    struct shared *sh;
    uint32_t index;
    struct shm__svc_client c;
    /* results */
    uint64_t ok, misrouted, torn, lost, unexpected, gave_up, withdrawn, busy_waits, sessions;
    int rc;
};

static long futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

static int lock_held_yes(void *arg)
{
    (void)arg;
    return 1;
}

/* What client `slot` asks in its request number `nonce` (both sides derive it). */
static enum kind kind_of(uint32_t slot, uint64_t nonce)
{
    uint64_t x = ct_mix(nonce * 131 + slot) % 100;
    return x < 90 ? NORMAL : x < 95 ? SLOW : DROP;
}

static uint64_t req_len(uint32_t slot, uint64_t nonce)
{
    return 16 + ct_msg_len(SEED_REQ ^ slot, nonce, MAXMSG - 16);
}

static uint64_t resp_len(uint32_t slot, uint64_t nonce)
{
    return 16 + ct_msg_len(SEED_RESP ^ slot, nonce, MAXMSG - 16);
}

static void sleep_ns(struct timespec *ts, int64_t ns)
{
    ts->tv_sec = ns / CT_SEC;
    ts->tv_nsec = ns % CT_SEC;
}

/* ---- server ------------------------------------------------------------------------- */

struct hold {
    uint32_t slot;
    uint64_t seq;
    uint64_t nonce;
    uint64_t timeouts_at; /* SLOW: answer once the client's timeouts counter passes this */
};

static void wake_word(uint32_t *word, void *arg)
{
    (void)arg;
    futex(word, FUTEX_WAKE, INT_MAX, NULL);
}

static void answer(struct shared *sh, struct shm__svc_server *v, struct hold *h, int late)
{
    uint8_t buf[MAXMSG];
    uint64_t len = resp_len(h->slot, h->nonce);
    ct_msg_fill(buf, SEED_RESP ^ h->slot, h->nonce, len);
    int rc;
    if (h->nonce % 3 == 0) { /* in place */
        void *p;
        rc = shm__svc_respond_reserve(&sh->s, v, h->slot, h->seq, len, &p);
        if (rc == 0) {
            memcpy(p, buf, len);
            rc = shm__svc_respond_commit(&sh->s, v, len);
        }
    } else {
        rc = shm__svc_respond(&sh->s, v, h->slot, h->seq, buf, len);
    }
    if (rc == 1)
        futex(&shm__svc_resp(&sh->s, h->slot)->resp_wake, FUTEX_WAKE, INT_MAX, NULL);
    if (rc == -ESTALE) {
        if (late)
            sh->late_stale++;
        else
            sh->normal_stale++;
    } else if (rc < 0) {
        sh->bad_requests++;
    } else if (late) {
        sh->late_written++;
    } else {
        sh->served++;
    }
}

struct server_state {
    struct shm__svc_server *v;
    struct hold flight[8], slow[4 * NCLIENTS];
    int nflight, nslow;
};

/* A request just received: check it, copy it out (every other one), then drop it, keep it
 * until its client gives up (SLOW), or put it in flight. */
static void take(struct shared *sh, struct server_state *st, const struct shm__svc_request *r)
{
    struct shm__svc_server *v = st->v;
    uint64_t nonce = r->len >= 8 ? ct_msg_seq(r->ptr) : 0;
    if (ct_msg_verify(r->ptr, r->len, SEED_REQ ^ r->slot, nonce, req_len(r->slot, nonce))) {
        sh->bad_requests++;
        shm__svc_drop(&sh->s, v, r->slot, r->seq);
        return;
    }
    struct hold h = {r->slot, r->seq, nonce, 0};
    if (nonce % 2 == 0 && shm__svc_release_request(&sh->s, v, r->slot, r->seq) == 1)
        futex(&shm__svc_resp(&sh->s, r->slot)->resp_wake, FUTEX_WAKE, INT_MAX, NULL);
    enum kind k = kind_of(r->slot, nonce);
    if (k == DROP) {
        if (shm__svc_drop(&sh->s, v, r->slot, r->seq) == 1)
            futex(&shm__svc_resp(&sh->s, r->slot)->resp_wake, FUTEX_WAKE, INT_MAX, NULL);
        sh->dropped++;
    } else if (k == SLOW && st->nslow < (int)(sizeof st->slow / sizeof st->slow[0])) {
        h.timeouts_at =
            __atomic_load_n(&shm__svc_line(&sh->s, r->slot)->timeouts, __ATOMIC_RELAXED);
        st->slow[st->nslow++] = h;
    } else {
        st->flight[st->nflight++] = h;
    }
}

static void *server_main(void *arg)
{
    struct shared *sh = arg;
    static struct server_state st;
    memset(&st, 0, sizeof st);
    st.v = calloc(1, sizeof(*st.v));
    uint64_t rnd = 12345;
    shm__svc_server_attach(&sh->s, st.v, wake_word, NULL);
    for (;;) {
        struct shm__svc_request r;
        int rc = shm__svc_receive(&sh->s, st.v, &r);
        if (rc == 0) {
            take(sh, &st, &r);
            if (st.nflight < 8)
                continue; /* hold more before answering */
        }
        /* answer what is in flight, in a random order */
        while (st.nflight) {
            rnd = ct_mix(rnd);
            int k = (int)(rnd % (uint64_t)st.nflight);
            answer(sh, st.v, &st.flight[k], 0);
            st.flight[k] = st.flight[--st.nflight];
        }
        /* answer the slow ones whose client gave up (all of them once every client is
         * done, so that a failing client cannot make the server wait forever) */
        int all_done = __atomic_load_n(&sh->clients_done, __ATOMIC_ACQUIRE) == NCLIENTS;
        for (int k = 0; k < st.nslow;) {
            uint64_t t = __atomic_load_n(&shm__svc_line(&sh->s, st.slow[k].slot)->timeouts,
                                         __ATOMIC_RELAXED);
            if (t != st.slow[k].timeouts_at || all_done) {
                answer(sh, st.v, &st.slow[k], 1);
                st.slow[k] = st.slow[--st.nslow];
            } else {
                k++;
            }
        }
        if (rc == 0)
            continue;
        if (all_done && st.nslow == 0)
            break;
        uint32_t seen = shm__svc_server_wait_prepare(&sh->s);
        if (shm__svc_receive(&sh->s, st.v, &r) == 0) { /* the re-try before sleeping */
            shm__svc_server_wait_done(&sh->s);
            take(sh, &st, &r);
            continue;
        }
        struct timespec ts;
        sleep_ns(&ts, st.nslow ? CT_MS : 100 * CT_MS);
        futex(&sh->s.hdr->doorbell, FUTEX_WAIT, seen, &ts);
        shm__svc_server_wait_done(&sh->s);
    }
    shm__svc_server_close(&sh->s, st.v, wake_word, NULL);
    free(st.v);
    return NULL;
}

/* ---- clients ------------------------------------------------------------------------ */

/* Wait on the slot's futex until cond(c) stops returning -EBUSY/-EAGAIN, or the deadline. */
static int wait_slot(struct client *cl, uint64_t deadline, int (*try)(struct client *, void *),
                     void *arg)
{
    struct shm__svc *s = &cl->sh->s;
    for (int spin = 0; spin < 200; spin++) {
        int rc = try(cl, arg);
        if (rc != -EAGAIN && rc != -EBUSY)
            return rc;
    }
    for (;;) {
        uint32_t seen = shm__svc_client_wait_prepare(s, &cl->c);
        int rc = try(cl, arg);
        if (rc != -EAGAIN && rc != -EBUSY) {
            shm__svc_client_wait_done(&cl->c);
            return rc;
        }
        uint32_t e;
        rc = shm__svc_server_verdict(s, cl->c.awaiting ? cl->c.epoch : 0, &e, lock_held_yes,
                                     NULL);
        if (rc != 0) {
            shm__svc_client_wait_done(&cl->c);
            return rc;
        }
        uint64_t now = ct_now_ns();
        if (now >= deadline) {
            shm__svc_client_wait_done(&cl->c);
            return -ETIMEDOUT;
        }
        struct timespec ts;
        sleep_ns(&ts, (int64_t)(deadline - now));
        futex(&shm__svc_resp(s, cl->index)->resp_wake, FUTEX_WAIT, seen, &ts);
        shm__svc_client_wait_done(&cl->c);
    }
}

struct resp_out {
    uint8_t *buf;
    uint64_t len;
};

static int try_response(struct client *cl, void *arg)
{
    struct resp_out *o = arg;
    return shm__svc_response(&cl->sh->s, &cl->c, o->buf, MAXMSG, NULL, &o->len);
}

static int try_reserve(struct client *cl, void *arg)
{
    void **p = arg;
    return shm__svc_request_reserve(&cl->sh->s, &cl->c, MAXMSG, p);
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct shared *sh = cl->sh;
    struct shm__svc *s = &sh->s;
    uint8_t buf[MAXMSG];
    uint64_t nonce = 0;
    int joined = 0;
    for (uint64_t n = 0; n < sh->per_client; n++) {
        if (!joined) {
            int rc = shm__svc_client_join(s, &cl->c, cl->index, (uint32_t)getpid());
            if (rc < 0) {
                cl->rc = rc;
                break;
            }
            joined = 1;
            cl->sessions++;
        }
        nonce++;
        enum kind k = kind_of(cl->index, nonce);
        uint64_t len = req_len(cl->index, nonce);
        /* wait for a server, and for our slot (the server may still read our abandoned
         * request in place) */
        uint32_t epoch = 0;
        while (shm__svc_server_verdict(s, 0, &epoch, lock_held_yes, NULL) == -EAGAIN)
            futex(&s->hdr->server_seq, FUTEX_WAIT, __atomic_load_n(&s->hdr->server_seq,
                                                                   __ATOMIC_ACQUIRE),
                  &(struct timespec){0, 1000000});
        void *p = NULL;
        int rc = shm__svc_request_reserve(s, &cl->c, len, &p);
        if (rc == -EBUSY) {
            cl->busy_waits++;
            rc = wait_slot(cl, ct_now_ns() + NORMAL_WAIT_NS, try_reserve, &p);
        }
        if (rc) {
            cl->rc = rc;
            break;
        }
        ct_msg_fill(p, SEED_REQ ^ cl->index, nonce, len);
        if (shm__svc_request_commit(s, &cl->c, len, epoch) == 1)
            futex(&s->hdr->doorbell, FUTEX_WAKE, INT_MAX, NULL);
        struct resp_out o = {buf, 0};
        uint64_t wait = k == NORMAL ? NORMAL_WAIT_NS : GIVEUP_NS;
        rc = wait_slot(cl, ct_now_ns() + wait, try_response, &o);
        if (rc == -ETIMEDOUT) {
            if (shm__svc_cancel(s, &cl->c, 1) == 1)
                cl->withdrawn++;
            if (k == NORMAL)
                cl->lost++;
            else
                cl->gave_up++;
        } else if (rc) {
            cl->rc = rc;
            break;
        } else if (k != NORMAL) {
            cl->unexpected++; /* an answer the server never gave in time */
        } else if (o.len < 8 || ct_msg_seq(buf) != nonce) {
            cl->misrouted++;
        } else if (ct_msg_verify(buf, o.len, SEED_RESP ^ cl->index, nonce,
                                 resp_len(cl->index, nonce))) {
            cl->torn++;
        } else {
            cl->ok++;
        }
        if (n % 97 == 96) { /* leave and come back */
            shm__svc_client_leave(s, &cl->c);
            joined = 0;
        }
    }
    if (joined)
        shm__svc_client_leave(s, &cl->c);
    __atomic_fetch_add(&sh->clients_done, 1, __ATOMIC_RELEASE);
    futex(&s->hdr->doorbell, FUTEX_WAKE, INT_MAX, NULL);
    return NULL;
}

Test(svc_threads, many_clients_one_server_no_misrouted_or_lost_answers)
{
    struct shm__svc_geom g;
    cr_assert_eq(shm__svc_geometry(&g, MAXMSG, MAXMSG, NCLIENTS), 0);
    void *mem = NULL;
    cr_assert_eq(posix_memalign(&mem, 4096, g.segment_size), 0);
    memset(mem, 0, g.segment_size);
    shm__svc_format(mem, &g, 1, 1);
    static struct shared sh;
    memset(&sh, 0, sizeof sh);
    shm__svc_bind(&sh.s, mem, &g);
    sh.per_client = ct_scaled(3000, 300);
    static struct client cl[NCLIENTS];
    pthread_t ct[NCLIENTS], st;
    /* clients first: they wait for the server */
    for (int i = 0; i < NCLIENTS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].sh = &sh;
        cl[i].index = (uint32_t)i;
        cr_assert_eq(pthread_create(&ct[i], NULL, client_main, &cl[i]), 0);
    }
    cr_assert_eq(pthread_create(&st, NULL, server_main, &sh), 0);
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(ct[i], NULL);
    pthread_join(st, NULL);
    uint64_t ok = 0, gave_up = 0, withdrawn = 0, busy = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        struct client *c = &cl[i];
        cr_assert_eq(c->rc, 0, "client %d: error %d", i, c->rc);
        cr_assert_eq(c->misrouted, 0, "client %d: %lu answers to another request", i,
                     (unsigned long)c->misrouted);
        cr_assert_eq(c->torn, 0, "client %d: %lu torn answers", i, (unsigned long)c->torn);
        cr_assert_eq(c->lost, 0, "client %d: %lu requests never answered", i,
                     (unsigned long)c->lost);
        cr_assert_eq(c->unexpected, 0, "client %d: %lu stale answers delivered", i,
                     (unsigned long)c->unexpected);
        cr_assert(c->sessions > 1, "clients left and came back");
        ok += c->ok;
        gave_up += c->gave_up;
        withdrawn += c->withdrawn;
        busy += c->busy_waits;
    }
    cr_assert_eq(sh.bad_requests, 0, "every request intact");
    cr_assert_eq(sh.normal_stale, 0, "no answer to a waiting client refused as stale");
    cr_assert_eq(ok, sh.served, "every answer given was received once");
    cr_assert(gave_up > 0);
    cr_assert(sh.late_written + sh.late_stale > 0, "late answers happened");
    cr_assert(sh.late_written > 0, "late answers written into the buffer, never delivered");
    cr_assert(sh.dropped > 0);
    cr_assert(busy > 0, "clients waited for a slot the server still read");
    cr_assert_eq(sh.s.hdr->server_state, 2);
    cr_assert_eq(sh.s.hdr->clients, 0);
    fprintf(stderr,
            "svc threads: %d clients, %lu answered, %lu gave up (%lu withdrawn), %lu dropped, "
            "late %lu written %lu refused, %lu busy waits\n",
            NCLIENTS, (unsigned long)ok, (unsigned long)gave_up, (unsigned long)withdrawn,
            (unsigned long)sh.dropped, (unsigned long)sh.late_written,
            (unsigned long)sh.late_stale, (unsigned long)busy);
    free(mem);
}
