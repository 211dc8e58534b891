/* doctor: what in the segment directory will bite, each finding with advice. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli.h"

const struct opt_spec opts_doctor[] = {
    {"json", 'j', OPT_FLAG, "JSON output (docs/cli.md)"},
    {"min-size", 0, OPT_U64, "flag a directory smaller than N bytes (default 256M)"},
    {0}};

struct finding {
    int problem; /* 1: needs attention (exit 3); 0: a note */
    char name[SHM_CHANNEL_NAME_MAX + 2];
    char what[256];
    char advice[256];
};

struct doctor {
    struct finding *v;
    size_t n, cap;
    int dirfd;
    uint64_t avail, largest, channels, others;
    char largest_name[SHM_CHANNEL_NAME_MAX + 2];
};

static void add(struct doctor *d, int problem, const char *name, const char *advice,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#include <stdarg.h>
#include <stdlib.h>

static void add(struct doctor *d, int problem, const char *name, const char *advice,
                const char *fmt, ...)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        struct finding *v = realloc(d->v, cap * sizeof(*v));
        if (!v)
            return;
        d->v = v;
        d->cap = cap;
    }
    struct finding *f = &d->v[d->n++];
    f->problem = problem;
    snprintf(f->name, sizeof f->name, "%s", name ? name : "");
    snprintf(f->advice, sizeof f->advice, "%s", advice);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->what, sizeof f->what, fmt, ap);
    va_end(ap);
}

static void mib(char *buf, size_t n, uint64_t v)
{
    snprintf(buf, n, "%.1f MiB", (double)v / 1048576.0);
}

static int check_one(const char *name, void *ctx)
{
    struct doctor *d = ctx;
    struct stat sb;
    if (fstatat(d->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        return 0; /* vanished */
    struct chan_snap s;
    shm_channel_t *ch;
    int rc = cli_observe(name, &s, &ch);
    if (rc == -EACCES || rc == -EPERM) {
        add(d, 1, name, "ask its owner, or run as that user (or root) to inspect or remove it",
            "permission denied (owner uid %u, mode %04o)", (unsigned)sb.st_uid,
            (unsigned)(sb.st_mode & 07777));
        return 0;
    }
    if (rc == -EPROTOTYPE) {
        add(d, 0, name, "a newer shm_channel reads it", "a channel of a kind this build does "
                                                       "not read yet");
        return 0;
    }
    if (rc) {
        if (S_ISREG(sb.st_mode))
            d->others++;
        return 0; /* not a channel: another program's file */
    }
    d->channels++;
    if ((uint64_t)sb.st_size > d->largest) {
        d->largest = (uint64_t)sb.st_size;
        snprintf(d->largest_name, sizeof d->largest_name, "%s", name);
    }
    if (sb.st_uid != geteuid())
        add(d, 0, name, "opening it needs SHM_CHANNEL_ALLOW_FOREIGN (or run as its owner)",
            "owned by another user (uid %u)", (unsigned)sb.st_uid);
    if (sb.st_mode & 022)
        add(d, 1, name, "any local user of that group/others can corrupt it: recreate it with "
                        "mode 0600, or chmod go-w",
            "writable by others (mode %04o)", (unsigned)(sb.st_mode & 07777));
    const shm_channel_stat_t *st = &s.st;
    char rm[300];
    snprintf(rm, sizeof rm, "no live process uses it: `shm_channel rm %s` (or `shm_channel gc` "
                            "for every such channel) frees %.1f MiB", name,
             (double)sb.st_size / 1048576.0);
#ifdef CLI_HAVE_SERVICE
    if (st->kind == SHM_CHANNEL_KIND_SERVICE) {
        const shm_channel_service_stat_t *v = &s.svc;
        if (v->server_state == SHM_CHANNEL_PEER_ATTACHED && !v->server_alive &&
            v->live_clients == 0)
            add(d, 1, name, rm, "owners all dead: the server died and no client is alive");
        shm_channel_close(ch);
        return 0;
    }
#endif
    if (st->kind == SHM_CHANNEL_KIND_BROADCAST) {
        int pub_dead = st->producer_state == SHM_CHANNEL_PEER_ATTACHED && !st->producer_alive;
        if (pub_dead && s.subs_live == 0)
            add(d, 1, name, rm, "owners all dead: the publisher died and no subscriber is alive");
        else if (pub_dead)
            add(d, 0, name, "a new publisher takes over and continues the numbering",
                "the publisher died; %u subscribers are waiting", s.subs_live);
    } else {
        int pdead = st->producer_state == SHM_CHANNEL_PEER_ATTACHED && !st->producer_alive;
        int cdead = st->consumer_state == SHM_CHANNEL_PEER_ATTACHED && !st->consumer_alive;
        if ((pdead || cdead) && !st->producer_alive && !st->consumer_alive)
            add(d, 1, name, rm, "owners all dead: %s died without closing and no live process "
                                "holds a role (%" PRIu64 " bytes unread)",
                pdead && cdead ? "producer and consumer" : pdead ? "the producer" : "the consumer",
                st->used);
    }
    shm_channel_close(ch);
    return 0;
}

int cmd_doctor(const struct cli_args *a)
{
    const char *dir = shm_channel_dir();
    struct doctor d = {0};
    uint64_t min_size = opt_u64(a, "min-size", 256u << 20);
    struct statvfs vfs;
    uint64_t total = 0, avail = 0;
    int dir_ok = statvfs(dir, &vfs) == 0;
    char t[32], f[32];
    if (!dir_ok) {
        add(&d, 1, NULL, "create it (mkdir, or mount a tmpfs there), or point SHM_CHANNEL_DIR "
                         "at a tmpfs directory",
            "the segment directory %s: %s", dir, strerror(errno));
    } else {
        total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
        avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        d.avail = avail;
        mib(t, sizeof t, total);
        mib(f, sizeof f, avail);
        if (total < min_size)
            add(&d, 1, NULL, "containers get a 64 MiB /dev/shm by default: docker run "
                             "--shm-size=1g (Kubernetes: an emptyDir with medium: Memory), or "
                             "point SHM_CHANNEL_DIR at a larger tmpfs",
                "%s holds only %s in all", dir, t);
        if (access(dir, W_OK | X_OK) != 0)
            add(&d, 1, NULL, "run as a user who may write there, or point SHM_CHANNEL_DIR at a "
                             "directory you own",
                "%s is not writable by this user: no channel can be created", dir);
        d.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rc = d.dirfd < 0 ? -errno : cli_each_channel(check_one, &d);
        if (rc < 0)
            add(&d, 1, NULL, "check the directory's permissions", "cannot list %s: %s", dir,
                strerror(-rc));
        if (d.dirfd >= 0)
            close(d.dirfd);
        if (d.largest && d.largest > avail) {
            char l[32];
            mib(l, sizeof l, d.largest);
            add(&d, 1, d.largest_name, "free space (gc removes unused channels), make the "
                                       "directory larger, or use smaller capacities",
                "a channel as large as this one (%s) no longer fits in the free space (%s): "
                "creating one fails with ENOSPC", l, f);
        }
    }
    int problems = 0;
    for (size_t i = 0; i < d.n; i++)
        problems += d.v[i].problem;
    if (opt_given(a, "json")) {
        struct json j;
        json_init(&j, stdout);
        json_obj_begin(&j, NULL);
        json_str(&j, "dir", dir);
        json_u64(&j, "total_bytes", total);
        json_u64(&j, "avail_bytes", avail);
        json_u64(&j, "channels", d.channels);
        json_u64(&j, "other_files", d.others);
        json_u64(&j, "problems", (uint64_t)problems);
        json_arr_begin(&j, "findings");
        for (size_t i = 0; i < d.n; i++) {
            json_obj_begin(&j, NULL);
            json_str(&j, "level", d.v[i].problem ? "problem" : "note");
            if (d.v[i].name[0])
                json_str(&j, "name", d.v[i].name);
            else
                json_null(&j, "name");
            json_str(&j, "what", d.v[i].what);
            json_str(&j, "advice", d.v[i].advice);
            json_obj_end(&j);
        }
        json_arr_end(&j);
        json_obj_end(&j);
        json_end(&j);
    } else {
        if (dir_ok)
            printf("%s: %s in all, %s free; %" PRIu64 " channels, %" PRIu64 " other files\n",
                   dir, t, f, d.channels, d.others);
        for (size_t i = 0; i < d.n; i++)
            printf("%s %s%s%s\n    advice: %s\n", d.v[i].problem ? "problem:" : "note:   ",
                   d.v[i].name, d.v[i].name[0] ? ": " : "", d.v[i].what, d.v[i].advice);
        printf("%d problem%s found\n", problems, problems == 1 ? "" : "s");
    }
    free(d.v);
    return problems ? CLI_PROBLEMS : CLI_OK;
}
