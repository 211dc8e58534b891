/* Services (kind 4) through the public API with a server thread and client threads over ONE
 * mapping of the segment (shm__hook_share_mapping), the ThreadSanitizer target: every access
 * of every side is at one address, so the request word's release/acquire (and the response
 * word's) are what order the plain payload copies, and TSan checks exactly that. Requests
 * by copy and in place, answers out of order, drops, late answers to clients that gave up;
 * spin 0 (every wait through the flags and the futexes) and the default spin. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"
#include "hooks.h"

TestSuite(svc_onemap, .init = ct_setup, .fini = ct_teardown, .timeout = 500);

#define NCLI 6
#define MAXMSG 512u
#define SEED_REQ 0x7777ull
#define SEED_RESP 0x8888ull

static shm_channel_t *srv_h;
static int clients_done;
static uint64_t per_client;

struct cres {
    shm_channel_t *ch;
    uint32_t cid;
    uint64_t ok, bad, timeouts;
    int rc;
};

static unsigned kind_of(uint64_t seq)
{
    return (unsigned)((seq & 0xffffffffull) % 16); /* 0 drop, 1 late */
}

static uint64_t req_len(uint64_t seq)
{
    return 16 + ct_msg_len(SEED_REQ, seq, MAXMSG - 16);
}

static uint64_t resp_len(uint64_t seq)
{
    return 16 + ct_msg_len(SEED_RESP, seq, MAXMSG - 16);
}

static void *client(void *arg)
{
    struct cres *r = arg;
    uint8_t req[MAXMSG], resp[MAXMSG];
    int answered = 0; /* the previous request was answered: the buffer is free at once */
    for (uint64_t n = 1; n <= per_client; n++) {
        uint64_t seq = (uint64_t)r->cid << 32 | n, got = 0;
        unsigned kind = kind_of(seq);
        uint64_t len = req_len(seq);
        int rc;
        if (n & 1) {
            ct_msg_fill(req, SEED_REQ, seq, len);
            rc = shm_channel_request(r->ch, req, len, resp, sizeof resp, &got,
                                     kind <= 1 ? 2 * CT_MS : 60 * CT_SEC);
        } else {
            void *p;
            rc = shm_channel_reserve(r->ch, len, &p, answered ? 0 : 60 * CT_SEC);
            if (rc == -EAGAIN && answered) {
                r->bad++; /* answered, yet the buffer is still taken (spec §6 (e)) */
                rc = shm_channel_reserve(r->ch, len, &p, 60 * CT_SEC);
            }
            if (rc == 0) {
                ct_msg_fill(p, SEED_REQ, seq, len);
                rc = shm_channel_commit(r->ch, len);
            }
            const void *v = NULL;
            if (rc == 0)
                rc = shm_channel_response(r->ch, &v, &got, kind <= 1 ? 2 * CT_MS : 60 * CT_SEC);
            if (rc == 0)
                memcpy(resp, v, got < sizeof resp ? got : sizeof resp);
        }
        answered = rc == 0;
        if (rc == -ETIMEDOUT && kind <= 1) {
            r->timeouts++;
            continue;
        }
        if (rc) {
            r->rc = rc;
            break;
        }
        if (kind == 0 || ct_msg_verify(resp, got, SEED_RESP, seq, resp_len(seq)))
            r->bad++;
        else
            r->ok++;
    }
    __atomic_fetch_add(&clients_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

struct held {
    shm_channel_request_id_t id;
    uint64_t seq;
};

static void respond(struct held *h, uint64_t *errors)
{
    uint64_t len = resp_len(h->seq);
    int rc;
    if (h->seq & 2) {
        void *p;
        rc = shm_channel_respond_reserve(srv_h, &h->id, len, &p);
        if (rc == 0) {
            ct_msg_fill(p, SEED_RESP, h->seq, len);
            rc = shm_channel_respond_commit(srv_h, &h->id, len);
        }
    } else {
        uint8_t buf[MAXMSG];
        ct_msg_fill(buf, SEED_RESP, h->seq, len);
        rc = shm_channel_respond(srv_h, &h->id, buf, len);
    }
    if (rc && rc != -ESTALE)
        (*errors)++;
}

static void *server(void *arg)
{
    uint64_t *errors = arg;
    struct held held[2], late[NCLI];
    int nheld = 0, nlate = 0;
    uint8_t buf[MAXMSG];
    uint64_t calls = 0;
    while (__atomic_load_n(&clients_done, __ATOMIC_ACQUIRE) < NCLI || nheld || nlate) {
        shm_channel_request_id_t id;
        uint64_t len;
        const void *v = buf;
        int rc = ++calls % 2 ? shm_channel_receive(srv_h, buf, sizeof buf, &len, &id, 5 * CT_MS)
                             : shm_channel_receive_peek(srv_h, &v, &len, &id, 5 * CT_MS);
        if (rc == 0) {
            uint64_t seq = ct_msg_seq(v);
            if (ct_msg_verify(v, len, SEED_REQ, seq, req_len(seq))) {
                (*errors)++;
                shm_channel_drop(srv_h, &id);
            } else if (kind_of(seq) == 0) {
                shm_channel_drop(srv_h, &id);
            } else if (kind_of(seq) == 1) {
                late[nlate++] = (struct held){id, seq};
            } else {
                held[nheld++] = (struct held){id, seq};
            }
        }
        if (nheld == 2 || (rc && nheld))
            while (nheld)
                respond(&held[--nheld], errors);
        /* Quiet, or as many as there are clients: the late ones now (their clients gave up). */
        if ((rc || nlate == NCLI) && nlate)
            while (nlate)
                respond(&late[--nlate], errors);
    }
    return NULL;
}

static void run(uint64_t spin)
{
    char n[64];
    ct_name(n, "svcmap");
    shm_channel_service_config_t cfg = {MAXMSG, MAXMSG, NCLI, 0, {0}};
    cr_assert_eq(shm_channel_open_service(&srv_h, n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, &cfg,
                                          0), 0);
    shm_channel_set_spin(srv_h, spin);
    struct cres cr[NCLI];
    pthread_t t[NCLI], st;
    memset(cr, 0, sizeof cr);
    per_client = ct_scaled(1500, 300);
    clients_done = 0;
    for (uint32_t i = 0; i < NCLI; i++) {
        cr[i].cid = i + 1;
        cr_assert_eq(shm_channel_open_service(&cr[i].ch, n, SHM_CHANNEL_CLIENT, 0, NULL, 0), 0);
        cr_assert_eq(shm__hook_share_mapping(cr[i].ch, srv_h), 0);
        shm_channel_set_spin(cr[i].ch, spin);
    }
    uint64_t errors = 0;
    cr_assert_eq(pthread_create(&st, NULL, server, &errors), 0);
    for (uint32_t i = 0; i < NCLI; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, client, &cr[i]), 0);
    uint64_t ok = 0;
    for (uint32_t i = 0; i < NCLI; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(cr[i].rc, 0, "client %u: %d", i, cr[i].rc);
        cr_assert_eq(cr[i].bad, 0, "client %u: %lu answers not its own or torn", i,
                     (unsigned long)cr[i].bad);
        ok += cr[i].ok;
    }
    pthread_join(st, NULL);
    cr_assert_eq(errors, 0, "server: bad requests or respond errors");
    cr_assert(ok >= NCLI * per_client * 3 / 4, "answers %lu", (unsigned long)ok);
    for (uint32_t i = 0; i < NCLI; i++)
        shm_channel_close(cr[i].ch);
    shm_channel_close(srv_h);
    cr_assert_eq(ct_exists(n), 0);
}

Test(svc_onemap, spin_zero_every_wait_through_the_futex)
{
    run(0);
}

Test(svc_onemap, default_spin)
{
    run(SHM_CHANNEL_DEFAULT_SPIN_NS);
}
