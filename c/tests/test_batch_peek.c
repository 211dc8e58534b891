/* shm_channel_peek_batch / shm_channel_release_n / shm_channel_mapping (issue 14): several
 * messages handed over in place without being released, released later in one step; and a
 * consumer killed while holding a batch, whose successor gets every held message again (at
 * most the batch: nothing it had released comes back, nothing is lost). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ct.h"

TestSuite(batch_peek, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

#define CAP 4096
#define SEED 14

static shm_channel_t *open_role(const char *name, uint32_t role)
{
    shm_channel_t *ch;
    cr_assert_eq(shm_channel_open(&ch, name, role, SHM_CHANNEL_CREATE, CAP, 0600), 0);
    return ch;
}

/* The fixture of the tests on one process's pair (.init = pair_open, .fini = pair_close): a
 * producer p and a consumer c of a fresh channel `name`. A test that closes either itself
 * sets it to NULL. */
static char name[64];
static shm_channel_t *p, *c;

static void pair_open(void)
{
    ct_name(name, "bp");
    p = open_role(name, SHM_CHANNEL_PRODUCER);
    c = open_role(name, SHM_CHANNEL_CONSUMER);
}

static void pair_close(void)
{
    if (p)
        shm_channel_close(p);
    if (c)
        shm_channel_close(c);
    p = c = NULL;
}

static uint64_t len_of(uint64_t seq)
{
    return 8 + seq % 40;
}

static void write_seqs(shm_channel_t *prod, uint64_t from, uint64_t to)
{
    uint8_t buf[64];
    for (uint64_t s = from; s < to; s++) {
        ct_msg_fill(buf, SEED, s, len_of(s));
        cr_assert_eq(shm_channel_write(prod, buf, len_of(s), 0), 0, "write %llu",
                     (unsigned long long)s);
    }
}

/* ptrs[0..n) are messages first..first+n-1, intact. */
static void check_batch(const void **ptrs, const uint64_t *lens, int n, uint64_t first)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(ct_msg_verify(ptrs[i], lens[i], SEED, first + (uint64_t)i,
                                   len_of(first + (uint64_t)i)), 0, "message %d", i);
}

static uint64_t read_pos(shm_channel_t *ch)
{
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(ch, &st), 0);
    return st.read_pos;
}

Test(batch_peek, hands_over_in_order_and_releases_only_what_is_asked, .init = pair_open, .fini = pair_close)
{
    write_seqs(p, 0, 10);
    const void *ptrs[16];
    uint64_t lens[16];
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 4, 0), 4);
    check_batch(ptrs, lens, 4, 0);
    cr_assert_eq(read_pos(c), 0, "a batch peek releases nothing");
    /* Peeking again returns the same messages from the first, more if asked. */
    const void *again[16];
    uint64_t alens[16];
    cr_assert_eq(shm_channel_peek_batch(c, again, alens, 16, 0), 10);
    cr_assert_eq(again[0], ptrs[0]);
    check_batch(again, alens, 10, 0);
    const void *one;
    uint64_t one_len;
    cr_assert_eq(shm_channel_peek(c, &one, &one_len, 0), 0);
    cr_assert_eq(one, ptrs[0], "the first message of a batch is the peeked one");
    /* Release 3: the 4th is next, the segment's read_pos moved past exactly 3. */
    cr_assert_eq(shm_channel_release_n(c, 3), 0);
    cr_assert_eq(read_pos(c), (uint64_t)((const char *)again[3] - (const char *)again[0]),
                 "read_pos covers exactly the three released records");
    cr_assert_eq(shm_channel_release_n(c, 1), -EINVAL, "the batch ended with its release");
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 16, 0), 7);
    check_batch(ptrs, lens, 7, 3);
    cr_assert_eq(shm_channel_release_n(c, 0), 0, "0 releases nothing");
    cr_assert_eq(shm_channel_release_n(c, 8), -EINVAL, "more than the batch");
    cr_assert_eq(shm_channel_release_n(c, 7), 0);
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 16, 0), -EAGAIN);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_eq(st.msgs_read, 10);
    cr_assert_eq(st.read_pos, st.write_pos);
    shm_channel_close(p);
    p = NULL;
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 16, 0), -EPIPE);
}

Test(batch_peek, a_read_or_release_since_the_batch_ends_it, .init = pair_open, .fini = pair_close)
{
    write_seqs(p, 0, 6);
    const void *ptrs[8];
    uint64_t lens[8];
    cr_assert_eq(shm_channel_release_n(c, 1), -EINVAL, "no batch held");
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 8, 0), 6);
    uint8_t buf[64];
    uint64_t len;
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
    cr_assert_eq(ct_msg_verify(buf, len, SEED, 0, len_of(0)), 0, "read returns the first held");
    cr_assert_eq(shm_channel_release_n(c, 2), -EINVAL, "a read released one: the batch is gone");
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 8, 0), 5);
    check_batch(ptrs, lens, 5, 1);
    cr_assert_eq(shm_channel_release(c), 0);
    cr_assert_eq(shm_channel_release_n(c, 1), -EINVAL);
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 8, 0), 4);
    check_batch(ptrs, lens, 4, 2);
}

Test(batch_peek, arguments_roles_and_kinds, .init = pair_open, .fini = pair_close)
{
    const void *ptrs[2];
    uint64_t lens[2];
    cr_assert_eq(shm_channel_peek_batch(p, ptrs, lens, 2, 0), -EBADF);
    cr_assert_eq(shm_channel_release_n(p, 1), -EBADF);
    cr_assert_eq(shm_channel_peek_batch(NULL, ptrs, lens, 2, 0), -EINVAL);
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 0, 0), 0);
    cr_assert_eq(shm_channel_peek_batch(c, NULL, lens, 2, 0), -EINVAL);
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, NULL, 2, 0), -EINVAL);
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 2, 0), -EAGAIN);
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 2, 1000000), -ETIMEDOUT);
    shm_channel_t *sub;
    char bname[64];
    ct_name(bname, "bpsub");
    cr_assert_eq(shm_channel_open_broadcast(&sub, bname, SHM_CHANNEL_SUBSCRIBER,
                                            SHM_CHANNEL_CREATE, NULL, 0600), 0);
    cr_assert_eq(shm_channel_peek_batch(sub, ptrs, lens, 2, 0), -EBADF);
    shm_channel_close(sub);
    void *base;
    uint64_t maplen;
    cr_assert_eq(shm_channel_mapping(c, NULL, &maplen), -EINVAL);
    cr_assert_eq(shm_channel_mapping(c, &base, NULL), -EINVAL);
    shm_channel_detach(c);
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 2, 0), -EBADF);
    cr_assert_eq(shm_channel_mapping(c, &base, &maplen), 0, "the mapping outlives the role");
}

Test(batch_peek, the_producer_gets_room_only_at_the_release, .init = pair_open, .fini = pair_close)
{
    uint8_t buf[256] = {0};
    int n = 0;
    while (shm_channel_write(p, buf, sizeof buf, 0) == 0)
        n++;
    const void *ptrs[64];
    uint64_t lens[64];
    cr_assert_eq(shm_channel_peek_batch(c, ptrs, lens, 64, 0), n);
    cr_assert_eq(shm_channel_write(p, buf, sizeof buf, 0), -EAGAIN, "held messages keep their room");
    cr_assert_eq(shm_channel_release_n(c, (uint32_t)n), 0);
    cr_assert_eq(shm_channel_write(p, buf, sizeof buf, 0), 0);
}

Test(batch_peek, every_view_lies_in_the_mapping, .init = pair_open, .fini = pair_close)
{
    void *pbase, *cbase;
    uint64_t plen, clen;
    cr_assert_eq(shm_channel_mapping(p, &pbase, &plen), 0);
    cr_assert_eq(shm_channel_mapping(c, &cbase, &clen), 0);
    cr_assert_eq(plen, clen);
    cr_assert_geq(plen, (uint64_t)CAP);
    const void *ptrs[64];
    uint64_t lens[64];
    for (uint64_t round = 0; round < 40; round++) { /* wraps the ring several times */
        void *w;
        cr_assert_eq(shm_channel_reserve(p, 100, &w, 0), 0);
        cr_assert((char *)w >= (char *)pbase && (char *)w + 100 <= (char *)pbase + plen);
        cr_assert_eq(shm_channel_commit(p, 100), 0);
        write_seqs(p, round, round + 1);
        int n = shm_channel_peek_batch(c, ptrs, lens, 64, 0);
        cr_assert_eq(n, 2);
        for (int i = 0; i < n; i++)
            cr_assert((const char *)ptrs[i] >= (char *)cbase &&
                      (const char *)ptrs[i] + lens[i] <= (char *)cbase + clen);
        cr_assert_eq(shm_channel_release_n(c, 2), 0);
    }
}

/* ---- a consumer killed holding a batch ---- */

struct shared {
    char name[64];
    uint64_t release_first; /* the child releases this many of its batch, then waits */
    int64_t held;           /* batch size the child got (-errno on failure) */
    int stopped;
};

static struct shared *sh;

static int hold_and_wait(void *arg)
{
    (void)arg;
    shm_channel_t *held;
    if (shm_channel_open(&held, sh->name, SHM_CHANNEL_CONSUMER, 0, 0, 0600))
        return 1;
    uint8_t buf[64];
    uint64_t len;
    if (shm_channel_read(held, buf, sizeof buf, &len, 0) != 0) /* message 0: handed, released */
        return 2;
    const void *ptrs[8];
    uint64_t lens[8];
    int n = shm_channel_peek_batch(held, ptrs, lens, 8, 0);
    if (n > 0 && sh->release_first &&
        shm_channel_release_n(held, (uint32_t)sh->release_first) != 0)
        return 3;
    __atomic_store_n(&sh->held, n, __ATOMIC_SEQ_CST);
    __atomic_store_n(&sh->stopped, 1, __ATOMIC_SEQ_CST);
    for (;;)
        pause(); /* until SIGKILL */
}

static void kill_holding_batch(uint64_t release_first)
{
    sh = ct_shared(sizeof *sh);
    ct_name(sh->name, "bpkill");
    sh->release_first = release_first;
    shm_channel_t *prod = open_role(sh->name, SHM_CHANNEL_PRODUCER);
    write_seqs(prod, 0, 20);
    pid_t child = ct_fork(hold_and_wait, NULL);
    uint64_t t0 = ct_now_ns();
    while (!__atomic_load_n(&sh->stopped, __ATOMIC_SEQ_CST)) {
        int st;
        cr_assert_eq(waitpid(child, &st, WNOHANG), 0, "the consumer exited (status %d)", st);
        cr_assert_lt(ct_now_ns() - t0, 30 * (uint64_t)CT_SEC);
        ct_sleep_ms(1);
    }
    cr_assert_eq(sh->held, 8, "the child held a full batch");
    cr_assert_eq(kill(child, SIGKILL), 0);
    cr_assert_eq(ct_wait(child), 128 + SIGKILL);
    /* Its successor resumes after the last message the dead one released: message 0 and
     * the released part of the batch are not delivered again; the held rest (at most the
     * batch) is, in order, and nothing after it is lost. */
    shm_channel_t *succ = open_role(sh->name, SHM_CHANNEL_CONSUMER);
    shm_channel_close(prod);
    uint8_t buf[64];
    uint64_t len, seq = 1 + release_first;
    int rc;
    while ((rc = shm_channel_read(succ, buf, sizeof buf, &len, 0)) == 0) {
        cr_assert_eq(ct_msg_verify(buf, len, SEED, seq, len_of(seq)), 0, "message %llu",
                     (unsigned long long)seq);
        seq++;
    }
    cr_assert_eq(rc, -EPIPE);
    cr_assert_eq(seq, 20, "every message after the released ones came, once");
    shm_channel_close(succ);
    munmap(sh, sizeof *sh);
}

Test(batch_peek, killed_holding_a_batch_redelivers_exactly_the_held_messages)
{
    kill_holding_batch(0);
}

Test(batch_peek, killed_after_releasing_part_of_a_batch_redelivers_only_the_rest)
{
    kill_holding_batch(3);
}
