/* A peer that dies (SIGKILL): the consumer reads every committed message in order, then gets
 * -EOWNERDEAD within bounded time, never a half-written message, never a hang; a blocked read
 * (or write) is woken by the death; the producer role is refused (-EBUSY) while its holder
 * lives and free again once it dies, and a new producer continues the stream. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct.h"

TestSuite(death, .init = ct_setup, .fini = ct_teardown, .timeout = 100);

#define WAIT (30 * CT_SEC)
#define SEED 77

struct prod {
    char name[64];
    uint64_t start; /* first sequence number to write */
    int ready_fd;   /* write a byte here once attached (or -1) */
};

/* Writes messages start, start+1, ... forever (until killed), mixing write() and
 * reserve()/commit() with the payload filled in place, so a kill can land anywhere. */
static int produce_forever(void *arg)
{
    const struct prod *a = arg;
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, a->name, SHM_CHANNEL_PRODUCER, 0, 0, 0);
    if (rc) {
        fprintf(stderr, "producer open: %s\n", shm_channel_strerror(rc));
        return 1;
    }
    if (a->ready_fd >= 0 && write(a->ready_fd, "r", 1) != 1)
        return 2;
    uint64_t max = shm_channel_max_payload(ch);
    uint8_t *buf = malloc(max);
    for (uint64_t seq = a->start;; seq++) {
        uint64_t len = ct_msg_len(SEED, seq, max);
        if (seq & 1) {
            void *p;
            if ((rc = shm_channel_reserve(ch, len, &p, WAIT)) != 0)
                break;
            ct_msg_fill(p, SEED, seq, len);
            if ((rc = shm_channel_commit(ch, len)) != 0)
                break;
        } else {
            ct_msg_fill(buf, SEED, seq, len);
            if ((rc = shm_channel_write(ch, buf, len, WAIT)) != 0)
                break;
        }
    }
    fprintf(stderr, "producer stopped: %s\n", shm_channel_strerror(rc));
    return 3;
}

static void wait_byte(int fd)
{
    char b;
    cr_assert_eq(read(fd, &b, 1), 1, "child signalled");
}

Test(death, producer_killed_mid_stream_then_replaced)
{
    char name[64];
    ct_name(name, "kill");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 2048, 0), 0);
    uint64_t max = shm_channel_max_payload(c);
    uint8_t *buf = malloc(max);
    uint64_t seq = 0;
    const int rounds = 6;
    const uint64_t per_round = ct_scaled(30000, 2000);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    for (int round = 0; round < rounds; round++) {
        struct prod a = {.start = seq, .ready_fd = fds[1]};
        memcpy(a.name, name, sizeof name);
        pid_t pid = ct_fork(produce_forever, &a);
        /* Until the new producer attaches, the state still says the old one died. */
        wait_byte(fds[0]);
        uint64_t target = seq + per_round + (ct_mix((uint64_t)round) % 1000);
        uint64_t len;
        int rc;
        while (seq < target) {
            rc = shm_channel_read(c, buf, max, &len, WAIT);
            cr_assert_eq(rc, 0, "round %d message %lu: %s", round, (unsigned long)seq,
                         shm_channel_strerror(rc));
            cr_assert_eq(ct_msg_check(buf, len, SEED, seq, max), 0, "message %lu",
                         (unsigned long)seq);
            seq++;
        }
        cr_assert_eq(kill(pid, SIGKILL), 0);
        uint64_t t0 = ct_now_ns();
        /* Every committed message, in order, then the death. */
        for (;;) {
            rc = shm_channel_read(c, buf, max, &len, WAIT);
            if (rc != 0)
                break;
            cr_assert_eq(ct_msg_check(buf, len, SEED, seq, max), 0,
                         "after the kill: message %lu corrupt or out of order", (unsigned long)seq);
            seq++;
        }
        cr_assert_eq(rc, -EOWNERDEAD, "round %d: %s", round, shm_channel_strerror(rc));
        cr_assert_lt(ct_now_ns() - t0, 10 * CT_SEC, "death noticed in bounded time");
        cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
        cr_assert_eq(shm_channel_read(c, buf, max, &len, CT_MS), -EOWNERDEAD, "stays reported");
        shm_channel_stat_t st;
        cr_assert_eq(shm_channel_stat(c, &st), 0);
        cr_assert_eq(st.used, 0, "drained");
        cr_assert_eq(st.producer_state, SHM_CHANNEL_PEER_ATTACHED, "died without closing");
        cr_assert_eq(st.producer_alive, 0);
        cr_assert_eq(st.producer_epoch, (uint32_t)round + 1);
        cr_assert_eq(st.msgs_read, seq);
        /* msgs_written is bumped just before write_pos is published: it may count one
         * message the producer was killed before publishing. */
        cr_assert(st.msgs_written == seq || st.msgs_written == seq + 1,
                  "written %lu, read %lu", (unsigned long)st.msgs_written, (unsigned long)seq);
    }
    /* The role is free: a producer in this process takes over and continues the stream. */
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, name, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0);
    uint64_t len = ct_msg_len(SEED, seq, max);
    ct_msg_fill(buf, SEED, seq, len);
    cr_assert_eq(shm_channel_write(p, buf, len, 0), 0);
    cr_assert_eq(shm_channel_read(c, buf, max, &len, 0), 0);
    cr_assert_eq(ct_msg_check(buf, len, SEED, seq, max), 0);
    cr_assert_eq(shm_channel_read(c, buf, max, &len, 0), -EAGAIN, "a live producer again");
    shm_channel_close(p);
    cr_assert_eq(shm_channel_read(c, buf, max, &len, 0), -EPIPE);
    shm_channel_close(c);
    cr_assert(!ct_exists(name));
    free(buf);
    close(fds[0]);
    close(fds[1]);
}

struct sleeper_kill {
    char name[64];
    int role; /* the role this child holds */
};

/* Hold `role`, (producer: publish one message,) wait until the peer sleeps on the futex,
 * then die without closing. */
static int die_while_peer_sleeps(void *arg)
{
    const struct sleeper_kill *a = arg;
    shm_channel_t *ch;
    if (shm_channel_open(&ch, a->name, (uint32_t)a->role, 0, 0, 0) != 0)
        return 1;
    if (a->role == SHM_CHANNEL_PRODUCER && shm_channel_write(ch, "last words", 10, 0) != 0)
        return 2;
    uint64_t t0 = ct_now_ns();
    for (;;) {
        shm_channel_stat_t st;
        shm_channel_stat(ch, &st);
        uint64_t sleeps = a->role == SHM_CHANNEL_PRODUCER ? st.consumer_sleeps : st.producer_sleeps;
        if (sleeps > 0)
            break;
        if (ct_now_ns() - t0 > 20 * CT_SEC)
            return 3;
        ct_sleep_ms(1);
    }
    ct_sleep_ms(20);
    raise(SIGKILL);
    return 4;
}

Test(death, blocked_read_gets_eownerdead)
{
    struct sleeper_kill a = {.role = SHM_CHANNEL_PRODUCER};
    ct_name(a.name, "blkread");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, a.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    pid_t pid = ct_fork(die_while_peer_sleeps, &a);
    uint8_t buf[64];
    uint64_t len;
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, WAIT), 0);
    cr_assert_eq(len, 10, "the last message before death is delivered");
    uint64_t t0 = ct_now_ns();
    int rc = shm_channel_read(c, buf, sizeof buf, &len, -1);
    cr_assert_eq(rc, -EOWNERDEAD, "a blocked read (no timeout) ends: %s", shm_channel_strerror(rc));
    cr_assert_lt(ct_now_ns() - t0, WAIT);
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
    shm_channel_close(c);
    cr_assert(ct_exists(a.name), "a dead producer did not finish the stream");
}

Test(death, blocked_write_gets_eownerdead)
{
    struct sleeper_kill a = {.role = SHM_CHANNEL_CONSUMER};
    ct_name(a.name, "blkwrite");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    uint8_t buf[128] = {0};
    while (shm_channel_write(p, buf, 120, 0) == 0)
        ;
    pid_t pid = ct_fork(die_while_peer_sleeps, &a);
    int rc = shm_channel_write(p, buf, 120, -1);
    cr_assert_eq(rc, -EOWNERDEAD, "a blocked write (no timeout) ends: %s", shm_channel_strerror(rc));
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
    shm_channel_close(p);
}

static int hold_producer(void *arg)
{
    const struct prod *a = arg;
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, a->name, SHM_CHANNEL_PRODUCER, 0, 0, 0);
    if (rc)
        return 1;
    if (write(a->ready_fd, "r", 1) != 1)
        return 2;
    pause();
    return 3;
}

static int try_producer(void *arg)
{
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, (const char *)arg, SHM_CHANNEL_PRODUCER, 0, 0, 0);
    return rc == -EBUSY ? 0 : 10;
}

Test(death, second_producer_refused_while_the_first_lives)
{
    char name[64];
    ct_name(name, "second");
    /* Created here, then closed: this process holds no descriptor a child could inherit. */
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    shm_channel_close(c);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct prod a = {.ready_fd = fds[1]};
    memcpy(a.name, name, sizeof name);
    pid_t holder = ct_fork(hold_producer, &a);
    wait_byte(fds[0]);
    shm_channel_t *p = NULL;
    cr_assert_eq(shm_channel_open(&p, name, SHM_CHANNEL_PRODUCER, 0, 0, 0), -EBUSY);
    cr_assert_eq(shm_channel_open(&p, name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), -EBUSY);
    cr_assert_eq(ct_wait(ct_fork(try_producer, name)), 0, "refused in another process too");
    shm_channel_t *o;
    cr_assert_eq(shm_channel_open(&o, name, SHM_CHANNEL_OBSERVER, 0, 0, 0), 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(o, &st), 0);
    cr_assert_eq(st.producer_alive, 1);
    cr_assert_eq(shm_channel_unlink(name, 0), -EBUSY, "never removed under a live user");
    kill(holder, SIGKILL);
    cr_assert_eq(ct_wait(holder), 128 + SIGKILL);
    cr_assert_eq(shm_channel_stat(o, &st), 0);
    cr_assert_eq(st.producer_alive, 0);
    cr_assert_eq(st.producer_state, SHM_CHANNEL_PEER_ATTACHED, "state 1, lock free: died");
    cr_assert_eq(st.in_use, 0);
    cr_assert_eq(shm_channel_open(&p, name, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0,
                 "accepted once the holder died");
    cr_assert_eq(shm_channel_stat(o, &st), 0);
    cr_assert_eq(st.producer_epoch, 2);
    cr_assert_eq(st.producer_alive, 1);
    shm_channel_close(p);
    shm_channel_close(o);
    close(fds[0]);
    close(fds[1]);
    cr_assert(!ct_exists(name), "nothing written, producer closed: finished and removed");
}
