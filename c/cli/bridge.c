/* Bridges in stat and top: the counters of the shm-channel-bridge processes (Rust, over Zenoh)
 * that serve this folder, read from their status files, so that this tool need not link them.
 *
 * Each bridge process rewrites `.bridge-<pid>.json` in the segment folder every 200 ms (atomic
 * rename) and removes it at exit (docs/cli.md, "Bridges"). The file is line-oriented JSON:
 *   {"pid":N,"updated_ms":T,"peer":"connected|lost|waiting","reconnects":R,"endpoints":"...","channels":[
 *   {"name":"x","role":"export","sent":1,...},        one flat object per line
 *   ]}
 * A file whose pid is not a live process, or not rewritten for 10 s, is ignored (a bridge
 * killed by SIGKILL leaves its file behind). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cli.h"

#define BRIDGE_STALE_MS 10000
#define BRIDGE_MAX_KV 24

struct kv {
    char key[32];
    char str[SHM_CHANNEL_NAME_MAX + 64];
    uint64_t num;
    int is_str;
};

/* Parses the flat object starting at `p` ({"k":"v","k":1,...}, no escapes, no nesting) up
 * to the end of its line. Returns the number of pairs read. */
static int parse_flat(const char *p, struct kv *kv, int max)
{
    int n = 0;
    if (*p++ != '{')
        return 0;
    while (n < max && *p == '"') {
        const char *k = ++p, *ke = strchr(k, '"');
        if (!ke || ke[1] != ':' || (size_t)(ke - k) >= sizeof kv[n].key)
            break;
        memcpy(kv[n].key, k, (size_t)(ke - k));
        kv[n].key[ke - k] = 0;
        p = ke + 2;
        if (*p == '"') {
            const char *v = ++p, *ve = strchr(v, '"');
            if (!ve || (size_t)(ve - v) >= sizeof kv[n].str)
                break;
            memcpy(kv[n].str, v, (size_t)(ve - v));
            kv[n].str[ve - v] = 0;
            kv[n].is_str = 1;
            p = ve + 1;
        } else {
            char *end;
            kv[n].num = strtoull(p, &end, 10);
            if (end == p)
                break;
            kv[n].is_str = 0;
            p = end;
        }
        n++;
        if (*p == ',')
            p++;
        else
            break;
    }
    return n;
}

static const struct kv *kv_get(const struct kv *kv, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(kv[i].key, key))
            return &kv[i];
    return NULL;
}

/* One live bridge's status file: its header pairs and its text (channel lines follow). */
struct bridge_file {
    struct kv head[BRIDGE_MAX_KV];
    int nhead;
    char *text;
};

/* Reads `.bridge-*.json` file `fname` of the folder; 0 if it is a live bridge's. */
static int bridge_read(const char *dir, const char *fname, struct bridge_file *b)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, fname);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    size_t cap = 1 << 16, len = 0;
    b->text = malloc(cap + 1);
    if (!b->text) {
        fclose(f);
        return -ENOMEM;
    }
    len = fread(b->text, 1, cap, f);
    fclose(f);
    b->text[len] = 0;
    b->nhead = parse_flat(b->text, b->head, BRIDGE_MAX_KV);
    const struct kv *pid = kv_get(b->head, b->nhead, "pid");
    const struct kv *upd = kv_get(b->head, b->nhead, "updated_ms");
    uint64_t now_ms = cli_realtime_ns() / 1000000;
    if (!pid || pid->is_str || !pid->num || pid->num > INT32_MAX || !upd || upd->is_str ||
        (kill((pid_t)pid->num, 0) != 0 && errno != EPERM) ||
        (now_ms > upd->num && now_ms - upd->num > BRIDGE_STALE_MS)) {
        free(b->text);
        return -ESRCH;
    }
    return 0;
}

/* Calls fn for every live bridge of the segment folder. */
static void bridge_each(void (*fn)(struct bridge_file *b, void *ctx), void *ctx)
{
    const char *dir = shm_channel_dir();
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, ".bridge-", 8) || n < 14 || strcmp(e->d_name + n - 5, ".json"))
            continue;
        struct bridge_file b;
        if (bridge_read(dir, e->d_name, &b) == 0) {
            fn(&b, ctx);
            free(b.text);
        }
    }
    closedir(d);
}

/* Calls fn for each channel line of `b` (all, or those named `name`). */
static void channel_each(const struct bridge_file *b, const char *name,
                         void (*fn)(const struct bridge_file *b, const struct kv *kv, int n, void *ctx),
                         void *ctx)
{
    for (const char *p = strchr(b->text, '\n'); p; p = strchr(p, '\n')) {
        p++;
        struct kv kv[BRIDGE_MAX_KV];
        int n = parse_flat(p, kv, BRIDGE_MAX_KV);
        const struct kv *nm = kv_get(kv, n, "name");
        if (nm && nm->is_str && (!name || !strcmp(nm->str, name)))
            fn(b, kv, n, ctx);
    }
}

static void head_json(const struct bridge_file *b, struct json *j)
{
    for (int i = 0; i < b->nhead; i++) {
        if (b->head[i].is_str)
            json_str(j, b->head[i].key, b->head[i].str);
        else
            json_u64(j, b->head[i].key, b->head[i].num);
    }
}

static void counters_text(const struct kv *kv, int n)
{
    for (int i = 0; i < n; i++)
        if (!kv[i].is_str && kv[i].num)
            printf(" %s %" PRIu64, kv[i].key, kv[i].num);
}

static const char *head_str(const struct bridge_file *b, const char *key)
{
    const struct kv *v = kv_get(b->head, b->nhead, key);
    return v && v->is_str ? v->str : "?";
}

static uint64_t head_num(const struct bridge_file *b, const char *key)
{
    const struct kv *v = kv_get(b->head, b->nhead, key);
    return v && !v->is_str ? v->num : 0;
}

/* The next object of the "bridges" array (the first opens the array), with the bridge's own
 * fields; `stat` and `top` both show a bridge so. */
static void bridge_obj_begin(struct json *j, int count, const struct bridge_file *b)
{
    if (!count)
        json_arr_begin(j, "bridges");
    json_obj_begin(j, NULL);
    head_json(b, j);
}

/* --- stat NAME ------------------------------------------------------------------------- */
struct stat_ctx {
    const char *name;
    struct json *j;
    int count;
};

static void stat_channel(const struct bridge_file *b, const struct kv *kv, int n, void *ctx)
{
    struct stat_ctx *c = ctx;
    if (c->j) {
        bridge_obj_begin(c->j, c->count, b);
        for (int i = 0; i < n; i++) {
            if (!strcmp(kv[i].key, "name"))
                continue;
            if (kv[i].is_str)
                json_str(c->j, kv[i].key, kv[i].str);
            else
                json_u64(c->j, !strcmp(kv[i].key, "reconnects") ? "channel_reconnects" : kv[i].key,
                         kv[i].num);
        }
        json_obj_end(c->j);
    } else {
        const struct kv *role = kv_get(kv, n, "role");
        printf("bridge          pid %" PRIu64 " %s, peer %s (%s), %" PRIu64 " reconnects;",
               head_num(b, "pid"), role && role->is_str ? role->str : "?", head_str(b, "peer"),
               head_str(b, "endpoints"), head_num(b, "reconnects"));
        counters_text(kv, n);
        printf("\n");
    }
    c->count++;
}

static void stat_bridge(struct bridge_file *b, void *ctx)
{
    channel_each(b, ((struct stat_ctx *)ctx)->name, stat_channel, ctx);
}

void cli_bridge_stat(const char *name, struct json *j)
{
    struct stat_ctx c = {name, j, 0};
    bridge_each(stat_bridge, &c);
    if (j && c.count)
        json_arr_end(j);
}

/* --- top -------------------------------------------------------------------------------- */
struct top_ctx {
    struct json *j;
    int count;
};

static void top_channel_text(const struct bridge_file *b, const struct kv *kv, int n, void *ctx)
{
    (void)ctx;
    const struct kv *nm = kv_get(kv, n, "name"), *role = kv_get(kv, n, "role");
    printf("%-8" PRIu64 " %-9s %6" PRIu64 "  %-24.24s %-14s", head_num(b, "pid"), head_str(b, "peer"),
           head_num(b, "reconnects"), nm->str, role && role->is_str ? role->str : "?");
    counters_text(kv, n);
    printf("\n");
}

static void top_channel_json(const struct bridge_file *b, const struct kv *kv, int n, void *ctx)
{
    (void)b;
    struct json *j = ctx;
    json_obj_begin(j, NULL);
    for (int i = 0; i < n; i++) {
        if (kv[i].is_str)
            json_str(j, kv[i].key, kv[i].str);
        else
            json_u64(j, kv[i].key, kv[i].num);
    }
    json_obj_end(j);
}

static void top_bridge(struct bridge_file *b, void *ctx)
{
    struct top_ctx *c = ctx;
    if (c->j) {
        bridge_obj_begin(c->j, c->count, b);
        json_arr_begin(c->j, "channels");
        channel_each(b, NULL, top_channel_json, c->j);
        json_arr_end(c->j);
        json_obj_end(c->j);
    } else {
        if (!c->count)
            printf("\n%-8s %-9s %6s  %-24s %-14s %s\n", "BRIDGE", "PEER", "RECONN", "CHANNEL", "ROLE",
                   "COUNTERS");
        channel_each(b, NULL, top_channel_text, NULL);
    }
    c->count++;
}

void cli_bridge_top(struct json *j)
{
    struct top_ctx c = {j, 0};
    bridge_each(top_bridge, &c);
    if (j && c.count)
        json_arr_end(j);
}
