/* Broadcast channels (kind 2) through the public API, in one process: opening and roles,
 * kind refusal both ways, parameters and type tag, in-order delivery, laps with exact
 * missed counts, latest value with is_new, views and -ESTALE, the subscriber table
 * (-EUSERS, 256 at once, reuse), end-of-stream and takeover, the unlink rule, permissions
 * and squatters (the stream's shared open path), waiting and wake accounting. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"

TestSuite(bcast_api, .init = ct_setup, .fini = ct_teardown, .timeout = 120);

static shm_channel_t *bopen(const char *name, uint32_t role, uint32_t flags, uint32_t depth,
                            uint64_t maxp, uint32_t subs, const char *tag)
{
    shm_channel_broadcast_config_t cfg = {maxp, depth, subs, tag, {0}};
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_broadcast(&ch, name, role, flags, &cfg, 0);
    cr_assert_eq(rc, 0, "open %s role %u: %s", name, role, shm_channel_strerror(rc));
    return ch;
}

static int bopen_rc(const char *name, uint32_t role, uint32_t flags, uint32_t depth,
                    uint64_t maxp, uint32_t subs, const char *tag)
{
    shm_channel_broadcast_config_t cfg = {maxp, depth, subs, tag, {0}};
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_broadcast(&ch, name, role, flags, &cfg, 0);
    shm_channel_close(ch);
    return rc;
}

static void put(shm_channel_t *pub, uint64_t v)
{
    cr_assert_eq(shm_channel_write(pub, &v, sizeof v, 0), 0);
}

/* recv one u64 message without waiting; returns rc, sets *v and *missed. */
static int get(shm_channel_t *sub, uint64_t *v, uint64_t *missed)
{
    uint64_t len = 0;
    int rc = shm_channel_recv(sub, v, sizeof *v, &len, missed, 0);
    if (rc == 0)
        cr_assert_eq(len, sizeof *v);
    return rc;
}

Test(bcast_api, roles_kinds_and_parameters)
{
    char n[64], s[64];
    ct_name(n, "b");
    ct_name(s, "s");
    shm_channel_t *pub = bopen(n, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, 4, 100, 8, "<u8");
    /* A second live publisher is refused; any number of subscribers is not. */
    cr_assert_eq(bopen_rc(n, SHM_CHANNEL_PUBLISHER, 0, 0, 0, 0, NULL), -EBUSY);
    shm_channel_t *sub = bopen(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, "<u8");
    /* Parameters given when opening must be the segment's. */
    cr_assert_eq(bopen_rc(n, SHM_CHANNEL_SUBSCRIBER, 0, 8, 0, 0, NULL), -EINVAL);
    cr_assert_eq(bopen_rc(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 64, 0, NULL), -EINVAL);
    cr_assert_eq(bopen_rc(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 9, NULL), -EINVAL);
    cr_assert_eq(bopen_rc(n, SHM_CHANNEL_SUBSCRIBER, 0, 4, 100, 8, NULL), 0);
    /* The type tag: required tags must match exactly. */
    cr_assert_eq(bopen_rc(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, "<f8"), -EMEDIUMTYPE);
    cr_assert_eq(bopen_rc(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, "<u8 "), -EMEDIUMTYPE);
    /* Bad creation parameters. */
    char m[64];
    ct_name(m, "bad");
    cr_assert_eq(bopen_rc(m, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, 1, 0, 0, NULL), -EINVAL);
    cr_assert_eq(bopen_rc(m, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, 0, 0, 0, "a\tb"), -EINVAL);
    shm_channel_broadcast_config_t cfg = {0, 0, 0, NULL, {1, 0, 0, 0}};
    shm_channel_t *ch = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&ch, m, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE,
                                            &cfg, 0), -EINVAL);
    cr_assert_eq(shm_channel_open_broadcast(&ch, m, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE,
                                            NULL, 0), -EINVAL);
    cr_assert_eq(shm_channel_open(&ch, m, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, 1024, 0),
                 -EINVAL);
    cr_assert(!ct_exists(m));
    /* Kinds are refused both ways, with -EPROTOTYPE. */
    cr_assert_eq(shm_channel_open(&ch, n, SHM_CHANNEL_CONSUMER, 0, 0, 0), -EPROTOTYPE);
    cr_assert_eq(shm_channel_open(&ch, n, SHM_CHANNEL_PRODUCER, 0, 0, 0), -EPROTOTYPE);
    shm_channel_t *prod = NULL;
    cr_assert_eq(shm_channel_open(&prod, s, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0), 0);
    cr_assert_eq(bopen_rc(s, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, NULL), -EPROTOTYPE);
    cr_assert_eq(bopen_rc(s, SHM_CHANNEL_PUBLISHER, 0, 0, 0, 0, NULL), -EPROTOTYPE);
    cr_assert_eq(bopen_rc(s, SHM_CHANNEL_OBSERVER, 0, 0, 0, 0, NULL), -EPROTOTYPE);
    /* Calls of the other kind's roles are -EBADF; kind-2 inspection of a stream -EPROTOTYPE. */
    uint64_t len, v = 0;
    int32_t is_new;
    cr_assert_eq(shm_channel_recv(prod, &v, 8, &len, NULL, 0), -EBADF);
    cr_assert_eq(shm_channel_read_latest(prod, &v, 8, &len, &is_new, NULL), -EBADF);
    shm_channel_broadcast_stat_t bs;
    cr_assert_eq(shm_channel_broadcast_stat(prod, &bs), -EPROTOTYPE);
    cr_assert_eq(shm_channel_read(pub, &v, 8, &len, 0), -EBADF);
    cr_assert_eq(shm_channel_write(sub, &v, 8, 0), -EBADF);
    /* An observer opened with shm_channel_open sees either kind. */
    shm_channel_t *obs = NULL;
    cr_assert_eq(shm_channel_open(&obs, n, SHM_CHANNEL_OBSERVER, 0, 0, 0), 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(obs, &st), 0);
    cr_assert_eq(st.kind, SHM_CHANNEL_KIND_BROADCAST);
    cr_assert_eq(st.max_payload, 100);
    cr_assert_eq(st.capacity, 4 * 128); /* depth x align64(16 + 100) */
    cr_assert_eq(st.producer_alive, 1);
    cr_assert_eq(st.consumer_alive, 1);
    cr_assert_eq(shm_channel_broadcast_stat(obs, &bs), 0);
    cr_assert_eq(bs.depth, 4);
    cr_assert_eq(bs.max_subscribers, 8);
    cr_assert_eq(bs.subscribers, 1);
    cr_assert_str_eq(bs.type_tag, "<u8");
    cr_assert_eq(shm_channel_max_payload(sub), 100);
    shm_channel_close(obs);
    cr_assert_eq(shm_channel_open(&obs, s, SHM_CHANNEL_OBSERVER, 0, 0, 0), 0);
    cr_assert_eq(shm_channel_stat(obs, &st), 0);
    cr_assert_eq(st.kind, SHM_CHANNEL_KIND_STREAM);
    shm_channel_close(obs);
    shm_channel_close(prod);
    shm_channel_close(sub);
    shm_channel_close(pub);
}

Test(bcast_api, in_order_laps_and_exact_missed_counts)
{
    char n[64];
    ct_name(n, "lap");
    /* The subscriber creates, before any publisher: it starts at message 1. */
    shm_channel_t *sub = bopen(n, SHM_CHANNEL_SUBSCRIBER, SHM_CHANNEL_CREATE, 4, 8, 0, NULL);
    shm_channel_t *pub = bopen(n, SHM_CHANNEL_PUBLISHER, 0, 0, 0, 0, NULL);
    uint64_t v, missed;
    cr_assert_eq(get(sub, &v, &missed), -EAGAIN);
    for (uint64_t i = 1; i <= 3; i++)
        put(pub, i);
    for (uint64_t i = 1; i <= 3; i++) {
        cr_assert_eq(get(sub, &v, &missed), 0);
        cr_assert_eq(v, i);
        cr_assert_eq(missed, 0);
    }
    /* Lapped: 4..13 published with depth 4; 10..13 are held; 4..9 are missed. */
    for (uint64_t i = 4; i <= 13; i++)
        put(pub, i);
    cr_assert_eq(get(sub, &v, &missed), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(missed, 6);
    shm_channel_sub_stat_t ss;
    cr_assert_eq(shm_channel_sub_stat(sub, -1, &ss), 0);
    cr_assert_eq(ss.last_missed, 6);
    cr_assert_eq(ss.lag, 3);
    for (uint64_t i = 11; i <= 13; i++) {
        cr_assert_eq(get(sub, &v, &missed), 0);
        cr_assert_eq(v, i);
        cr_assert_eq(missed, 0);
    }
    cr_assert_eq(get(sub, &v, &missed), -EAGAIN);
    cr_assert_eq(shm_channel_sub_stat(sub, -1, &ss), 0);
    cr_assert_eq(ss.delivered, 7);
    cr_assert_eq(ss.missed, 6);
    cr_assert_eq(ss.delivered + ss.missed, 13);
    cr_assert_eq(ss.lag, 0);
    /* The table entry says the same to anyone. */
    shm_channel_sub_stat_t es;
    cr_assert_eq(shm_channel_sub_stat(pub, ss.index, &es), 0);
    cr_assert_eq(es.delivered, 7);
    cr_assert_eq(es.missed, 6);
    cr_assert_eq(es.next_seq, 14);
    cr_assert_eq(es.alive, 1);
    cr_assert_eq(es.pid, (uint32_t)getpid());
    cr_assert_eq(shm_channel_sub_stat(pub, -1, &es), -EINVAL);
    /* A buffer too small: -EMSGSIZE with the size, the message stays next. */
    put(pub, 14);
    uint8_t small[4];
    uint64_t len;
    cr_assert_eq(shm_channel_read(sub, small, sizeof small, &len, 0), -EMSGSIZE);
    cr_assert_eq(len, 8);
    cr_assert_eq(get(sub, &v, &missed), 0);
    cr_assert_eq(v, 14);
    /* read_batch takes what is there. */
    for (uint64_t i = 15; i <= 17; i++)
        put(pub, i);
    uint64_t buf[8], lens[8];
    cr_assert_eq(shm_channel_read_batch(sub, buf, sizeof buf, lens, 8, 0), 3);
    cr_assert_eq(buf[0], 15);
    cr_assert_eq(buf[2], 17);
    cr_assert_eq(lens[1], 8);
    /* write_batch publishes each. */
    uint64_t two[2] = {18, 19}, tl[2] = {8, 8};
    cr_assert_eq(shm_channel_write_batch(pub, two, tl, 2, 0), 2);
    cr_assert_eq(get(sub, &v, &missed), 0);
    cr_assert_eq(v, 18);
    shm_channel_close(pub);
    shm_channel_close(sub);
}

Test(bcast_api, latest_value_and_is_new)
{
    char n[64];
    ct_name(n, "latest");
    shm_channel_t *pub = bopen(n, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, 8, 8, 0, NULL);
    shm_channel_t *sub = bopen(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, NULL);
    uint64_t v = 0, len, missed;
    int32_t is_new = -1;
    cr_assert_eq(shm_channel_read_latest(sub, &v, 8, &len, &is_new, &missed), -EAGAIN);
    for (uint64_t i = 1; i <= 5; i++)
        put(pub, i);
    cr_assert_eq(shm_channel_read_latest(sub, &v, 8, &len, &is_new, &missed), 0);
    cr_assert_eq(v, 5);
    cr_assert_eq(is_new, 1);
    cr_assert_eq(missed, 4);
    cr_assert_eq(shm_channel_read_latest(sub, &v, 8, &len, &is_new, &missed), 0);
    cr_assert_eq(v, 5);
    cr_assert_eq(is_new, 0);
    cr_assert_eq(missed, 0);
    /* A subscriber that joins late gets the latest value at once, as new. */
    shm_channel_t *late = bopen(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, NULL);
    cr_assert_eq(shm_channel_read_latest(late, &v, 8, &len, &is_new, &missed), 0);
    cr_assert_eq(v, 5);
    cr_assert_eq(is_new, 1);
    cr_assert_eq(missed, 0);
    uint64_t missed2;
    cr_assert_eq(get(late, &v, &missed2), -EAGAIN); /* and continues after it */
    /* FROM_OLDEST: history on join, from the oldest message held (depth 8: all five). */
    shm_channel_t *hist = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&hist, n, SHM_CHANNEL_SUBSCRIBER,
                                            SHM_CHANNEL_FROM_OLDEST, NULL, 0), 0);
    for (uint64_t i = 1; i <= 5; i++) {
        cr_assert_eq(get(hist, &v, &missed2), 0);
        cr_assert_eq(v, i);
    }
    shm_channel_close(hist);
    cr_assert_eq(shm_channel_open_broadcast(&hist, n, SHM_CHANNEL_PUBLISHER,
                                            SHM_CHANNEL_FROM_OLDEST, NULL, 0), -EINVAL);
    /* peek_latest: a view, the same view again before release, counted once. */
    put(pub, 6);
    const void *p1, *p2;
    cr_assert_eq(shm_channel_peek_latest(late, &p1, &len, &is_new, &missed), 0);
    cr_assert_eq(*(const uint64_t *)p1, 6);
    cr_assert_eq(((uintptr_t)p1) % 8, 0);
    cr_assert_eq(is_new, 1);
    cr_assert_eq(shm_channel_peek_latest(late, &p2, &len, &is_new, &missed), 0);
    cr_assert_eq(p1, p2);
    cr_assert_eq(shm_channel_read_latest(late, &v, 8, &len, &is_new, &missed), -EBUSY);
    cr_assert_eq(shm_channel_release(late), 0);
    cr_assert_eq(shm_channel_release(late), -EINVAL);
    shm_channel_sub_stat_t ss;
    cr_assert_eq(shm_channel_sub_stat(late, -1, &ss), 0);
    cr_assert_eq(ss.delivered, 2);
    cr_assert_eq(ss.missed, 0);
    shm_channel_close(late);
    shm_channel_close(sub);
    shm_channel_close(pub);
}

Test(bcast_api, view_overwritten_while_held_is_estale_and_missed)
{
    char n[64];
    ct_name(n, "view");
    shm_channel_t *sub = bopen(n, SHM_CHANNEL_SUBSCRIBER, SHM_CHANNEL_CREATE, 4, 64, 0, NULL);
    shm_channel_t *pub = bopen(n, SHM_CHANNEL_PUBLISHER, 0, 0, 0, 0, NULL);
    put(pub, 1);
    const void *p;
    uint64_t len;
    cr_assert_eq(shm_channel_peek(sub, &p, &len, 0), 0);
    cr_assert_eq(*(const uint64_t *)p, 1);
    /* depth - 1 more publishes leave it intact. */
    for (uint64_t i = 2; i <= 4; i++)
        put(pub, i);
    cr_assert_eq(shm_channel_release(sub), 0);
    cr_assert_eq(shm_channel_peek(sub, &p, &len, 0), 0);
    cr_assert_eq(*(const uint64_t *)p, 2);
    for (uint64_t i = 5; i <= 6; i++) /* message 6 overwrites 2's slot */
        put(pub, i);
    cr_assert_eq(shm_channel_release(sub), -ESTALE);
    shm_channel_sub_stat_t ss;
    cr_assert_eq(shm_channel_sub_stat(sub, -1, &ss), 0);
    cr_assert_eq(ss.delivered, 1);
    cr_assert_eq(ss.missed, 1);
    /* Zero-copy publishing: reserve, fill, commit. */
    void *w;
    cr_assert_eq(shm_channel_reserve(pub, 64, &w, 0), 0);
    cr_assert_eq(((uintptr_t)w) % 8, 0);
    cr_assert_eq(shm_channel_reserve(pub, 8, &w, 0), -EBUSY);
    memset(w, 0xab, 64);
    cr_assert_eq(shm_channel_commit(pub, 10), 0);
    cr_assert_eq(shm_channel_reserve(pub, 65, &w, 0), -EMSGSIZE);
    cr_assert_eq(shm_channel_reserve(pub, 8, &w, 0), 0);
    cr_assert_eq(shm_channel_abort(pub), 0);
    cr_assert_eq(shm_channel_abort(pub), -EINVAL);
    uint64_t v;
    uint8_t big[64];
    uint64_t missed;
    /* Held now: 5, 6, 7 (message 7 overwrote 3; the aborted reservation of 8 took 4's
     * slot, so 4 is gone too): 3 and 4 are missed. */
    for (uint64_t i = 5; i <= 6; i++) {
        cr_assert_eq(shm_channel_recv(sub, big, sizeof big, &len, &missed, 0), 0);
        memcpy(&v, big, 8);
        cr_assert_eq(v, i);
        cr_assert_eq(missed, i == 5 ? 2 : 0);
    }
    cr_assert_eq(shm_channel_recv(sub, big, sizeof big, &len, &missed, 0), 0);
    cr_assert_eq(len, 10);
    cr_assert_eq(big[9], 0xab);
    /* The aborted reservation published nothing. */
    cr_assert_eq(shm_channel_recv(sub, big, sizeof big, &len, &missed, 0), -EAGAIN);
    shm_channel_close(pub);
    shm_channel_close(sub);
}

Test(bcast_api, subscriber_table_full_is_eusers_and_entries_are_reused)
{
    char n[64];
    ct_name(n, "users");
    shm_channel_t *pub = bopen(n, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, 0, 0, 0, NULL);
    /* The default table: 256 subscribers at once, each its own open file description. */
    enum { N = 256 };
    static shm_channel_t *subs[N];
    for (int i = 0; i < N; i++)
        subs[i] = bopen(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, NULL);
    cr_assert_eq(bopen_rc(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, NULL), -EUSERS);
    shm_channel_broadcast_stat_t bs;
    cr_assert_eq(shm_channel_broadcast_stat(pub, &bs), 0);
    cr_assert_eq(bs.subscribers, N);
    cr_assert_eq(bs.max_subscribers, N);
    /* Every one of them gets every message. */
    for (uint64_t i = 1; i <= 3; i++)
        put(pub, i);
    for (int i = 0; i < N; i++) {
        uint64_t v, missed;
        for (uint64_t k = 1; k <= 3; k++) {
            cr_assert_eq(get(subs[i], &v, &missed), 0);
            cr_assert_eq(v, k);
        }
    }
    shm_channel_close(subs[17]);
    shm_channel_t *again = bopen(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, NULL);
    shm_channel_sub_stat_t ss;
    cr_assert_eq(shm_channel_sub_stat(again, -1, &ss), 0);
    cr_assert_eq(ss.next_seq, 3); /* starts at the newest */
    cr_assert_eq(bopen_rc(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, NULL), -EUSERS);
    shm_channel_close(again);
    for (int i = 0; i < N; i++)
        if (i != 17)
            shm_channel_close(subs[i]);
    cr_assert_eq(shm_channel_broadcast_stat(pub, &bs), 0);
    cr_assert_eq(bs.subscribers, 0);
    cr_assert_eq(bs.joins, N + 1);
    shm_channel_close(pub);
}

Test(bcast_api, end_of_stream_takeover_and_unlink_rule)
{
    char n[64];
    ct_name(n, "eos");
    shm_channel_t *pub = bopen(n, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, 4, 8, 0, NULL);
    shm_channel_t *sub = bopen(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, NULL);
    put(pub, 1);
    put(pub, 2);
    cr_assert_eq(shm_channel_unlink(n, 0), -EBUSY);
    shm_channel_close(pub);
    uint64_t v, missed;
    cr_assert_eq(get(sub, &v, &missed), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(get(sub, &v, &missed), 0);
    cr_assert_eq(get(sub, &v, &missed), -EPIPE);
    uint64_t len;
    cr_assert_eq(shm_channel_recv(sub, &v, 8, &len, &missed, 10 * CT_MS), -EPIPE);
    /* A new publisher takes over and continues the numbering. */
    pub = bopen(n, SHM_CHANNEL_PUBLISHER, 0, 0, 0, 0, NULL);
    put(pub, 3);
    cr_assert_eq(get(sub, &v, &missed), 0);
    cr_assert_eq(v, 3);
    cr_assert_eq(missed, 0);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(sub, &st), 0);
    cr_assert_eq(st.producer_epoch, 2);
    cr_assert_eq(st.msgs_written, 3);
    shm_channel_close(pub);
    cr_assert(ct_exists(n));
    /* The last handle of a channel whose publisher closed removes the name. */
    shm_channel_close(sub);
    cr_assert(!ct_exists(n));
    /* A channel without a clean close stays: a subscriber alone. */
    sub = bopen(n, SHM_CHANNEL_SUBSCRIBER, SHM_CHANNEL_CREATE, 0, 0, 0, NULL);
    shm_channel_close(sub);
    cr_assert(ct_exists(n));
    cr_assert_eq(shm_channel_unlink(n, 0), 0);
    cr_assert(!ct_exists(n));
}

Test(bcast_api, permissions_and_squatters_as_streams)
{
    char n[64];
    ct_name(n, "perm");
    shm_channel_broadcast_config_t cfg = {0};
    shm_channel_t *ch = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&ch, n, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE,
                                            &cfg, 0644), 0);
    struct stat sb;
    cr_assert_eq(stat(ct_path(n), &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0644);
    shm_channel_t *sub = NULL;
    /* More permissive than requested: refused unless ALLOW_FOREIGN. */
    cr_assert_eq(shm_channel_open_broadcast(&sub, n, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0600),
                 -EACCES);
    cr_assert_eq(shm_channel_open_broadcast(&sub, n, SHM_CHANNEL_SUBSCRIBER,
                                            SHM_CHANNEL_ALLOW_FOREIGN, NULL, 0600), 0);
    shm_channel_close(sub);
    cr_assert_eq(shm_channel_open_broadcast(&sub, n, SHM_CHANNEL_SUBSCRIBER,
                                            SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, NULL, 0),
                 -EEXIST);
    shm_channel_close(ch);
    /* A directory squatting on the name. */
    char d[64];
    ct_name(d, "dir");
    cr_assert_eq(mkdir(ct_path(d), 0700), 0);
    cr_assert_eq(shm_channel_open_broadcast(&sub, d, SHM_CHANNEL_SUBSCRIBER, SHM_CHANNEL_CREATE,
                                            NULL, 0), -EACCES);
    cr_assert_eq(shm_channel_open_broadcast(&sub, d, SHM_CHANNEL_PUBLISHER,
                                            SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, NULL, 0),
                 -EEXIST);
    cr_assert_eq(shm_channel_unlink(d, 0), -EACCES);
    /* A sparse file with a valid kind-2 header is refused, not mapped. */
    char s[64];
    ct_name(s, "sparse");
    shm_channel_t *src = NULL;
    cr_assert_eq(shm_channel_open_broadcast(&src, s, SHM_CHANNEL_SUBSCRIBER, SHM_CHANNEL_CREATE,
                                            NULL, 0), 0);
    char hdr[4096];
    int fd = open(ct_path(s), O_RDONLY);
    cr_assert_eq(pread(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
    off_t size = lseek(fd, 0, SEEK_END);
    close(fd);
    shm_channel_close(src);
    cr_assert_eq(shm_channel_unlink(s, 0), 0);
    fd = open(ct_path(s), O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, size), 0);
    cr_assert_eq(pwrite(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
    close(fd);
    cr_assert_eq(shm_channel_open_broadcast(&sub, s, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0),
                 -EBADMSG);
}

Test(bcast_api, waiting_times_out_and_no_wake_call_without_sleepers)
{
    char n[64];
    ct_name(n, "wait");
    shm_channel_t *pub = bopen(n, SHM_CHANNEL_PUBLISHER, SHM_CHANNEL_CREATE, 8, 8, 0, NULL);
    shm_channel_t *sub = bopen(n, SHM_CHANNEL_SUBSCRIBER, 0, 0, 0, 0, NULL);
    uint64_t v, len, missed;
    cr_assert_eq(shm_channel_set_spin(sub, 0), 0);
    cr_assert_eq(shm_channel_recv(sub, &v, 8, &len, &missed, 5 * CT_MS), -ETIMEDOUT);
    shm_channel_sub_stat_t ss;
    cr_assert_eq(shm_channel_sub_stat(sub, -1, &ss), 0);
    cr_assert_geq(ss.sleeps, 1);
    shm_channel_broadcast_stat_t bs;
    cr_assert_eq(shm_channel_broadcast_stat(sub, &bs), 0);
    cr_assert_eq(bs.sleepers, 0); /* counted out again */
    for (uint64_t i = 1; i <= 1000; i++)
        put(pub, i);
    shm_channel_stat_t st;
    cr_assert_eq(shm_channel_stat(pub, &st), 0);
    cr_assert_eq(st.producer_wakes, 0); /* nobody slept: no wake system call */
    cr_assert_eq(st.msgs_written, 1000);
    cr_assert_eq(st.bytes_written, 8000);
    shm_channel_close(sub);
    shm_channel_close(pub);
}
