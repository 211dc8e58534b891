/* Channels of every kind: the per-kind table of stat functions, snapshots, ls, stat, rm,
 * gc, version. Service (kind 4) and compat segments are rows of the table that say
 * "not yet" until the library's public API reads them. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "cli.h"

const struct opt_spec opts_none[] = {{0}};
const struct opt_spec opts_json[] = {{"json", 'j', OPT_FLAG, "JSON output (docs/cli.md)"},
                                     {0}};
const struct opt_spec opts_stat[] = {{"json", 'j', OPT_FLAG, "JSON output (docs/cli.md)"},
                                     {"kind", 'k', OPT_STR, "the kind NAME must be (compat: a "
                                                            "segment without our header)"},
                                     {0}};
const struct opt_spec opts_rm[] = {{"force", 'f', OPT_FLAG, "remove any file, even in use"},
                                   {0}};

volatile int cli_stop;

static void on_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

void cli_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

uint64_t cli_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cli_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cli_sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL); /* a signal ends it early: callers check cli_stop */
}

const char *cli_state_name(uint32_t state, int alive)
{
    if (state == SHM_CHANNEL_PEER_ATTACHED)
        return alive ? "alive" : "dead";
    if (state == SHM_CHANNEL_PEER_CLOSED)
        return alive ? "alive" : "closed";
    if (state != SHM_CHANNEL_PEER_NONE)
        return alive ? "alive" : "unknown"; /* a value layout 1.0 does not define */
    return alive ? "alive" : "none";
}

/* --- stream (kind 1) ------------------------------------------------------------------ */
static int stream_snap(shm_channel_t *ch, struct chan_snap *s)
{
    (void)ch;
    (void)s;
    return 0;
}

static void stream_text(shm_channel_t *ch, const struct chan_snap *s)
{
    (void)ch;
    const shm_channel_stat_t *st = &s->st;
    printf("capacity        %" PRIu64 "\n", st->capacity);
    printf("max_payload     %" PRIu64 "\n", st->max_payload);
    printf("write_pos       %" PRIu64 "\n", st->write_pos);
    printf("read_pos        %" PRIu64 "\n", st->read_pos);
    printf("used            %" PRIu64 "\n", st->used);
    printf("msgs_written    %" PRIu64 "\n", st->msgs_written);
    printf("bytes_written   %" PRIu64 "\n", st->bytes_written);
    printf("msgs_read       %" PRIu64 "\n", st->msgs_read);
    printf("bytes_read      %" PRIu64 "\n", st->bytes_read);
    printf("full_events     %" PRIu64 "\n", st->full_events);
    printf("empty_events    %" PRIu64 "\n", st->empty_events);
    printf("producer_wakes  %" PRIu64 "\n", st->producer_wakes);
    printf("consumer_wakes  %" PRIu64 "\n", st->consumer_wakes);
    printf("producer_sleeps %" PRIu64 "\n", st->producer_sleeps);
    printf("consumer_sleeps %" PRIu64 "\n", st->consumer_sleeps);
    printf("producer        %s (epoch %u)\n", cli_state_name(st->producer_state, st->producer_alive),
           st->producer_epoch);
    printf("consumer        %s (epoch %u)\n", cli_state_name(st->consumer_state, st->consumer_alive),
           st->consumer_epoch);
    printf("in_use          %s\n", st->in_use ? "yes" : "no");
    printf("creator_pid     %u\n", st->creator_pid);
}

static void role_json(struct json *j, const char *key, uint32_t state, int alive, uint32_t epoch)
{
    json_obj_begin(j, key);
    json_str(j, "state", cli_state_name(state, alive));
    json_bool(j, "alive", alive);
    json_u64(j, "epoch", epoch);
    json_obj_end(j);
}

static void stream_json(shm_channel_t *ch, const struct chan_snap *s, struct json *j)
{
    (void)ch;
    const shm_channel_stat_t *st = &s->st;
    json_u64(j, "capacity", st->capacity);
    json_u64(j, "max_payload", st->max_payload);
    json_u64(j, "write_pos", st->write_pos);
    json_u64(j, "read_pos", st->read_pos);
    json_u64(j, "used", st->used);
    json_u64(j, "msgs_written", st->msgs_written);
    json_u64(j, "bytes_written", st->bytes_written);
    json_u64(j, "msgs_read", st->msgs_read);
    json_u64(j, "bytes_read", st->bytes_read);
    json_u64(j, "full_events", st->full_events);
    json_u64(j, "empty_events", st->empty_events);
    json_u64(j, "producer_wakes", st->producer_wakes);
    json_u64(j, "consumer_wakes", st->consumer_wakes);
    json_u64(j, "producer_sleeps", st->producer_sleeps);
    json_u64(j, "consumer_sleeps", st->consumer_sleeps);
    role_json(j, "producer", st->producer_state, st->producer_alive, st->producer_epoch);
    role_json(j, "consumer", st->consumer_state, st->consumer_alive, st->consumer_epoch);
}

/* --- broadcast (kind 2) --------------------------------------------------------------- */
static int bcast_snap(shm_channel_t *ch, struct chan_snap *s)
{
    int rc = shm_channel_broadcast_stat(ch, &s->bs);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < s->bs.max_subscribers; i++) {
        shm_channel_sub_stat_t ss;
        if (shm_channel_sub_stat(ch, i, &ss) != 0)
            continue;
        s->sub_sleeps += ss.sleeps;
        s->missed += ss.missed;
        if (ss.alive) {
            s->subs_live++;
            if (ss.lag > s->max_lag)
                s->max_lag = ss.lag;
        }
    }
    return 0;
}

static void bcast_text(shm_channel_t *ch, const struct chan_snap *s)
{
    const shm_channel_stat_t *st = &s->st;
    const shm_channel_broadcast_stat_t *bs = &s->bs;
    printf("depth           %u\n", bs->depth);
    printf("max_payload     %" PRIu64 "\n", st->max_payload);
    printf("max_subscribers %u\n", bs->max_subscribers);
    printf("type_tag        %s\n", bs->type_len ? bs->type_tag : "(untyped)");
    printf("slot_area       %" PRIu64 "\n", st->capacity);
    printf("published       %" PRIu64 "\n", bs->pub_seq);
    printf("msgs_written    %" PRIu64 "\n", st->msgs_written);
    printf("bytes_written   %" PRIu64 "\n", st->bytes_written);
    printf("publisher_wakes %" PRIu64 "\n", st->producer_wakes);
    printf("publisher       %s (epoch %u)\n", cli_state_name(st->producer_state, st->producer_alive),
           st->producer_epoch);
    printf("subscribers     %u live (%u recorded, %" PRIu64 " joins, %" PRIu64 " reclaimed)\n",
           s->subs_live, bs->subscribers, bs->joins, bs->reclaims);
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
               "\n", ss.index, ss.pid, cli_state_name(ss.state, ss.alive), ss.next_seq,
               ss.delivered, ss.missed, ss.alive ? ss.lag : 0, ss.sleeps);
    }
}

static void bcast_json(shm_channel_t *ch, const struct chan_snap *s, struct json *j)
{
    const shm_channel_stat_t *st = &s->st;
    const shm_channel_broadcast_stat_t *bs = &s->bs;
    json_u64(j, "capacity", st->capacity);
    json_u64(j, "max_payload", st->max_payload);
    json_u64(j, "depth", bs->depth);
    json_u64(j, "max_subscribers", bs->max_subscribers);
    json_strn(j, "type_tag", bs->type_tag, bs->type_len < sizeof bs->type_tag ? bs->type_len : 0);
    json_u64(j, "published", bs->pub_seq);
    json_u64(j, "msgs_written", st->msgs_written);
    json_u64(j, "bytes_written", st->bytes_written);
    json_u64(j, "publisher_wakes", st->producer_wakes);
    role_json(j, "publisher", st->producer_state, st->producer_alive, st->producer_epoch);
    json_u64(j, "subscribers_live", s->subs_live);
    json_u64(j, "subscribers_recorded", bs->subscribers);
    json_u64(j, "joins", bs->joins);
    json_u64(j, "reclaims", bs->reclaims);
    json_u64(j, "sleepers", bs->sleepers);
    json_u64(j, "max_lag", s->max_lag);
    json_arr_begin(j, "subscribers");
    for (uint32_t i = 0; i < bs->max_subscribers; i++) {
        shm_channel_sub_stat_t ss;
        if (shm_channel_sub_stat(ch, i, &ss) != 0)
            continue;
        json_obj_begin(j, NULL);
        json_u64(j, "index", ss.index);
        json_u64(j, "pid", ss.pid);
        json_str(j, "state", cli_state_name(ss.state, ss.alive));
        json_bool(j, "alive", ss.alive);
        json_u64(j, "epoch", ss.epoch);
        json_u64(j, "next_seq", ss.next_seq);
        json_u64(j, "delivered", ss.delivered);
        json_u64(j, "delivered_bytes", ss.delivered_bytes);
        json_u64(j, "missed", ss.missed);
        json_u64(j, "lag", ss.alive ? ss.lag : 0);
        json_u64(j, "sleeps", ss.sleeps);
        json_obj_end(j);
    }
    json_arr_end(j);
}

/* --- service (kind 4) ----------------------------------------------------------------- */
#ifdef CLI_HAVE_SERVICE
static int svc_snap(shm_channel_t *ch, struct chan_snap *s)
{
    return shm_channel_service_stat(ch, &s->svc);
}

static void svc_text(shm_channel_t *ch, const struct chan_snap *s)
{
    (void)ch;
    const shm_channel_service_stat_t *v = &s->svc;
    printf("max_request     %" PRIu64 "\n", v->max_request);
    printf("max_response    %" PRIu64 "\n", v->max_response);
    printf("max_clients     %u\n", v->max_clients);
    printf("server          %s (epoch %u)\n", cli_state_name(v->server_state, v->server_alive),
           v->server_epoch);
    printf("clients         %u live (%u recorded, %" PRIu64 " joins, %" PRIu64 " reclaimed, %"
           PRIu64 " reaped)\n", v->live_clients, v->clients, v->joins, v->reclaims, v->reaped);
    printf("requests        %" PRIu64 "\n", v->requests);
    printf("responses       %" PRIu64 "\n", v->responses);
    printf("stale           %" PRIu64 "\n", v->stale);
    printf("expired         %" PRIu64 "\n", v->expired);
    printf("invalid         %" PRIu64 "\n", v->invalid);
    printf("server_sleeps   %" PRIu64 "\n", v->server_sleeps);
    printf("server_wakes    %" PRIu64 "\n", v->server_wakes);
    printf("client_sleeps   %" PRIu64 "\n", v->client_sleeps);
    printf("client_timeouts %" PRIu64 "\n", v->client_timeouts);
    printf("in_use          %s\n", s->st.in_use ? "yes" : "no");
    printf("creator_pid     %u\n", s->st.creator_pid);
}

static void svc_json(shm_channel_t *ch, const struct chan_snap *s, struct json *j)
{
    (void)ch;
    const shm_channel_service_stat_t *v = &s->svc;
    json_u64(j, "capacity", s->st.capacity);
    json_u64(j, "max_payload", s->st.max_payload);
    json_u64(j, "max_request", v->max_request);
    json_u64(j, "max_response", v->max_response);
    json_u64(j, "max_clients", v->max_clients);
    role_json(j, "server", v->server_state, v->server_alive, v->server_epoch);
    json_u64(j, "clients_live", v->live_clients);
    json_u64(j, "clients_recorded", v->clients);
    json_u64(j, "joins", v->joins);
    json_u64(j, "reclaims", v->reclaims);
    json_u64(j, "reaped", v->reaped);
    json_u64(j, "requests", v->requests);
    json_u64(j, "responses", v->responses);
    json_u64(j, "stale", v->stale);
    json_u64(j, "expired", v->expired);
    json_u64(j, "invalid", v->invalid);
    json_u64(j, "server_sleeps", v->server_sleeps);
    json_u64(j, "server_wakes", v->server_wakes);
    json_u64(j, "client_sleeps", v->client_sleeps);
    json_u64(j, "client_timeouts", v->client_timeouts);
}
#endif

/* --- compat (seed 002's layout; only ever named explicitly) ---------------------------- */
#ifdef CLI_HAVE_COMPAT
static int compat_snap(shm_channel_t *ch, struct chan_snap *s)
{
    return shm_channel_compat_stat(ch, &s->cs);
}

static void compat_text(shm_channel_t *ch, const struct chan_snap *s)
{
    (void)ch;
    const shm_channel_compat_stat_t *c = &s->cs;
    printf("capacity        %u\n", c->capacity);
    printf("max_payload     %" PRIu64 "\n", s->st.max_payload);
    printf("head            %u\n", c->head);
    printf("tail            %u\n", c->tail);
    printf("used            %u\n", c->used);
    printf("torn_loads      %" PRIu64 "\n", c->torn_loads);
    printf("segment_gone    %s\n", c->segment_gone ? "yes" : "no");
}

static void compat_json(shm_channel_t *ch, const struct chan_snap *s, struct json *j)
{
    (void)ch;
    const shm_channel_compat_stat_t *c = &s->cs;
    json_u64(j, "capacity", c->capacity);
    json_u64(j, "max_payload", s->st.max_payload);
    json_u64(j, "head", c->head);
    json_u64(j, "tail", c->tail);
    json_u64(j, "used", c->used);
    json_u64(j, "torn_loads", c->torn_loads);
    json_bool(j, "segment_gone", c->segment_gone);
}
#endif

/* --- the table ------------------------------------------------------------------------ */
static const struct kind_ops kinds[] = {
    {SHM_CHANNEL_KIND_STREAM, "stream", NULL, stream_snap, stream_text, stream_json},
    {SHM_CHANNEL_KIND_BROADCAST, "broadcast", NULL, bcast_snap, bcast_text, bcast_json},
    /* Kinds compiled in when the header has their calls, else rows that say "not yet"
     * (issue 12: service; issue 13: compat, whose segments have no shm_channel header and
     * are only ever named explicitly: stat --kind compat). */
#ifdef CLI_HAVE_SERVICE
    {SHM_CHANNEL_KIND_SERVICE, "service", NULL, svc_snap, svc_text, svc_json},
#else
    {4, "service", "kind 4 (service): not yet readable by this build's library", NULL, NULL,
     NULL},
#endif
#ifdef CLI_HAVE_COMPAT
    {SHM_CHANNEL_KIND_COMPAT, "compat", NULL, compat_snap, compat_text, compat_json},
#else
    {0, "compat", "compat segments (seed 002 layout): not yet in this build's library", NULL,
     NULL, NULL},
#endif
};

const struct kind_ops *cli_kind_ops(uint32_t kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == kind && kind)
            return &kinds[i];
    return NULL;
}

const struct kind_ops *cli_kind_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i].name, name))
            return &kinds[i];
    return NULL;
}

const char *cli_kind_name(uint32_t kind)
{
    const struct kind_ops *k = cli_kind_ops(kind);
    return k ? k->name : "unknown";
}

int cli_observe(const char *name, struct chan_snap *s, shm_channel_t **out)
{
    return cli_observe_flags(name, 0, s, out);
}

int cli_observe_flags(const char *name, uint32_t flags, struct chan_snap *s, shm_channel_t **out)
{
    shm_channel_t *ch;
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof s->name, "%s", name);
    int rc = shm_channel_open(&ch, name, SHM_CHANNEL_OBSERVER, SHM_CHANNEL_ALLOW_FOREIGN | flags,
                              0, 0);
    if (rc)
        return rc;
    s->t_ns = cli_now_ns();
    rc = shm_channel_stat(ch, &s->st);
    const struct kind_ops *k = rc ? NULL : cli_kind_ops(s->st.kind);
    if (!rc && (!k || !k->snap))
        rc = -EPROTOTYPE;
    if (!rc)
        rc = k->snap(ch, s);
    if (rc || !out)
        shm_channel_close(ch);
    else
        *out = ch;
    return rc;
}

void cli_snap_json(shm_channel_t *ch, const struct chan_snap *s, struct json *j)
{
    const struct kind_ops *k = cli_kind_ops(s->st.kind);
    json_str(j, "name", s->name);
    json_str(j, "kind", k ? k->name : "unknown");
    json_u64(j, "kind_id", s->st.kind);
    char layout[16];
    snprintf(layout, sizeof layout, "%u.%u", s->st.layout_major, s->st.layout_minor);
    json_str(j, "layout", layout);
    json_bool(j, "in_use", s->st.in_use);
    json_u64(j, "creator_pid", s->st.creator_pid);
    json_u64(j, "created_ns", s->st.created_ns);
    if (k && k->stat_json)
        k->stat_json(ch, s, j);
}

int cli_each_channel(int (*fn)(const char *name, void *ctx), void *ctx)
{
    DIR *d = opendir(shm_channel_dir());
    if (!d)
        return -errno;
    int status = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strlen(e->d_name) > SHM_CHANNEL_NAME_MAX)
            continue;
        status |= fn(e->d_name, ctx);
    }
    closedir(d);
    return status;
}

static int dir_error(const char *cmd, int rc)
{
    return cli_fail(cmd, NULL, shm_channel_dir(), rc);
}

/* --- ls ------------------------------------------------------------------------------- */
struct ls_ctx {
    int json;
    struct json j;
};

static int ls_one(const char *name, void *p)
{
    struct ls_ctx *c = p;
    struct chan_snap s;
    shm_channel_t *ch;
    if (cli_observe(name, &s, &ch) != 0)
        return 0; /* not ours, unreadable, vanished, or a kind not readable yet */
    if (c->json) {
        json_obj_begin(&c->j, NULL);
        cli_snap_json(ch, &s, &c->j);
        json_obj_end(&c->j);
    } else if (s.st.kind == SHM_CHANNEL_KIND_BROADCAST) {
        /* USED: -; READ: -; CONSUMER: live subscribers. */
        char subs[32];
        snprintf(subs, sizeof subs, "%u subs", s.subs_live);
        printf("%-32s %-9s %12" PRIu64 " %12s %12" PRIu64 " %12s %-8s %-8s\n", name, "broadcast",
               s.st.capacity, "-", s.st.msgs_written, "-",
               cli_state_name(s.st.producer_state, s.st.producer_alive), subs);
    } else {
        const shm_channel_stat_t *st = &s.st;
        printf("%-32s %-9s %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %-8s %-8s\n",
               name, "stream", st->capacity, st->used, st->msgs_written, st->msgs_read,
               cli_state_name(st->producer_state, st->producer_alive),
               cli_state_name(st->consumer_state, st->consumer_alive));
    }
    shm_channel_close(ch);
    return 0;
}

int cmd_ls(const struct cli_args *a)
{
    struct ls_ctx c = {opt_given(a, "json"), {0}};
    if (c.json) {
        json_init(&c.j, stdout);
        json_obj_begin(&c.j, NULL);
        json_str(&c.j, "dir", shm_channel_dir());
        json_arr_begin(&c.j, "channels");
    } else {
        printf("%-32s %-9s %12s %12s %12s %12s %-8s %-8s\n", "NAME", "KIND", "CAPACITY", "USED",
               "WRITTEN", "READ", "PRODUCER", "CONSUMER");
    }
    int rc = cli_each_channel(ls_one, &c);
    if (c.json) {
        json_arr_end(&c.j);
        json_obj_end(&c.j);
        json_end(&c.j);
    }
    return rc < 0 ? dir_error("ls", rc) : CLI_OK;
}

/* --- stat ----------------------------------------------------------------------------- */
int cmd_stat(const struct cli_args *a)
{
    const char *name = a->pos[0];
    const char *kname = opt_str(a, "kind", NULL);
    if (kname) {
        const struct kind_ops *k = cli_kind_by_name(kname);
        if (!k)
            return cli_usage_error("stat", "--kind: no kind \"%s\" (stream, broadcast, "
                                           "service, compat)", kname);
        if (k->not_yet)
            return cli_fail("stat", name, k->not_yet, 0);
    }
    struct chan_snap s;
    shm_channel_t *ch;
    uint32_t flags = 0;
#ifdef CLI_HAVE_COMPAT
    if (kname && !strcmp(kname, "compat"))
        flags = SHM_CHANNEL_COMPAT; /* no header to recognise: opened as what it must be */
#endif
    int rc = cli_observe_flags(name, flags, &s, &ch);
    if (rc == -EPROTOTYPE && s.st.kind) {
        const struct kind_ops *k = cli_kind_ops(s.st.kind);
        char what[160];
        snprintf(what, sizeof what, "%s",
                 k && k->not_yet ? k->not_yet : "a kind this tool does not know");
        return cli_fail("stat", name, what, 0);
    }
    if (rc)
        return cli_fail("stat", name, NULL, rc);
    if (kname && strcmp(kname, cli_kind_name(s.st.kind))) {
        shm_channel_close(ch);
        return cli_fail("stat", name, "not of the --kind asked for", -EPROTOTYPE);
    }
    if (opt_given(a, "json")) {
        struct json j;
        json_init(&j, stdout);
        json_obj_begin(&j, NULL);
        cli_snap_json(ch, &s, &j);
        cli_bridge_stat(name, &j);
        json_obj_end(&j);
        json_end(&j);
    } else {
        printf("name            %s\n", name);
        printf("kind            %s\n", cli_kind_name(s.st.kind));
        printf("layout          %u.%u\n", s.st.layout_major, s.st.layout_minor);
        cli_kind_ops(s.st.kind)->stat_text(ch, &s);
        cli_bridge_stat(name, NULL);
    }
    shm_channel_close(ch);
    return CLI_OK;
}

/* --- rm, gc, version ------------------------------------------------------------------ */
int cmd_rm(const struct cli_args *a)
{
    const char *name = a->pos[0];
    int force = opt_given(a, "force");
    int rc = shm_channel_unlink(name, force ? SHM_CHANNEL_FORCE : 0);
    if (rc == 0)
        return CLI_OK;
    const char *why = shm_channel_strerror(rc);
    if (!force && rc == -EBUSY)
        why = "in use by a live process";
    else if (!force && rc == -EPROTO)
        why = "not a shm_channel segment";
    else if (!force && rc == -EACCES)
        why = "permission denied, or not a regular file";
    fprintf(stderr, "shm_channel rm %s: %s; not removed%s\n", name, why,
            !force && (rc == -EBUSY || rc == -EPROTO || rc == -EACCES)
                ? " (--force removes any file under the name, used or not)"
                : "");
    return CLI_FAIL;
}

static int gc_one(const char *name, void *ctx)
{
    (void)ctx;
    struct chan_snap s;
    if (cli_observe(name, &s, NULL) != 0)
        return 0; /* only channels this library reads */
    /* Broadcast: first take back the entries of dead subscribers (a live channel stays). */
    int rc = s.st.kind == SHM_CHANNEL_KIND_BROADCAST ? shm_channel_reclaim(name, 0) : 0;
    if (rc > 0)
        printf("reclaimed %d dead subscriber entr%s of %s\n", rc, rc == 1 ? "y" : "ies", name);
    rc = shm_channel_unlink(name, 0);
    if (rc == 0)
        printf("removed %s\n", name);
    else if (rc != -EBUSY && rc != -ENOENT)
        fprintf(stderr, "shm_channel gc %s: %s\n", name, shm_channel_strerror(rc));
    return 0;
}

int cmd_gc(const struct cli_args *a)
{
    (void)a;
    int rc = cli_each_channel(gc_one, NULL);
    return rc < 0 ? dir_error("gc", rc) : CLI_OK;
}

int cmd_version(const struct cli_args *a)
{
    (void)a;
    printf("%s\n", shm_channel_version_string());
    return CLI_OK;
}
