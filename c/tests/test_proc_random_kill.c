/* A producer SIGKILLed at random moments (in the middle of a copy, of a reservation being
 * filled in place, between messages, waiting for room), many times over: the consumer reads
 * every committed message intact and in order, never a torn or half-written one, then
 * -EOWNERDEAD; the next producer resumes the stream where the dead one stopped. And the
 * deterministic case: killed while a half-filled reservation is outstanding (with and
 * without the padding a wrap needs), the reservation is never seen and the next producer's
 * first message, written over it, is intact. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ct.h"

TestSuite(randkill, .init = ct_setup, .fini = ct_teardown, .timeout = 110);

#define WAIT (30 * CT_SEC)
#define SEED 4242
#define CAP (4u << 20) /* 4 MiB ring: messages up to 2 MiB, whose copy takes a while */

/* Where the producer is; it stores this before each step, so after its death the word
 * says where the kill landed. */
enum phase {
    PH_START,     /* attached, nothing written yet */
    PH_FILL,      /* building the next message in its own buffer */
    PH_WRITE,     /* inside shm_channel_write: waiting for room, copying, committing */
    PH_RESERVED,  /* reserved, the space half filled with junk */
    PH_FILLING,   /* reserved, filling the message in place */
    PH_COMMIT,    /* inside shm_channel_commit */
    PH_COMMITTED, /* the commit returned */
    PH_COUNT
};
static const char *const phase_names[PH_COUNT] = {
    "start", "fill-own-buffer", "write(copy)", "reserved-half-filled", "filling-in-place",
    "commit", "committed"};

struct shared {
    char name[64];
    uint64_t start;     /* first sequence number the next producer writes */
    uint64_t committed; /* 1 + the last sequence number whose commit returned */
    uint32_t phase;
};

static struct shared *sh;

/* Message lengths: half small, a third medium, the rest large (up to max_payload). */
static uint64_t msg_len(uint64_t seq, uint64_t max)
{
    uint64_t r = ct_mix(SEED ^ (seq * 0x9e3779b97f4a7c15ull));
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 50)
        return 16 + r % 240;
    if (pick < 85)
        return 256 + r % (64 * 1024);
    return 256 * 1024 + r % (max - 256 * 1024 + 1);
}

static void set_phase(enum phase p)
{
    __atomic_store_n(&sh->phase, (uint32_t)p, __ATOMIC_SEQ_CST);
}

static void nap_us(unsigned us)
{
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

/* Writes start, start+1, ... until killed: every third message reserved, half filled with
 * junk, (sometimes after a nap) filled in place and committed; the others built in a buffer
 * and copied by shm_channel_write. */
static int produce_until_killed(void *arg)
{
    int ready_fd = *(const int *)arg;
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, sh->name, SHM_CHANNEL_PRODUCER, 0, 0, 0);
    if (rc) {
        fprintf(stderr, "producer open: %s\n", shm_channel_strerror(rc));
        return 1;
    }
    set_phase(PH_START);
    if (write(ready_fd, "r", 1) != 1)
        return 2;
    uint64_t max = shm_channel_max_payload(ch);
    uint8_t *buf = malloc(max);
    if (!buf)
        return 3;
    for (uint64_t seq = sh->start;; seq++) {
        uint64_t len = msg_len(seq, max);
        if (seq % 3 == 0) {
            void *p;
            set_phase(PH_WRITE); /* waiting for room, if any wait */
            if ((rc = shm_channel_reserve(ch, len, &p, WAIT)) != 0)
                break;
            set_phase(PH_RESERVED);
            memset(p, 0xA5, len / 2);
            if (ct_mix(seq) % 4 == 0)
                nap_us(200);
            set_phase(PH_FILLING);
            ct_msg_fill(p, SEED, seq, len);
            set_phase(PH_COMMIT);
            if ((rc = shm_channel_commit(ch, len)) != 0)
                break;
        } else {
            set_phase(PH_FILL);
            ct_msg_fill(buf, SEED, seq, len);
            set_phase(PH_WRITE);
            if ((rc = shm_channel_write(ch, buf, len, WAIT)) != 0)
                break;
        }
        __atomic_store_n(&sh->committed, seq + 1, __ATOMIC_SEQ_CST);
        set_phase(PH_COMMITTED);
    }
    fprintf(stderr, "producer stopped: %s\n", shm_channel_strerror(rc));
    return 4;
}

/* Read and check the next message; 0, or the read's error. */
static int read_next(shm_channel_t *c, uint8_t *buf, uint64_t max, uint64_t *seq, int64_t timeout)
{
    uint64_t len;
    int rc = shm_channel_read(c, buf, max, &len, timeout);
    if (rc)
        return rc;
    int bad = ct_msg_verify(buf, len, SEED, *seq, msg_len(*seq, max));
    cr_assert_eq(bad, 0, "message %llu (%llu bytes) torn, half-written or out of order (%d; "
                 "its bytes 0..7 say %llu)", (unsigned long long)*seq,
                 (unsigned long long)len, bad, len >= 8 ? (unsigned long long)ct_msg_seq(buf) : 0ull);
    (*seq)++;
    return 0;
}

Test(randkill, producer_killed_at_random_moments)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(sh, MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    ct_name(sh->name, "randkill");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, sh->name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, CAP, 0), 0);
    uint64_t max = shm_channel_max_payload(c);
    uint8_t *buf = malloc(max);
    cr_assert_not_null(buf);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    const uint64_t kills = ct_scaled(100, 30);
    unsigned at_phase[PH_COUNT] = {0};
    uint64_t seq = 0, extra = 0;
    for (uint64_t k = 0; k < kills; k++) {
        sh->start = sh->committed = seq;
        pid_t pid = ct_fork(produce_until_killed, &fds[1]);
        char b;
        cr_assert_eq(read(fds[0], &b, 1), 1, "producer %llu attached", (unsigned long long)k);
        /* Read while the producer runs; kill it after a random delay, preferably in the
         * phase this round aims at (in the middle of a copy, or of a reservation). */
        uint64_t r = ct_mix(k * 7919 + 1);
        uint64_t delay = (r % 8000) * 1000; /* 0..8 ms */
        enum phase target = (r >> 20) % 3 == 0 ? PH_WRITE
                          : (r >> 20) % 3 == 1 ? PH_RESERVED : PH_COUNT /* any */;
        uint64_t t0 = ct_now_ns();
        for (;;) {
            uint64_t el = ct_now_ns() - t0;
            uint32_t ph = __atomic_load_n(&sh->phase, __ATOMIC_SEQ_CST);
            if (el >= delay && (target == PH_COUNT || ph == (uint32_t)target || el >= delay + 200 * CT_MS))
                break;
            int rc = read_next(c, buf, max, &seq, 0);
            cr_assert(rc == 0 || rc == -EAGAIN, "kill %llu: read before the kill: %s",
                      (unsigned long long)k, shm_channel_strerror(rc));
        }
        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert_eq(ct_wait(pid), 128 + SIGKILL, "kill %llu: the producer was still running",
                     (unsigned long long)k);
        uint32_t died_in = __atomic_load_n(&sh->phase, __ATOMIC_SEQ_CST);
        at_phase[died_in < PH_COUNT ? died_in : 0]++;
        /* Every committed message, intact and in order, then the death. */
        int rc;
        while ((rc = read_next(c, buf, max, &seq, WAIT)) == 0)
            ;
        cr_assert_eq(rc, -EOWNERDEAD, "kill %llu (in %s): %s", (unsigned long long)k,
                     phase_names[died_in % PH_COUNT], shm_channel_strerror(rc));
        uint64_t committed = __atomic_load_n(&sh->committed, __ATOMIC_SEQ_CST);
        /* The producer may die after its commit and before recording it: one more. */
        cr_assert(seq == committed || seq == committed + 1,
                  "kill %llu (in %s): read up to %llu, the producer had committed up to %llu",
                  (unsigned long long)k, phase_names[died_in % PH_COUNT], (unsigned long long)seq,
                  (unsigned long long)committed);
        extra += seq - committed;
        shm_channel_stat_t st;
        cr_assert_eq(shm_channel_stat(c, &st), 0);
        cr_assert_eq(st.used, 0, "drained");
        cr_assert_eq(st.msgs_read, seq);
        cr_assert_eq(shm_channel_read(c, buf, max, &(uint64_t){0}, 0), -EOWNERDEAD,
                     "still dead until a producer attaches");
    }
    /* A last producer (this process) resumes the stream and ends it cleanly. */
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, sh->name, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0);
    for (int i = 0; i < 3; i++) {
        uint64_t len = msg_len(seq, max);
        uint64_t s = seq;
        ct_msg_fill(buf, SEED, s, len);
        cr_assert_eq(shm_channel_write(p, buf, len, 0), 0);
        cr_assert_eq(read_next(c, buf, max, &seq, 0), 0);
    }
    shm_channel_close(p);
    cr_assert_eq(shm_channel_read(c, buf, max, &(uint64_t){0}, 0), -EPIPE);
    shm_channel_close(c);
    cr_assert(!ct_exists(sh->name));
    fprintf(stderr, "randkill: %llu kills, %llu messages; committed but unrecorded at death: "
            "%llu; died in:", (unsigned long long)kills, (unsigned long long)seq,
            (unsigned long long)extra);
    for (int i = 0; i < PH_COUNT; i++)
        fprintf(stderr, " %s %u", phase_names[i], at_phase[i]);
    fprintf(stderr, "\n");
    close(fds[0]);
    close(fds[1]);
    free(buf);
    munmap(sh, sizeof *sh);
}

/* ---- killed with a half-filled reservation outstanding ----------------------------- */

#define SMALL_CAP 4096
#define FIRST 3         /* messages of FIRST_LEN written before the reservation */
#define FIRST_LEN 1000  /* records of 1008 bytes: write_pos ends at 3024, 1072 bytes to the end */

struct reserver {
    char name[64];
    uint64_t reserve_len; /* fits before the end, or needs padding (wraps) */
    int up[2];            /* child -> parent */
    int down[2];          /* parent -> child */
};

static int reserve_and_die(void *arg)
{
    const struct reserver *a = arg;
    shm_channel_t *ch;
    if (shm_channel_open(&ch, a->name, SHM_CHANNEL_PRODUCER, 0, 0, 0) != 0)
        return 1;
    uint8_t buf[FIRST_LEN];
    for (uint64_t s = 0; s < FIRST; s++) {
        ct_msg_fill(buf, SEED, s, FIRST_LEN);
        if (shm_channel_write(ch, buf, FIRST_LEN, 0) != 0)
            return 2;
    }
    char b;
    if (write(a->up[1], "w", 1) != 1 || read(a->down[0], &b, 1) != 1) /* the reader drained */
        return 3;
    void *p;
    if (shm_channel_reserve(ch, a->reserve_len, &p, 0) != 0)
        return 4;
    /* Half filled: what the next message's place would hold if it were read now. */
    ct_msg_fill(p, SEED, FIRST, a->reserve_len);
    memset((uint8_t *)p + a->reserve_len / 2, 0xEE, a->reserve_len - a->reserve_len / 2);
    if (write(a->up[1], "h", 1) != 1)
        return 5;
    for (;;)
        pause();
}

static void killed_with_reservation(uint64_t reserve_len)
{
    struct reserver a = {.reserve_len = reserve_len};
    ct_name(a.name, reserve_len > 1064 ? "reswrap" : "res");
    cr_assert_eq(pipe(a.up), 0);
    cr_assert_eq(pipe(a.down), 0);
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, a.name, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, SMALL_CAP, 0), 0);
    pid_t pid = ct_fork(reserve_and_die, &a);
    char b;
    cr_assert_eq(read(a.up[0], &b, 1), 1);
    uint8_t buf[SMALL_CAP];
    uint64_t len, seq = 0;
    for (; seq < FIRST; seq++) {
        cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
        cr_assert_eq(ct_msg_verify(buf, len, SEED, seq, FIRST_LEN), 0);
    }
    shm_channel_stat_t before, after;
    cr_assert_eq(shm_channel_stat(c, &before), 0);
    cr_assert_eq(write(a.down[1], "g", 1), 1);
    cr_assert_eq(read(a.up[0], &b, 1), 1, "reserved and half filled");
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(ct_wait(pid), 128 + SIGKILL);
    int rc = shm_channel_read(c, buf, sizeof buf, &len, WAIT);
    cr_assert_eq(rc, -EOWNERDEAD, "the reservation is never delivered: %s", shm_channel_strerror(rc));
    cr_assert_eq(shm_channel_stat(c, &after), 0);
    cr_assert_eq(after.write_pos, before.write_pos, "an uncommitted reservation is not published");
    cr_assert_eq(after.msgs_written, FIRST);
    /* The next producer writes over the dead one's reservation: a shorter message, then
     * one that ends beyond it. Both arrive intact. */
    shm_channel_t *p;
    cr_assert_eq(shm_channel_open(&p, a.name, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0);
    uint64_t lens[2] = {reserve_len / 3, reserve_len / 3 + 200};
    for (int i = 0; i < 2; i++, seq++) {
        ct_msg_fill(buf, SEED, seq, lens[i]);
        cr_assert_eq(shm_channel_write(p, buf, lens[i], 0), 0);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
        cr_assert_eq(ct_msg_verify(buf, len, SEED, FIRST + (uint64_t)i, lens[i]), 0,
                     "message %d of the next producer intact", i);
    }
    shm_channel_close(p);
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), -EPIPE);
    shm_channel_close(c);
    for (int i = 0; i < 2; i++) {
        close(a.up[i]);
        close(a.down[i]);
    }
}

Test(randkill, killed_with_a_half_filled_reservation)
{
    killed_with_reservation(600); /* fits in the 1072 bytes before the end */
}

Test(randkill, killed_with_a_half_filled_reservation_after_padding)
{
    killed_with_reservation(1500); /* needs a padding record and wraps to offset 0 */
}
