/* Dead subscriber entries are taken back (spec/broadcast.md §5.9): a subscriber killed
 * while holding a table entry does not hold it forever. Its entry's lock byte is freed by
 * the kernel; the next joiner of that entry, or a new publisher, takes the lock, finds the
 * entry attached, and reclaims it: its counts in `subscribers` and `waiting` go, and a wake
 * it left owed is cleared with the last count. Real processes, killed with SIGKILL while
 * asleep in shm_channel_recv (observable: the sleepers count). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct.h"

TestSuite(bcast_gc, .init = ct_setup, .fini = ct_teardown, .timeout = 300);

static const char *g_name;

/* A subscriber that reads what is there and then sleeps until killed. */
static int sleeper(void *arg)
{
    (void)arg;
    shm_channel_t *ch = NULL;
    if (shm_channel_open_broadcast(&ch, g_name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0) != 0)
        return 1;
    shm_channel_set_spin(ch, 0);
    uint64_t v, len, missed;
    for (;;)
        if (shm_channel_recv(ch, &v, 8, &len, &missed, -1) != 0)
            return 2;
}

static shm_channel_broadcast_stat_t bstat(shm_channel_t *ch)
{
    shm_channel_broadcast_stat_t bs;
    cr_assert_eq(shm_channel_broadcast_stat(ch, &bs), 0);
    return bs;
}

/* n sleeping subscriber processes, then all killed; returns when they are dead. */
static void kill_sleepers(shm_channel_t *obs, int n)
{
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    cr_assert(pids);
    for (int i = 0; i < n; i++)
        pids[i] = ct_fork(sleeper, NULL);
    uint64_t t0 = ct_now_ns();
    while (bstat(obs).sleepers < (uint32_t)n) {
        cr_assert(ct_now_ns() - t0 < 120 * CT_SEC, "only %u of %d asleep", bstat(obs).sleepers,
                  n);
        usleep(1000);
    }
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        cr_assert_eq(ct_wait(pids[i]), 128 + SIGKILL);
    free(pids);
}

Test(bcast_gc, all_256_entries_held_by_killed_processes_then_256_new_subscribers_attach)
{
    char name[64];
    g_name = ct_name(name, "gc256");
    shm_channel_broadcast_config_t cfg = {8, 8, 256, NULL, {0}};
    shm_channel_t *pub = NULL, *extra = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER,
                                            SHM_CHANNEL_CREATE, &cfg, 0600), 0);
    uint64_t v = 1, len, missed;
    cr_assert_eq(shm_channel_write(pub, &v, 8, 0), 0);
    kill_sleepers(pub, 256);
    shm_channel_broadcast_stat_t bs = bstat(pub);
    cr_assert_eq(bs.subscribers, 256, "dead entries are still recorded");
    cr_assert_eq(bs.sleepers, 256);
    cr_assert_eq(bs.reclaims, 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(pub, &st), 0);
    cr_assert_eq(st.consumer_alive, 0, "no entry's lock is held");
    uint64_t wakes = st.producer_wakes;

    /* 256 new subscribers: every one gets an entry, each a dead one reclaimed */
    shm_channel_t *subs[256];
    for (int i = 0; i < 256; i++)
        cr_assert_eq(shm_channel_open_broadcast(&subs[i], name, SHM_CHANNEL_SUBSCRIBER, 0, NULL,
                                                0), 0, "subscriber %d of 256", i);
    bs = bstat(pub);
    cr_assert_eq(bs.reclaims, 256);
    cr_assert_eq(bs.subscribers, 256);
    cr_assert_eq(bs.sleepers, 0, "the dead sleepers were counted out");
    cr_assert_eq(shm_channel_open_broadcast(&extra, name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0),
                 -EUSERS, "the table is full of live subscribers now");
    v = 2;
    cr_assert_eq(shm_channel_write(pub, &v, 8, 0), 0);
    cr_assert_eq(shm_channel_stat(pub, &st), 0);
    cr_assert_eq(st.producer_wakes, wakes,
                 "the wake the dead sleepers left owed went with the last of them");
    for (int i = 0; i < 256; i++) {
        cr_assert_eq(shm_channel_recv(subs[i], &v, 8, &len, &missed, 0), 0);
        cr_assert_eq(v, 1, "a late joiner gets the latest value at once");
        cr_assert_eq(shm_channel_recv(subs[i], &v, 8, &len, &missed, 0), 0);
        cr_assert_eq(v, 2);
        shm_channel_sub_stat_t ss;
        cr_assert_eq(shm_channel_sub_stat(pub, i, &ss), 0);
        cr_assert_eq(ss.alive, 1);
        cr_assert_eq(ss.epoch, 2, "entry %d: the second owner", i);
    }
    for (int i = 0; i < 256; i++)
        shm_channel_close(subs[i]);
    bs = bstat(pub);
    cr_assert_eq(bs.subscribers, 0);
    shm_channel_close(pub);
}

Test(bcast_gc, a_new_publisher_reclaims_dead_entries)
{
    char name[64];
    g_name = ct_name(name, "gcpub");
    shm_channel_broadcast_config_t cfg = {8, 8, 64, NULL, {0}};
    shm_channel_t *pub = NULL, *live = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER,
                                            SHM_CHANNEL_CREATE, &cfg, 0600), 0);
    cr_assert_eq(shm_channel_open_broadcast(&live, name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0), 0);
    kill_sleepers(pub, 16);
    cr_assert_eq(bstat(pub).subscribers, 17);
    cr_assert_eq(bstat(pub).sleepers, 16);
    shm_channel_close(pub);
    cr_assert_eq(shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER, 0, NULL, 0), 0);
    shm_channel_broadcast_stat_t bs = bstat(pub);
    cr_assert_eq(bs.reclaims, 16, "the publisher took back every dead entry");
    cr_assert_eq(bs.subscribers, 1, "the live subscriber keeps its entry");
    cr_assert_eq(bs.sleepers, 0);
    uint64_t v = 5, len, missed;
    cr_assert_eq(shm_channel_recv(live, &v, 8, &len, &missed, 0), -EAGAIN);
    cr_assert_eq(shm_channel_write(pub, &v, 8, 0), 0);
    cr_assert_eq(shm_channel_recv(live, &v, 8, &len, &missed, 0), 0);
    cr_assert_eq(v, 5);
    shm_channel_close(live);
    shm_channel_close(pub);
}

/* shm_channel_reclaim (what `shm_channel gc` calls): a monitor, with no role, takes back
 * the dead entries while the publisher and a live subscriber stay attached; it never
 * unlinks, never touches a live entry, and refuses kinds without a subscriber table. */
Test(bcast_gc, reclaim_by_name_takes_back_dead_entries_only)
{
    char name[64];
    g_name = ct_name(name, "gcmon");
    shm_channel_broadcast_config_t cfg = {8, 8, 64, NULL, {0}};
    shm_channel_t *pub = NULL, *live = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&pub, name, SHM_CHANNEL_PUBLISHER,
                                            SHM_CHANNEL_CREATE, &cfg, 0600), 0);
    cr_assert_eq(shm_channel_open_broadcast(&live, name, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0), 0);
    kill_sleepers(pub, 5);
    cr_assert_eq(bstat(pub).subscribers, 6);
    cr_assert_eq(shm_channel_reclaim(name, 1), -EINVAL);
    int nrec = shm_channel_reclaim(name, 0);
    cr_assert_eq(nrec, 5, "the five dead entries: %d", nrec);
    shm_channel_broadcast_stat_t bs = bstat(pub);
    cr_assert_eq(bs.reclaims, 5);
    cr_assert_eq(bs.subscribers, 1, "the live subscriber keeps its entry");
    cr_assert_eq(bs.sleepers, 0, "the dead sleepers were counted out");
    cr_assert_eq(shm_channel_reclaim(name, 0), 0, "nothing left to take back");
    uint64_t v = 9, len, missed;
    cr_assert_eq(shm_channel_write(pub, &v, 8, 0), 0);
    cr_assert_eq(shm_channel_recv(live, &v, 8, &len, &missed, 0), 0);
    cr_assert_eq(v, 9);
    /* a finished channel is not unlinked by a reclaim (that is gc's unlink, after it) */
    shm_channel_close(live);
    shm_channel_close(pub);
    cr_assert_eq(shm_channel_reclaim(name, 0), -ENOENT, "the last closer unlinked it");
    char sname[64];
    ct_name(sname, "gcstream");
    shm_channel_t *prod = NULL;
    cr_assert_eq(shm_channel_open(&prod, sname, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 4096,
                                  0600), 0);
    cr_assert_eq(shm_channel_reclaim(sname, 0), -EPROTOTYPE);
    cr_assert_eq(shm_channel_reclaim("no-such-channel-here", 0), -ENOENT);
    shm_channel_close(prod);
}
