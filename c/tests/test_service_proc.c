/* The service algorithm across real processes over one shared file mapping in the test's
 * SHM_CHANNEL_DIR, with the real OFD locks (server byte 0, one byte per client slot) and real
 * futexes: 64 client processes, each with its own open file description, send checksummed
 * requests; clients are killed with SIGKILL at random moments and replaced (the server reaps
 * their slots, or the replacement reclaims it); the server is killed once and replaced (its
 * clients see EOWNERDEAD or ECONNRESET for what was pending, never a hang, and carry on with
 * the successor). Every answer a client accepts is the answer to its own current request,
 * intact: 0 misrouted, 0 torn, 0 lost. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"
#include "os.h"
#include "service.h"

TestSuite(svc_proc, .init = ct_setup, .fini = ct_teardown, .timeout = 500);

#define NCLIENTS 64
#define MAXMSG 256u
#define SEED_REQ 0x9E57C0DEull
#define SEED_RESP 0xA45CE4ull
#define SLICE_NS (50 * CT_MS)
#define WAIT_NS (30 * CT_SEC) /* a lost answer shows as a timeout */

struct result {
    uint64_t ok, misrouted, torn, lost, server_gone, sessions, reclaimed_at_join;
    int rc;
};

struct control {
    int stop;
    int server_ready;
    uint64_t reaped, served, bad_requests, server_rc;
    struct result res[NCLIENTS];
};

static struct control *C;
static char path[512];
static uint64_t seg_size;

static uint64_t req_len(uint32_t slot, uint64_t nonce)
{
    return 16 + ct_msg_len(SEED_REQ ^ slot, nonce, MAXMSG - 16);
}

static uint64_t resp_len(uint32_t slot, uint64_t nonce)
{
    return 16 + ct_msg_len(SEED_RESP ^ slot, nonce, MAXMSG - 16);
}

/* Each process opens the file itself: its own open file description, its own locks. */
static int open_mapped(struct shm__svc *s, int *fdp)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    void *base = mmap(NULL, seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    struct shm__svc_geom g;
    int rc = shm__svc_validate(base, seg_size, &g);
    if (rc)
        return rc;
    shm__svc_bind(s, base, &g);
    *fdp = fd;
    return 0;
}

/* ---- server ------------------------------------------------------------------------- */

static void wake_word(uint32_t *word, void *arg)
{
    (void)arg;
    shm__futex_wake(word);
}

/* Reclaim the slots of dead clients: a slot marked attached whose lock we can take. */
static void reap(struct shm__svc *s, struct shm__svc_server *v, int fd)
{
    for (uint32_t i = 0; i < s->g.max_clients; i++) {
        if (!shm__svc_slot_attached(s, i))
            continue;
        if (shm__lock_try(fd, SHM__SVC_LOCK_CLIENT_BASE + (int)i, 1) != 0)
            continue;
        if (shm__svc_reclaim(s, v, i))
            __atomic_fetch_add(&C->reaped, 1, __ATOMIC_RELAXED);
        shm__lock_drop(fd, SHM__SVC_LOCK_CLIENT_BASE + (int)i);
    }
}

/* A received request: checked (a bad one is counted and dropped), then answered. */
static void answer(struct shm__svc *s, struct shm__svc_server *v, const struct shm__svc_request *r,
                   uint8_t *buf)
{
    uint64_t nonce = r->len >= 8 ? ct_msg_seq(r->ptr) : 0;
    if (ct_msg_verify(r->ptr, r->len, SEED_REQ ^ r->slot, nonce, req_len(r->slot, nonce))) {
        __atomic_fetch_add(&C->bad_requests, 1, __ATOMIC_RELAXED);
        shm__svc_drop(s, v, r->slot, r->seq);
        return;
    }
    uint64_t len = resp_len(r->slot, nonce);
    ct_msg_fill(buf, SEED_RESP ^ r->slot, nonce, len);
    int rc = shm__svc_respond(s, v, r->slot, r->seq, buf, len);
    if (rc == 1)
        shm__futex_wake(&shm__svc_resp(s, r->slot)->resp_wake);
    if (rc >= 0)
        __atomic_fetch_add(&C->served, 1, __ATOMIC_RELAXED);
}

static int server_main(void *arg)
{
    (void)arg;
    struct shm__svc s;
    int fd;
    if (open_mapped(&s, &fd) != 0)
        return 10;
    /* the predecessor's lock goes with its death: wait for it */
    while (shm__lock_try(fd, SHM__SVC_LOCK_SERVER, 1) != 0)
        ct_sleep_ms(1);
    struct shm__svc_server *v = calloc(1, sizeof(*v));
    shm__svc_server_attach(&s, v, wake_word, NULL);
    __atomic_store_n(&C->server_ready, 1, __ATOMIC_RELEASE);
    uint8_t buf[MAXMSG];
    uint64_t last_reap = ct_now_ns();
    for (;;) {
        uint64_t now = ct_now_ns();
        if (now - last_reap >= SLICE_NS) { /* busy or not, once per slice */
            reap(&s, v, fd);
            last_reap = now;
        }
        struct shm__svc_request r;
        if (shm__svc_receive(&s, v, &r) == 0) {
            answer(&s, v, &r, buf);
            continue;
        }
        if (__atomic_load_n(&C->stop, __ATOMIC_ACQUIRE) == 2)
            break;
        uint32_t seen = shm__svc_server_wait_prepare(&s);
        if (shm__svc_receive(&s, v, &r) == 0) {
            shm__svc_server_wait_done(&s);
            /* put it back the simple way: drop nothing, answer it now */
            answer(&s, v, &r, buf);
            continue;
        }
        shm__futex_wait(&s.hdr->doorbell, seen, SLICE_NS);
        shm__svc_server_wait_done(&s);
    }
    shm__svc_server_close(&s, v, wake_word, NULL);
    return 0;
}

/* ---- clients ------------------------------------------------------------------------ */

struct lockarg {
    int fd;
};

static int server_lock_held(void *arg)
{
    struct lockarg *l = arg;
    return shm__lock_held(l->fd, SHM__SVC_LOCK_SERVER) == 1;
}

static int client_main(void *arg)
{
    uint32_t i = (uint32_t)(uintptr_t)arg;
    struct result *res = &C->res[i];
    struct shm__svc s;
    int fd;
    if (open_mapped(&s, &fd) != 0)
        return 10;
    /* the killed predecessor's lock goes with its death */
    while (shm__lock_try(fd, SHM__SVC_LOCK_CLIENT_BASE + (int)i, 1) != 0)
        ct_sleep_ms(1);
    struct shm__svc_client c;
    int rc = shm__svc_client_join(&s, &c, i, (uint32_t)getpid());
    if (rc < 0) {
        res->rc = rc;
        return 11;
    }
    if (rc == 1)
        __atomic_fetch_add(&res->reclaimed_at_join, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&res->sessions, 1, __ATOMIC_RELAXED);
    struct lockarg la = {fd};
    uint8_t buf[MAXMSG];
    /* a nonce unique over every session of this slot: sessions never reuse one */
    uint64_t nonce = (uint64_t)getpid() << 32;
    while (!__atomic_load_n(&C->stop, __ATOMIC_ACQUIRE)) {
        /* a live server, or wait for one */
        uint32_t epoch = 0;
        rc = shm__svc_server_verdict(&s, 0, &epoch, server_lock_held, &la);
        if (rc != 0) {
            uint32_t seen = __atomic_load_n(&s.hdr->server_seq, __ATOMIC_ACQUIRE);
            if (shm__svc_server_verdict(&s, 0, &epoch, server_lock_held, &la) != 0)
                shm__futex_wait(&s.hdr->server_seq, seen, 10 * CT_MS);
            continue;
        }
        nonce++;
        uint64_t len = req_len(i, nonce);
        void *p;
        uint64_t deadline = ct_now_ns() + WAIT_NS;
        while ((rc = shm__svc_request_reserve(&s, &c, len, &p)) == -EBUSY) {
            uint32_t seen = shm__svc_client_wait_prepare(&s, &c);
            if ((rc = shm__svc_request_reserve(&s, &c, len, &p)) != -EBUSY) {
                shm__svc_client_wait_done(&c);
                break;
            }
            shm__futex_wait(&shm__svc_resp(&s, i)->resp_wake, seen, SLICE_NS);
            shm__svc_client_wait_done(&c);
            if (ct_now_ns() > deadline)
                break;
        }
        if (rc) {
            res->rc = rc;
            return 12;
        }
        ct_msg_fill(p, SEED_REQ ^ i, nonce, len);
        if (shm__svc_request_commit(&s, &c, len, epoch) == 1)
            shm__futex_wake(&s.hdr->doorbell);
        uint64_t got = 0;
        for (;;) {
            rc = shm__svc_response(&s, &c, buf, sizeof buf, NULL, &got);
            if (rc != -EAGAIN)
                break;
            uint32_t seen = shm__svc_client_wait_prepare(&s, &c);
            rc = shm__svc_response(&s, &c, buf, sizeof buf, NULL, &got);
            if (rc != -EAGAIN) {
                shm__svc_client_wait_done(&c);
                break;
            }
            uint32_t e;
            rc = shm__svc_server_verdict(&s, c.epoch, &e, server_lock_held, &la);
            if (rc != 0) {
                shm__svc_client_wait_done(&c);
                /* re-check the answer once before reporting the verdict */
                int rc2 = shm__svc_response(&s, &c, buf, sizeof buf, NULL, &got);
                if (rc2 != -EAGAIN)
                    rc = rc2;
                break;
            }
            if (ct_now_ns() > deadline) {
                shm__svc_client_wait_done(&c);
                rc = -ETIMEDOUT;
                break;
            }
            shm__futex_wait(&shm__svc_resp(&s, i)->resp_wake, seen, SLICE_NS);
            shm__svc_client_wait_done(&c);
        }
        if (rc == -EOWNERDEAD || rc == -ECONNRESET || rc == -EPIPE) {
            shm__svc_cancel(&s, &c, 0);
            __atomic_fetch_add(&res->server_gone, 1, __ATOMIC_RELAXED);
        } else if (rc == -ETIMEDOUT) {
            shm__svc_cancel(&s, &c, 1);
            __atomic_fetch_add(&res->lost, 1, __ATOMIC_RELAXED);
        } else if (rc) {
            res->rc = rc;
            return 13;
        } else if (got < 8 || ct_msg_seq(buf) != nonce) {
            __atomic_fetch_add(&res->misrouted, 1, __ATOMIC_RELAXED);
        } else if (ct_msg_verify(buf, got, SEED_RESP ^ i, nonce, resp_len(i, nonce))) {
            __atomic_fetch_add(&res->torn, 1, __ATOMIC_RELAXED);
        } else {
            __atomic_fetch_add(&res->ok, 1, __ATOMIC_RELAXED);
        }
    }
    shm__svc_client_leave(&s, &c);
    return 0;
}

static void init_segment(void)
{
    struct shm__svc_geom g;
    cr_assert_eq(shm__svc_geometry(&g, MAXMSG, MAXMSG, NCLIENTS), 0);
    seg_size = g.segment_size;
    snprintf(path, sizeof path, "%s/svc-proc", ct_dir());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(posix_fallocate(fd, 0, (off_t)seg_size), 0);
    void *base = mmap(NULL, seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert(base != MAP_FAILED);
    shm__svc_format(base, &g, (uint32_t)getpid(), 0);
    munmap(base, seg_size);
    close(fd);
}

Test(svc_proc, clients_and_server_killed_at_random_no_misrouted_or_lost_answers)
{
    C = mmap(NULL, sizeof(*C), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(C != MAP_FAILED);
    memset(C, 0, sizeof(*C));
    init_segment();
    pid_t clients[NCLIENTS];
    /* clients first: they wait for the server */
    for (uint32_t i = 0; i < NCLIENTS; i++)
        clients[i] = ct_fork(client_main, (void *)(uintptr_t)i);
    ct_sleep_ms(20);
    pid_t server = ct_fork(server_main, NULL);
    uint64_t rnd = 0x1234;
    int kills = (int)ct_scaled(60, 12);
    int server_killed = 0;
    for (int k = 0; k < kills; k++) {
        rnd = ct_mix(rnd);
        ct_sleep_ms((unsigned)(1 + rnd % 15));
        if (k == kills / 2) {
            /* the server dies mid-run; a successor takes over */
            kill(server, SIGKILL);
            cr_assert_eq(ct_wait(server), 128 + SIGKILL);
            __atomic_store_n(&C->server_ready, 0, __ATOMIC_RELEASE);
            ct_sleep_ms(5);
            server = ct_fork(server_main, NULL);
            server_killed = 1;
            continue;
        }
        uint32_t i = (uint32_t)(ct_mix(rnd) % NCLIENTS);
        kill(clients[i], SIGKILL);
        int st = ct_wait(clients[i]);
        cr_assert(st == 128 + SIGKILL || st == 0, "client %u exited %d (rc %d)", i, st,
                  C->res[i].rc);
        clients[i] = ct_fork(client_main, (void *)(uintptr_t)i);
    }
    cr_assert(server_killed);
    /* a client killed and not replaced: the server learns of it and reclaims its slot */
    uint64_t reaped0 = __atomic_load_n(&C->reaped, __ATOMIC_RELAXED);
    kill(clients[7], SIGKILL);
    ct_wait(clients[7]);
    ct_await_geq(&C->reaped, reaped0 + 1, 10 * CT_SEC);
    cr_assert_gt(C->reaped, reaped0, "the server reaped the dead client's slot");
    clients[7] = ct_fork(client_main, (void *)(uintptr_t)7);
    /* let the survivors and replacements run a little, then stop */
    uint64_t served0 = __atomic_load_n(&C->served, __ATOMIC_RELAXED);
    ct_await_geq(&C->served, served0 + 2000, 10 * CT_SEC);
    __atomic_store_n(&C->stop, 1, __ATOMIC_RELEASE);
    for (uint32_t i = 0; i < NCLIENTS; i++)
        cr_assert_eq(ct_wait(clients[i]), 0, "client %u: rc %d", i, C->res[i].rc);
    __atomic_store_n(&C->stop, 2, __ATOMIC_RELEASE);
    cr_assert_eq(ct_wait(server), 0);
    uint64_t ok = 0, gone = 0, sessions = 0, reclaimed = 0;
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
        reclaimed += r->reclaimed_at_join;
    }
    cr_assert_eq(C->bad_requests, 0, "every request intact");
    cr_assert(ok > 2000, "answers received: %lu", (unsigned long)ok);
    cr_assert(gone > 0, "some client saw the server's death for a pending request");
    /* killed clients' slots were reclaimed, by the server or by their replacement (at most
     * one reclaim per session that ended without leaving), and none is left attached */
    cr_assert(C->reaped + reclaimed >= 1);
    cr_assert(C->reaped + reclaimed <= sessions - NCLIENTS, "reaped %lu + at join %lu",
              (unsigned long)C->reaped, (unsigned long)reclaimed);
    struct shm__svc s;
    int fd;
    cr_assert_eq(open_mapped(&s, &fd), 0);
    for (uint32_t i = 0; i < NCLIENTS; i++)
        cr_assert_eq(shm__svc_line(&s, i)->state, 2, "slot %u left attached", i);
    cr_assert_eq(s.hdr->server_state, 2);
    close(fd);
    fprintf(stderr,
            "svc proc: %d clients, %lu sessions, %lu answers, %lu pending at the server's "
            "death, %lu reaped by the server, %lu reclaimed at join\n",
            NCLIENTS, (unsigned long)sessions, (unsigned long)ok, (unsigned long)gone,
            (unsigned long)C->reaped, (unsigned long)reclaimed);
}
