/* shm_channel_try_write / shm_channel_try_read (issue 14): the one-try, few-argument write and
 * read that the Python binding calls first. Each is the waiting call with timeout 0: same
 * message, same errors, nothing consumed or written when it cannot go on at once. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "ct.h"

TestSuite(try_io, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

#define CAP 4096
#define SEED 41

static shm_channel_t *open_role(const char *name, uint32_t role)
{
    shm_channel_t *ch;
    cr_assert_eq(shm_channel_open(&ch, name, role, SHM_CHANNEL_CREATE, CAP, 0600), 0);
    return ch;
}

static shm_channel_stat_t stat_of(shm_channel_t *ch)
{
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(ch, &st), 0);
    return st;
}

Test(try_io, writes_and_reads_one_message_returning_its_length)
{
    char name[64];
    ct_name(name, "ti");
    shm_channel_t *p = open_role(name, SHM_CHANNEL_PRODUCER);
    shm_channel_t *c = open_role(name, SHM_CHANNEL_CONSUMER);
    uint8_t msg[100], out[200];
    for (uint64_t s = 0; s < 50; s++) {
        uint64_t len = ct_msg_len(SEED, s, sizeof msg);
        ct_msg_fill(msg, SEED, s, len);
        cr_assert_eq(shm_channel_try_write(p, msg, len), 0);
        memset(out, 0, sizeof out);
        cr_assert_eq(shm_channel_try_read(c, out, sizeof out), (int64_t)len, "message %llu",
                     (unsigned long long)s);
        cr_assert_eq(ct_msg_verify(out, len, SEED, s, len), 0);
    }
    /* An empty message: length 0, not an error. */
    cr_assert_eq(shm_channel_try_write(p, NULL, 0), 0);
    cr_assert_eq(shm_channel_try_read(c, out, sizeof out), 0);
    shm_channel_stat_t st = stat_of(c);
    cr_assert_eq(st.msgs_written, 51);
    cr_assert_eq(st.msgs_read, 51);
    shm_channel_close(c);
    shm_channel_close(p);
}

Test(try_io, never_waits_and_takes_nothing_it_cannot_finish)
{
    char name[64];
    ct_name(name, "ti");
    shm_channel_t *p = open_role(name, SHM_CHANNEL_PRODUCER);
    shm_channel_t *c = open_role(name, SHM_CHANNEL_CONSUMER);
    uint8_t msg[1000], out[2000];
    /* Empty: -EAGAIN at once, one empty event counted, nothing read. */
    uint64_t t0 = ct_now_ns();
    cr_assert_eq(shm_channel_try_read(c, out, sizeof out), -EAGAIN);
    cr_assert_eq(stat_of(c).empty_events, 1);
    /* Full: -EAGAIN, the message not written. */
    uint64_t n = 0;
    int rc;
    while ((rc = shm_channel_try_write(p, msg, sizeof msg)) == 0) {
        ct_msg_fill(msg, SEED, ++n, sizeof msg);
    }
    cr_assert_eq(rc, -EAGAIN);
    cr_assert_gt(n, 0);
    shm_channel_stat_t st = stat_of(p);
    cr_assert_eq(st.msgs_written, n, "the write that found the ring full wrote nothing");
    cr_assert_eq(st.full_events, 1);
    cr_assert_lt(ct_now_ns() - t0, 10ull * 1000 * 1000 * 1000, "neither call waited");
    /* Too small a buffer: -EMSGSIZE, and the message stays for the next read. */
    cr_assert_eq(shm_channel_try_read(c, out, 10), -EMSGSIZE);
    uint64_t len = 0;
    cr_assert_eq(shm_channel_read(c, out, sizeof out, &len, 0), 0);
    cr_assert_eq(len, sizeof msg);
    cr_assert_eq(stat_of(c).msgs_read, 1);
    /* Room again: the try that failed did not leave the producer half-way. */
    cr_assert_eq(shm_channel_try_write(p, msg, sizeof msg), 0);
    shm_channel_close(c);
    shm_channel_close(p);
}

Test(try_io, reports_the_errors_of_the_waiting_calls)
{
    char name[64];
    ct_name(name, "ti");
    shm_channel_t *p = open_role(name, SHM_CHANNEL_PRODUCER);
    shm_channel_t *c = open_role(name, SHM_CHANNEL_CONSUMER);
    uint8_t msg[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[16];
    cr_assert_eq(shm_channel_try_write(NULL, msg, 8), -EINVAL);
    cr_assert_eq(shm_channel_try_read(NULL, out, 16), -EINVAL);
    cr_assert_eq(shm_channel_try_write(c, msg, 8), -EBADF, "a consumer cannot write");
    cr_assert_eq(shm_channel_try_read(p, out, 16), -EBADF, "a producer cannot read");
    cr_assert_eq(shm_channel_try_write(p, NULL, 8), -EINVAL);
    cr_assert_eq(shm_channel_try_write(p, msg, CAP), -EMSGSIZE);
    cr_assert_eq(shm_channel_try_write(p, msg, 8), 0);
    shm_channel_close(p); /* end of stream: what was written is read first */
    cr_assert_eq(shm_channel_try_read(c, out, 16), 8);
    cr_assert_eq(memcmp(out, msg, 8), 0);
    cr_assert_eq(shm_channel_try_read(c, out, 16), -EPIPE);
    shm_channel_close(c);
}
