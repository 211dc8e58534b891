/* Services (kind 4) through the public API: the 64 B round trip of one client (the parent,
 * ping) against a server (the child, pong, on the other CPU) while 0, 7 or 63 more client
 * processes (forked by the parent, so they share its CPU and leave the server's alone) do
 * round trips of their own, back to back, blocking (spin 0: on 2 CPUs, 63 spinning clients
 * would measure the scheduler). The measured client and the server spin (the library's
 * default) against the bare cache-line round trip, or block (spin 0) against the Unix-socket
 * and pipe ping-pongs. Every request carries its number; the server answers
 * with the same bytes, and the client checks the number of every answer. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm_channel.h"
#include "svc_cases.h"

#define STOP 0xff /* a 1-byte request with this byte: the server answers it and closes */

static int svc_setup(struct bench_run *run)
{
    (void)shm_channel_unlink(run->name, SHM_CHANNEL_FORCE);
    return 0;
}

static void svc_teardown(struct bench_run *run)
{
    (void)shm_channel_unlink(run->name, SHM_CHANNEL_FORCE);
}

static int open_svc(struct bench_run *run, uint32_t role, int blocking, uint32_t flags,
                    shm_channel_t **ch)
{
    shm_channel_service_config_t cfg = {run->size, run->size, 64, 0, {0}};
    int rc = shm_channel_open_service(ch, run->name, role, flags, &cfg, 0600);
    if (rc)
        return bench_fail(run, "open %s: %s", role == SHM_CHANNEL_SERVER ? "server" : "client",
                          shm_channel_strerror(rc));
    if (blocking)
        shm_channel_set_spin(*ch, 0);
    else if (bench_spin_ns >= 0)
        shm_channel_set_spin(*ch, (uint64_t)bench_spin_ns);
    return 0;
}

/* An extra client: round trips until the server closes. */
static void extra_client(struct bench_run *run)
{
    shm_channel_t *ch = NULL;
    /* Join, never create: a run that ended before this process got a CPU (a short
     * calibration run on a busy machine) has removed its name, and a created segment
     * would wait for a server forever (seen: the whole bench hung in svc_spin8). */
    if (open_svc(run, SHM_CHANNEL_CLIENT, 1, 0, &ch))
        _exit(2);
    uint8_t req[64 * 1024], resp[64 * 1024];
    uint64_t size = run->size < sizeof req ? run->size : sizeof req, len;
    memset(req, 0x11, size);
    for (uint64_t i = 1;; i++) {
        bench_stamp(req, size, i);
        if (shm_channel_request(ch, req, size, resp, sizeof resp, &len, -1) != 0)
            break;
        if (len != size || !bench_check(resp, len, i))
            _exit(3);
    }
    shm_channel_close(ch);
    _exit(0);
}

static int client_side(struct bench_run *run, int extras, int blocking)
{
    shm_channel_t *ch = NULL;
    uint8_t *req = calloc(1, run->size + 8), *resp = calloc(1, run->size + 8);
    pid_t pids[64];
    int n = 0, rc = -1;
    uint64_t bad = 0, len;
    if (!req || !resp) {
        bench_fail(run, "out of memory");
        goto out;
    }
    if (open_svc(run, SHM_CHANNEL_CLIENT, blocking, SHM_CHANNEL_CREATE, &ch))
        goto out;
    bench_mark(run, 1);
    if (bench_await(run, 1))
        goto out;
    pid_t self = getpid();
    for (int i = 0; i < extras; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* Dies with the bench (SIGKILL of the parent, `timeout`): else it would go on
             * sending requests to a server that goes on answering, two orphans forever. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != self)
                _exit(9);
            extra_client(run);
        }
        if (pid > 0)
            pids[n++] = pid;
    }
    /* Measure with the extras at work: wait until every one has joined (or one failed). */
    for (;;) {
        shm_channel_service_stat_t st;
        if (shm_channel_service_stat(ch, &st) != 0 || st.clients >= (uint32_t)n + 1)
            break;
        int gone = 0;
        for (int i = 0; i < n; i++)
            gone |= waitpid(pids[i], NULL, WNOHANG) == pids[i];
        if (gone) {
            bench_fail(run, "an extra client failed to join");
            goto out;
        }
        usleep(200);
    }
    /* The client is the ping; the server stops at the STOP request, so only the client's
     * loop reads the total. */
    for (uint64_t i = 0; i < bench_rtt_total(run); i++) {
        uint64_t t0 = bench_now_ns();
        bench_rtt_ping_check(run, i, t0);
        bench_stamp(req, run->size, i);
        int r = shm_channel_request(ch, req, run->size, resp, run->size, &len, -1);
        if (r) {
            bench_fail(run, "request: %s", shm_channel_strerror(r));
            goto out;
        }
        bad += len != run->size || !bench_check(resp, len, i);
        if (i >= run->warmup)
            run->samples[i - run->warmup] = bench_now_ns() - t0;
    }
    req[0] = STOP;
    if ((rc = shm_channel_request(ch, req, 1, resp, run->size, &len, -1)) != 0) {
        bench_fail(run, "stop: %s", shm_channel_strerror(rc));
        goto out;
    }
    shm_channel_service_stat_t st;
    if (shm_channel_service_stat(ch, &st) == 0) {
        run->ctl->info[2] = st.server_sleeps;
        run->ctl->info[3] = st.client_sleeps;
        run->ctl->info[4] = st.server_wakes;
    }
    rc = bad ? bench_fail(run, "%llu bad answers", (unsigned long long)bad) : 0;
out:
    shm_channel_close(ch);
    /* After a failure the extra clients may be waiting for a server that will never
     * answer (seen: a hang until the watchdog, the 7 extras left behind): end them. */
    for (int i = 0; rc != 0 && i < n; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++) { /* the server closed: they got EPIPE */
        int ws;
        if ((waitpid(pids[i], &ws, 0) != pids[i] || !WIFEXITED(ws) || WEXITSTATUS(ws)) &&
            rc == 0)
            rc = bench_fail(run, "an extra client failed");
    }
    free(req);
    free(resp);
    return rc;
}

static int server_side(struct bench_run *run, int blocking)
{
    shm_channel_t *ch = NULL;
    uint8_t *buf = calloc(1, run->size + 8);
    int rc = -1;
    if (!buf || open_svc(run, SHM_CHANNEL_SERVER, blocking, SHM_CHANNEL_CREATE, &ch))
        goto out;
    bench_mark(run, 1);
    if (bench_await(run, 1))
        goto out;
    for (;;) {
        uint64_t len;
        shm_channel_request_id_t id;
        if ((rc = shm_channel_receive(ch, buf, run->size, &len, &id, -1)) != 0) {
            bench_fail(run, "receive: %s", shm_channel_strerror(rc));
            break;
        }
        if ((rc = shm_channel_respond(ch, &id, buf, len)) != 0 && rc != -ESTALE) {
            bench_fail(run, "respond: %s", shm_channel_strerror(rc));
            break;
        }
        rc = 0;
        if (len == 1 && buf[0] == STOP)
            break;
    }
out:
    shm_channel_close(ch); /* the extra clients see EPIPE */
    free(buf);
    return rc;
}

#define SVC_CASE(mode, blocking, k, base)                                                   \
    static int ping_##mode##k(struct bench_run *run) { return client_side(run, k - 1, blocking); } \
    static int pong_##mode##k(struct bench_run *run) { return server_side(run, blocking); }  \
    const struct bench_transport bench_svc_##mode##k = {                                     \
        .id = "svc_" #mode #k, .label = "service request, " #mode ", " #k " clients",        \
        .group = "shm_channel", .kind = BENCH_ROUNDTRIP, .setup = svc_setup,                 \
        .teardown = svc_teardown, .ping = ping_##mode##k, .pong = pong_##mode##k};
SVC_CASE(spin, 0, 1, cacheline)
SVC_CASE(spin, 0, 8, cacheline)
SVC_CASE(spin, 0, 64, cacheline)
SVC_CASE(block, 1, 1, unix)
SVC_CASE(block, 1, 8, unix)
SVC_CASE(block, 1, 64, unix)
