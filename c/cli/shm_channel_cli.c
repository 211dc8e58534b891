/* shm_channel: list, inspect and clean up channels from a shell (like ipcs / ipcrm). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "shm_channel.h"

static const char *state_name(uint32_t state, int alive)
{
    if (state == SHM_CHANNEL_PEER_ATTACHED)
        return alive ? "alive" : "dead";
    if (state == SHM_CHANNEL_PEER_CLOSED)
        return alive ? "alive" : "closed";
    if (state != SHM_CHANNEL_PEER_NONE)
        return alive ? "alive" : "unknown"; /* a value layout 1.0 does not define */
    return alive ? "alive" : "none";
}

/* An observer of any kind, with its stat (and, for a broadcast channel, *bs). */
static int observe_open(const char *name, shm_channel_t **ch, shm_channel_stat_t *st,
                        shm_channel_broadcast_stat_t *bs)
{
    int rc = shm_channel_open(ch, name, SHM_CHANNEL_OBSERVER, SHM_CHANNEL_ALLOW_FOREIGN, 0, 0);
    if (rc)
        return rc;
    rc = shm_channel_stat(*ch, st);
    memset(bs, 0, sizeof(*bs));
    if (rc == 0 && st->kind == SHM_CHANNEL_KIND_BROADCAST)
        rc = shm_channel_broadcast_stat(*ch, bs);
    if (rc) {
        shm_channel_close(*ch);
        *ch = NULL;
    }
    return rc;
}

static int observe(const char *name, shm_channel_stat_t *st)
{
    shm_channel_t *ch;
    shm_channel_broadcast_stat_t bs;
    int rc = observe_open(name, &ch, st, &bs);
    shm_channel_close(ch);
    return rc;
}

/* Subscriber entries held by a live process. */
static uint32_t live_subscribers(shm_channel_t *ch, const shm_channel_broadcast_stat_t *bs)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < bs->max_subscribers; i++) {
        shm_channel_sub_stat_t ss;
        if (shm_channel_sub_stat(ch, i, &ss) == 0 && ss.alive)
            n++;
    }
    return n;
}

/* Call fn for every shm_channel segment in the directory. */
static int each_channel(int (*fn)(const char *name, const shm_channel_stat_t *st))
{
    DIR *d = opendir(shm_channel_dir());
    if (!d) {
        fprintf(stderr, "shm_channel: cannot open %s: %s\n", shm_channel_dir(), strerror(errno));
        return 1;
    }
    int status = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        shm_channel_stat_t st;
        if (observe(e->d_name, &st) != 0)
            continue; /* not ours, unreadable, or vanished */
        status |= fn(e->d_name, &st);
    }
    closedir(d);
    return status;
}

static int print_row(const char *name, const shm_channel_stat_t *st)
{
    if (st->kind == SHM_CHANNEL_KIND_BROADCAST) {
        /* USED: the depth; READ: -; CONSUMER: live subscribers. */
        shm_channel_t *ch;
        shm_channel_stat_t s2;
        shm_channel_broadcast_stat_t bs;
        if (observe_open(name, &ch, &s2, &bs) != 0)
            return 0;
        char subs[32];
        snprintf(subs, sizeof subs, "%u subs", live_subscribers(ch, &bs));
        printf("%-32s %-9s %12" PRIu64 " %12s %12" PRIu64 " %12s %-8s %-8s\n", name, "broadcast",
               s2.capacity, "-", s2.msgs_written, "-",
               state_name(s2.producer_state, s2.producer_alive), subs);
        shm_channel_close(ch);
        return 0;
    }
    printf("%-32s %-9s %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %-8s %-8s\n", name,
           "stream", st->capacity, st->used, st->msgs_written, st->msgs_read,
           state_name(st->producer_state, st->producer_alive),
           state_name(st->consumer_state, st->consumer_alive));
    return 0;
}

static int cmd_ls(void)
{
    printf("%-32s %-9s %12s %12s %12s %12s %-8s %-8s\n", "NAME", "KIND", "CAPACITY", "USED",
           "WRITTEN", "READ", "PRODUCER", "CONSUMER");
    return each_channel(print_row);
}

/* The broadcast part of stat: parameters, publisher, subscribers, one line per entry. */
static void stat_broadcast(shm_channel_t *ch, const shm_channel_stat_t *st,
                           const shm_channel_broadcast_stat_t *bs)
{
    printf("depth           %u\n", bs->depth);
    printf("max_payload     %" PRIu64 "\n", st->max_payload);
    printf("max_subscribers %u\n", bs->max_subscribers);
    printf("type_tag        %s\n", bs->type_len ? bs->type_tag : "(untyped)");
    printf("slot_area       %" PRIu64 "\n", st->capacity);
    printf("published       %" PRIu64 "\n", bs->pub_seq);
    printf("msgs_written    %" PRIu64 "\n", st->msgs_written);
    printf("bytes_written   %" PRIu64 "\n", st->bytes_written);
    printf("publisher_wakes %" PRIu64 "\n", st->producer_wakes);
    printf("publisher       %s (epoch %u)\n", state_name(st->producer_state, st->producer_alive),
           st->producer_epoch);
    printf("subscribers     %u live (%u recorded, %" PRIu64 " joins, %" PRIu64 " reclaimed)\n",
           live_subscribers(ch, bs), bs->subscribers, bs->joins, bs->reclaims);
    printf("sleepers        %u\n", bs->sleepers);
    printf("in_use          %s\n", st->in_use ? "yes" : "no");
    printf("creator_pid     %u\n", st->creator_pid);
    int header = 0;
    for (uint32_t i = 0; i < bs->max_subscribers; i++) {
        shm_channel_sub_stat_t ss;
        if (shm_channel_sub_stat(ch, i, &ss) != 0)
            continue;
        if (!header++)
            printf("%-5s %-8s %-8s %12s %12s %12s %12s %8s\n", "SUB", "PID", "STATE", "NEXT",
                   "DELIVERED", "MISSED", "LAG", "SLEEPS");
        printf("%-5u %-8u %-8s %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %8" PRIu64
               "\n", ss.index, ss.pid, state_name(ss.state, ss.alive), ss.next_seq, ss.delivered,
               ss.missed, ss.alive ? ss.lag : 0, ss.sleeps);
    }
}

static int cmd_stat(const char *name)
{
    shm_channel_stat_t st;
    shm_channel_broadcast_stat_t bs;
    shm_channel_t *ch;
    int rc = observe_open(name, &ch, &st, &bs);
    if (rc) {
        fprintf(stderr, "shm_channel: %s: %s\n", name, shm_channel_strerror(rc));
        return 1;
    }
    printf("name            %s\n", name);
    printf("kind            %s\n", st.kind == SHM_CHANNEL_KIND_STREAM      ? "stream"
                                   : st.kind == SHM_CHANNEL_KIND_BROADCAST ? "broadcast"
                                                                           : "?");
    printf("layout          %u.%u\n", st.layout_major, st.layout_minor);
    if (st.kind == SHM_CHANNEL_KIND_BROADCAST) {
        stat_broadcast(ch, &st, &bs);
        shm_channel_close(ch);
        return 0;
    }
    shm_channel_close(ch);
    printf("layout          %u.%u\n", st.layout_major, st.layout_minor);
    printf("capacity        %" PRIu64 "\n", st.capacity);
    printf("max_payload     %" PRIu64 "\n", st.max_payload);
    printf("write_pos       %" PRIu64 "\n", st.write_pos);
    printf("read_pos        %" PRIu64 "\n", st.read_pos);
    printf("used            %" PRIu64 "\n", st.used);
    printf("msgs_written    %" PRIu64 "\n", st.msgs_written);
    printf("bytes_written   %" PRIu64 "\n", st.bytes_written);
    printf("msgs_read       %" PRIu64 "\n", st.msgs_read);
    printf("bytes_read      %" PRIu64 "\n", st.bytes_read);
    printf("full_events     %" PRIu64 "\n", st.full_events);
    printf("empty_events    %" PRIu64 "\n", st.empty_events);
    printf("producer_wakes  %" PRIu64 "\n", st.producer_wakes);
    printf("consumer_wakes  %" PRIu64 "\n", st.consumer_wakes);
    printf("producer_sleeps %" PRIu64 "\n", st.producer_sleeps);
    printf("consumer_sleeps %" PRIu64 "\n", st.consumer_sleeps);
    printf("producer        %s (epoch %u)\n", state_name(st.producer_state, st.producer_alive),
           st.producer_epoch);
    printf("consumer        %s (epoch %u)\n", state_name(st.consumer_state, st.consumer_alive),
           st.consumer_epoch);
    printf("in_use          %s\n", st.in_use ? "yes" : "no");
    printf("creator_pid     %u\n", st.creator_pid);
    return 0;
}

static int cmd_rm(const char *name, int force)
{
    int rc = shm_channel_unlink(name, force ? SHM_CHANNEL_FORCE : 0);
    if (rc == 0)
        return 0;
    const char *why = shm_channel_strerror(rc);
    if (!force && rc == -EBUSY)
        why = "in use by a live process";
    else if (!force && rc == -EPROTO)
        why = "not a shm_channel segment";
    else if (!force && rc == -EACCES)
        why = "permission denied, or not a regular file";
    fprintf(stderr, "shm_channel: rm %s: %s; not removed%s\n", name, why,
            !force && (rc == -EBUSY || rc == -EPROTO || rc == -EACCES)
                ? " (--force removes any file under the name, used or not)"
                : "");
    return 1;
}

static int gc_one(const char *name, const shm_channel_stat_t *st)
{
    (void)st;
    int rc = shm_channel_unlink(name, 0);
    if (rc == 0)
        printf("removed %s\n", name);
    else if (rc != -EBUSY && rc != -ENOENT)
        fprintf(stderr, "shm_channel: gc %s: %s\n", name, shm_channel_strerror(rc));
    return 0;
}

static int usage(FILE *f)
{
    fprintf(f, "usage: shm_channel ls                 list channels\n"
               "       shm_channel stat NAME          show a channel's header and counters\n"
               "       shm_channel rm [--force] NAME  remove a channel no live process uses\n"
               "                                      (--force: any file, even in use)\n"
               "       shm_channel gc                 remove every channel no live process uses\n"
               "       shm_channel version\n"
               "       shm_channel --help\n"
               "A NAME starting with '-' goes after \"--\". Channels live in $SHM_CHANNEL_DIR, or\n"
               "/dev/shm. Exit status: 0 done, 1 failed, 2 usage error.\n");
    return f == stderr ? 2 : 0;
}

/* "shm_channel: <what><arg><rest>", then the usage; exit status 2. */
static int bad_usage(const char *what, const char *arg, const char *rest)
{
    fprintf(stderr, "shm_channel: %s%s%s\n", what, arg, rest);
    return usage(stderr);
}

int main(int argc, char **argv)
{
    /* Options (anywhere before "--"): --help / -h, and rm's --force / -f. Everything else
     * starting with '-' is an unknown option: nothing is done. */
    const char *args[3];
    int nargs = 0, force = 0, options = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && (!strcmp(a, "-h") || !strcmp(a, "--help")))
            return usage(stdout);
        if (options && !strcmp(a, "--")) {
            options = 0;
            continue;
        }
        if (options && (!strcmp(a, "-f") || !strcmp(a, "--force"))) {
            force = 1;
            continue;
        }
        if (options && a[0] == '-' && a[1])
            return bad_usage("unknown option ", a, "");
        if (nargs == 2)
            return bad_usage("too many arguments, at ", a, "");
        args[nargs++] = a;
    }
    if (nargs == 0)
        return usage(stderr);
    const char *cmd = args[0];
    if (!strcmp(cmd, "help") && nargs == 1)
        return usage(stdout);
    int want = !strcmp(cmd, "stat") || !strcmp(cmd, "rm") ? 2 : 1;
    if (strcmp(cmd, "ls") && strcmp(cmd, "stat") && strcmp(cmd, "rm") && strcmp(cmd, "gc") &&
        strcmp(cmd, "version"))
        return bad_usage("unknown command ", cmd, "");
    if (nargs != want)
        return bad_usage("", cmd, want == 2 ? " needs one NAME" : " takes no arguments");
    if (force && strcmp(cmd, "rm"))
        return bad_usage("--force is an option of rm, not of ", cmd, "");
    if (!strcmp(cmd, "ls"))
        return cmd_ls();
    if (!strcmp(cmd, "stat"))
        return cmd_stat(args[1]);
    if (!strcmp(cmd, "rm"))
        return cmd_rm(args[1], force);
    if (!strcmp(cmd, "gc"))
        return each_channel(gc_one);
    printf("%s\n", shm_channel_version_string());
    return 0;
}
