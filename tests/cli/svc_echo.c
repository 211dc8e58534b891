/* A service (kind 4) server for the CLI tests: creates NAME, answers every request with
 * "echo:" and the request, until SIGTERM. Built by tests/cli/run.sh when the public header
 * has the service calls. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "shm_channel.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: svc_echo NAME\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    shm_channel_t *ch;
    int rc = shm_channel_open_service(&ch, argv[1], SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, NULL,
                                      0);
    if (rc) {
        fprintf(stderr, "svc_echo: %s\n", shm_channel_strerror(rc));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    static char buf[4096 + 5];
    while (!stop) {
        uint64_t len;
        shm_channel_request_id_t id;
        rc = shm_channel_receive(ch, buf + 5, sizeof buf - 5, &len, &id, 100000000);
        if (rc == -ETIMEDOUT || rc == -EINTR)
            continue;
        if (rc)
            break;
        memcpy(buf, "echo:", 5);
        shm_channel_respond(ch, &id, buf, len + 5 > 4096 ? 4096 : len + 5);
    }
    shm_channel_close(ch);
    return 0;
}
