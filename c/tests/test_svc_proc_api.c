/* Services (kind 4) through the public API across real processes: 64 client processes start
 * first and wait for the server; each sends checksummed requests of random sizes. The server
 * holds several requests at once and answers them out of order, drops some, and answers some
 * late (after their clients gave up), by copy and in place. Clients are SIGKILLed at random
 * moments and replaced; the server is SIGKILLed twice and replaced (its clients get
 * EOWNERDEAD/ECONNRESET for pending and new requests, never a hang, and wait for the
 * successor). Every answer a client accepts is the answer to its own current request, intact:
 * 0 misrouted, 0 torn, 0 lost; no late answer is ever taken for a later request. The server
 * learns of a dead client (shm_channel_reap) and its slot is reclaimed; the last close
 * unlinks the name. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ct.h"

TestSuite(svc_proc_api, .init = ct_setup, .fini = ct_teardown, .timeout = 500);

#define NCLIENTS 64
#define MAXMSG 1024u
#define SEED_REQ 0x5EC0DE11ull
#define SEED_RESP 0xA115EE22ull
#define WAIT_NS (30 * CT_SEC) /* a lost answer shows as a timeout */
#define DROP_TIMEOUT_NS (20 * CT_MS)
#define LATE_TIMEOUT_NS (2 * CT_MS)
#define LATE_HOLD_NS (10 * CT_MS)
#define HOLD 4

struct result {
    uint64_t ok, misrouted, torn, lost, server_gone, expected_timeouts, late_answered, sessions;
    int rc, step;
};

struct control {
    int stop;
    uint64_t next[NCLIENTS]; /* request counter of each client, across its restarts */
    uint64_t served, dropped, late_stale, late_written, bad_requests, reaped, unexpected;
    int server_rc;
    uint32_t final_clients;
    struct result res[NCLIENTS];
};

static struct control *C;
static char name[64];

/* The request counter decides what the server does with it: 0 drop, 1 answer late. */
static unsigned kind_of(uint64_t seq)
{
    return (unsigned)((seq & 0xffffffffffffull) % 10);
}

static uint64_t req_len(uint64_t seq)
{
    return 16 + ct_msg_len(SEED_REQ, seq, MAXMSG - 16);
}

static uint64_t resp_len(uint64_t seq)
{
    return 16 + ct_msg_len(SEED_RESP, seq, MAXMSG - 16);
}

static shm_channel_service_config_t cfg = {MAXMSG, MAXMSG, NCLIENTS, 0, {0}};

/* ---- server ------------------------------------------------------------------------- */

struct pending {
    shm_channel_request_id_t id;
    uint64_t seq;
    uint64_t due;
};

static void answer(shm_channel_t *srv, const struct pending *p, int late)
{
    uint8_t buf[MAXMSG];
    uint64_t len = resp_len(p->seq);
    int rc;
    if (p->seq & 1) { /* in place */
        void *out;
        rc = shm_channel_respond_reserve(srv, &p->id, len, &out);
        if (rc == 0) {
            ct_msg_fill(out, SEED_RESP, p->seq, len);
            rc = shm_channel_respond_commit(srv, &p->id, len);
        }
    } else {
        ct_msg_fill(buf, SEED_RESP, p->seq, len);
        rc = shm_channel_respond(srv, &p->id, buf, len);
    }
    if (rc == 0)
        __atomic_fetch_add(late ? &C->late_written : &C->served, 1, __ATOMIC_RELAXED);
    else if (rc == -ESTALE && late)
        __atomic_fetch_add(&C->late_stale, 1, __ATOMIC_RELAXED);
    else if (rc != -EINVAL && rc != -ESTALE) /* -EINVAL: its client died and was reaped */
        __atomic_fetch_add(&C->unexpected, 1, __ATOMIC_RELAXED);
}

static int server_main(void *arg)
{
    (void)arg;
    shm_channel_t *srv = NULL;
    int rc;
    for (int tries = 0; (rc = shm_channel_open_service(&srv, name, SHM_CHANNEL_SERVER,
                                                       SHM_CHANNEL_CREATE, &cfg, 0)) == -EBUSY &&
                        tries < 5000;
         tries++)
        ct_sleep_ms(1); /* the killed predecessor's lock goes with its death */
    if (rc) {
        C->server_rc = rc;
        return 10;
    }
    struct pending held[HOLD], late[64];
    int nheld = 0, nlate = 0;
    uint8_t buf[MAXMSG];
    uint64_t calls = 0;
    for (;;) {
        int stopping = __atomic_load_n(&C->stop, __ATOMIC_ACQUIRE) == 2;
        if (stopping && nheld == 0 && nlate == 0)
            break;
        shm_channel_request_id_t id;
        uint64_t len;
        const void *view = buf;
        int64_t timeout = (nheld || nlate) ? CT_MS : 50 * CT_MS;
        rc = ++calls % 3 == 0 ? shm_channel_receive_peek(srv, &view, &len, &id, timeout)
                              : shm_channel_receive(srv, buf, sizeof buf, &len, &id, timeout);
        if (rc == 0) {
            uint64_t seq = len >= 8 ? ct_msg_seq(view) : 0;
            if (ct_msg_verify(view, len, SEED_REQ, seq, req_len(seq))) {
                __atomic_fetch_add(&C->bad_requests, 1, __ATOMIC_RELAXED);
                shm_channel_drop(srv, &id);
            } else if (kind_of(seq) == 0) {
                if (shm_channel_drop(srv, &id) == 0)
                    __atomic_fetch_add(&C->dropped, 1, __ATOMIC_RELAXED);
            } else if (kind_of(seq) == 1 && nlate < 64) {
                late[nlate++] = (struct pending){id, seq, ct_now_ns() + LATE_HOLD_NS};
            } else {
                held[nheld++] = (struct pending){id, seq, 0};
            }
        } else if (rc != -ETIMEDOUT && rc != -EAGAIN) {
            C->server_rc = rc;
            return 11;
        }
        /* Out of order: the held ones newest first, once HOLD are held or all is quiet. */
        if (nheld == HOLD || (rc != 0 && nheld)) {
            while (nheld)
                answer(srv, &held[--nheld], 0);
        }
        uint64_t now = ct_now_ns();
        for (int k = 0; k < nlate;) {
            if (now >= late[k].due || stopping) {
                answer(srv, &late[k], 1);
                late[k] = late[--nlate];
            } else {
                k++;
            }
        }
        if (calls % 64 == 0) {
            uint32_t dead[NCLIENTS];
            int n = shm_channel_reap(srv, dead, NCLIENTS);
            if (n > 0)
                __atomic_fetch_add(&C->reaped, (uint64_t)n, __ATOMIC_RELAXED);
        }
    }
    uint32_t dead[NCLIENTS];
    int n = shm_channel_reap(srv, dead, NCLIENTS);
    if (n > 0)
        __atomic_fetch_add(&C->reaped, (uint64_t)n, __ATOMIC_RELAXED);
    shm_channel_service_stat_t st;
    if (shm_channel_service_stat(srv, &st) == 0)
        C->final_clients = st.clients;
    shm_channel_close(srv);
    return 0;
}

/* ---- clients ------------------------------------------------------------------------ */

static int client_main(void *arg)
{
    uint32_t cid = (uint32_t)(uintptr_t)arg;
    struct result *res = &C->res[cid];
    shm_channel_t *cli = NULL;
    int rc;
    for (int tries = 0; (rc = shm_channel_open_service(&cli, name, SHM_CHANNEL_CLIENT,
                                                       SHM_CHANNEL_CREATE, &cfg, 0)) == -EUSERS &&
                        tries < 5000;
         tries++)
        ct_sleep_ms(1);
    if (rc) {
        res->rc = rc;
        return 10;
    }
    __atomic_fetch_add(&res->sessions, 1, __ATOMIC_RELAXED);
    uint8_t req[MAXMSG], resp[MAXMSG];
    while (!__atomic_load_n(&C->stop, __ATOMIC_ACQUIRE)) {
        uint64_t seq = (uint64_t)cid << 48 | __atomic_add_fetch(&C->next[cid], 1, __ATOMIC_RELAXED);
        unsigned kind = kind_of(seq);
        uint64_t len = req_len(seq), got = 0;
        ct_msg_fill(req, SEED_REQ, seq, len);
        int64_t timeout = kind == 0 ? DROP_TIMEOUT_NS : kind == 1 ? LATE_TIMEOUT_NS : WAIT_NS;
        rc = shm_channel_request(cli, req, len, resp, sizeof resp, &got, timeout);
        if (rc == -EOWNERDEAD || rc == -ECONNRESET || rc == -EPIPE) {
            __atomic_fetch_add(&res->server_gone, 1, __ATOMIC_RELAXED);
            if ((rc = shm_channel_wait_server(cli, WAIT_NS)) != 0) {
                res->rc = rc;
                res->step = 1;
                return 11;
            }
        } else if (rc == -ETIMEDOUT) {
            __atomic_fetch_add(kind <= 1 ? &res->expected_timeouts : &res->lost, 1,
                               __ATOMIC_RELAXED);
        } else if (rc) {
            res->rc = rc;
            res->step = 2;
            return 12;
        } else if (kind == 0 || got < 8 || ct_msg_seq(resp) != seq) {
            __atomic_fetch_add(&res->misrouted, 1, __ATOMIC_RELAXED);
        } else if (ct_msg_verify(resp, got, SEED_RESP, seq, resp_len(seq))) {
            __atomic_fetch_add(&res->torn, 1, __ATOMIC_RELAXED);
        } else {
            __atomic_fetch_add(kind == 1 ? &res->late_answered : &res->ok, 1, __ATOMIC_RELAXED);
        }
    }
    shm_channel_close(cli);
    return 0;
}

Test(svc_proc_api, clients_and_servers_killed_at_random_no_misrouted_or_lost_answers)
{
    C = mmap(NULL, sizeof(*C), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(C != MAP_FAILED);
    memset(C, 0, sizeof(*C));
    ct_name(name, "svcproc");
    pid_t clients[NCLIENTS];
    /* Each client's sessions before its current process started (the one before it is
     * dead, maybe killed before it joined): the current one has joined at base + 1. */
    uint64_t base[NCLIENTS];
    /* Clients first: they create the service and wait for a server inside request(). */
    for (uint32_t i = 0; i < NCLIENTS; i++) {
        base[i] = 0;
        clients[i] = ct_fork(client_main, (void *)(uintptr_t)i);
    }
    pid_t server = ct_fork(server_main, NULL);
    uint64_t rnd = 0x5eed;
    int kills = (int)ct_scaled(90, 18);
    int server_kills = 0;
    for (int k = 0; k < kills; k++) {
        rnd = ct_mix(rnd);
        ct_sleep_ms((unsigned)(1 + rnd % 12));
        if (k == kills / 3 || k == 2 * kills / 3) {
            /* The server dies at a random moment; a successor takes over the name. */
            kill(server, SIGKILL);
            cr_assert_eq(ct_wait(server), 128 + SIGKILL, "server rc %d", C->server_rc);
            server = ct_fork(server_main, NULL);
            server_kills++;
            continue;
        }
        uint32_t i = (uint32_t)(ct_mix(rnd) % NCLIENTS);
        kill(clients[i], SIGKILL);
        int st = ct_wait(clients[i]);
        cr_assert(st == 128 + SIGKILL || st == 0, "client %u exited %d (rc %d at %d)", i, st,
                  C->res[i].rc, C->res[i].step);
        base[i] = __atomic_load_n(&C->res[i].sessions, __ATOMIC_RELAXED);
        clients[i] = ct_fork(client_main, (void *)(uintptr_t)i);
    }
    cr_assert_eq(server_kills, 2);
    /* A client killed and not replaced: the server learns of it and reclaims its slot.
     * First every replacement has joined: one still joining would take the dead slot
     * itself (a joiner reclaims a dead client's slot, spec §5.3), and the server would
     * have nothing to reap (seen once under ASan). */
    for (uint32_t i = 0; i < NCLIENTS; i++)
        cr_assert_eq(ct_await_geq(&C->res[i].sessions, base[i] + 1, 20 * CT_SEC), 0,
                     "client %u has not joined (sessions %lu)", i,
                     (unsigned long)C->res[i].sessions);
    uint64_t reaped0 = __atomic_load_n(&C->reaped, __ATOMIC_RELAXED);
    kill(clients[7], SIGKILL);
    ct_wait(clients[7]);
    ct_await_geq(&C->reaped, reaped0 + 1, 20 * CT_SEC);
    cr_assert_gt(C->reaped, reaped0, "the server reaped the dead client's slot");
    clients[7] = ct_fork(client_main, (void *)(uintptr_t)7);
    /* Let survivors and replacements run a little, then stop. */
    uint64_t served0 = __atomic_load_n(&C->served, __ATOMIC_RELAXED);
    ct_await_geq(&C->served, served0 + 2000, 20 * CT_SEC);
    __atomic_store_n(&C->stop, 1, __ATOMIC_RELEASE);
    for (uint32_t i = 0; i < NCLIENTS; i++)
        cr_assert_eq(ct_wait(clients[i]), 0, "client %u: rc %d at %d", i, C->res[i].rc,
                     C->res[i].step);
    __atomic_store_n(&C->stop, 2, __ATOMIC_RELEASE);
    cr_assert_eq(ct_wait(server), 0, "server rc %d", C->server_rc);
    uint64_t ok = 0, gone = 0, sessions = 0, expected = 0, late_ok = 0;
    for (uint32_t i = 0; i < NCLIENTS; i++) {
        struct result *r = &C->res[i];
        cr_assert_eq(r->misrouted, 0, "client %u: %lu answers to another request", i,
                     (unsigned long)r->misrouted);
        cr_assert_eq(r->torn, 0, "client %u: %lu torn answers", i, (unsigned long)r->torn);
        cr_assert_eq(r->lost, 0, "client %u: %lu requests never answered", i,
                     (unsigned long)r->lost);
        ok += r->ok;
        gone += r->server_gone;
        sessions += r->sessions;
        expected += r->expected_timeouts;
        late_ok += r->late_answered;
    }
    cr_assert_eq(C->bad_requests, 0, "every request intact");
    cr_assert_eq(C->unexpected, 0, "every respond returned 0, -ESTALE or -EINVAL (reaped)");
    cr_assert(ok > 2000, "answers received: %lu", (unsigned long)ok);
    cr_assert(gone > 0, "some client saw the server's death");
    cr_assert(expected > 0 && C->dropped > 0, "dropped and late requests timed out");
    cr_assert(C->late_stale + C->late_written > 0, "late answers were given");
    cr_assert_eq(C->final_clients, 0, "every slot left or reaped at the end");
    /* The server closed last: the service is finished and its name gone. */
    cr_assert_eq(ct_exists(name), 0);
    fprintf(stderr,
            "svc proc api: %d clients, %lu sessions, %lu answers, %lu verdicts of a dead "
            "server, %lu expected timeouts (%lu dropped), late answers %lu stale + %lu "
            "written (%lu accepted in time), %lu reaped by the server\n",
            NCLIENTS, (unsigned long)sessions, (unsigned long)ok, (unsigned long)gone,
            (unsigned long)expected, (unsigned long)C->dropped, (unsigned long)C->late_stale,
            (unsigned long)C->late_written, (unsigned long)late_ok, (unsigned long)C->reaped);
}

/* The server learns of one dead client (shm_channel_reap), even one whose request it holds
 * in place; the slot is free for a new client at once; a new client is never given the dead
 * one's answer. */
static int one_request_then_wait(void *arg)
{
    (void)arg;
    shm_channel_t *cli = NULL;
    if (shm_channel_open_service(&cli, name, SHM_CHANNEL_CLIENT, 0, NULL, 0))
        return 10;
    uint8_t resp[64];
    uint64_t len;
    shm_channel_request(cli, "dead", 4, resp, sizeof resp, &len, -1);
    return 11; /* never answered: killed before */
}

Test(svc_proc_api, dead_client_reaped_and_slot_reused)
{
    ct_name(name, "svcdead");
    shm_channel_service_config_t c2 = {64, 64, 1, 0, {0}};
    shm_channel_t *srv = NULL;
    cr_assert_eq(shm_channel_open_service(&srv, name, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE,
                                          &c2, 0), 0);
    pid_t pid = ct_fork(one_request_then_wait, NULL);
    const void *view;
    uint64_t len;
    shm_channel_request_id_t id;
    cr_assert_eq(shm_channel_receive_peek(srv, &view, &len, &id, 30 * CT_SEC), 0);
    cr_assert_eq(len, 4);
    /* The only slot is held: nobody else joins. */
    shm_channel_t *other = NULL;
    cr_assert_eq(shm_channel_open_service(&other, name, SHM_CHANNEL_CLIENT, 0, NULL, 0), -EUSERS);
    kill(pid, SIGKILL);
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
    uint32_t dead[4];
    cr_assert_eq(shm_channel_reap(srv, dead, 4), 1);
    cr_assert_eq(dead[0], id.client);
    cr_assert_eq(shm_channel_reap(srv, dead, 4), 0);
    shm_channel_service_stat_t st;
    cr_assert_eq(shm_channel_service_stat(srv, &st), 0);
    cr_assert_eq(st.clients, 0);
    cr_assert_eq(st.reaped, 1);
    /* A new client takes the slot; its first request waits until the held one is answered,
     * and it is given only its own answer. */
    cr_assert_eq(shm_channel_open_service(&other, name, SHM_CHANNEL_CLIENT, 0, NULL, 0), 0);
    cr_assert_eq(shm_channel_write(other, "new", 3, 0), -EAGAIN);
    cr_assert_eq(shm_channel_respond(srv, &id, "for the dead", 12), 0);
    cr_assert_eq(shm_channel_write(other, "new", 3, CT_SEC), 0);
    uint8_t buf[64];
    cr_assert_eq(shm_channel_read(other, buf, sizeof buf, &len, 0), -EAGAIN);
    shm_channel_request_id_t id2;
    cr_assert_eq(shm_channel_receive(srv, buf, sizeof buf, &len, &id2, CT_SEC), 0);
    cr_assert_eq(id2.client, id.client);
    cr_assert_gt(id2.seq, id.seq);
    cr_assert_eq(shm_channel_respond(srv, &id2, "yours", 5), 0);
    cr_assert_eq(shm_channel_read(other, buf, sizeof buf, &len, CT_SEC), 0);
    cr_assert_eq(len, 5);
    cr_assert(memcmp(buf, "yours", 5) == 0);
    shm_channel_close(other);
    shm_channel_close(srv);
}

/* A client blocked in request() on a server that is then killed gets EOWNERDEAD, promptly
 * (within the liveness slice), never a hang; a client blocked waiting for a server that never
 * comes times out. */
static int blocked_request(void *arg)
{
    (void)arg;
    shm_channel_t *cli = NULL;
    if (shm_channel_open_service(&cli, name, SHM_CHANNEL_CLIENT, 0, NULL, 0))
        return 10;
    uint8_t resp[64];
    uint64_t len;
    int rc = shm_channel_request(cli, "x", 1, resp, sizeof resp, &len, -1);
    int rc2 = shm_channel_request(cli, "y", 1, resp, sizeof resp, &len, -1);
    shm_channel_close(cli);
    return rc == -EOWNERDEAD && rc2 == -EOWNERDEAD ? 0 : 20;
}

static int hold_one_request(void *arg)
{
    (void)arg;
    shm_channel_t *srv = NULL;
    if (shm_channel_open_service(&srv, name, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, NULL, 0))
        return 10;
    const void *v;
    uint64_t len;
    shm_channel_request_id_t id;
    if (shm_channel_receive_peek(srv, &v, &len, &id, -1))
        return 11;
    for (;;)
        pause(); /* holds it until killed */
}

Test(svc_proc_api, server_killed_while_a_client_waits)
{
    ct_name(name, "svckill");
    pid_t server = ct_fork(hold_one_request, NULL);
    shm_channel_t *obs = NULL;
    /* The server is up once its role lock is held (observable state). */
    for (int w = 0; w < 5000; w++) {
        shm_channel_stat_t st;
        if (shm_channel_open_service(&obs, name, SHM_CHANNEL_OBSERVER, 0, NULL, 0) == 0) {
            if (shm_channel_stat(obs, &st) == 0 && st.producer_alive)
                break;
            shm_channel_close(obs);
            obs = NULL;
        }
        ct_sleep_ms(1);
    }
    cr_assert_not_null(obs);
    pid_t client = ct_fork(blocked_request, NULL);
    shm_channel_service_stat_t st;
    for (int w = 0; w < 10000; w++) {
        cr_assert_eq(shm_channel_service_stat(obs, &st), 0);
        if (st.requests == 1)
            break;
        ct_sleep_ms(1);
    }
    cr_assert_eq(st.requests, 1, "the server took the request");
    kill(server, SIGKILL);
    cr_assert_eq(ct_wait(server), 128 + SIGKILL);
    cr_assert_eq(ct_wait(client), 0, "pending and new requests: EOWNERDEAD");
    cr_assert_eq(shm_channel_service_stat(obs, &st), 0);
    cr_assert_eq(st.server_alive, 0);
    cr_assert_eq(st.server_state, SHM_CHANNEL_PEER_ATTACHED);
    shm_channel_close(obs);
    cr_assert_eq(shm_channel_unlink(name, 0), 0);
}
