/* spec/service.md §5.6 steps 4 and 5, §6 (e): a server answering a request it reads in place
 * frees the request buffer (FREE(n), release) BEFORE it names the answer (resp = n, release),
 * so a client that has its answer also finds its buffer free: its next request goes out at
 * once, even with timeout 0 (a client answered by a finished server never waits for it).
 *
 * The gap between the two stores is a few instructions; the test knob
 * shm__hook_svc_answer_delay_ns pauses the server process there for 100 ms (as a preemption
 * would). In the right order the client sees nothing during the pause (its answer is not
 * named yet) and, once it has it, sends the next request with timeout 0. Answer first, then
 * FREE (scripts/mutations/service.c.txt: svc_resp_before_free): the client reads its answer
 * during the pause and its next send with timeout 0 finds the buffer taken (-EAGAIN). Each
 * of several rounds catches that unless the client is kept off the CPU for the whole pause;
 * the right order passes whatever the scheduling. */
#define _GNU_SOURCE
#include "ct_criterion.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ct.h"
#include "hooks.h"

TestSuite(svc_answer_order, .init = ct_setup, .fini = ct_teardown, .timeout = 120);

#define ROUNDS 4
#define PAUSE_NS (100 * CT_MS)

static char name[64];

/* The server, in a process of its own: every request read in place (receive_peek), the
 * answer written from it, through the paused answer path. */
static int server_main(void *arg)
{
    (void)arg;
    shm__hook_svc_answer_delay_ns = PAUSE_NS;
    shm_channel_t *srv = NULL;
    if (shm_channel_open_service(&srv, name, SHM_CHANNEL_SERVER, 0, NULL, 0) != 0)
        return 10;
    for (int i = 0; i < ROUNDS; i++) {
        const void *req;
        uint64_t len;
        shm_channel_request_id_t id;
        if (shm_channel_receive_peek(srv, &req, &len, &id, 60 * CT_SEC) != 0)
            return 11;
        char resp[32];
        int n = snprintf(resp, sizeof resp, "re:%.*s", (int)len, (const char *)req);
        if (shm_channel_respond(srv, &id, resp, (uint64_t)n) != 0)
            return 12;
    }
    shm_channel_close(srv);
    return 0;
}

Test(svc_answer_order, answered_client_sends_at_once)
{
    ct_name(name, "svcorder");
    shm_channel_service_config_t cfg = {64, 64, 1, 0, {0}};
    shm_channel_t *cli = NULL;
    cr_assert_eq(shm_channel_open_service(&cli, name, SHM_CHANNEL_CLIENT, SHM_CHANNEL_CREATE,
                                          &cfg, 0), 0);
    pid_t pid = ct_fork(server_main, NULL);
    int taken = 0;
    for (int i = 0; i < ROUNDS; i++) {
        char req[16], want[32], resp[64];
        int n = snprintf(req, sizeof req, "q%d", i);
        snprintf(want, sizeof want, "re:q%d", i);
        /* Round 0 waits for the server to attach; every later send follows an answer. */
        int rc = shm_channel_write(cli, req, (uint64_t)n, i == 0 ? 60 * CT_SEC : 0);
        if (rc == -EAGAIN) {
            taken++; /* answered, yet the buffer is still the server's */
            rc = shm_channel_write(cli, req, (uint64_t)n, 60 * CT_SEC);
        }
        cr_assert_eq(rc, 0, "round %d: write %d", i, rc);
        uint64_t len = 0;
        cr_assert_eq(shm_channel_read(cli, resp, sizeof resp, &len, 60 * CT_SEC), 0);
        cr_assert(len == strlen(want) && memcmp(resp, want, len) == 0, "round %d: wrong answer",
                  i);
    }
    cr_assert_eq(ct_wait(pid), 0);
    cr_assert_eq(taken, 0,
                 "%d of %d answered requests left the request buffer taken (spec/service.md "
                 "§6 (e): FREE(n) must be stored before resp = n)",
                 taken, ROUNDS - 1);
    shm_channel_close(cli);
}
