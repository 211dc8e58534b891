/* Watching channels: top (every channel, refreshed in place) and hz (one channel). Both
 * sample the counters of the snapshots and divide the differences by the time between. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

const struct opt_spec opts_top[] = {
    {"once", '1', OPT_FLAG, "sample one interval, print one plain table, exit"},
    {"interval", 'i', OPT_DOUBLE, "seconds between samples (default 1)"},
    {"count", 'n', OPT_U64, "stop after N refreshes"},
    {"json", 'j', OPT_FLAG, "one JSON object per refresh (docs/cli.md)"},
    {0}};
const struct opt_spec opts_hz[] = {
    {"interval", 'i', OPT_DOUBLE, "seconds between samples (default 1)"},
    {"count", 'n', OPT_U64, "stop after N lines"},
    {"json", 'j', OPT_FLAG, "one JSON object per line"},
    {0}};

/* Rates of one channel between two snapshots of it. */
struct rates {
    double dt, msgs, bytes, full, empty, sleeps, wakes; /* per second */
};

static double per_s(uint64_t now, uint64_t before, double dt)
{
    return now >= before && dt > 0 ? (double)(now - before) / dt : 0;
}

static void rates_of(const struct chan_snap *p, const struct chan_snap *c, struct rates *r)
{
    r->dt = (double)(c->t_ns - p->t_ns) / 1e9;
    const shm_channel_stat_t *a = &p->st, *b = &c->st;
    r->msgs = per_s(b->msgs_written, a->msgs_written, r->dt);
    r->bytes = per_s(b->bytes_written, a->bytes_written, r->dt);
    r->full = per_s(b->full_events, a->full_events, r->dt);
    r->empty = per_s(b->empty_events, a->empty_events, r->dt);
    if (b->kind == SHM_CHANNEL_KIND_BROADCAST) {
        r->sleeps = per_s(c->sub_sleeps, p->sub_sleeps, r->dt);
        r->wakes = per_s(b->producer_wakes, a->producer_wakes, r->dt);
#ifdef CLI_HAVE_SERVICE
    } else if (b->kind == SHM_CHANNEL_KIND_SERVICE) {
        r->msgs = per_s(c->svc.requests, p->svc.requests, r->dt);
        r->sleeps = per_s(c->svc.server_sleeps + c->svc.client_sleeps,
                          p->svc.server_sleeps + p->svc.client_sleeps, r->dt);
        r->wakes = per_s(c->svc.server_wakes, p->svc.server_wakes, r->dt);
#endif
    } else {
        r->sleeps = per_s(b->producer_sleeps + b->consumer_sleeps,
                          a->producer_sleeps + a->consumer_sleeps, r->dt);
        r->wakes = per_s(b->producer_wakes + b->consumer_wakes,
                         a->producer_wakes + a->consumer_wakes, r->dt);
    }
}

/* 1234567 -> "1.23M" */
static const char *human(char *buf, size_t n, double v)
{
    const char *units = " kMGT";
    int u = 0;
    while (v >= 999.5 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.*f%c", v < 9.995 ? 2 : v < 99.95 ? 1 : 0, v, units[u]);
    return buf;
}

static void fill_text(const struct chan_snap *s, char *buf, size_t n)
{
#ifdef CLI_HAVE_SERVICE
    if (s->st.kind == SHM_CHANNEL_KIND_SERVICE) {
        uint64_t done = s->svc.responses + s->svc.stale;
        snprintf(buf, n, "owed %" PRIu64, s->svc.requests > done ? s->svc.requests - done : 0);
        return;
    }
#endif
    if (s->st.kind == SHM_CHANNEL_KIND_BROADCAST)
        snprintf(buf, n, "lag %" PRIu64, s->max_lag);
    else
        snprintf(buf, n, "%.0f%%",
                 s->st.capacity ? 100.0 * (double)s->st.used / (double)s->st.capacity : 0.0);
}

static void peers_text(const struct chan_snap *s, char *buf, size_t n)
{
    const shm_channel_stat_t *st = &s->st;
#ifdef CLI_HAVE_SERVICE
    if (st->kind == SHM_CHANNEL_KIND_SERVICE) {
        snprintf(buf, n, "server %s, clients %u/%u",
                 cli_state_name(s->svc.server_state, s->svc.server_alive), s->svc.live_clients,
                 s->svc.max_clients);
        return;
    }
#endif
    if (st->kind == SHM_CHANNEL_KIND_BROADCAST)
        snprintf(buf, n, "pub %s, subs %u/%u", cli_state_name(st->producer_state,
                                                              st->producer_alive),
                 s->subs_live, s->bs.max_subscribers);
    else
        snprintf(buf, n, "prod %s, cons %s", cli_state_name(st->producer_state, st->producer_alive),
                 cli_state_name(st->consumer_state, st->consumer_alive));
}

static void rates_json(struct json *j, const struct chan_snap *s, const struct rates *r)
{
    const shm_channel_stat_t *st = &s->st;
    json_str(j, "name", s->name);
    json_str(j, "kind", cli_kind_name(st->kind));
    json_double(j, "interval_s", r->dt);
    json_double(j, "msgs_per_s", r->msgs);
    json_double(j, "bytes_per_s", r->bytes);
    json_double(j, "full_per_s", r->full);
    json_double(j, "empty_per_s", r->empty);
    json_double(j, "sleeps_per_s", r->sleeps);
    json_double(j, "wakes_per_s", r->wakes);
    json_u64(j, "msgs_written", st->msgs_written);
    json_u64(j, "bytes_written", st->bytes_written);
#ifdef CLI_HAVE_SERVICE
    if (st->kind == SHM_CHANNEL_KIND_SERVICE) {
        json_str(j, "server", cli_state_name(s->svc.server_state, s->svc.server_alive));
        json_u64(j, "clients_live", s->svc.live_clients);
        json_u64(j, "max_clients", s->svc.max_clients);
        json_u64(j, "requests", s->svc.requests);
        json_u64(j, "responses", s->svc.responses);
        return;
    }
#endif
    if (st->kind == SHM_CHANNEL_KIND_BROADCAST) {
        json_u64(j, "max_lag", s->max_lag);
        json_u64(j, "missed", s->missed);
        json_str(j, "publisher", cli_state_name(st->producer_state, st->producer_alive));
        json_u64(j, "subscribers_live", s->subs_live);
        json_u64(j, "max_subscribers", s->bs.max_subscribers);
    } else {
        json_u64(j, "used", st->used);
        json_u64(j, "capacity", st->capacity);
        json_double(j, "fill", st->capacity ? (double)st->used / (double)st->capacity : 0);
        json_u64(j, "msgs_read", st->msgs_read);
        json_str(j, "producer", cli_state_name(st->producer_state, st->producer_alive));
        json_str(j, "consumer", cli_state_name(st->consumer_state, st->consumer_alive));
    }
}

/* --- sampling every channel ----------------------------------------------------------- */
struct snaps {
    struct chan_snap *v;
    size_t n, cap;
};

static int add_snap(const char *name, void *ctx)
{
    struct snaps *s = ctx;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct chan_snap *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return 0;
        s->v = v;
        s->cap = cap;
    }
    if (cli_observe(name, &s->v[s->n], NULL) == 0)
        s->n++;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct chan_snap *)a)->name, ((const struct chan_snap *)b)->name);
}

static int sample_all(struct snaps *s)
{
    s->n = 0;
    int rc = cli_each_channel(add_snap, s);
    if (rc < 0)
        return rc;
    qsort(s->v, s->n, sizeof(*s->v), by_name);
    return 0;
}

static const struct chan_snap *find_snap(const struct snaps *s, const char *name)
{
    struct chan_snap key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return s->n ? bsearch(&key, s->v, s->n, sizeof(*s->v), by_name) : NULL;
}

static void print_table(const struct snaps *prev, const struct snaps *cur)
{
    printf("%-24s %-9s %10s %7s %7s %8s %7s %7s %7s %7s  %s\n", "NAME", "KIND", "MSGS", "MSG/S",
           "BYTES/S",
           "FILL/LAG", "FULL/S", "EMPTY/S", "SLEEP/S", "WAKE/S", "PEERS");
    for (size_t i = 0; i < cur->n; i++) {
        const struct chan_snap *c = &cur->v[i], *p = find_snap(prev, c->name);
        char fill[32], peers[64], m[16], b[16], f[16], e[16], sl[16], w[16];
        fill_text(c, fill, sizeof fill);
        peers_text(c, peers, sizeof peers);
        struct rates r;
        if (p && p->st.kind == c->st.kind && p->st.created_ns == c->st.created_ns) {
            rates_of(p, c, &r);
            human(m, sizeof m, r.msgs);
            human(b, sizeof b, r.bytes);
            human(f, sizeof f, r.full);
            human(e, sizeof e, r.empty);
            human(sl, sizeof sl, r.sleeps);
            human(w, sizeof w, r.wakes);
        } else { /* new since the last sample */
            strcpy(m, "-");
            strcpy(b, "-");
            strcpy(f, "-");
            strcpy(e, "-");
            strcpy(sl, "-");
            strcpy(w, "-");
        }
        if (c->st.kind == SHM_CHANNEL_KIND_BROADCAST) {
            strcpy(f, "-"); /* a publisher never waits, a subscriber's wait is a sleep */
            strcpy(e, "-");
        }
        printf("%-24.24s %-9s %10" PRIu64 " %7s %7s %8s %7s %7s %7s %7s  %s\n", c->name,
               cli_kind_name(c->st.kind), c->st.msgs_written, m, b, fill, f, e, sl, w, peers);
    }
    cli_bridge_top(NULL);
}

static void print_json(const struct snaps *prev, const struct snaps *cur, double interval)
{
    struct json j;
    json_init(&j, stdout);
    json_obj_begin(&j, NULL);
    json_str(&j, "dir", shm_channel_dir());
    json_double(&j, "interval_s", interval);
    json_u64(&j, "time_ns", cli_realtime_ns());
    json_arr_begin(&j, "channels");
    for (size_t i = 0; i < cur->n; i++) {
        const struct chan_snap *c = &cur->v[i], *p = find_snap(prev, c->name);
        struct rates r = {0};
        if (p && p->st.kind == c->st.kind && p->st.created_ns == c->st.created_ns)
            rates_of(p, c, &r);
        json_obj_begin(&j, NULL);
        rates_json(&j, c, &r);
        json_obj_end(&j);
    }
    json_arr_end(&j);
    cli_bridge_top(&j);
    json_obj_end(&j);
    json_end(&j);
}

/* Sleep `interval` seconds in slices, so that a signal ends it soon. */
static void wait_interval(double interval)
{
    uint64_t end = cli_now_ns() + (uint64_t)(interval * 1e9);
    for (uint64_t now; !cli_stop && (now = cli_now_ns()) < end;)
        cli_sleep_ns(end - now < 100000000u ? end - now : 100000000u);
}

int cmd_top(const struct cli_args *a)
{
    double interval = opt_double(a, "interval", 1.0);
    if (interval < 0.01)
        return cli_usage_error("top", "--interval must be at least 0.01 s");
    int once = opt_given(a, "once"), json = opt_given(a, "json");
    uint64_t count = once ? 1 : opt_u64(a, "count", UINT64_MAX);
    int live = !once && !json && isatty(1);
    cli_catch_signals();
    struct snaps prev = {0}, cur = {0};
    int rc = sample_all(&prev);
    if (rc < 0)
        return cli_fail("top", NULL, shm_channel_dir(), rc);
    if (live)
        fputs("\033[?25l", stdout); /* hide the cursor while we redraw */
    for (uint64_t k = 0; k < count && !cli_stop; k++) {
        wait_interval(interval);
        if (cli_stop)
            break;
        if ((rc = sample_all(&cur)) < 0)
            break;
        if (json) {
            print_json(&prev, &cur, interval);
        } else {
            if (live)
                fputs("\033[H\033[2J", stdout); /* home, clear */
            time_t t = time(NULL);
            struct tm tm;
            localtime_r(&t, &tm);
            printf("shm_channel top - %s - %zu channels - %02d:%02d:%02d - every %.2g s%s\n",
                   shm_channel_dir(), cur.n, tm.tm_hour, tm.tm_min, tm.tm_sec, interval,
                   live ? " - Ctrl-C quits" : "");
            print_table(&prev, &cur);
            if (!live && !once)
                printf("\n");
        }
        fflush(stdout);
        struct snaps t = prev;
        prev = cur;
        cur = t;
    }
    if (live)
        fputs("\033[?25h", stdout);
    free(prev.v);
    free(cur.v);
    return rc < 0 ? cli_fail("top", NULL, shm_channel_dir(), rc) : CLI_OK;
}

int cmd_hz(const struct cli_args *a)
{
    const char *name = a->pos[0];
    double interval = opt_double(a, "interval", 1.0);
    if (interval < 0.01)
        return cli_usage_error("hz", "--interval must be at least 0.01 s");
    uint64_t count = opt_u64(a, "count", UINT64_MAX);
    cli_catch_signals();
    struct chan_snap p, c;
    shm_channel_t *ch;
    int rc = cli_observe(name, &p, &ch);
    if (rc)
        return cli_fail("hz", name, NULL, rc);
    const struct kind_ops *k = cli_kind_ops(p.st.kind);
    for (uint64_t i = 0; i < count && !cli_stop; i++) {
        wait_interval(interval);
        if (cli_stop)
            break;
        memset(&c, 0, sizeof c);
        snprintf(c.name, sizeof c.name, "%s", name);
        c.t_ns = cli_now_ns();
        if ((rc = shm_channel_stat(ch, &c.st)) != 0 || (rc = k->snap(ch, &c)) != 0)
            break;
        struct rates r;
        rates_of(&p, &c, &r);
        if (opt_given(a, "json")) {
            struct json j;
            json_init(&j, stdout);
            json_obj_begin(&j, NULL);
            rates_json(&j, &c, &r);
            json_obj_end(&j);
            json_end(&j);
        } else {
            char m[16], b[16], fill[32];
            fill_text(&c, fill, sizeof fill);
            printf("%s: %s msg/s, %sB/s, %s, %" PRIu64 " messages\n", name,
                   human(m, sizeof m, r.msgs), human(b, sizeof b, r.bytes), fill,
                   c.st.msgs_written);
        }
        fflush(stdout);
        p = c;
    }
    shm_channel_close(ch);
    return rc ? cli_fail("hz", name, "stat", rc) : CLI_OK;
}
