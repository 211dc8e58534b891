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
    return alive ? "alive" : "none";
}

static int observe(const char *name, shm_channel_stat_t *st)
{
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, name, SHM_CHANNEL_OBSERVER, SHM_CHANNEL_ALLOW_FOREIGN, 0, 0);
    if (rc)
        return rc;
    rc = shm_channel_stat(ch, st);
    shm_channel_close(ch);
    return rc;
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
    printf("%-32s %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %-8s %-8s\n", name,
           st->capacity, st->used, st->msgs_written, st->msgs_read,
           state_name(st->producer_state, st->producer_alive),
           state_name(st->consumer_state, st->consumer_alive));
    return 0;
}

static int cmd_ls(void)
{
    printf("%-32s %12s %12s %12s %12s %-8s %-8s\n", "NAME", "CAPACITY", "USED", "WRITTEN", "READ",
           "PRODUCER", "CONSUMER");
    return each_channel(print_row);
}

static int cmd_stat(const char *name)
{
    shm_channel_stat_t st;
    int rc = observe(name, &st);
    if (rc) {
        fprintf(stderr, "shm_channel: %s: %s\n", name, shm_channel_strerror(rc));
        return 1;
    }
    printf("name            %s\n", name);
    printf("kind            %s\n", st.kind == SHM_CHANNEL_KIND_STREAM ? "stream" : "?");
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
    if (rc) {
        fprintf(stderr, "shm_channel: rm %s: %s%s\n", name, shm_channel_strerror(rc),
                rc == -EBUSY ? " (use --force to remove it anyway)" : "");
        return 1;
    }
    return 0;
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
               "       shm_channel rm [--force] NAME  remove a channel (refused while in use)\n"
               "       shm_channel gc                 remove every channel no live process uses\n"
               "       shm_channel version\n"
               "Channels live in $SHM_CHANNEL_DIR, or /dev/shm.\n");
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "ls") && argc == 2)
        return cmd_ls();
    if (!strcmp(cmd, "stat") && argc == 3)
        return cmd_stat(argv[2]);
    if (!strcmp(cmd, "rm") && argc == 3)
        return cmd_rm(argv[2], 0);
    if (!strcmp(cmd, "rm") && argc == 4 && !strcmp(argv[2], "--force"))
        return cmd_rm(argv[3], 1);
    if (!strcmp(cmd, "gc") && argc == 2)
        return each_channel(gc_one);
    if (!strcmp(cmd, "version") && argc == 2) {
        printf("%s\n", shm_channel_version_string());
        return 0;
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help"))
        return usage(stdout);
    return usage(stderr);
}
