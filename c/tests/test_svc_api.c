/* Services (kind 4) through the public API, in one process (a server handle and client
 * handles, each its own open file description, so the kernel's locks work as across
 * processes): roles and kind refusal both ways, parameters, either side first and waiting
 * for a server, round trips by copy and in place, answers out of order and dropped, stale
 * answers never delivered, 0-byte and max-size messages, every -EMSGSIZE path, -EUSERS,
 * server close and takeover, the unlink rule, the shared calls on a service handle, stat. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"
#include "hooks.h"

TestSuite(svc_api, .init = ct_setup, .fini = ct_teardown, .timeout = 120);

static shm_channel_t *sopen(const char *name, uint32_t role, uint32_t flags, uint64_t mreq,
                            uint64_t mresp, uint32_t clients)
{
    shm_channel_service_config_t cfg = {mreq, mresp, clients, 0, {0}};
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_service(&ch, name, role, flags, &cfg, 0);
    cr_assert_eq(rc, 0, "open %s role %u: %s", name, role, shm_channel_strerror(rc));
    return ch;
}

static int sopen_rc(const char *name, uint32_t role, uint32_t flags, uint64_t mreq,
                    uint64_t mresp, uint32_t clients)
{
    shm_channel_service_config_t cfg = {mreq, mresp, clients, 0, {0}};
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_service(&ch, name, role, flags, &cfg, 0);
    shm_channel_close(ch);
    return rc;
}

static void send_str(shm_channel_t *c, const char *s)
{
    int rc = shm_channel_write(c, s, strlen(s), CT_SEC);
    cr_assert_eq(rc, 0, "send: %s", shm_channel_strerror(rc));
}

static shm_channel_request_id_t recv_str(shm_channel_t *srv, const char *want)
{
    char buf[256];
    uint64_t len = 0;
    shm_channel_request_id_t id;
    int rc = shm_channel_receive(srv, buf, sizeof buf, &len, &id, CT_SEC);
    cr_assert_eq(rc, 0, "receive: %s", shm_channel_strerror(rc));
    cr_assert_eq(len, strlen(want));
    cr_assert(memcmp(buf, want, len) == 0);
    return id;
}

static void expect_resp(shm_channel_t *c, const char *want)
{
    char buf[256];
    uint64_t len = 0;
    int rc = shm_channel_read(c, buf, sizeof buf, &len, CT_SEC);
    cr_assert_eq(rc, 0, "read response: %s", shm_channel_strerror(rc));
    cr_assert_eq(len, strlen(want));
    cr_assert(memcmp(buf, want, len) == 0);
}

Test(svc_api, roles_kinds_and_parameters)
{
    char n[64], st[64];
    ct_name(n, "svc");
    shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, 100, 200, 4);
    cr_assert_eq(sopen_rc(n, SHM_CHANNEL_SERVER, 0, 0, 0, 0), -EBUSY);
    cr_assert_eq(sopen_rc(n, SHM_CHANNEL_CLIENT, 0, 101, 0, 0), -EINVAL);
    cr_assert_eq(sopen_rc(n, SHM_CHANNEL_CLIENT, 0, 0, 201, 0), -EINVAL);
    cr_assert_eq(sopen_rc(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 5), -EINVAL);
    cr_assert_eq(sopen_rc(n, SHM_CHANNEL_CLIENT, 0, 100, 200, 4), 0);
    cr_assert_eq(sopen_rc(n, SHM_CHANNEL_PRODUCER, 0, 0, 0, 0), -EINVAL);
    /* Another kind's opener refuses a service, and a service opener another kind. */
    shm_channel_t *ch = NULL;
    cr_assert_eq(shm_channel_open(&ch, n, SHM_CHANNEL_CONSUMER, 0, 0, 0), -EPROTOTYPE);
    cr_assert_eq(shm_channel_open(&ch, n, SHM_CHANNEL_PRODUCER, 0, 0, 0), -EPROTOTYPE);
    cr_assert_eq(shm_channel_open_broadcast(&ch, n, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0),
                 -EPROTOTYPE);
    ct_name(st, "stream");
    shm_channel_t *prod = NULL;
    cr_assert_eq(shm_channel_open(&prod, st, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), 0);
    cr_assert_eq(sopen_rc(st, SHM_CHANNEL_CLIENT, 0, 0, 0, 0), -EPROTOTYPE);
    cr_assert_eq(sopen_rc(st, SHM_CHANNEL_SERVER, 0, 0, 0, 0), -EPROTOTYPE);
    shm_channel_close(prod);
    /* shm_channel_open() with a service role is open_service with NULL parameters. */
    cr_assert_eq(shm_channel_open(&ch, n, SHM_CHANNEL_CLIENT, 0, 0, 0), 0);
    shm_channel_close(ch);
    cr_assert_eq(shm_channel_open(&ch, n, SHM_CHANNEL_CLIENT, 0, 4096, 0), -EINVAL);
    /* Bad parameters. */
    char m[64];
    ct_name(m, "bad");
    cr_assert_eq(sopen_rc(m, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, 0, 0, 1025), -EINVAL);
    cr_assert_eq(sopen_rc(m, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, (1ull << 30) + 1, 0, 0),
                 -EINVAL);
    shm_channel_service_config_t cfg = {0, 0, 0, 0, {0, 1, 0, 0}};
    cr_assert_eq(shm_channel_open_service(&ch, m, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, &cfg, 0),
                 -EINVAL);
    cfg = (shm_channel_service_config_t){0, 0, 0, 1, {0}};
    cr_assert_eq(shm_channel_open_service(&ch, m, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, &cfg, 0),
                 -EINVAL);
    cr_assert_eq(sopen_rc(m, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, 0, 0, 0), -EINVAL);
    cr_assert_eq(ct_exists(m), 0);
    /* Observers see a service through either opener; stat reports it. */
    shm_channel_t *obs = NULL;
    cr_assert_eq(shm_channel_open(&obs, n, SHM_CHANNEL_OBSERVER, 0, 0, 0), 0);
    shm_channel_stat_t s;
    cr_assert_eq(shm_channel_stat(obs, &s), 0);
    cr_assert_eq(s.kind, SHM_CHANNEL_KIND_SERVICE);
    cr_assert_eq(s.max_payload, 200);
    cr_assert_eq(s.producer_alive, 1);
    cr_assert_eq(s.producer_state, SHM_CHANNEL_PEER_ATTACHED);
    cr_assert_eq(shm_channel_max_payload(obs), 200);
    shm_channel_service_stat_t ss;
    cr_assert_eq(shm_channel_service_stat(obs, &ss), 0);
    cr_assert_eq(ss.max_request, 100);
    cr_assert_eq(ss.max_response, 200);
    cr_assert_eq(ss.max_clients, 4);
    cr_assert_eq(ss.server_alive, 1);
    cr_assert_eq(ss.live_clients, 0);
    shm_channel_broadcast_stat_t bs;
    cr_assert_eq(shm_channel_broadcast_stat(obs, &bs), -EPROTOTYPE);
    shm_channel_close(obs);
    cr_assert_eq(shm_channel_open_service(&obs, n, SHM_CHANNEL_OBSERVER, 0, NULL, 0), 0);
    shm_channel_close(obs);
    shm_channel_close(srv);
}

Test(svc_api, round_trip_copy_and_zero_copy)
{
    char n[64];
    ct_name(n, "rt");
    shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, 64, 64, 4);
    shm_channel_t *cli = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
    send_str(cli, "ping");
    shm_channel_request_id_t id = recv_str(srv, "ping");
    cr_assert_eq(shm_channel_respond(srv, &id, "pong", 4), 0);
    expect_resp(cli, "pong");
    /* Answered already: not owed any more. */
    cr_assert_eq(shm_channel_respond(srv, &id, "x", 1), -EINVAL);
    cr_assert_eq(shm_channel_drop(srv, &id), -EINVAL);

    /* Zero-copy both ways. */
    void *p;
    cr_assert_eq(shm_channel_reserve(cli, 5, &p, CT_SEC), 0);
    cr_assert_eq((uintptr_t)p % 8, 0);
    memcpy(p, "hello", 5);
    cr_assert_eq(shm_channel_commit(cli, 5), 0);
    const void *view;
    uint64_t len;
    cr_assert_eq(shm_channel_receive_peek(srv, &view, &len, &id, CT_SEC), 0);
    cr_assert_eq(len, 5);
    cr_assert(memcmp(view, "hello", 5) == 0);
    void *out;
    cr_assert_eq(shm_channel_respond_reserve(srv, &id, 64, &out), 0);
    cr_assert_eq(shm_channel_respond_reserve(srv, &id, 1, &out), -EBUSY);
    memcpy(out, "world!", 6);
    cr_assert_eq(shm_channel_respond_commit(srv, &id, 65), -EINVAL);
    cr_assert_eq(shm_channel_respond_commit(srv, &id, 6), 0);
    cr_assert_eq(shm_channel_response(cli, &view, &len, CT_SEC), 0);
    cr_assert_eq(len, 6);
    cr_assert(memcmp(view, "world!", 6) == 0);
    /* Again: the same response; peek and release as for every kind. */
    const void *view2;
    cr_assert_eq(shm_channel_peek(cli, &view2, &len, 0), 0);
    cr_assert_eq(view2, view);
    cr_assert_eq(shm_channel_release(cli), 0);
    cr_assert_eq(shm_channel_release(cli), -EINVAL);

    /* The one-call round trip, with the server on the other side of a write. */
    send_str(cli, "a");
    id = recv_str(srv, "a");
    cr_assert_eq(shm_channel_respond(srv, &id, "b", 1), 0);
    expect_resp(cli, "b");

    /* Server release: done reading in place, answer later. */
    send_str(cli, "later");
    cr_assert_eq(shm_channel_receive_peek(srv, &view, &len, &id, CT_SEC), 0);
    cr_assert_eq(shm_channel_receive_release(srv, &id), 0);
    cr_assert_eq(shm_channel_receive_release(srv, &id), -EINVAL);
    cr_assert_eq(shm_channel_respond(srv, &id, "now", 3), 0);
    expect_resp(cli, "now");

    /* Reservation aborted on both sides. */
    cr_assert_eq(shm_channel_reserve(cli, 1, &p, 0), 0);
    cr_assert_eq(shm_channel_abort(cli), 0);
    cr_assert_eq(shm_channel_abort(cli), -EINVAL);
    send_str(cli, "q");
    id = recv_str(srv, "q");
    cr_assert_eq(shm_channel_respond_reserve(srv, &id, 1, &out), 0);
    cr_assert_eq(shm_channel_abort(srv), 0);
    cr_assert_eq(shm_channel_respond(srv, &id, "r", 1), 0); /* still owed */
    expect_resp(cli, "r");

    shm_channel_service_stat_t ss;
    cr_assert_eq(shm_channel_service_stat(srv, &ss), 0);
    cr_assert_eq(ss.requests, 5);
    cr_assert_eq(ss.responses, 5);
    cr_assert_eq(ss.live_clients, 1);
    cr_assert_eq(ss.clients, 1);
    shm_channel_close(cli);
    shm_channel_close(srv);
}

Test(svc_api, shared_calls_on_service_handles)
{
    char n[64];
    ct_name(n, "calls");
    shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, 64, 64, 4);
    shm_channel_t *cli = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
    char buf[8];
    uint64_t len, lens[1] = {1};
    void *p;
    const void *v;
    cr_assert_eq(shm_channel_write(srv, "x", 1, 0), -EOPNOTSUPP);
    cr_assert_eq(shm_channel_reserve(srv, 1, &p, 0), -EOPNOTSUPP);
    cr_assert_eq(shm_channel_commit(srv, 1), -EOPNOTSUPP);
    cr_assert_eq(shm_channel_read(srv, buf, sizeof buf, &len, 0), -EOPNOTSUPP);
    cr_assert_eq(shm_channel_peek(srv, &v, &len, 0), -EOPNOTSUPP);
    cr_assert_eq(shm_channel_release(srv), -EOPNOTSUPP);
    cr_assert_eq(shm_channel_write_batch(cli, "x", lens, 1, 0), -EOPNOTSUPP);
    cr_assert_eq(shm_channel_read_batch(cli, buf, sizeof buf, lens, 1, 0), -EOPNOTSUPP);
    cr_assert_eq(shm_channel_recv(cli, buf, sizeof buf, &len, NULL, 0), -EBADF);
    /* Role checks of the service calls. */
    shm_channel_request_id_t id = {0, 0, 1};
    cr_assert_eq(shm_channel_request(srv, "x", 1, buf, sizeof buf, &len, 0), -EBADF);
    cr_assert_eq(shm_channel_receive(cli, buf, sizeof buf, &len, &id, 0), -EBADF);
    cr_assert_eq(shm_channel_respond(cli, &id, "x", 1), -EBADF);
    cr_assert_eq(shm_channel_wait_server(srv, 0), -EBADF);
    cr_assert_eq(shm_channel_respond(srv, &id, "x", 1), -EINVAL); /* never received */
    id.client = 4;
    cr_assert_eq(shm_channel_drop(srv, &id), -EINVAL);
    /* Nothing sent: nothing to wait for; polling a pending one is -EAGAIN, not a give-up. */
    cr_assert_eq(shm_channel_read(cli, buf, sizeof buf, &len, 0), -EINVAL);
    cr_assert_eq(shm_channel_receive(srv, buf, sizeof buf, &len, &id, 0), -EAGAIN);
    cr_assert_eq(shm_channel_receive(srv, buf, sizeof buf, &len, &id, 20 * CT_MS), -ETIMEDOUT);
    send_str(cli, "z");
    cr_assert_eq(shm_channel_read(cli, buf, sizeof buf, &len, 0), -EAGAIN);
    id = recv_str(srv, "z");
    cr_assert_eq(shm_channel_respond(srv, &id, "y", 1), 0);
    expect_resp(cli, "y");
    /* Detached: every call -EBADF. */
    cr_assert_eq(shm_channel_detach(cli), 0);
    cr_assert_eq(shm_channel_request(cli, "x", 1, buf, sizeof buf, &len, 0), -EBADF);
    shm_channel_service_stat_t ss;
    cr_assert_eq(shm_channel_service_stat(cli, &ss), -EBADF);
    shm_channel_close(cli);
    shm_channel_close(srv);
}

Test(svc_api, either_side_first_and_waiting_for_a_server)
{
    char n[64];
    ct_name(n, "first");
    shm_channel_t *cli = sopen(n, SHM_CHANNEL_CLIENT, SHM_CHANNEL_CREATE, 32, 32, 2);
    cr_assert_eq(shm_channel_wait_server(cli, 0), -ETIMEDOUT);
    cr_assert_eq(shm_channel_wait_server(cli, 20 * CT_MS), -ETIMEDOUT);
    char buf[32];
    uint64_t len;
    cr_assert_eq(shm_channel_request(cli, "x", 1, buf, sizeof buf, &len, 20 * CT_MS), -ETIMEDOUT);
    cr_assert_eq(shm_channel_write(cli, "x", 1, 0), -EAGAIN);
    shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, 0, 0, 0, 0);
    cr_assert_eq(shm_channel_wait_server(cli, 0), 0);
    send_str(cli, "hi");
    shm_channel_request_id_t id = recv_str(srv, "hi");
    cr_assert_eq(shm_channel_respond(srv, &id, "yo", 2), 0);
    expect_resp(cli, "yo");
    shm_channel_close(cli);
    shm_channel_close(srv);
}

Test(svc_api, out_of_order_drop_and_stale_answers)
{
    char n[64];
    ct_name(n, "ooo");
    shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, 64, 64, 8);
    shm_channel_t *c[3];
    shm_channel_request_id_t id[3];
    char msg[3][8] = {"c0", "c1", "c2"};
    for (int i = 0; i < 3; i++)
        c[i] = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
    for (int i = 0; i < 3; i++)
        send_str(c[i], msg[i]);
    /* The server holds all three at once. */
    for (int k = 0; k < 3; k++) {
        char buf[8];
        uint64_t len;
        shm_channel_request_id_t r;
        cr_assert_eq(shm_channel_receive(srv, buf, sizeof buf, &len, &r, CT_SEC), 0);
        cr_assert_eq(len, 2);
        int who = buf[1] - '0';
        id[who] = r;
    }
    /* Answer in reverse order; drop c1's. */
    cr_assert_eq(shm_channel_respond(srv, &id[2], "r2", 2), 0);
    cr_assert_eq(shm_channel_drop(srv, &id[1]), 0);
    cr_assert_eq(shm_channel_drop(srv, &id[1]), -EINVAL);
    cr_assert_eq(shm_channel_respond(srv, &id[0], "r0", 2), 0);
    expect_resp(c[0], "r0");
    expect_resp(c[2], "r2");
    char buf[8];
    uint64_t len;
    cr_assert_eq(shm_channel_read(c[1], buf, sizeof buf, &len, 20 * CT_MS), -ETIMEDOUT);

    /* c0 gives up on a request the server has taken; the late answer is never delivered as
     * the answer to its next request. */
    send_str(c[0], "old");
    shm_channel_request_id_t old = recv_str(srv, "old");
    cr_assert_eq(shm_channel_read(c[0], buf, sizeof buf, &len, 10 * CT_MS), -ETIMEDOUT);
    send_str(c[0], "new");
    /* The answer to "old", given now, is stale: nothing is written. */
    cr_assert_eq(shm_channel_respond(srv, &old, "OLD", 3), -ESTALE);
    shm_channel_request_id_t nw = recv_str(srv, "new");
    cr_assert_gt(nw.seq, old.seq);
    cr_assert_eq(shm_channel_respond(srv, &nw, "NEW", 3), 0);
    expect_resp(c[0], "NEW");

    /* Held in place while the client gives up: the answer is written (the server cannot know)
     * but the client's next request waits for the buffer, then gets only its own answer. */
    send_str(c[2], "slow");
    const void *view;
    shm_channel_request_id_t held;
    cr_assert_eq(shm_channel_receive_peek(srv, &view, &len, &held, CT_SEC), 0);
    cr_assert_eq(shm_channel_read(c[2], buf, sizeof buf, &len, 10 * CT_MS), -ETIMEDOUT);
    cr_assert_eq(shm_channel_write(c[2], "next", 4, 0), -EAGAIN); /* buffer still read */
    cr_assert_eq(shm_channel_respond(srv, &held, "SLOW", 4), 0);
    send_str(c[2], "next");
    cr_assert_eq(shm_channel_read(c[2], buf, sizeof buf, &len, 0), -EAGAIN); /* not "SLOW" */
    shm_channel_request_id_t nx = recv_str(srv, "next");
    cr_assert_eq(shm_channel_respond(srv, &nx, "NEXT", 4), 0);
    expect_resp(c[2], "NEXT");

    shm_channel_service_stat_t ss;
    cr_assert_eq(shm_channel_service_stat(srv, &ss), 0);
    cr_assert_eq(ss.stale, 1);
    cr_assert_geq(ss.client_timeouts, 3);
    for (int i = 0; i < 3; i++)
        shm_channel_close(c[i]);
    shm_channel_close(srv);
}

Test(svc_api, sizes_and_emsgsize)
{
    char n[64];
    ct_name(n, "size");
    enum { MREQ = 1000, MRESP = 3000 };
    shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, MREQ, MRESP, 2);
    shm_channel_t *cli = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
    static uint8_t big[MRESP + 1], got[MRESP + 1];
    uint64_t len;
    shm_channel_request_id_t id;
    /* 0 bytes both ways. */
    cr_assert_eq(shm_channel_write(cli, NULL, 0, CT_SEC), 0);
    cr_assert_eq(shm_channel_receive(srv, NULL, 0, &len, &id, CT_SEC), 0);
    cr_assert_eq(len, 0);
    cr_assert_eq(shm_channel_respond(srv, &id, NULL, 0), 0);
    cr_assert_eq(shm_channel_read(cli, NULL, 0, &len, CT_SEC), 0);
    cr_assert_eq(len, 0);
    /* Too large to send: nothing sent. */
    cr_assert_eq(shm_channel_write(cli, big, MREQ + 1, CT_SEC), -EMSGSIZE);
    cr_assert_eq(shm_channel_request(cli, big, MREQ + 1, got, sizeof got, &len, CT_SEC),
                 -EMSGSIZE);
    cr_assert_eq(shm_channel_receive(srv, got, sizeof got, &len, &id, 0), -EAGAIN);
    /* Max size both ways; the server's buffer too small first: it stays next. */
    ct_msg_fill(big, 7, 1, MREQ);
    cr_assert_eq(shm_channel_write(cli, big, MREQ, CT_SEC), 0);
    cr_assert_eq(shm_channel_receive(srv, got, 10, &len, &id, CT_SEC), -EMSGSIZE);
    cr_assert_eq(len, MREQ);
    cr_assert_eq(shm_channel_receive(srv, got, 10, &len, &id, 0), -EMSGSIZE);
    cr_assert_eq(shm_channel_receive(srv, got, MREQ, &len, &id, 0), 0);
    cr_assert_eq(ct_msg_verify(got, len, 7, 1, MREQ), 0);
    cr_assert_eq(shm_channel_respond(srv, &id, big, MRESP + 1), -EMSGSIZE);
    ct_msg_fill(big, 8, 2, MRESP);
    cr_assert_eq(shm_channel_respond(srv, &id, big, MRESP), 0);
    /* The client's buffer too small: the answer stays readable. */
    cr_assert_eq(shm_channel_read(cli, got, 10, &len, CT_SEC), -EMSGSIZE);
    cr_assert_eq(len, MRESP);
    cr_assert_eq(shm_channel_read(cli, got, sizeof got, &len, 0), 0);
    cr_assert_eq(len, MRESP);
    cr_assert_eq(ct_msg_verify(got, len, 8, 2, MRESP), 0);
    /* The same through request(): -EMSGSIZE, then shm_channel_response() in place. */
    cr_assert_eq(shm_channel_write(cli, "m", 1, CT_SEC), 0);
    cr_assert_eq(shm_channel_receive(srv, got, sizeof got, &len, &id, CT_SEC), 0);
    cr_assert_eq(shm_channel_respond(srv, &id, big, MRESP), 0);
    const void *v;
    cr_assert_eq(shm_channel_response(cli, &v, &len, CT_SEC), 0);
    cr_assert_eq(ct_msg_verify(v, len, 8, 2, MRESP), 0);
    shm_channel_close(cli);
    shm_channel_close(srv);
}

Test(svc_api, client_slots_eusers_and_reuse)
{
    char n[64];
    ct_name(n, "users");
    shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, 16, 16, 2);
    shm_channel_t *a = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
    shm_channel_t *b = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
    cr_assert_eq(sopen_rc(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0), -EUSERS);
    send_str(a, "a1");
    shm_channel_request_id_t ida = recv_str(srv, "a1");
    shm_channel_close(a); /* leaves with an answer owed */
    shm_channel_t *c = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
    /* The leaver's answer goes nowhere its successor would take it from. */
    (void)shm_channel_respond(srv, &ida, "A1", 2);
    send_str(c, "c1");
    shm_channel_request_id_t idc = recv_str(srv, "c1");
    cr_assert_eq(shm_channel_respond(srv, &idc, "C1", 2), 0);
    expect_resp(c, "C1");
    shm_channel_service_stat_t ss;
    cr_assert_eq(shm_channel_service_stat(srv, &ss), 0);
    cr_assert_eq(ss.joins, 3);
    cr_assert_eq(ss.clients, 2);
    cr_assert_eq(ss.live_clients, 2);
    shm_channel_close(b);
    shm_channel_close(c);
    shm_channel_close(srv);
}

Test(svc_api, server_close_takeover_and_unlink_rule)
{
    char n[64];
    ct_name(n, "close");
    shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, 16, 16, 4);
    shm_channel_t *cli = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
    send_str(cli, "p");
    (void)recv_str(srv, "p");
    shm_channel_close(srv);
    char buf[16];
    uint64_t len;
    /* Pending and new requests: -EPIPE, never a hang. */
    cr_assert_eq(shm_channel_read(cli, buf, sizeof buf, &len, -1), -EPIPE);
    cr_assert_eq(shm_channel_request(cli, "q", 1, buf, sizeof buf, &len, -1), -EPIPE);
    cr_assert_eq(ct_exists(n), 1); /* a client is attached */
    /* A new server takes over the name. */
    srv = sopen(n, SHM_CHANNEL_SERVER, 0, 0, 0, 0);
    cr_assert_eq(shm_channel_wait_server(cli, 0), 0);
    send_str(cli, "r");
    shm_channel_request_id_t id = recv_str(srv, "r");
    cr_assert_eq(shm_channel_respond(srv, &id, "R", 1), 0);
    expect_resp(cli, "R");
    /* A request sent to the closed server and still queued is never run by the next one. */
    send_str(cli, "s");
    shm_channel_close(srv);
    cr_assert_eq(shm_channel_read(cli, buf, sizeof buf, &len, -1), -EPIPE);
    srv = sopen(n, SHM_CHANNEL_SERVER, 0, 0, 0, 0);
    cr_assert_eq(shm_channel_receive(srv, buf, sizeof buf, &len, &id, 0), -EAGAIN);
    /* Server closes while the client is attached: the name stays; the last closer unlinks. */
    shm_channel_close(srv);
    cr_assert_eq(ct_exists(n), 1);
    shm_channel_close(cli);
    cr_assert_eq(ct_exists(n), 0);
    /* A client alone (no server ever closed) leaves the name for the server. */
    cli = sopen(n, SHM_CHANNEL_CLIENT, SHM_CHANNEL_CREATE, 16, 16, 4);
    shm_channel_close(cli);
    cr_assert_eq(ct_exists(n), 1);
    cr_assert_eq(shm_channel_unlink(n, 0), 0);
}

Test(svc_api, permissions_squatting_and_exclusive)
{
    char n[64];
    ct_name(n, "perm");
    shm_channel_t *srv = NULL;
    cr_assert_eq(shm_channel_open_service(&srv, n, SHM_CHANNEL_SERVER,
                                          SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, NULL, 0640), 0);
    shm_channel_t *ch = NULL;
    cr_assert_eq(shm_channel_open_service(&ch, n, SHM_CHANNEL_CLIENT,
                                          SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, NULL, 0), -EEXIST);
    /* More permissive than requested: refused unless ALLOW_FOREIGN. */
    cr_assert_eq(shm_channel_open_service(&ch, n, SHM_CHANNEL_CLIENT, 0, NULL, 0600), -EACCES);
    cr_assert_eq(shm_channel_open_service(&ch, n, SHM_CHANNEL_CLIENT, SHM_CHANNEL_ALLOW_FOREIGN,
                                          NULL, 0600), 0);
    shm_channel_close(ch);
    shm_channel_close(srv);
    /* A squatter (a directory under the name) is never opened. */
    char sq[64];
    ct_name(sq, "squat");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ct_dir(), sq);
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_assert_eq(shm_channel_open_service(&ch, sq, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, NULL, 0),
                 -EACCES);
    rmdir(path);
}

/* The server check's two looks (spec/service.md §5.7, §6 (f)): a clean close that lands
 * between a client's first look (state 1) and its lock query (lock free) is a close, never a
 * death. Every lock query is delayed by 10 ms (shm__hook_lock_check_delay_ns) and every sleep
 * lasts at most 1 ms (shm__hook_liveness_slice_ns), so a close lands in the window most of the
 * time; it starts once the client has observably slept a few times. */
struct closer {
    shm_channel_t *srv;
    shm_channel_t *obs;
};

static void *close_when_client_sleeps(void *arg)
{
    struct closer *c = arg;
    shm_channel_service_stat_t st;
    for (int w = 0; w < 20000; w++) {
        if (shm_channel_service_stat(c->obs, &st) == 0 && st.client_sleeps > 2 && st.requests)
            break;
        usleep(100);
    }
    usleep(2500); /* the client spends 10 of every 11 ms in its delayed lock query */
    shm_channel_close(c->srv);
    return NULL;
}

Test(svc_api, clean_close_during_the_lock_check_is_epipe_not_death)
{
    shm__hook_lock_check_delay_ns = 10 * CT_MS;
    uint64_t slice = shm__hook_liveness_slice_ns;
    shm__hook_liveness_slice_ns = CT_MS;
    for (int round = 0; round < 4; round++) {
        char n[64];
        ct_name(n, "twolook");
        shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, 16, 16, 2);
        shm_channel_t *cli = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
        shm_channel_t *obs = NULL;
        cr_assert_eq(shm_channel_open_service(&obs, n, SHM_CHANNEL_OBSERVER, 0, NULL, 0), 0);
        shm_channel_set_spin(cli, 0);
        send_str(cli, "x");
        shm_channel_request_id_t id = recv_str(srv, "x");
        (void)id;
        struct closer c = {srv, obs};
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, close_when_client_sleeps, &c), 0);
        char buf[16];
        uint64_t len;
        int rc = shm_channel_read(cli, buf, sizeof buf, &len, 10 * CT_SEC);
        pthread_join(t, NULL);
        cr_assert_eq(rc, -EPIPE, "round %d: %d (%s)", round, rc, shm_channel_strerror(rc));
        shm_channel_close(cli);
        shm_channel_close(obs);
    }
    shm__hook_lock_check_delay_ns = 0;
    shm__hook_liveness_slice_ns = slice;
}

/* No lost wake-up on either side: with the liveness slice at 60 s, a sleeper that is not
 * woken sleeps until its timeout. A server asleep in receive (observably: server_sleeps) is
 * woken by the doorbell of a request; a client asleep waiting for its answer is woken by the
 * response; and a busy round trip with spinning makes no wake call at all. */
struct sleeper {
    shm_channel_t *ch;
    int rc;
    uint64_t len;
    char buf[16];
    shm_channel_request_id_t id;
};

static void *server_sleeps_in_receive(void *arg)
{
    struct sleeper *s = arg;
    s->rc = shm_channel_receive(s->ch, s->buf, sizeof s->buf, &s->len, &s->id, 30 * CT_SEC);
    return NULL;
}

static void *client_sleeps_for_answer(void *arg)
{
    struct sleeper *s = arg;
    s->rc = shm_channel_read(s->ch, s->buf, sizeof s->buf, &s->len, 30 * CT_SEC);
    return NULL;
}

Test(svc_api, sleepers_are_woken_and_no_wake_call_while_nobody_sleeps)
{
    uint64_t slice = shm__hook_liveness_slice_ns;
    shm__hook_liveness_slice_ns = 60 * CT_SEC;
    char n[64];
    ct_name(n, "wake");
    shm_channel_t *srv = sopen(n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, 16, 16, 2);
    shm_channel_t *cli = sopen(n, SHM_CHANNEL_CLIENT, 0, 0, 0, 0);
    shm_channel_set_spin(srv, 0);
    shm_channel_set_spin(cli, 0);
    shm_channel_service_stat_t st;
    struct sleeper s = {srv, 1, 0, {0}, {0, 0, 0}};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, server_sleeps_in_receive, &s), 0);
    for (int w = 0; w < 20000; w++) {
        cr_assert_eq(shm_channel_service_stat(cli, &st), 0);
        if (st.server_sleeps > 0)
            break;
        usleep(100);
    }
    cr_assert_gt(st.server_sleeps, 0);
    uint64_t t0 = ct_now_ns();
    send_str(cli, "ring");
    pthread_join(t, NULL);
    cr_assert_eq(s.rc, 0, "server: %d", s.rc);
    cr_assert_lt(ct_now_ns() - t0, 20 * CT_SEC, "the doorbell woke the server");
    /* The client sleeps for its answer; the response wakes it. */
    struct sleeper c = {cli, 1, 0, {0}, {0, 0, 0}};
    cr_assert_eq(pthread_create(&t, NULL, client_sleeps_for_answer, &c), 0);
    for (int w = 0; w < 20000; w++) {
        cr_assert_eq(shm_channel_service_stat(srv, &st), 0);
        if (st.client_sleeps > 0)
            break;
        usleep(100);
    }
    cr_assert_gt(st.client_sleeps, 0);
    t0 = ct_now_ns();
    uint64_t wakes0 = st.server_wakes;
    cr_assert_eq(shm_channel_respond(srv, &s.id, "ding", 4), 0);
    pthread_join(t, NULL);
    cr_assert_eq(c.rc, 0, "client: %d", c.rc);
    cr_assert_lt(ct_now_ns() - t0, 20 * CT_SEC, "the response woke the client");
    cr_assert_eq(shm_channel_service_stat(srv, &st), 0);
    cr_assert_eq(st.server_wakes, wakes0 + 1);
    /* Nobody sleeps: a round trip between calls that find their message at once makes no
     * wake call on either side. */
    shm_channel_service_stat_t a, b;
    cr_assert_eq(shm_channel_service_stat(srv, &a), 0);
    for (int i = 0; i < 50; i++) {
        send_str(cli, "q");
        shm_channel_request_id_t id = recv_str(srv, "q");
        cr_assert_eq(shm_channel_respond(srv, &id, "a", 1), 0);
        expect_resp(cli, "a");
    }
    cr_assert_eq(shm_channel_service_stat(srv, &b), 0);
    cr_assert_eq(b.server_wakes, a.server_wakes, "no wake call while the client is busy");
    cr_assert_eq(b.server_sleeps, a.server_sleeps);
    cr_assert_eq(b.client_sleeps, a.client_sleeps);
    shm_channel_close(cli);
    shm_channel_close(srv);
    shm__hook_liveness_slice_ns = slice;
}

/* A service too large for the shared memory there is: -ENOSPC at creation (through the one
 * creation path every kind shares), and no file is left behind. */
Test(svc_api, enospc_leaves_nothing)
{
    char n[64];
    ct_name(n, "huge");
    shm_channel_service_config_t cfg = {1ull << 30, 1ull << 30, 1024, 0, {0}};
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_service(&ch, n, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, &cfg, 0);
    cr_assert_eq(rc, -ENOSPC, "%d (%s)", rc, shm_channel_strerror(rc));
    cr_assert_eq(ct_exists(n), 0);
    cr_assert_eq(ct_count_files(), 0);
}
