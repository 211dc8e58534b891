/* The death protocol between real processes (spec §5.3, §5.6, §5.7), at the points where a
 * plain "kill and read" test cannot tell a right implementation from a wrong one:
 * - the final look: a producer that publishes and dies between the consumer's "empty" and
 *   its lock check loses nothing: the consumer reads every committed message, then
 *   -EOWNERDEAD. Made deterministic by stopping the consumer (ptrace) at the entry of its
 *   F_OFD_GETLK, after it found the ring empty, while the producer publishes and is killed.
 *   (shm__hook_lock_check_delay_ns cannot open this window: it sleeps after the check.)
 *   Mirrored for a producer on a full ring whose consumer releases and dies;
 * - -EOWNERDEAD is sticky for a caller polling without blocking (timeout 0): once a peer is
 *   known dead, never "empty/full for now" (-EAGAIN) in between, although the lock check is
 *   rate-limited;
 * - a role's waiting flag left set by a predecessor killed asleep is cleared by the next
 *   holder of the role, else the peer makes a futex wake call on every publish. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ct.h"

TestSuite(protocol, .init = ct_setup, .fini = ct_teardown, .timeout = 100);

#define WAIT (30 * CT_SEC)
#define SEED 31
#define MAXLEN 200

/* Spec §3.4: the waiting flags' offsets in the segment. */
#define OFF_CONSUMER_WAITING 384
#define OFF_PRODUCER_WAITING 512
/* §3.2, §3.3: the futex words; §5.11: a 1.1 sleeper's flag is 0x80000000 | the word's value. */
#define OFF_WRITE_SEQ 136
#define OFF_READ_SEQ 264
#define ASLEEP_FLAG(name, seq_off) (0x80000000u | header_word((name), (seq_off)))

static uint64_t msg_len(uint64_t seq)
{
    return 8 + ct_msg_len(SEED, seq, MAXLEN - 8);
}

static int write_msg(shm_channel_t *ch, uint64_t seq, int64_t timeout)
{
    uint8_t buf[MAXLEN];
    ct_msg_fill(buf, SEED, seq, msg_len(seq));
    return shm_channel_write(ch, buf, msg_len(seq), timeout);
}

/* Read message `seq` (timeout as given) and check it; returns the read's rc, or 1000+ if
 * the message is not exactly message seq. */
static int read_msg(shm_channel_t *ch, uint64_t seq, int64_t timeout)
{
    uint8_t buf[MAXLEN];
    uint64_t len = 0;
    int rc = shm_channel_read(ch, buf, sizeof buf, &len, timeout);
    if (rc)
        return rc;
    return ct_msg_verify(buf, len, SEED, seq, msg_len(seq)) ? 1000 + (int)ct_msg_seq(buf) : 0;
}

/* A 32-bit header word of segment `name`, read through a read-only mapping of the file
 * of our own (an outside observer's view of the shared bytes). */
static uint32_t header_word(const char *name, size_t off)
{
    const char *p = ct_map_header(name, 0);
    cr_assert_not_null(p, "map %s: %s", ct_path(name), strerror(errno));
    uint32_t v = __atomic_load_n((const uint32_t *)(const void *)(p + off), __ATOMIC_ACQUIRE);
    ct_unmap_header(p);
    return v;
}

static void pipe_or_die(int fds[2])
{
    cr_assert_eq(pipe(fds), 0);
}

static void wait_byte(int fd)
{
    char b;
    cr_assert_eq(read(fd, &b, 1), 1, "child signalled");
}

static void send_byte(int fd)
{
    cr_assert_eq(write(fd, "x", 1), 1);
}

/* Wait until the producer's (or consumer's) sleep counter shows it asleep on the futex; the
 * time limit only bounds a failure. */
static void wait_until_sleeping(shm_channel_t *watch, int producer_sleeps, pid_t child)
{
    uint64_t t0 = ct_now_ns();
    for (;;) {
        shm_channel_stat_t st;
        cr_assert_eq(shm_channel_stat(watch, &st), 0);
        if ((producer_sleeps ? st.producer_sleeps : st.consumer_sleeps) > 0)
            return;
        int status;
        cr_assert_eq(waitpid(child, &status, WNOHANG), 0, "child exited (status %d)", status);
        cr_assert_lt(ct_now_ns() - t0, (uint64_t)WAIT, "the child never went to sleep");
        ct_sleep_ms(1);
    }
}

/* ---- the final look ---------------------------------------------------------------- */

#define NO_PTRACE 90

/* In the child to be traced: stop until the parent, its tracer, lets it run. */
static int become_tracee(void)
{
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
        return -1;
    raise(SIGSTOP);
    return 0;
}

/* Run `tracee` (stopped in become_tracee) to the entry of its first fcntl(F_OFD_GETLK)
 * system call and leave it stopped there. 0, or -1 if the tracee ended first (its status in
 * *status). Skips the test if this system refuses ptrace. */
static int run_to_first_getlk(pid_t tracee, int *status, pid_t other)
{
    int st;
    cr_assert_eq(waitpid(tracee, &st, 0), tracee);
    if (WIFEXITED(st) && WEXITSTATUS(st) == NO_PTRACE) {
        kill(other, SIGKILL);
        ct_wait(other);
        cr_skip_test("ptrace(PTRACE_TRACEME) refused here: the final look is untested");
    }
    cr_assert(WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP, "tracee stopped itself");
    cr_assert_eq(ptrace(PTRACE_SETOPTIONS, tracee, NULL,
                        (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)), 0);
    int sig = 0;
    for (;;) {
        cr_assert_eq(ptrace(PTRACE_SYSCALL, tracee, NULL, (void *)(long)sig), 0);
        sig = 0;
        cr_assert_eq(waitpid(tracee, &st, 0), tracee);
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            *status = st;
            return -1;
        }
        if (WSTOPSIG(st) != (SIGTRAP | 0x80)) {
            sig = WSTOPSIG(st); /* a real signal: deliver it */
            continue;
        }
        struct __ptrace_syscall_info info;
        memset(&info, 0, sizeof info);
        cr_assert_gt(ptrace(PTRACE_GET_SYSCALL_INFO, tracee, (void *)sizeof info, &info), 0);
        if (info.op == PTRACE_SYSCALL_INFO_ENTRY && info.entry.nr == SYS_fcntl &&
            info.entry.args[1] == F_OFD_GETLK)
            return 0;
    }
}

struct final_look {
    char name[64];
    int go[2];        /* parent -> producer: publish the last messages now */
    int done[2];      /* producer -> parent: last message committed */
    int ready[2];     /* producer -> parent: attached, first messages written */
    uint64_t first;   /* messages written before the consumer starts */
    uint64_t last;    /* messages written in the window (after the consumer found "empty") */
    int polling;      /* the consumer polls (timeout 0) instead of blocking */
};

static int final_look_producer(void *arg)
{
    const struct final_look *a = arg;
    shm_channel_t *ch;
    if (shm_channel_open(&ch, a->name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 4096, 0) != 0)
        return 1;
    for (uint64_t s = 0; s < a->first; s++)
        if (write_msg(ch, s, 0) != 0)
            return 2;
    if (write(a->ready[1], "r", 1) != 1)
        return 3;
    char b;
    if (read(a->go[0], &b, 1) != 1)
        return 4;
    for (uint64_t s = a->first; s < a->first + a->last; s++)
        if (write_msg(ch, s, 0) != 0)
            return 5;
    if (write(a->done[1], "d", 1) != 1)
        return 6;
    for (;;)
        pause(); /* SIGKILLed here: dies without closing */
}

/* Traced by the parent. Reads every message, then must get -EOWNERDEAD. Exit codes: 0 ok,
 * 20 + k: message k missing or wrong (got the rc or seq in the message printed). */
static int final_look_consumer(void *arg)
{
    const struct final_look *a = arg;
    if (become_tracee() != 0)
        return NO_PTRACE;
    shm_channel_t *ch;
    if (shm_channel_open(&ch, a->name, SHM_CHANNEL_CONSUMER, 0, 0, 0) != 0)
        return 91;
    shm_channel_set_spin(ch, 0);
    uint64_t total = a->first + a->last;
    for (uint64_t s = 0; s < total; s++) {
        int rc;
        if (a->polling) {
            while ((rc = read_msg(ch, s, 0)) == -EAGAIN)
                ;
        } else {
            rc = read_msg(ch, s, -1);
        }
        if (rc) {
            fprintf(stderr, "final look (%s): message %llu of %llu: %d (%s)\n",
                    a->polling ? "polling" : "blocking", (unsigned long long)s,
                    (unsigned long long)total, rc, rc < 0 ? shm_channel_strerror(rc) : "wrong");
            return 20 + (int)s;
        }
    }
    int rc;
    while ((rc = read_msg(ch, total, a->polling ? 0 : -1)) == -EAGAIN)
        ;
    if (rc != -EOWNERDEAD) {
        fprintf(stderr, "final look: after the last message: %d\n", rc);
        return 92;
    }
    shm_channel_close(ch);
    return 0;
}

static void final_look(int polling)
{
    struct final_look a = {.first = 3, .last = 5, .polling = polling};
    ct_name(a.name, polling ? "lookpoll" : "lookblock");
    pipe_or_die(a.go);
    pipe_or_die(a.done);
    pipe_or_die(a.ready);
    pid_t prod = ct_fork(final_look_producer, &a);
    wait_byte(a.ready[0]);
    pid_t cons = ct_fork(final_look_consumer, &a);
    int st = 0;
    if (run_to_first_getlk(cons, &st, prod) != 0) {
        kill(prod, SIGKILL);
        ct_wait(prod);
        cr_assert_fail("the consumer ended (status %#x) before any F_OFD_GETLK", st);
    }
    /* The consumer has read the first messages, found the ring empty and is about to check
     * the producer's lock. Now the producer publishes its last messages and dies. */
    shm_channel_t *o;
    cr_assert_eq(shm_channel_open(&o, a.name, SHM_CHANNEL_OBSERVER, 0, 0, 0), 0);
    shm_channel_stat_t s;
    cr_assert_eq(shm_channel_stat(o, &s), 0);
    cr_assert_eq(s.msgs_read, a.first, "stopped after reading the first messages");
    cr_assert_eq(s.used, 0, "with the ring empty");
    send_byte(a.go[1]);
    wait_byte(a.done[0]);
    cr_assert_eq(kill(prod, SIGKILL), 0);
    cr_assert_eq(ct_wait(prod), 128 + SIGKILL);
    cr_assert_eq(shm_channel_stat(o, &s), 0);
    cr_assert_eq(s.producer_alive, 0, "the producer's lock is free");
    cr_assert_eq(s.msgs_written, a.first + a.last);
    cr_assert_eq(ptrace(PTRACE_DETACH, cons, NULL, NULL), 0);
    int rc = ct_wait(cons);
    cr_assert_eq(rc, 0, "%s consumer: every committed message before -EOWNERDEAD (exit %d: "
                 "20 + the first message not read)", polling ? "polling" : "blocking", rc);
    cr_assert_eq(shm_channel_stat(o, &s), 0);
    cr_assert_eq(s.msgs_read, a.first + a.last);
    shm_channel_close(o);
    for (int i = 0; i < 2; i++) {
        close(a.go[i]);
        close(a.done[i]);
        close(a.ready[i]);
    }
}

Test(protocol, final_look_blocking_reader_reads_what_a_dying_producer_published)
{
    final_look(0);
}

Test(protocol, final_look_polling_reader_reads_what_a_dying_producer_published)
{
    final_look(1);
}

/* The mirror image: a producer that found the ring full is stopped at its lock check while
 * the consumer releases messages and dies. The room is there: the write succeeds (spec §5.7:
 * while there is room, writes succeed whatever the consumer's state), and only a full ring
 * later reports -EOWNERDEAD. */
struct final_look_p {
    char name[64];
    int go[2], done[2], ready[2];
    uint64_t release; /* messages the consumer releases before it dies */
    int polling;
};

/* Fill the ring (untraced), then be traced and write on. Exit 0 if the writes end with
 * -EOWNERDEAD; the parent checks how many were written. */
static int final_look_full_producer(void *arg)
{
    const struct final_look_p *a = arg;
    shm_channel_t *ch;
    if (shm_channel_open(&ch, a->name, SHM_CHANNEL_PRODUCER, 0, 0, 0) != 0)
        return 91;
    shm_channel_set_spin(ch, 0);
    uint64_t s = 0;
    while (write_msg(ch, s, 0) == 0)
        s++;
    if (become_tracee() != 0)
        return NO_PTRACE;
    int rc;
    for (;; s++) {
        while ((rc = write_msg(ch, s, a->polling ? 0 : -1)) == -EAGAIN)
            ;
        if (rc)
            break;
    }
    if (rc != -EOWNERDEAD) {
        fprintf(stderr, "final look (producer): writes ended with %s\n", shm_channel_strerror(rc));
        return 92;
    }
    shm_channel_close(ch);
    return 0;
}

/* Hold the consumer role; on "go", release the first messages, say so, wait for SIGKILL. */
static int final_look_dying_consumer(void *arg)
{
    const struct final_look_p *a = arg;
    shm_channel_t *ch;
    if (shm_channel_open(&ch, a->name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0) != 0)
        return 1;
    char b;
    if (write(a->ready[1], "r", 1) != 1 || read(a->go[0], &b, 1) != 1)
        return 2;
    for (uint64_t s = 0; s < a->release; s++)
        if (read_msg(ch, s, 0) != 0)
            return 3;
    if (write(a->done[1], "d", 1) != 1)
        return 4;
    for (;;)
        pause();
}

static void final_look_producer_side(int polling)
{
    struct final_look_p a = {.release = 2, .polling = polling};
    ct_name(a.name, polling ? "plookpoll" : "plookblock");
    pipe_or_die(a.go);
    pipe_or_die(a.done);
    pipe_or_die(a.ready);
    pid_t cons = ct_fork(final_look_dying_consumer, &a);
    wait_byte(a.ready[0]);
    pid_t prod = ct_fork(final_look_full_producer, &a);
    int st = 0;
    if (run_to_first_getlk(prod, &st, cons) != 0) {
        kill(cons, SIGKILL);
        ct_wait(cons);
        cr_assert_fail("the producer ended (status %#x) before any F_OFD_GETLK", st);
    }
    shm_channel_t *o;
    cr_assert_eq(shm_channel_open(&o, a.name, SHM_CHANNEL_OBSERVER, 0, 0, 0), 0);
    shm_channel_stat_t s;
    cr_assert_eq(shm_channel_stat(o, &s), 0);
    uint64_t full = s.msgs_written;
    cr_assert_gt(full, a.release);
    cr_assert_gt(s.full_events, 0, "the producer found the ring full");
    send_byte(a.go[1]);
    wait_byte(a.done[0]);
    cr_assert_eq(kill(cons, SIGKILL), 0);
    cr_assert_eq(ct_wait(cons), 128 + SIGKILL);
    cr_assert_eq(shm_channel_stat(o, &s), 0);
    cr_assert_eq(s.consumer_alive, 0);
    cr_assert_eq(s.msgs_read, a.release);
    cr_assert_eq(ptrace(PTRACE_DETACH, prod, NULL, NULL), 0);
    int rc = ct_wait(prod);
    cr_assert_eq(rc, 0, "%s producer: exit %d", polling ? "polling" : "blocking", rc);
    cr_assert_eq(shm_channel_stat(o, &s), 0);
    cr_assert_gt(s.msgs_written, full,
                 "%s producer: the room the dying consumer made was used before -EOWNERDEAD",
                 polling ? "polling" : "blocking");
    cr_assert_lt(s.capacity - s.used, 8 + MAXLEN, "and the ring is full again");
    shm_channel_close(o);
    for (int i = 0; i < 2; i++) {
        close(a.go[i]);
        close(a.done[i]);
        close(a.ready[i]);
    }
}

Test(protocol, final_look_blocking_writer_uses_room_a_dying_consumer_made)
{
    final_look_producer_side(0);
}

Test(protocol, final_look_polling_writer_uses_room_a_dying_consumer_made)
{
    final_look_producer_side(1);
}

/* ---- -EOWNERDEAD is sticky for pollers --------------------------------------------- */

struct holder {
    char name[64];
    uint32_t role;
    uint64_t messages; /* producer: write this many first */
    int ready[2];
};

/* Take the role (producer: write the messages), signal, wait to be killed. */
static int hold_role(void *arg)
{
    const struct holder *a = arg;
    shm_channel_t *ch;
    if (shm_channel_open(&ch, a->name, a->role, 0, 0, 0) != 0)
        return 1;
    for (uint64_t s = 0; s < a->messages; s++)
        if (write_msg(ch, s, WAIT) != 0)
            return 2;
    if (write(a->ready[1], "r", 1) != 1)
        return 3;
    for (;;)
        pause();
}

#define POLLS 20000

/* Poll with timeout 0 until the first verdict, then POLLS more times: each must be
 * -EOWNERDEAD. `poll(ch, i)` makes the i-th non-blocking call. */
static void assert_sticky(shm_channel_t *ch, int (*poll)(shm_channel_t *, int), const char *who)
{
    uint64_t t0 = ct_now_ns();
    int rc;
    /* Until the first check after the death (the lock check is rate-limited: up to 10 ms
     * of -EAGAIN is allowed before it). */
    while ((rc = poll(ch, 0)) == -EAGAIN)
        cr_assert_lt(ct_now_ns() - t0, (uint64_t)WAIT, "%s: death never noticed", who);
    cr_assert_eq(rc, -EOWNERDEAD, "%s: %s", who, shm_channel_strerror(rc));
    int eagain = 0, other = 0;
    for (int i = 1; i <= POLLS; i++) {
        rc = poll(ch, i);
        if (rc == -EAGAIN)
            eagain++;
        else if (rc != -EOWNERDEAD)
            other++;
    }
    cr_assert_eq(eagain + other, 0,
                 "%s: of %d polls after the first -EOWNERDEAD, %d said -EAGAIN and %d something "
                 "else", who, POLLS, eagain, other);
}

static int consumer_poll(shm_channel_t *ch, int i)
{
    uint8_t buf[MAXLEN];
    uint64_t len, lens[4];
    const void *p;
    switch (i % 3) {
    case 0: return shm_channel_read(ch, buf, sizeof buf, &len, 0);
    case 1: return shm_channel_peek(ch, &p, &len, 0);
    default: return shm_channel_read_batch(ch, buf, sizeof buf, lens, 4, 0);
    }
}

static int producer_poll(shm_channel_t *ch, int i)
{
    uint8_t buf[MAXLEN] = {0};
    uint64_t lens[2] = {100, 100};
    void *p;
    switch (i % 3) {
    case 0: return shm_channel_write(ch, buf, 100, 0);
    case 1: return shm_channel_reserve(ch, 100, &p, 0);
    default: return shm_channel_write_batch(ch, buf, lens, 2, 0);
    }
}

Test(protocol, eownerdead_is_sticky_for_a_polling_consumer)
{
    struct holder a = {.role = SHM_CHANNEL_PRODUCER, .messages = 5};
    ct_name(a.name, "stickyc");
    pipe_or_die(a.ready);
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, a.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 4096, 0), 0);
    pid_t pid = ct_fork(hold_role, &a);
    wait_byte(a.ready[0]);
    for (uint64_t s = 0; s < a.messages; s++)
        cr_assert_eq(read_msg(c, s, 0), 0);
    /* a live producer and an empty ring: "empty for now" */
    cr_assert_eq(consumer_poll(c, 0), -EAGAIN);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
    assert_sticky(c, consumer_poll, "consumer that saw the producer alive");
    shm_channel_close(c);
    /* A consumer attached after the death: its first poll already checks. */
    cr_assert_eq(shm_channel_open(&c, a.name, SHM_CHANNEL_CONSUMER, 0, 0, 0), 0);
    assert_sticky(c, consumer_poll, "consumer attached after the death");
    shm_channel_close(c);
    close(a.ready[0]);
    close(a.ready[1]);
}

Test(protocol, eownerdead_is_sticky_for_a_polling_producer_on_a_full_ring)
{
    struct holder a = {.role = SHM_CHANNEL_CONSUMER};
    ct_name(a.name, "stickyp");
    pipe_or_die(a.ready);
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    pid_t pid = ct_fork(hold_role, &a);
    wait_byte(a.ready[0]);
    uint64_t n = 0;
    while (producer_poll(p, 0) == 0)
        n++;
    cr_assert_gt(n, 0);
    cr_assert_eq(producer_poll(p, 0), -EAGAIN, "full, consumer alive: full for now");
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
    assert_sticky(p, producer_poll, "producer that saw the consumer alive");
    shm_channel_close(p);
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0);
    assert_sticky(p, producer_poll, "producer attached after the death");
    shm_channel_close(p);
    close(a.ready[0]);
    close(a.ready[1]);
}

/* ---- a predecessor's waiting flag --------------------------------------------------- */

struct sleeper {
    char name[64];
    uint32_t role;
};

/* Consumer: block in read on an empty ring. Producer: fill the ring, block in write. */
static int sleep_in_role(void *arg)
{
    const struct sleeper *a = arg;
    shm_channel_t *ch;
    if (shm_channel_open(&ch, a->name, a->role, 0, 0, 0) != 0)
        return 1;
    if (a->role == SHM_CHANNEL_CONSUMER) {
        uint8_t buf[MAXLEN];
        uint64_t len;
        shm_channel_read(ch, buf, sizeof buf, &len, -1);
        return 2; /* never: the ring stays empty */
    }
    uint64_t s = 0;
    while (write_msg(ch, s, 0) == 0)
        s++;
    write_msg(ch, s, -1);
    return 3; /* never: the ring stays full */
}

#define PUBLISHES 1000

Test(protocol, new_consumer_clears_the_waiting_flag_of_one_killed_asleep)
{
    struct sleeper a = {.role = SHM_CHANNEL_CONSUMER};
    ct_name(a.name, "cflag");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 65536, 0), 0);
    pid_t pid = ct_fork(sleep_in_role, &a);
    wait_until_sleeping(p, 0, pid);
    cr_assert_eq(header_word(a.name, OFF_CONSUMER_WAITING), ASLEEP_FLAG(a.name, OFF_WRITE_SEQ),
                 "asleep: flag set");
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
    cr_assert_eq(header_word(a.name, OFF_CONSUMER_WAITING), ASLEEP_FLAG(a.name, OFF_WRITE_SEQ),
                 "killed asleep: flag left set");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, a.name, SHM_CHANNEL_CONSUMER, 0, 0, 0), 0);
    cr_assert_eq(header_word(a.name, OFF_CONSUMER_WAITING), 0, "the new consumer cleared it");
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(p, &st), 0);
    uint64_t wakes = st.producer_wakes;
    /* A consumer that never waits (it polls): the producer has no one to wake. */
    for (uint64_t s = 0; s < PUBLISHES; s++) {
        cr_assert_eq(write_msg(p, s, 0), 0);
        cr_assert_eq(read_msg(c, s, 0), 0);
    }
    cr_assert_eq(shm_channel_stat(p, &st), 0);
    cr_assert_eq(st.producer_wakes - wakes, 0,
                 "%d publishes to a consumer that never slept made %llu wake calls", PUBLISHES,
                 (unsigned long long)(st.producer_wakes - wakes));
    shm_channel_close(p);
    shm_channel_close(c);
}

Test(protocol, new_producer_clears_the_waiting_flag_of_one_killed_asleep)
{
    struct sleeper a = {.role = SHM_CHANNEL_PRODUCER};
    ct_name(a.name, "pflag");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, a.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    pid_t pid = ct_fork(sleep_in_role, &a);
    wait_until_sleeping(c, 1, pid);
    cr_assert_eq(header_word(a.name, OFF_PRODUCER_WAITING), ASLEEP_FLAG(a.name, OFF_READ_SEQ),
                 "asleep: flag set");
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
    cr_assert_eq(header_word(a.name, OFF_PRODUCER_WAITING), ASLEEP_FLAG(a.name, OFF_READ_SEQ),
                 "killed asleep: flag left set");
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0);
    cr_assert_eq(header_word(a.name, OFF_PRODUCER_WAITING), 0, "the new producer cleared it");
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    uint64_t wakes = st.consumer_wakes;
    /* Drain what the dead producer wrote, then a producer that never waits: the consumer
     * has no one to wake on any release. */
    uint64_t s = 0;
    while (read_msg(c, s, 0) == 0)
        s++;
    cr_assert_gt(s, 0, "the dead producer had filled the ring");
    for (uint64_t i = 0; i < PUBLISHES; i++, s++) {
        cr_assert_eq(write_msg(p, s, 0), 0);
        cr_assert_eq(read_msg(c, s, 0), 0);
    }
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_eq(st.consumer_wakes - wakes, 0,
                 "%llu releases to a producer that never slept made %llu wake calls",
                 (unsigned long long)s, (unsigned long long)(st.consumer_wakes - wakes));
    shm_channel_close(p);
    shm_channel_close(c);
}
