/* The peer check's corner cases (spec §3.8, §5.7): state values this layout does not define
 * are "no verdict", never end-of-stream or death; epochs wrap modulo 2^32 and are compared
 * only for equality, so death is still detected across the wrap. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ct.h"
#include "layout.h"

TestSuite(peer_state, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

static char chan[64];

Test(peer_state, unknown_state_values_are_no_verdict)
{
    ct_name(chan, "state3");
    shm_channel_t *c, *p;
    cr_assert_eq(shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    struct shm__header *h = ct_map_header(chan, 1);
    cr_assert_not_null(h);
    uint32_t values[] = {3, 4, 0x7fffffff, 0xffffffff};
    uint8_t buf[16];
    uint64_t len;
    for (int i = 0; i < 4; i++) {
        /* No producer holds the lock: with state 1 this would be a death. */
        __atomic_store_n(&h->producer_state, values[i], __ATOMIC_RELEASE);
        cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), -EAGAIN, "state %u",
                     values[i]);
        cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 20 * CT_MS), -ETIMEDOUT,
                     "state %u: wait, no verdict", values[i]);
    }
    /* The same for a producer facing a full ring. */
    cr_assert_eq(shm_channel_open(&p, chan, SHM_CHANNEL_PRODUCER, 0, 0, 0), 0);
    static uint8_t msg[200];
    while (shm_channel_write(p, msg, sizeof msg, 0) == 0)
        ;
    shm_channel_close(c); /* consumer_state 2 */
    for (int i = 0; i < 4; i++) {
        __atomic_store_n(&h->consumer_state, values[i], __ATOMIC_RELEASE);
        cr_assert_eq(shm_channel_write(p, msg, sizeof msg, 0), -EAGAIN, "state %u", values[i]);
        cr_assert_eq(shm_channel_write(p, msg, sizeof msg, 20 * CT_MS), -ETIMEDOUT);
    }
    shm_channel_close(p);
    ct_unmap_header(h);
}

static int attach_and_die(void *arg)
{
    (void)arg;
    shm_channel_t *p;
    if (shm_channel_open(&p, chan, SHM_CHANNEL_PRODUCER, 0, 0, 0) != 0)
        return 1;
    if (shm_channel_write(p, "last", 4, 0) != 0)
        return 2;
    _exit(0); /* dies holding the role: no close */
}

Test(peer_state, epoch_wraps_and_death_is_still_seen)
{
    ct_name(chan, "wrap");
    shm_channel_t *c;
    cr_assert_eq(shm_channel_open(&c, chan, SHM_CHANNEL_CONSUMER, SHM_CHANNEL_CREATE, 1024, 0), 0);
    struct shm__header *h = ct_map_header(chan, 1);
    cr_assert_not_null(h);
    __atomic_store_n(&h->producer_epoch, 0xffffffffu, __ATOMIC_RELEASE);
    cr_assert_eq(ct_wait(ct_fork(attach_and_die, NULL)), 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(c, &st), 0);
    cr_assert_eq(st.producer_epoch, 0, "0xffffffff + 1 wraps to 0");
    cr_assert_eq(st.producer_state, SHM_CHANNEL_PEER_ATTACHED);
    uint8_t buf[16];
    uint64_t len;
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0, "the message first");
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), -EOWNERDEAD);
    cr_assert_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), -EOWNERDEAD, "and it stays");
    shm_channel_close(c);
    ct_unmap_header(h);
}
