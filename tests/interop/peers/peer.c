/* Interop participant, C side. The contract (commands, options, message definition, output)
 * is in tests/interop/README.md; peer.py and peers/rust implement the same one. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include "peer_common.h"
#include "shm_channel.h"

/* ---- message definition (README.md, "Messages") --------------------------------------- */

#define POOL_SPAN 65536u

struct gen {
    uint64_t seed, max_size, fixed; /* fixed: UINT64_MAX when sizes are random */
    uint8_t *pool;
    uint64_t pool_len;
};

static uint64_t msg_hash(const struct gen *g, uint64_t i) { return mix(g->seed + (i + 1) * GOLDEN); }

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static uint64_t msg_size(const struct gen *g, uint64_t i)
{
    if (g->fixed != UINT64_MAX)
        return g->fixed;
    uint64_t h = msg_hash(g, i), sel = h & 63;
    if (sel == 0)
        return 0;
    if (sel == 1)
        return g->max_size;
    if (sel < 24)
        return (h >> 8) % (min_u64(g->max_size, 64) + 1);
    return (h >> 8) % (min_u64(g->max_size, 2048) + 1);
}

static void gen_init(struct gen *g, uint64_t seed, uint64_t max_size, uint64_t fixed)
{
    g->seed = seed;
    g->max_size = max_size;
    g->fixed = fixed;
    uint64_t biggest = fixed != UINT64_MAX ? fixed : max_size;
    g->pool_len = (POOL_SPAN + biggest + 8) & ~7ull;
    g->pool = malloc(g->pool_len);
    if (!g->pool) {
        fprintf(stderr, "peer: out of memory\n");
        exit(2);
    }
    uint64_t ps = seed ^ POOL_SEED_XOR;
    for (uint64_t k = 0; k < g->pool_len / 8; k++) {
        uint64_t w = mix(ps + (k + 1) * GOLDEN);
        memcpy(g->pool + 8 * k, &w, 8); /* little-endian host (the library requires it) */
    }
}

/* Write message i (size n = msg_size(i)) into dst. */
static void fill(const struct gen *g, uint64_t i, uint8_t *dst, uint64_t n)
{
    const uint8_t *pool = g->pool + (msg_hash(g, i) >> 48);
    uint8_t head[12];
    memcpy(head, &i, 8);
    memcpy(head + 8, pool, 4);
    if (n < 12) {
        memcpy(dst, head, n);
        return;
    }
    memcpy(dst, &i, 8);
    memcpy(dst + 8, pool, n - 12);
    uint32_t sum = adler32(dst, n - 4);
    memcpy(dst + n - 4, &sum, 4);
}

/* 0 if p/n is message i; else a description in err. */
static int check(const struct gen *g, uint64_t i, const uint8_t *p, uint64_t n, char *err,
                 size_t errlen)
{
    uint64_t want = msg_size(g, i);
    const uint8_t *pool = g->pool + (msg_hash(g, i) >> 48);
    uint64_t seq = 0;
    memcpy(&seq, p, n < 8 ? n : 8);
    if (n != want) {
        snprintf(err, errlen, "message %" PRIu64 ": size %" PRIu64 ", expected %" PRIu64
                 " (its first bytes read as seq %" PRIu64 ")", i, n, want, seq);
        return -1;
    }
    if (n < 12) {
        uint8_t head[12];
        memcpy(head, &i, 8);
        memcpy(head + 8, pool, 4);
        if (memcmp(p, head, n) != 0) {
            snprintf(err, errlen, "message %" PRIu64 " (%" PRIu64 " bytes): content differs", i, n);
            return -1;
        }
        return 0;
    }
    if (seq != i) {
        snprintf(err, errlen, "message %" PRIu64 ": carries sequence number %" PRIu64, i, seq);
        return -1;
    }
    uint32_t sum;
    memcpy(&sum, p + n - 4, 4);
    if (adler32(p, n - 4) != sum) {
        snprintf(err, errlen, "message %" PRIu64 " (%" PRIu64 " bytes): checksum mismatch", i, n);
        return -1;
    }
    if (memcmp(p + 8, pool, n - 12) != 0) {
        snprintf(err, errlen, "message %" PRIu64 " (%" PRIu64 " bytes): content differs", i, n);
        return -1;
    }
    return 0;
}

/* ---- options ------------------------------------------------------------------------ */

struct opts {
    const char *cmd, *name, *progress, *end;
    uint64_t capacity, seed, start, max_size, fixed, hang_at, pause_at, pos;
    int64_t count;
    double deadline;
    int poll, zero_copy;
};

static void usage(const char *msg)
{
    fprintf(stderr, "peer: %s\nusage: peer info|produce|consume|stat|locate|vector [options] "
                    "(see tests/interop/README.md)\n", msg);
    exit(2);
}

static void usage2(const char *what, const char *v)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", what, v);
    usage(msg);
}

/* A whole unsigned decimal number, or usage. */
static uint64_t num(const char *opt, const char *v)
{
    if (!*v || strspn(v, "0123456789") != strlen(v))
        usage2(opt, v);
    errno = 0;
    uint64_t x = strtoull(v, NULL, 10);
    if (errno)
        usage2(opt, v);
    return x;
}

/* Every argument is checked before anything is opened or created (README: "Bad arguments"). */
static void parse(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->capacity = 65536;
    o->seed = 1;
    o->count = -1;
    o->max_size = UINT64_MAX;
    o->fixed = UINT64_MAX;
    o->hang_at = UINT64_MAX;
    o->pause_at = UINT64_MAX;
    o->pos = UINT64_MAX;
    o->deadline = 120;
    o->end = "EPIPE";
    if (argc < 2)
        usage("no command");
    o->cmd = argv[1];
    static const char *const cmds[] = {"info", "produce", "consume", "stat", "locate", "vector"};
    int known = 0;
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
        known |= !strcmp(o->cmd, cmds[k]);
    if (!known)
        usage2("unknown command", o->cmd);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--zero-copy")) {
            o->zero_copy = 1;
            continue;
        }
        /* A missing value: the next word is another option. */
        if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))
            usage2("option without a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--name")) o->name = v;
        else if (!strcmp(a, "--capacity")) o->capacity = num(a, v);
        else if (!strcmp(a, "--seed")) o->seed = num(a, v);
        else if (!strcmp(a, "--count")) {
            uint64_t c = num(a, v);
            if (c > INT64_MAX)
                usage2(a, v);
            o->count = (int64_t)c;
        }
        else if (!strcmp(a, "--start")) o->start = num(a, v);
        else if (!strcmp(a, "--max-size")) o->max_size = num(a, v);
        else if (!strcmp(a, "--fixed-size")) o->fixed = num(a, v);
        else if (!strcmp(a, "--hang-at")) o->hang_at = num(a, v);
        else if (!strcmp(a, "--pause-at")) o->pause_at = num(a, v);
        else if (!strcmp(a, "--pos")) o->pos = num(a, v);
        else if (!strcmp(a, "--progress")) o->progress = v;
        else if (!strcmp(a, "--end")) {
            if (strcmp(v, "EPIPE") && strcmp(v, "EOWNERDEAD"))
                usage("--end is EPIPE or EOWNERDEAD");
            o->end = v;
        } else if (!strcmp(a, "--deadline")) {
            char *end;
            o->deadline = strtod(v, &end);
            if (*end || !(o->deadline > 0 && o->deadline < 1e9))
                usage2(a, v);
        } else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "poll")) o->poll = 1;
            else if (strcmp(v, "block")) usage("--mode is block or poll");
        } else
            usage2("unknown option", a);
    }
    if (o->capacity < SHM_CHANNEL_MIN_CAPACITY || o->capacity > SHM_CHANNEL_MAX_CAPACITY ||
        (o->capacity & (o->capacity - 1)))
        usage("--capacity is a power of two from SHM_CHANNEL_MIN_CAPACITY to _MAX_CAPACITY");
    uint64_t max = o->capacity / 2 - 8;
    if (o->max_size == UINT64_MAX)
        o->max_size = max;
    if (o->max_size > max || (o->fixed != UINT64_MAX && o->fixed > max))
        usage("--max-size and --fixed-size are at most capacity/2 - 8");
    int named = strcmp(o->cmd, "info") && strcmp(o->cmd, "locate");
    if (named && !o->name)
        usage("--name is required");
    if (!strcmp(o->cmd, "produce") && o->count < 0)
        usage("produce needs --count");
    if (!strcmp(o->cmd, "locate") && o->pos == UINT64_MAX)
        usage("locate needs --pos");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *err_name(int rc)
{
    switch (-rc) {
    case 0: return "OK";
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EPIPE: return "EPIPE";
    case EOWNERDEAD: return "EOWNERDEAD";
    case EBADMSG: return "EBADMSG";
    case EPROTO: return "EPROTO";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EPROTOTYPE: return "EPROTOTYPE";
    case EMSGSIZE: return "EMSGSIZE";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case EBUSY: return "EBUSY";
    case EACCES: return "EACCES";
    case EINTR: return "EINTR";
    default: return "E?";
    }
}

/* ---- progress file: u64 done, u64 hang (seq + 1 or 0), u64 owner_dead ------------------- */

static int progress_fd = -1;

static void progress(uint64_t done, uint64_t hang, uint64_t owner_dead)
{
    if (progress_fd < 0)
        return;
    uint64_t w[3] = {done, hang, owner_dead};
    if (pwrite(progress_fd, w, sizeof w, 0) != (ssize_t)sizeof w) {
        perror("peer: progress");
        exit(2);
    }
}

static void progress_open(const char *path)
{
    if (!path)
        return;
    progress_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (progress_fd < 0) {
        perror("peer: progress file");
        exit(2);
    }
}

static void hang_forever(void)
{
    for (;;)
        pause(); /* until the runner's SIGKILL */
}

/* ---- commands ----------------------------------------------------------------------- */

static shm_channel_t *open_role(const struct opts *o, uint32_t role)
{
    if (!o->name)
        usage("--name is required");
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, o->name, role, SHM_CHANNEL_CREATE, o->capacity, 0600);
    if (rc) {
        printf("{\"lang\":\"c\",\"ok\":false,\"errors\":[\"open: %s\"]}\n", shm_channel_strerror(rc));
        exit(2);
    }
    return ch;
}

static void print_result(const char *role, int ok, uint64_t count, uint64_t first, uint64_t next,
                         uint64_t bytes, double secs, const char *end, uint64_t owner_dead,
                         uint64_t end_pos, const char *error)
{
    printf("{\"lang\":\"c\",\"role\":\"%s\",\"ok\":%s,\"count\":%" PRIu64 ",\"first\":%" PRIu64
           ",\"next\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"secs\":%.6f,\"msgs_per_s\":%.1f,"
           "\"mb_per_s\":%.1f,\"end\":\"%s\",\"owner_dead\":%" PRIu64 ",\"end_pos\":%" PRIu64
           ",\"dups\":0,\"errors\":[",
           role, ok ? "true" : "false", count, first, next, bytes, secs,
           secs > 0 ? (double)count / secs : 0.0, secs > 0 ? (double)bytes / secs / 1e6 : 0.0,
           end, owner_dead, end_pos);
    if (error) {
        putchar('"');
        for (const char *c = error; *c; c++)
            if (*c != '"' && *c != '\\')
                putchar(*c);
        putchar('"');
    }
    printf("]}\n");
    fflush(stdout);
}

/* One attempt's timeout: 0 when polling, else a slice of the time left. */
static int64_t slice_ns(const struct opts *o, double deadline)
{
    if (o->poll)
        return 0;
    double left = deadline - now_s();
    if (left <= 0)
        return 0;
    return left > 1.0 ? 1000000000LL : (int64_t)(left * 1e9);
}

static int cmd_produce(const struct opts *o)
{
    shm_channel_t *ch = open_role(o, SHM_CHANNEL_PRODUCER);
    struct gen g;
    gen_init(&g, o->seed, o->max_size, o->fixed);
    progress_open(o->progress);
    uint8_t *buf = malloc(g.pool_len);
    double t0 = now_s(), deadline = t0 + o->deadline;
    uint64_t bytes = 0, owner_dead = 0, i = o->start;
    const char *error = NULL;
    char errbuf[256];
    int rc = 0;
    while (i < (uint64_t)o->count) {
        if (i == o->pause_at)
            hang_forever(); /* everything before message i is published */
        uint64_t n = msg_size(&g, i);
        if (o->zero_copy || i == o->hang_at) {
            void *p;
            rc = shm_channel_reserve(ch, n, &p, slice_ns(o, deadline));
            if (rc == 0) {
                if (i == o->hang_at) {
                    /* Half a message in the ring, never committed: no consumer may see it. */
                    fill(&g, i, p, n / 2);
                    progress(i, i + 1, owner_dead);
                    hang_forever();
                }
                fill(&g, i, p, n);
                rc = shm_channel_commit(ch, n);
            }
        } else {
            fill(&g, i, buf, n);
            rc = shm_channel_write(ch, buf, n, slice_ns(o, deadline));
        }
        if (rc == 0) {
            bytes += n;
            i++;
            progress(i, 0, owner_dead);
            continue;
        }
        if (rc == -EOWNERDEAD) {
            owner_dead++; /* ring full and no consumer: messages wait for the next one */
            usleep(1000);
        } else if (rc == -EAGAIN || rc == -ETIMEDOUT) {
            if (o->poll)
                sched_yield();
        } else {
            snprintf(errbuf, sizeof errbuf, "message %" PRIu64 ": %s", i, shm_channel_strerror(rc));
            error = errbuf;
            break;
        }
        if (now_s() > deadline) {
            error = "deadline passed";
            break;
        }
    }
    double secs = now_s() - t0;
    shm_channel_stat_t st;
    shm_channel_stat(ch, &st);
    shm_channel_close(ch);
    print_result("produce", !error, i - o->start, o->start, i, bytes, secs, error ? err_name(rc) : "CLOSED",
                 owner_dead, st.write_pos, error);
    return error ? (rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EOWNERDEAD ? 3 : 1) : 0;
}

static int cmd_consume(const struct opts *o)
{
    shm_channel_t *ch = open_role(o, SHM_CHANNEL_CONSUMER);
    int end_owner_dead = !strcmp(o->end, "EOWNERDEAD");
    struct gen g;
    gen_init(&g, o->seed, o->max_size, o->fixed);
    progress_open(o->progress);
    uint64_t cap = g.pool_len;
    uint8_t *buf = malloc(cap);
    double t0 = now_s(), deadline = t0 + o->deadline, tfirst = 0, tlast = 0;
    uint64_t bytes = 0, owner_dead = 0, next = o->start;
    const char *error = NULL, *end = "NONE";
    char errbuf[512];
    int rc;
    progress(next, 0, 0);
    for (;;) {
        const void *p;
        uint64_t n;
        if (next == o->pause_at)
            hang_forever(); /* everything before message next is released */
        if (o->zero_copy || next == o->hang_at) {
            rc = shm_channel_peek(ch, &p, &n, slice_ns(o, deadline));
        } else {
            rc = shm_channel_read(ch, buf, cap, &n, slice_ns(o, deadline));
            p = buf;
        }
        if (rc == 0) {
            if (next == o->start)
                tfirst = now_s();
            if (o->count >= 0 && next >= (uint64_t)o->count) {
                snprintf(errbuf, sizeof errbuf, "message %" PRIu64 " beyond --count", next);
                error = errbuf;
                break;
            }
            if (check(&g, next, p, n, errbuf, sizeof errbuf) != 0) {
                char dup[64];
                if (next > 0 && check(&g, next - 1, p, n, dup, sizeof dup) == 0)
                    snprintf(errbuf, sizeof errbuf, "duplicate of message %" PRIu64, next - 1);
                error = errbuf;
                break;
            }
            if (next == o->hang_at) {
                progress(next, next + 1, owner_dead); /* seen, verified, not released */
                hang_forever();
            }
            if (o->zero_copy && (rc = shm_channel_release(ch)) != 0) {
                snprintf(errbuf, sizeof errbuf, "release: %s", shm_channel_strerror(rc));
                error = errbuf;
                break;
            }
            bytes += n;
            next++;
            progress(next, 0, owner_dead);
            continue;
        }
        if (rc == -EPIPE || (rc == -EOWNERDEAD && end_owner_dead)) {
            end = err_name(rc);
            tlast = now_s();
            break;
        }
        if (rc == -EOWNERDEAD) {
            owner_dead++; /* a new producer may take over: keep reading */
            progress(next, 0, owner_dead);
            usleep(2000);
        } else if (rc == -EAGAIN || rc == -ETIMEDOUT) {
            if (o->poll)
                sched_yield();
        } else {
            snprintf(errbuf, sizeof errbuf, "message %" PRIu64 ": %s (%s)", next, err_name(rc),
                     shm_channel_strerror(rc));
            error = errbuf;
            break;
        }
        if (now_s() > deadline) {
            snprintf(errbuf, sizeof errbuf, "deadline passed after message %" PRIu64, next);
            error = errbuf;
            rc = -ETIMEDOUT;
            break;
        }
    }
    if (!error && o->count >= 0 && next != (uint64_t)o->count) {
        snprintf(errbuf, sizeof errbuf, "stream ended (%s) after %" PRIu64 " messages, expected %" PRId64,
                 end, next, o->count);
        error = errbuf;
    }
    shm_channel_stat_t st;
    shm_channel_stat(ch, &st);
    shm_channel_close(ch);
    double secs = tfirst > 0 ? (tlast > 0 ? tlast : now_s()) - tfirst : 0;
    print_result("consume", !error, next - o->start, o->start, next, bytes, secs, end, owner_dead,
                 st.read_pos, error);
    return error ? (rc == -ETIMEDOUT ? 3 : 1) : 0;
}

static int cmd_stat(const struct opts *o)
{
    if (!o->name)
        usage("--name is required");
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, o->name, SHM_CHANNEL_OBSERVER, 0, 0, 0);
    if (rc) {
        printf("{\"error\":\"%s\"}\n", err_name(rc));
        return 2;
    }
    shm_channel_stat_t s;
    shm_channel_stat(ch, &s);
    shm_channel_close(ch);
    printf("{\"capacity\":%" PRIu64 ",\"write_pos\":%" PRIu64 ",\"read_pos\":%" PRIu64
           ",\"msgs_written\":%" PRIu64 ",\"msgs_read\":%" PRIu64 ",\"producer_state\":%u"
           ",\"consumer_state\":%u,\"producer_alive\":%d,\"consumer_alive\":%d,\"in_use\":%d"
           ",\"consumer_sleeps\":%" PRIu64 ",\"producer_sleeps\":%" PRIu64
           ",\"producer_epoch\":%u,\"consumer_epoch\":%u}\n",
           s.capacity, s.write_pos, s.read_pos, s.msgs_written, s.msgs_read, s.producer_state,
           s.consumer_state, s.producer_alive, s.consumer_alive, s.in_use, s.consumer_sleeps,
           s.producer_sleeps, s.producer_epoch, s.consumer_epoch);
    return 0;
}

/* The sequence number of the message whose record starts at byte position --pos of a stream
 * of these messages written from position 0 (spec section 4.2: padding when a record does not
 * fit before the end of the data area). "at": "end" if pos is right after message seq-1,
 * "after_padding" if it is right after the padding before message seq. */
static int cmd_locate(const struct opts *o)
{
    struct gen g;
    gen_init(&g, o->seed, o->max_size, o->fixed);
    uint64_t cap = o->capacity, pos = 0;
    for (uint64_t i = 0;; i++) {
        if (pos == o->pos) {
            printf("{\"seq\":%" PRIu64 ",\"at\":\"end\"}\n", i);
            return 0;
        }
        if (pos > o->pos)
            break;
        uint64_t n = msg_size(&g, i), total = 8 + ((n + 7) & ~7ull), off = pos & (cap - 1);
        if (total > cap - off) {
            pos += cap - off;
            if (pos == o->pos) {
                printf("{\"seq\":%" PRIu64 ",\"at\":\"after_padding\"}\n", i);
                return 0;
            }
        }
        pos += total;
    }
    printf("{\"error\":\"position %" PRIu64 " is not a record boundary\"}\n", o->pos);
    return 1;
}

/* Golden vector (spec/vectors/README.md): the runner has copied the image to --name with mode
 * 0600; open it as consumer (flags 0, capacity 0), read without waiting until an error, and
 * print the verdict in the .expect format. */
static int cmd_vector(const struct opts *o)
{
    if (!o->name)
        usage("--name is required");
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, o->name, SHM_CHANNEL_CONSUMER, 0, 0, 0600);
    if (rc) {
        printf("open %s\n", err_name(rc));
        return 0;
    }
    printf("open ok\n");
    uint64_t cap = shm_channel_max_payload(ch) + 1, n;
    uint8_t *buf = malloc(cap);
    for (int k = 0; k < 100000; k++) {
        if ((rc = shm_channel_read(ch, buf, cap, &n, 0)) != 0)
            break;
        printf("msg %s", n ? "" : "-"); /* "-" is the empty message */
        for (uint64_t j = 0; j < n; j++)
            printf("%02x", buf[j]);
        printf("\n");
    }
    printf("end %s\n", rc ? err_name(rc) : "LOOP");
    shm_channel_close(ch);
    free(buf);
    return 0;
}

/* The libshm_channel this process mapped, from /proc/self/maps. */
static int cmd_info(void)
{
    char line[4096], lib[4096] = "";
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *s = strchr(line, '/');
        if (s && strstr(s, "libshm_channel")) {
            s[strcspn(s, "\n")] = 0;
            snprintf(lib, sizeof lib, "%s", s);
            break;
        }
    }
    if (f)
        fclose(f);
    printf("{\"lang\":\"c\",\"version\":\"%s\",\"lib\":\"%s\"}\n", shm_channel_version_string(), lib);
    return 0;
}


int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(o.cmd, "produce")) return cmd_produce(&o);
    if (!strcmp(o.cmd, "consume")) return cmd_consume(&o);
    if (!strcmp(o.cmd, "stat")) return cmd_stat(&o);
    if (!strcmp(o.cmd, "locate")) return cmd_locate(&o);
    if (!strcmp(o.cmd, "info")) return cmd_info();
    if (!strcmp(o.cmd, "vector")) return cmd_vector(&o);
    usage("unknown command");
    return 2;
}
