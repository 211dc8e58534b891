/* Broadcast interop participant, C side, over the public API (shm_channel_open_broadcast,
 * shm_channel_write, recv, peek/release, read_latest/peek_latest, sub_stat). The contract
 * (commands, options, messages, output) is shared with bcast_peer.py and the Rust bin
 * bcast_peer: tests/interop/README.md, "Broadcast channels".
 *
 *   bcast_peer publish   --name N --count C [--depth D=64] [--max-payload M=4096] [--type T]
 *                        [--seed S=1] [--wait-subs K] [--rate HZ] [--hang-at I] [--start I=0]
 *   bcast_peer subscribe --name N [--count C] [--type T] [--seed S=1] [--mode block|poll|latest]
 *                        [--zero-copy] [--start-after FILE] [--slow-us U] [--progress FILE]
 *                        [--expect-end EPIPE|EOWNERDEAD] [--timeout-s 60] [--depth D] [--max-payload M]
 *
 * A typed value is its wire bytes (spec/topics.md): C speaks the tag and the bytes. Message i is
 * number i + 1 on the topic; a subscriber knows a message's number from its own position
 * (shm_channel_sub_stat(-1).next_seq - 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "shm_channel.h"

static const char *const USAGE =
    "usage: bcast_peer publish --name N --count C [--depth D] [--max-payload M] [--type T]\n"
    "                  [--seed S] [--wait-subs K] [--rate HZ] [--hang-at I] [--start I]\n"
    "       bcast_peer subscribe --name N [--count C] [--type T] [--seed S]\n"
    "                  [--mode block|poll|latest] [--zero-copy] [--start-after FILE] [--slow-us U]\n"
    "                  [--progress FILE] [--expect-end EPIPE|EOWNERDEAD] [--timeout-s S]\n"
    "                  [--depth D] [--max-payload M]\n"
    "       types: bytes str f64 i64 bool struct:<3d ndarray:|u1:4x8x3\n";

static void usage(const char *msg)
{
    fprintf(stderr, "bcast_peer: %s\n%s", msg, USAGE);
    exit(2);
}

/* ---- messages --------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t crc32(const uint8_t *p, uint64_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (uint64_t k = 0; k < n; k++) {
        crc ^= p[k];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    }
    return ~crc;
}

enum kind { K_BYTES, K_STR, K_F64, K_I64, K_BOOL, K_STRUCT3D, K_FRAME };
static const char *const TAGS[] = {"bytes", "str", "f64", "i64", "bool", "struct:<3d",
                                   "ndarray:|u1:4x8x3"};

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); } /* little-endian host */
static void putd(uint8_t *p, double v) { memcpy(p, &v, 8); }

/* The wire bytes of message i into out (room for max_payload); returns the length. */
static uint64_t expected(enum kind k, uint64_t seed, uint64_t max_payload, uint64_t i, uint8_t *out)
{
    switch (k) {
    case K_BYTES: {
        uint64_t h = splitmix64(seed ^ i), n = h % (max_payload - 16 + 1);
        for (uint64_t b = 0; b < n; b++)
            out[16 + b] = (uint8_t)(((h >> (8 * (b % 8))) ^ b) & 0xFF);
        uint32_t len32 = (uint32_t)n, c = crc32(out + 16, n);
        put64(out, i);
        memcpy(out + 8, &len32, 4);
        memcpy(out + 12, &c, 4);
        return 16 + n;
    }
    case K_STR:
        return (uint64_t)snprintf((char *)out, max_payload, "msg-%" PRIu64, i);
    case K_F64:
        putd(out, (double)i * 0.5);
        return 8;
    case K_I64:
        put64(out, i - (1ull << 40));
        return 8;
    case K_BOOL:
        out[0] = (uint8_t)(i & 1);
        return 1;
    case K_STRUCT3D:
        putd(out, (double)i);
        putd(out + 8, 2.0 * (double)i);
        putd(out + 16, -(double)i);
        return 24;
    case K_FRAME:
        for (uint64_t b = 0; b < 96; b++)
            out[b] = (uint8_t)((i + b) & 0xFF);
        return 96;
    }
    return 0;
}

/* ---- options ---------------------------------------------------------------------------- */

struct opts {
    int publish;
    const char *name;
    int has_count;
    uint64_t count, depth, max_payload, seed, wait_subs, start, slow_us;
    int has_hang;
    uint64_t hang_at;
    double rate, timeout_s;
    enum kind kind;
    const char *mode, *start_after, *progress, *expect_end;
    int zero_copy;
};

static uint64_t num(const char *opt, const char *v)
{
    if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 19) {
        char m[256];
        snprintf(m, sizeof m, "%s: %s", opt, v);
        usage(m);
    }
    return strtoull(v, NULL, 10);
}

static double real(const char *opt, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || !(d >= 0 && d < 1e12)) {
        char m[256];
        snprintf(m, sizeof m, "%s: %s", opt, v);
        usage(m);
    }
    return d;
}

static void parse(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->depth = 64;
    o->max_payload = 4096;
    o->seed = 1;
    o->timeout_s = 60;
    o->mode = "block";
    o->kind = K_BYTES;
    if (argc < 2)
        usage("no command");
    if (!strcmp(argv[1], "publish"))
        o->publish = 1;
    else if (strcmp(argv[1], "subscribe"))
        usage("the command is publish or subscribe");
    for (int k = 2; k < argc; k++) {
        const char *a = argv[k];
        if (!o->publish && !strcmp(a, "--zero-copy")) {
            o->zero_copy = 1;
            continue;
        }
        if (k + 1 >= argc || !strncmp(argv[k + 1], "--", 2)) {
            char m[256];
            snprintf(m, sizeof m, "option without a value: %s", a);
            usage(m);
        }
        const char *v = argv[++k];
        if (!strcmp(a, "--name"))
            o->name = v;
        else if (!strcmp(a, "--count"))
            o->count = num(a, v), o->has_count = 1;
        else if (!strcmp(a, "--depth"))
            o->depth = num(a, v);
        else if (!strcmp(a, "--max-payload"))
            o->max_payload = num(a, v);
        else if (!strcmp(a, "--seed"))
            o->seed = num(a, v);
        else if (!strcmp(a, "--type")) {
            size_t t = 0;
            while (t < sizeof TAGS / sizeof *TAGS && strcmp(TAGS[t], v))
                t++;
            if (t == sizeof TAGS / sizeof *TAGS)
                usage("unknown --type");
            o->kind = (enum kind)t;
        } else if (o->publish && !strcmp(a, "--wait-subs"))
            o->wait_subs = num(a, v);
        else if (o->publish && !strcmp(a, "--rate"))
            o->rate = real(a, v);
        else if (o->publish && !strcmp(a, "--hang-at"))
            o->hang_at = num(a, v), o->has_hang = 1;
        else if (o->publish && !strcmp(a, "--start"))
            o->start = num(a, v);
        else if (!o->publish && !strcmp(a, "--mode")) {
            if (strcmp(v, "block") && strcmp(v, "poll") && strcmp(v, "latest"))
                usage("--mode is block, poll or latest");
            o->mode = v;
        } else if (!o->publish && !strcmp(a, "--start-after"))
            o->start_after = v;
        else if (!o->publish && !strcmp(a, "--slow-us"))
            o->slow_us = num(a, v);
        else if (!o->publish && !strcmp(a, "--progress"))
            o->progress = v;
        else if (!o->publish && !strcmp(a, "--expect-end")) {
            if (strcmp(v, "EPIPE") && strcmp(v, "EOWNERDEAD"))
                usage("--expect-end is EPIPE or EOWNERDEAD");
            o->expect_end = v;
        } else if (!o->publish && !strcmp(a, "--timeout-s")) {
            o->timeout_s = real(a, v);
            if (o->timeout_s <= 0)
                usage("--timeout-s must be positive");
        } else {
            char m[256];
            snprintf(m, sizeof m, "unknown option: %s", a);
            usage(m);
        }
    }
    if (!o->name)
        usage("--name is required");
    if (o->publish && !o->has_count)
        usage("publish needs --count");
    if (o->depth < 2 || o->depth > (1u << 24))
        usage("--depth is 2 to 2^24");
    if (o->max_payload < 16 || o->max_payload > (1ull << 31))
        usage("--max-payload is 16 to 2^31");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static const char *errname(int rc)
{
    switch (-rc) {
    case EPIPE: return "EPIPE";
    case EOWNERDEAD: return "EOWNERDEAD";
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EBADMSG: return "EBADMSG";
    case EMEDIUMTYPE: return "EMEDIUMTYPE";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case ESTALE: return "ESTALE";
    default: return "E?";
    }
}

static int open_topic(const struct opts *o, uint32_t role, shm_channel_t **ch)
{
    shm_channel_broadcast_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_payload = o->max_payload;
    cfg.depth = (uint32_t)o->depth;
    cfg.type_tag = TAGS[o->kind];
    return shm_channel_open_broadcast(ch, o->name, role, SHM_CHANNEL_CREATE, &cfg, 0600);
}

/* ---- publish ---------------------------------------------------------------------------- */

static int publisher_result(uint64_t published, const char *error)
{
    if (error)
        printf("{\"lang\":\"c\",\"role\":\"publisher\",\"published\":%" PRIu64
               ",\"ok\":false,\"error\":\"%s\"}\n", published, error);
    else
        printf("{\"lang\":\"c\",\"role\":\"publisher\",\"published\":%" PRIu64 ",\"ok\":true}\n",
               published);
    fflush(stdout);
    return error ? 1 : 0;
}

static int publish(const struct opts *o)
{
    shm_channel_t *ch;
    char err[256];
    int rc = open_topic(o, SHM_CHANNEL_PUBLISHER, &ch);
    if (rc) {
        snprintf(err, sizeof err, "open: %s (%s)", shm_channel_strerror(rc), errname(rc));
        return publisher_result(0, err);
    }
    if (o->wait_subs) {
        double until = now_s() + 60;
        for (;;) {
            shm_channel_broadcast_stat_t st;
            rc = shm_channel_broadcast_stat(ch, &st);
            if (rc)
                return publisher_result(0, "broadcast_stat failed");
            if (st.subscribers >= o->wait_subs)
                break;
            if (now_s() > until)
                return publisher_result(0, "the subscribers never came");
            sleep_s(0.001);
        }
    }
    uint8_t *buf = malloc(o->max_payload + 1);
    if (!buf)
        return publisher_result(0, "out of memory");
    double t0 = now_s();
    uint64_t published = 0;
    for (uint64_t i = o->start; i < o->start + o->count; i++) {
        if (o->has_hang && i == o->hang_at)
            for (;;)
                sleep_s(3600); /* until the harness's SIGKILL */
        if (o->rate > 0) {
            double due = t0 + (double)published / o->rate, now = now_s();
            if (due > now)
                sleep_s(due - now);
        }
        uint64_t n = expected(o->kind, o->seed, o->max_payload, i, buf);
        rc = shm_channel_write(ch, buf, n, 0);
        if (rc) {
            snprintf(err, sizeof err, "publish %" PRIu64 ": %s", i, errname(rc));
            free(buf);
            return publisher_result(published, err);
        }
        published++;
    }
    free(buf);
    shm_channel_close(ch); /* end-of-stream */
    return publisher_result(published, NULL);
}

/* ---- subscribe -------------------------------------------------------------------------- */

struct tally {
    const struct opts *o;
    uint64_t delivered, missed, first, last;
    int has_last;
    char error[512];
    int progress_fd;
    uint8_t *want;
};

static void fail(struct tally *t, const char *msg)
{
    if (!t->error[0])
        snprintf(t->error, sizeof t->error, "%s", msg);
}

static void message(struct tally *t, const uint8_t *p, uint64_t n, uint64_t missed, uint64_t seq)
{
    char m[256];
    uint64_t i = seq - 1;
    uint64_t wn = expected(t->o->kind, t->o->seed, t->o->max_payload, i, t->want);
    if (n != wn || memcmp(p, t->want, n) != 0) {
        snprintf(m, sizeof m, "message %" PRIu64 ": content differs (%" PRIu64
                 " bytes, expected %" PRIu64 ")", i, n, wn);
        fail(t, m);
    }
    if (t->has_last) {
        if (i <= t->last) {
            snprintf(m, sizeof m, "message %" PRIu64 " after %" PRIu64 ": not increasing", i,
                     t->last);
            fail(t, m);
        } else if (i - t->last - 1 != missed) {
            snprintf(m, sizeof m, "message %" PRIu64 " after %" PRIu64 ": reported %" PRIu64
                     " missed, the gap is %" PRIu64, i, t->last, missed, i - t->last - 1);
            fail(t, m);
        }
    } else {
        t->first = i;
    }
    t->last = i;
    t->has_last = 1;
    t->delivered++;
    t->missed += missed;
    if (t->progress_fd >= 0) {
        uint64_t w[3] = {t->delivered, t->last + 1, t->missed};
        if (pwrite(t->progress_fd, w, sizeof w, 0) != (ssize_t)sizeof w)
            fail(t, "progress write");
    }
}

static void skipped(struct tally *t, uint64_t n)
{
    t->missed += n;
    if (t->has_last)
        t->last += n;
}

static uint64_t next_seq(shm_channel_t *ch, uint64_t *last_missed)
{
    shm_channel_sub_stat_t st;
    if (shm_channel_sub_stat(ch, -1, &st))
        return 0;
    if (last_missed)
        *last_missed = st.last_missed;
    return st.next_seq;
}

static int done(const struct tally *t) { return t->o->has_count && t->delivered >= t->o->count; }

static const char *read_next(shm_channel_t *ch, struct tally *t, uint8_t *buf, double deadline)
{
    const struct opts *o = t->o;
    int poll = !strcmp(o->mode, "poll");
    char m[256];
    for (;;) {
        if (done(t))
            return "count";
        double left = deadline - now_s();
        if (left <= 0) {
            fail(t, "timed out");
            return "timeout";
        }
        int64_t ns = poll ? 0 : (int64_t)(left * 1e9);
        uint64_t len = 0, missed = 0;
        int rc;
        if (o->zero_copy) {
            const void *ptr;
            rc = shm_channel_peek(ch, &ptr, &len, ns);
            if (rc == 0) {
                next_seq(ch, &missed);
                memcpy(buf, ptr, len); /* checked after the release's verdict */
                rc = shm_channel_release(ch);
                if (rc == -ESTALE) {
                    skipped(t, missed + 1); /* the skip before it, and itself */
                    continue;
                }
            }
        } else {
            rc = shm_channel_recv(ch, buf, o->max_payload, &len, &missed, ns);
        }
        if (rc == -EAGAIN || rc == -ETIMEDOUT)
            continue;
        if (rc == -EPIPE || rc == -EOWNERDEAD)
            return errname(rc);
        if (rc) {
            snprintf(m, sizeof m, "read: %s (%s)", shm_channel_strerror(rc), errname(rc));
            fail(t, m);
            return "error";
        }
        message(t, buf, len, missed, next_seq(ch, NULL) - 1);
        if (o->slow_us)
            sleep_s((double)o->slow_us / 1e6);
    }
}

static const char *read_latest(shm_channel_t *ch, struct tally *t, uint8_t *buf, uint8_t *cur,
                               double deadline)
{
    const struct opts *o = t->o;
    const char *ending = NULL;
    uint64_t cur_len = UINT64_MAX;
    char m[256];
    for (;;) {
        if (done(t))
            return "count";
        if (now_s() > deadline) {
            fail(t, "timed out");
            return "timeout";
        }
        uint64_t len = 0, missed = 0;
        int32_t is_new = 0;
        int rc, fresh = 0;
        if (o->zero_copy) {
            const void *ptr;
            rc = shm_channel_peek_latest(ch, &ptr, &len, &is_new, &missed);
            if (rc == 0) {
                memcpy(buf, ptr, len);
                rc = shm_channel_release(ch);
                if (rc == -ESTALE) {
                    if (is_new)
                        skipped(t, missed + 1);
                    continue;
                }
            }
        } else {
            rc = shm_channel_read_latest(ch, buf, o->max_payload, &len, &is_new, &missed);
        }
        if (rc == 0 && is_new) {
            message(t, buf, len, missed, next_seq(ch, NULL) - 1);
            memcpy(cur, buf, len);
            cur_len = len;
            fresh = 1;
            if (o->slow_us)
                sleep_s((double)o->slow_us / 1e6);
        } else if (rc == 0) {
            if (missed)
                fail(t, "a value that is not new reports missed messages");
            if (len != cur_len || memcmp(buf, cur, len) != 0)
                fail(t, "a value that is not new differs from the last new one");
        } else if (rc != -EAGAIN) {
            snprintf(m, sizeof m, "latest: %s (%s)", shm_channel_strerror(rc), errname(rc));
            fail(t, m);
            return "error";
        }
        if (fresh) {
            ending = NULL;
            continue;
        }
        if (ending)
            return ending; /* the publisher was seen gone, and nothing was new after that */
        shm_channel_stat_t st;
        if (shm_channel_stat(ch, &st)) {
            fail(t, "stat failed");
            return "error";
        }
        if (st.producer_state == SHM_CHANNEL_PEER_CLOSED)
            ending = "EPIPE"; /* one more look for a last value first */
        else if (st.producer_state == SHM_CHANNEL_PEER_ATTACHED && !st.producer_alive)
            ending = "EOWNERDEAD";
        else
            sleep_s(50e-6);
    }
}

static int subscribe(const struct opts *o)
{
    struct tally t;
    memset(&t, 0, sizeof t);
    t.o = o;
    t.progress_fd = -1;
    const char *end = "error";
    int have_total = 0;
    uint64_t missed_total = 0;
    uint8_t *buf = malloc(o->max_payload + 1), *cur = malloc(o->max_payload + 1);
    t.want = malloc(o->max_payload + 1);
    if (!buf || !cur || !t.want) {
        fprintf(stderr, "bcast_peer: out of memory\n");
        return 2;
    }
    if (o->progress) {
        t.progress_fd = open(o->progress, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (t.progress_fd < 0)
            usage("cannot open the progress file");
    }
    shm_channel_t *ch;
    int rc = open_topic(o, SHM_CHANNEL_SUBSCRIBER, &ch);
    if (rc) {
        char m[256];
        snprintf(m, sizeof m, "open: %s (%s)", shm_channel_strerror(rc), errname(rc));
        fail(&t, m);
    } else {
        double deadline = now_s() + o->timeout_s;
        if (o->start_after)
            while (access(o->start_after, F_OK) != 0) {
                if (now_s() > deadline) {
                    fail(&t, "the --start-after file never appeared");
                    break;
                }
                sleep_s(0.001);
            }
        if (!t.error[0])
            end = !strcmp(o->mode, "latest") ? read_latest(ch, &t, buf, cur, deadline)
                                             : read_next(ch, &t, buf, deadline);
        shm_channel_sub_stat_t st;
        if (shm_channel_sub_stat(ch, -1, &st) == 0) {
            have_total = 1;
            missed_total = st.missed;
            if (st.delivered != t.delivered || st.missed != t.missed) {
                char m[256];
                snprintf(m, sizeof m, "the handle counts %" PRIu64 " delivered and %" PRIu64
                         " missed, the peer %" PRIu64 " and %" PRIu64, st.delivered, st.missed,
                         t.delivered, t.missed);
                fail(&t, m);
            }
        }
        shm_channel_close(ch);
    }
    if (!t.error[0] && o->expect_end && strcmp(end, o->expect_end)) {
        char m[256];
        snprintf(m, sizeof m, "ended with %s, expected %s", end, o->expect_end);
        fail(&t, m);
    }
    char first[32] = "null", last[32] = "null", total[32] = "null";
    if (t.has_last) {
        snprintf(first, sizeof first, "%" PRIu64, t.first);
        snprintf(last, sizeof last, "%" PRIu64, t.last);
    }
    if (have_total)
        snprintf(total, sizeof total, "%" PRIu64, missed_total);
    printf("{\"lang\":\"c\",\"role\":\"subscriber\",\"delivered\":%" PRIu64 ",\"missed\":%" PRIu64
           ",\"first\":%s,\"last\":%s,\"end\":\"%s\",\"missed_total\":%s,\"ok\":%s,"
           "\"error\":\"%s\"}\n", t.delivered, t.missed, first, last, end, total,
           t.error[0] ? "false" : "true", t.error);
    fflush(stdout);
    free(buf);
    free(cur);
    free(t.want);
    return t.error[0] ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    return o.publish ? publish(&o) : subscribe(&o);
}
