/* Service interop participant, C side. The contract (commands, options, messages, output) is
 * in tests/interop/README.md, "Services"; svc_peer.py and peers/rust (bin svc_peer) implement
 * the same one. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peer_common.h"
#include "shm_channel.h"

/* ---- messages (README.md, "Services") --------------------------------------------------- */

#define CLIENT_G 0xD1B54A32D192ED03ull
#define HOLD 0xFFFFFFFFu
#define BYE 0xFFFFFFFEu
#define SLICE_NS 50000000ll

struct msgs {
    uint64_t seed, room;
    uint8_t *pool;
};

static void msgs_init(struct msgs *m, uint64_t seed, uint64_t max_size)
{
    m->seed = seed;
    m->room = max_size - 20;
    uint64_t len = (65536 + max_size + 8) & ~7ull;
    m->pool = malloc(len);
    if (!m->pool) {
        fprintf(stderr, "svc_peer: out of memory\n");
        exit(2);
    }
    for (uint64_t k = 0; k < len / 8; k++) {
        uint64_t w = mix((seed ^ POOL_SEED_XOR) + (k + 1) * GOLDEN);
        memcpy(m->pool + 8 * k, &w, 8); /* little-endian host */
    }
}

static uint64_t length_of(const struct msgs *m, uint64_t x)
{
    uint64_t sel = x & 63;
    if (sel == 0)
        return 0;
    if (sel == 1)
        return m->room;
    uint64_t top = sel < 48 ? 64 : 1024;
    return (x >> 8) % ((m->room < top ? m->room : top) + 1);
}

static uint64_t hash_of(const struct msgs *m, uint32_t c, uint64_t i)
{
    return mix(m->seed + ((uint64_t)c + 1) * CLIENT_G + (i + 1) * GOLDEN);
}

/* head | body | adler32: into dst (room for 20 + len bytes); returns the size. */
static uint64_t seal(uint8_t *dst, uint32_t c, uint32_t want, uint64_t i, const uint8_t *body,
                     uint64_t len)
{
    memcpy(dst, &c, 4);
    memcpy(dst + 4, &want, 4);
    memcpy(dst + 8, &i, 8);
    if (len)
        memcpy(dst + 16, body, len);
    uint32_t sum = adler32(dst, 16 + len);
    memcpy(dst + 16 + len, &sum, 4);
    return 20 + len;
}

static uint64_t make_request(const struct msgs *m, uint32_t c, uint64_t i, uint8_t *dst)
{
    uint64_t h = hash_of(m, c, i), h2 = mix(h);
    return seal(dst, c, (uint32_t)length_of(m, h2), i, m->pool + (h >> 48), length_of(m, h));
}

static uint64_t make_response(const struct msgs *m, uint32_t c, uint64_t i, uint8_t *dst)
{
    uint64_t h2 = mix(hash_of(m, c, i));
    uint64_t want = length_of(m, h2);
    return seal(dst, c, (uint32_t)want, i, m->pool + (h2 >> 48), want);
}

/* ---- options --------------------------------------------------------------------------- */

struct opts {
    int serve;
    const char *name, *progress;
    uint64_t seed, max_size, clients, expect, hang_after, id, count, start, hold_at;
    int zero_copy;
    double deadline;
};

static void usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "svc_peer: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: svc_peer serve|request --name N [options] "
                    "(see tests/interop/README.md, Services)\n");
    exit(2);
}

static uint64_t number(const char *opt, const char *v)
{
    if (!*v)
        usage("%s: empty", opt);
    uint64_t n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9' || n > (UINT64_MAX - 9) / 10)
            usage("bad number: %s", v);
        n = n * 10 + (uint64_t)(*p - '0');
    }
    return n;
}

static void parse(struct opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->max_size = 1024;
    o->clients = 64;
    o->expect = o->hang_after = o->id = o->count = o->hold_at = UINT64_MAX;
    o->deadline = 60;
    if (argc < 2)
        usage("%s", "no command");
    if (!strcmp(argv[1], "serve"))
        o->serve = 1;
    else if (strcmp(argv[1], "request"))
        usage("unknown command: %s", argv[1]);
    for (int k = 2; k < argc; k++) {
        const char *a = argv[k];
        if (!strcmp(a, "--zero-copy")) {
            o->zero_copy = 1;
            continue;
        }
        if (k + 1 >= argc || !strncmp(argv[k + 1], "--", 2))
            usage("option without a value: %s", a);
        const char *v = argv[++k];
        if (!strcmp(a, "--name"))
            o->name = v;
        else if (!strcmp(a, "--progress"))
            o->progress = v;
        else if (!strcmp(a, "--deadline")) {
            char *end;
            o->deadline = strtod(v, &end);
            if (*end || !(o->deadline > 0 && o->deadline < 1e9))
                usage("--deadline: %s", v);
        } else if (!strcmp(a, "--seed"))
            o->seed = number(a, v);
        else if (!strcmp(a, "--max-size"))
            o->max_size = number(a, v);
        else if (!strcmp(a, "--clients"))
            o->clients = number(a, v);
        else if (!strcmp(a, "--expect"))
            o->expect = number(a, v);
        else if (!strcmp(a, "--hang-after"))
            o->hang_after = number(a, v);
        else if (!strcmp(a, "--id"))
            o->id = number(a, v);
        else if (!strcmp(a, "--count"))
            o->count = number(a, v);
        else if (!strcmp(a, "--start"))
            o->start = number(a, v);
        else if (!strcmp(a, "--hold-at"))
            o->hold_at = number(a, v);
        else
            usage("unknown option: %s", a);
    }
    if (!o->name)
        usage("%s", "--name is required");
    if (o->max_size < 20 || o->max_size > 65536)
        usage("%s", "--max-size is 20..65536");
    if (o->clients < 1 || o->clients > 1024)
        usage("%s", "--clients is 1..1024");
    if (o->serve && o->expect == UINT64_MAX)
        usage("%s", "serve needs --expect");
    if (!o->serve && (o->id == UINT64_MAX || o->count == UINT64_MAX))
        usage("%s", "request needs --id and --count");
    if (!o->serve && o->id >= BYE)
        usage("%s", "--id is at most 2^32-2");
}

/* ---- helpers --------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int progress_fd = -1;

static void progress(uint64_t a, uint64_t b, uint64_t c)
{
    if (progress_fd < 0)
        return;
    uint64_t v[3] = {a, b, c};
    if (pwrite(progress_fd, v, sizeof v, 0) != (ssize_t)sizeof v)
        fprintf(stderr, "svc_peer: progress: %s\n", strerror(errno));
}

static char errors[512];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    if (errors[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errors, sizeof errors, fmt, ap);
    va_end(ap);
}

static const char *errname(int rc)
{
    switch (-rc) {
    case EOWNERDEAD: return "EOWNERDEAD";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EMSGSIZE: return "EMSGSIZE";
    case EBADMSG: return "EBADMSG";
    case EINVAL: return "EINVAL";
    case ESTALE: return "ESTALE";
    default: return "E?";
    }
}

static void errors_json(void)
{
    printf("\"errors\": [");
    if (errors[0]) {
        putchar('"');
        for (const char *p = errors; *p; p++)
            if (*p != '"' && *p != '\\')
                putchar(*p);
        putchar('"');
    }
    printf("]}\n");
}

static int64_t left_ns(double end)
{
    double left = end - now_s();
    return left <= 0 ? 0 : (int64_t)(left * 1e9);
}

/* ---- server ---------------------------------------------------------------------------- */

static int serve(const struct opts *o)
{
    struct msgs m;
    msgs_init(&m, o->seed, o->max_size);
    shm_channel_service_config_t cfg = {.max_request = o->max_size,
                                        .max_response = o->max_size,
                                        .max_clients = (uint32_t)o->clients};
    shm_channel_t *ch = NULL;
    int rc = shm_channel_open_service(&ch, o->name, SHM_CHANNEL_SERVER, SHM_CHANNEL_CREATE, &cfg,
                                      0600);
    if (rc) {
        printf("{\"lang\": \"c\", \"role\": \"server\", \"ok\": false, \"errors\": [\"open: %s\"]}\n",
               shm_channel_strerror(rc));
        return 2;
    }
    uint8_t *buf = malloc(o->max_size), *answer = malloc(o->max_size);
    uint8_t *want = malloc(o->max_size);
    shm_channel_request_id_t *held = calloc(o->clients, sizeof *held); /* seq 0: none */
    uint32_t *dead = calloc(o->clients, sizeof *dead);
    if (!buf || !answer || !want || !held || !dead) {
        fprintf(stderr, "svc_peer: out of memory\n");
        return 2;
    }
    uint64_t served = 0, byes = 0, nbytes = 0, held_n = 0, held_reclaimed = 0, reaped = 0;
    double end = now_s() + o->deadline, first = 0, last = 0;
    int code = 0;
    while (byes < o->expect && !errors[0]) {
        if (now_s() > end) {
            fail("deadline: %" PRIu64 " of %" PRIu64 " byes", byes, o->expect);
            code = 3;
            break;
        }
        if (held_n) {
            int n = shm_channel_reap(ch, dead, (uint32_t)o->clients);
            for (int k = 0; k < n; k++) {
                reaped++;
                shm_channel_request_id_t *h = &held[dead[k]];
                if (h->seq) {
                    int r = shm_channel_respond(ch, h, "late", 4);
                    if (r == 0)
                        fail("late answer to dead client %" PRIu32 " accepted", dead[k]);
                    h->seq = 0;
                    held_n--;
                    held_reclaimed++;
                }
            }
            progress(served, held_n ? 1 : 0, reaped);
        }
        shm_channel_request_id_t id;
        const void *view = NULL;
        uint64_t n = 0;
        if (o->zero_copy)
            rc = shm_channel_receive_peek(ch, &view, &n, &id, SLICE_NS);
        else
            rc = shm_channel_receive(ch, buf, o->max_size, &n, &id, SLICE_NS);
        if (rc == -ETIMEDOUT || rc == -EINTR)
            continue;
        if (rc) {
            fail("receive: %s", shm_channel_strerror(rc));
            break;
        }
        const uint8_t *p = o->zero_copy ? view : buf;
        if (n < 20) {
            fail("request of %" PRIu64 " bytes", n);
            break;
        }
        uint32_t c, w, sum;
        uint64_t i;
        memcpy(&c, p, 4);
        memcpy(&w, p + 4, 4);
        memcpy(&i, p + 8, 8);
        memcpy(&sum, p + n - 4, 4);
        if (adler32(p, n - 4) != sum) {
            fail("client %" PRIu32 " request %" PRIu64 ": checksum mismatch", c, i);
            break;
        }
        if (w == HOLD || w == BYE) {
            if (n != 20) {
                fail("client %" PRIu32 ": special request of %" PRIu64 " bytes", c, n);
                break;
            }
            if (w == HOLD) {
                if (o->zero_copy)
                    shm_channel_receive_release(ch, &id);
                held[id.client] = id;
                held_n++;
                progress(served, 1, reaped);
                continue;
            }
            memcpy(answer, p, 20);
            rc = shm_channel_respond(ch, &id, answer, 20);
            if (rc && rc != -ESTALE) {
                fail("respond to bye: %s", shm_channel_strerror(rc));
                break;
            }
            byes++;
            continue;
        }
        uint64_t wn = make_request(&m, c, i, want);
        if (wn != n || memcmp(want, p, n)) {
            fail("client %" PRIu32 " request %" PRIu64 " (%" PRIu64 " bytes): content differs",
                 c, i, n);
            break;
        }
        if (served >= o->hang_after) {
            if (o->zero_copy)
                shm_channel_receive_release(ch, &id);
            progress(served, 1, reaped);
            for (;;)
                pause(); /* until the runner's SIGKILL */
        }
        uint64_t an;
        if (o->zero_copy) {
            an = make_response(&m, c, i, answer);
            void *space;
            rc = shm_channel_respond_reserve(ch, &id, an, &space);
            if (rc == 0) {
                memcpy(space, answer, an);
                rc = shm_channel_respond_commit(ch, &id, an);
            }
        } else {
            an = make_response(&m, c, i, answer);
            rc = shm_channel_respond(ch, &id, answer, an);
        }
        if (rc == -ESTALE)
            continue;
        if (rc) {
            fail("respond: %s", shm_channel_strerror(rc));
            break;
        }
        served++;
        nbytes += n + an;
        last = now_s();
        if (served == 1)
            first = last;
        progress(served, held_n ? 1 : 0, reaped);
    }
    shm_channel_close(ch);
    double secs = last - first;
    printf("{\"lang\": \"c\", \"role\": \"server\", \"ok\": %s, \"served\": %" PRIu64
           ", \"byes\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"secs\": %.6f, \"rps\": %.1f"
           ", \"held_reclaimed\": %" PRIu64 ", \"reaped\": %" PRIu64 ", ",
           errors[0] ? "false" : "true", served, byes, nbytes, secs,
           secs > 0 ? (double)served / secs : 0.0, held_reclaimed, reaped);
    errors_json();
    return code ? code : errors[0] ? 1 : 0;
}

/* ---- client ---------------------------------------------------------------------------- */

struct client {
    const struct opts *o;
    shm_channel_t *ch;
    uint8_t *resp;
    uint64_t owner_dead, resets, closed, i;
    double end;
};

/* One request with retries after a server verdict: 0 and *len, or a failing rc. */
static int call(struct client *cl, const uint8_t *req, uint64_t n, uint64_t *len)
{
    for (;;) {
        if (now_s() > cl->end)
            return -ETIMEDOUT;
        int rc;
        if (cl->o->zero_copy) {
            void *space;
            rc = shm_channel_reserve(cl->ch, n, &space, left_ns(cl->end));
            if (rc == 0) {
                memcpy(space, req, n);
                rc = shm_channel_commit(cl->ch, n);
            }
            const void *view;
            if (rc == 0)
                rc = shm_channel_response(cl->ch, &view, len, left_ns(cl->end));
            if (rc == 0)
                memcpy(cl->resp, view, *len <= cl->o->max_size ? *len : cl->o->max_size);
        } else {
            rc = shm_channel_request(cl->ch, req, n, cl->resp, cl->o->max_size, len,
                                     left_ns(cl->end));
        }
        if (rc == -EOWNERDEAD)
            cl->owner_dead++;
        else if (rc == -ECONNRESET)
            cl->resets++;
        else if (rc == -EPIPE)
            cl->closed++;
        else
            return rc;
        progress(cl->i, 0, cl->owner_dead + cl->resets + cl->closed);
        rc = shm_channel_wait_server(cl->ch, left_ns(cl->end));
        if (rc)
            return rc;
    }
}

static int request(const struct opts *o)
{
    struct msgs m;
    msgs_init(&m, o->seed, o->max_size);
    shm_channel_service_config_t cfg = {.max_request = o->max_size,
                                        .max_response = o->max_size,
                                        .max_clients = (uint32_t)o->clients};
    struct client cl = {.o = o, .end = now_s() + o->deadline, .i = o->start};
    int rc = shm_channel_open_service(&cl.ch, o->name, SHM_CHANNEL_CLIENT, SHM_CHANNEL_CREATE,
                                      &cfg, 0600);
    if (rc) {
        printf("{\"lang\": \"c\", \"role\": \"client\", \"id\": %" PRIu64
               ", \"ok\": false, \"errors\": [\"open: %s\"]}\n", o->id, shm_channel_strerror(rc));
        return 2;
    }
    uint8_t *req = malloc(o->max_size), *want = malloc(o->max_size);
    cl.resp = malloc(o->max_size);
    if (!req || !want || !cl.resp) {
        fprintf(stderr, "svc_peer: out of memory\n");
        return 2;
    }
    uint32_t c = (uint32_t)o->id;
    int code = 0;
    progress(cl.i, 0, 0); /* joined: the slot is ours */
    rc = shm_channel_wait_server(cl.ch, left_ns(cl.end));
    double t0 = now_s();
    while (rc == 0 && cl.i < o->count) {
        uint64_t len = 0, n;
        if (cl.i == o->hold_at) {
            progress(cl.i, 1, 0);
            n = seal(req, c, HOLD, cl.i, NULL, 0);
            rc = call(&cl, req, n, &len);
            if (rc == 0)
                fail("hold request %" PRIu64 " was answered", cl.i);
            break;
        }
        n = make_request(&m, c, cl.i, req);
        rc = call(&cl, req, n, &len);
        if (rc)
            break;
        uint64_t wn = make_response(&m, c, cl.i, want);
        if (len != wn || memcmp(cl.resp, want, wn)) {
            uint32_t gc = 0;
            uint64_t gi = 0;
            if (len >= 16) {
                memcpy(&gc, cl.resp, 4);
                memcpy(&gi, cl.resp + 8, 8);
            }
            fail("request %" PRIu64 ": answer of %" PRIu64 " bytes for client %" PRIu32
                 " request %" PRIu64 ", expected %" PRIu64 " bytes", cl.i, len, gc, gi, wn);
            break;
        }
        cl.i++;
        progress(cl.i, 0, cl.owner_dead + cl.resets + cl.closed);
    }
    if (rc == 0 && !errors[0] && cl.i == o->count) {
        uint64_t len = 0, n = seal(req, c, BYE, o->count, NULL, 0);
        rc = call(&cl, req, n, &len);
        if (rc == 0 && (len != 20 || memcmp(cl.resp, req, 20)))
            fail("%s", "bye not echoed");
    }
    if (rc == -ETIMEDOUT) {
        fail("deadline at request %" PRIu64, cl.i);
        code = 3;
    } else if (rc) {
        fail("request %" PRIu64 ": %s %s", cl.i, errname(rc), shm_channel_strerror(rc));
    }
    double secs = now_s() - t0;
    shm_channel_close(cl.ch);
    uint64_t done = cl.i - o->start;
    printf("{\"lang\": \"c\", \"role\": \"client\", \"id\": %" PRIu64 ", \"ok\": %s, \"count\": %"
           PRIu64 ", \"first\": %" PRIu64 ", \"next\": %" PRIu64 ", \"owner_dead\": %" PRIu64
           ", \"resets\": %" PRIu64 ", \"closed\": %" PRIu64 ", \"secs\": %.6f, \"rps\": %.1f, ",
           o->id, errors[0] ? "false" : "true", done, o->start, cl.i, cl.owner_dead, cl.resets,
           cl.closed, secs, secs > 0 ? (double)done / secs : 0.0);
    errors_json();
    return code ? code : errors[0] ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(&o, argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (o.progress) {
        progress_fd = open(o.progress, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (progress_fd < 0) {
            fprintf(stderr, "svc_peer: %s: %s\n", o.progress, strerror(errno));
            return 2;
        }
    }
    return o.serve ? serve(&o) : request(&o);
}
