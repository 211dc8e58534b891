/* libFuzzer target: a segment file with arbitrary bytes, opened as consumer and as producer
 * (or, when its kind field says broadcast, as subscriber and publisher; service: as client
 * and server), driven by every call until they fail, while the input also scribbles on the
 * live mapping.
 *
 * Input = segment image [+ script]. When the image's segment_size field (offset 40) is a
 * plausible size below the input's length, the bytes past it are a script of operations
 * (below); otherwise the whole input is the image and a default script runs (drain with
 * read, peek/release and read_batch; fill with write, write_batch and reserve/commit; drain
 * again). The seeds are the .bin images of spec/vectors.
 *
 * The image is written to a fresh file in a private SHM_CHANNEL_DIR on tmpfs, fallocated
 * first (a segment file is never sparse). Every call is non-blocking (timeout 0) and must
 * return one of the codes the public header lists for it; anything else aborts, as does any
 * sanitizer report or fault. Inputs shorter than the header, or with an all-zero magic, are
 * skipped: open takes its bounded 1 s wait for an initialising creator there, which
 * test_vectors covers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm_channel.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fz"
#define HDR SHM_CHANNEL_HEADER_SIZE
/* Largest payload/batch buffer the harness hands to the library. */
#define BUF (1u << 17)

static char dir[64];
/* The image is a broadcast segment (kind 2): the handles are a subscriber and a publisher,
 * and the data area (the slots) starts at data_off. */
static int bcast;
/* The image is a service (kind 4): the handles are a client (cons) and a server (prod). */
static int svc;
static uint64_t data_off = HDR;
static uint8_t buf[BUF];
static uint8_t payload[BUF];

static void make_seeds(const char *dst);

static void cleanup(void)
{
    if (!dir[0])
        return;
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, NAME);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/dev/shm/shm-fuzz-%ld-XXXXXX", (long)getpid());
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    setenv("SHM_CHANNEL_DIR", dir, 1);
    atexit(cleanup);
    for (unsigned i = 0; i < BUF; i++)
        payload[i] = (uint8_t)(i * 131u + 7u);
    const char *seeds = getenv("SHM_FUZZ_SEED_DIR");
    if (seeds && *seeds)
        make_seeds(seeds);
    return 0;
}

/* Copy the segment file `NAME` to dst/file. */
static void save_seed(const char *dst, const char *file)
{
    char from[128], to[4096];
    snprintf(from, sizeof from, "%s/%s", dir, NAME);
    snprintf(to, sizeof to, "%s/%s", dst, file);
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) {
        perror("fuzz_segment: seed");
        abort();
    }
    size_t n;
    while ((n = fread(buf, 1, BUF, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    /* The same image with a script: every operation, arguments from a fixed sequence. */
    snprintf(to, sizeof to, "%s/%s-script", dst, file);
    in = fopen(from, "rb");
    out = fopen(to, "wb");
    if (!in || !out) {
        perror("fuzz_segment: seed");
        abort();
    }
    while ((n = fread(buf, 1, BUF, in)) > 0)
        fwrite(buf, 1, n, out);
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int op = 0; op < 66; op++) {
        uint8_t step[10];
        step[0] = (uint8_t)(op % 11);
        for (int i = 1; i < 10; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            step[i] = (uint8_t)x;
        }
        fwrite(step, 1, sizeof step, out);
    }
    fclose(in);
    fclose(out);
}

/* Seeds the vectors lack: real segments (made by the library) whose data area ends on a
 * page boundary (capacity >= 4096), so a read or write past its end faults, with the ring
 * wrapped and records (and padding) right up to the end. */
static void make_seeds(const char *dst)
{
    static const uint64_t caps[] = {4096, 8192};
    for (int k = 0; k < 2; k++) {
        char file[32];
        shm_channel_t *p = NULL, *c = NULL;
        if (shm_channel_open(&p, NAME, SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, caps[k], 0) ||
            shm_channel_open(&c, NAME, SHM_CHANNEL_CONSUMER, 0, 0, 0)) {
            fprintf(stderr, "fuzz_segment: cannot make seeds\n");
            abort();
        }
        uint64_t len = 0;
        for (uint64_t i = 0; i < 40; i++) {
            if (shm_channel_write(p, payload, (i * 97) % (caps[k] / 4), 0) == 0 && i % 3)
                shm_channel_read(c, buf, BUF, &len, 0);
        }
        snprintf(file, sizeof file, "seed-wrapped-%d", (int)caps[k]);
        save_seed(dst, file);
        while (shm_channel_write(p, payload, 100 + 8 * k, 0) == 0)
            ;
        snprintf(file, sizeof file, "seed-full-%d", (int)caps[k]);
        save_seed(dst, file);
        shm_channel_close(c);
        shm_channel_close(p);
        shm_channel_unlink(NAME, SHM_CHANNEL_FORCE);
    }
}

/* An unexpected return code: report it and abort, so libFuzzer keeps the input. */
#define EXPECT(call, rc, ok)                                                                    \
    do {                                                                                       \
        if (!(ok)) {                                                                           \
            fprintf(stderr, "fuzz_segment: %s returned %d (%s)\n", call, rc,                   \
                    shm_channel_strerror(rc));                                                 \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* Where the segment file is mapped in this process (the handles' mappings and ours), read
 * from /proc/self/maps after every open: a pointer the library hands out must lie inside
 * one mapping's data area. Without this check an overrun would often land in a
 * neighbouring mapping and go unnoticed. */
static struct {
    uintptr_t start, end;
} maps[16];
static int nmaps;

static void refresh_maps(void)
{
    char line[512], want[128];
    snprintf(want, sizeof want, "%s/%s", dir, NAME);
    nmaps = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        abort();
    while (fgets(line, sizeof line, f) && nmaps < 16) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        size_t n = strlen(line), w = strlen(want);
        if (n > 10 && strcmp(line + n - 10, " (deleted)") == 0) /* unlinked by a closer */
            line[n -= 10] = 0;
        if (n < w || strcmp(line + n - w, want) != 0)
            continue;
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2) {
            maps[nmaps].start = a;
            maps[nmaps].end = b;
            nmaps++;
        }
    }
    fclose(f);
}

/* [p, p + len) inside the data area of one mapping of `capacity` bytes of ring. */
static void check_in_data(const char *call, const void *p, uint64_t len, uint64_t capacity)
{
    uintptr_t a = (uintptr_t)p;
    for (int i = 0; i < nmaps; i++) {
        uintptr_t lo = maps[i].start + data_off, hi = maps[i].start + data_off + capacity;
        if (a >= lo && a <= hi && len <= hi - a)
            return;
    }
    fprintf(stderr, "fuzz_segment: %s gave [%p, +%llu), outside every data area\n", call, p,
            (unsigned long long)len);
    abort();
}

static int is_end(int rc)
{
    return rc == -EAGAIN || rc == -EPIPE || rc == -EOWNERDEAD || rc == -EBADMSG;
}

/* A subscriber's release says -ESTALE when the publisher (or a scribble) overwrote the
 * view's slot while it was held. */
static int release_ok(int rc)
{
    return rc == 0 || (bcast && rc == -ESTALE);
}

struct ctx {
    shm_channel_t *cons, *prod;
    uint8_t *map; /* the harness's own view of the segment file, for scribbles */
    size_t map_len;
    int peeked;
    int reserved;
    uint64_t reserved_len;
};

static int op_read(struct ctx *c, uint64_t cap)
{
    uint64_t len = 0;
    int rc = shm_channel_read(c->cons, buf, cap, &len, 0);
    EXPECT("read", rc,
           rc == 0 || is_end(rc) || rc == -EMSGSIZE || (bcast && c->peeked && rc == -EBUSY));
    if (rc == 0 && (len > cap || len > shm_channel_max_payload(c->cons)))
        EXPECT("read (length)", rc, 0);
    if (rc == 0)
        c->peeked = 0;
    if (rc == -EMSGSIZE && !bcast)
        c->peeked = 1; /* the message stays peeked (a subscriber's stays next, unpeeked) */
    return rc;
}

static int op_peek(struct ctx *c, int release)
{
    const void *p;
    uint64_t len = 0;
    int rc = shm_channel_peek(c->cons, &p, &len, 0);
    EXPECT("peek", rc, rc == 0 || is_end(rc));
    if (rc == 0) {
        if (len > shm_channel_max_payload(c->cons) || ((uintptr_t)p & 7))
            EXPECT("peek (length or alignment)", rc, 0);
        check_in_data("peek", p, len, shm_channel_capacity(c->cons));
        memcpy(buf, p, len); /* the whole payload is readable */
        c->peeked = 1;
        if (release) {
            rc = shm_channel_release(c->cons);
            EXPECT("release", rc, release_ok(rc));
            c->peeked = 0;
            rc = 0;
        }
    }
    return rc;
}

static int op_read_batch(struct ctx *c, uint64_t cap, uint32_t max)
{
    uint64_t lens[64];
    if (max > 64)
        max = 64;
    int rc = shm_channel_read_batch(c->cons, buf, cap, lens, max, 0);
    EXPECT("read_batch", rc,
           (rc >= 0 && (uint32_t)rc <= max) || is_end(rc) || rc == -EMSGSIZE ||
               (bcast && c->peeked && rc == -EBUSY));
    if (rc > 0) {
        uint64_t sum = 0;
        for (int i = 0; i < rc; i++)
            sum += lens[i];
        if (sum > cap)
            EXPECT("read_batch (sizes)", rc, 0);
        c->peeked = 0;
    }
    return rc;
}

static int op_write(struct ctx *c, uint64_t len)
{
    int rc = shm_channel_write(c->prod, payload, len, 0);
    EXPECT("write", rc, rc == 0 || is_end(rc) || rc == -EMSGSIZE || rc == -EOVERFLOW);
    return rc;
}

static int op_write_batch(struct ctx *c, uint64_t len, uint32_t count)
{
    uint64_t lens[16];
    if (count > 16)
        count = 16;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < count; i++) {
        lens[i] = (len * (i + 1)) % (BUF / 16);
        sum += lens[i];
    }
    (void)sum;
    int rc = shm_channel_write_batch(c->prod, payload, lens, count, 0);
    EXPECT("write_batch", rc,
           (rc >= 0 && (uint32_t)rc <= count) || is_end(rc) || rc == -EMSGSIZE ||
               rc == -EOVERFLOW);
    return rc;
}

static int op_reserve(struct ctx *c, uint64_t len, int commit_len, int abort_it)
{
    void *p = NULL;
    int rc = shm_channel_reserve(c->prod, len, &p, 0);
    EXPECT("reserve", rc, rc == 0 || is_end(rc) || rc == -EMSGSIZE || rc == -EOVERFLOW);
    if (rc)
        return rc;
    if ((uintptr_t)p & 7)
        EXPECT("reserve (alignment)", rc, 0);
    check_in_data("reserve", p, len, shm_channel_capacity(c->prod));
    memset(p, 0x5a, len); /* the whole reservation is writable */
    if (abort_it) {
        rc = shm_channel_abort(c->prod);
        EXPECT("abort", rc, rc == 0);
        return 0;
    }
    uint64_t clen = commit_len < 0 ? len : len * (uint64_t)commit_len / 255;
    rc = shm_channel_commit(c->prod, clen);
    EXPECT("commit", rc, rc == 0);
    return 0;
}

/* Subscriber: the newest message, copied (view = 0) or in place. */
static int op_latest(struct ctx *c, int view)
{
    uint64_t len = 0, missed = 0;
    int32_t is_new = -1;
    int rc;
    if (view) {
        const void *p;
        rc = shm_channel_peek_latest(c->cons, &p, &len, &is_new, &missed);
        EXPECT("peek_latest", rc, rc == 0 || rc == -EAGAIN || rc == -EBADMSG);
        if (rc == 0) {
            if (len > shm_channel_max_payload(c->cons) || ((uintptr_t)p & 7))
                EXPECT("peek_latest (length or alignment)", rc, 0);
            check_in_data("peek_latest", p, len, shm_channel_capacity(c->cons));
            memcpy(buf, p, len);
            c->peeked = 1;
        }
    } else {
        rc = shm_channel_read_latest(c->cons, buf, BUF, &len, &is_new, &missed);
        EXPECT("read_latest", rc,
               rc == 0 || rc == -EAGAIN || rc == -EBADMSG || rc == -EMSGSIZE ||
                   (rc == -EBUSY && c->peeked));
    }
    if (rc == 0 && (is_new < 0 || is_new > 1 || (!is_new && missed)))
        EXPECT("latest (is_new, missed)", rc, 0);
    return rc;
}

/* The broadcast counters of every handle, and of the whole subscriber table. */
static void bcast_stat(shm_channel_t *ch)
{
    shm_channel_broadcast_stat_t bs;
    int rc = shm_channel_broadcast_stat(ch, &bs);
    EXPECT("broadcast_stat", rc, rc == 0);
    if (bs.type_tag[sizeof bs.type_tag - 1] != 0 || strlen(bs.type_tag) != bs.type_len)
        EXPECT("broadcast_stat (type tag)", rc, 0);
    shm_channel_sub_stat_t ss;
    for (uint32_t i = 0; i < bs.max_subscribers && i < 64; i++) {
        rc = shm_channel_sub_stat(ch, i, &ss);
        EXPECT("sub_stat", rc, rc == 0 || rc == -ENOENT);
    }
    rc = shm_channel_sub_stat(ch, -1, &ss);
    EXPECT("sub_stat (own)", rc, rc == 0 || rc == -EINVAL);
}

/* The service counters of a handle. */
static void svc_stat(shm_channel_t *ch)
{
    shm_channel_service_stat_t ss;
    int rc = shm_channel_service_stat(ch, &ss);
    EXPECT("service_stat", rc, rc == 0);
    if (ss.live_clients > ss.max_clients || ss.max_clients > SHM_CHANNEL_SERVICE_MAX_CLIENTS)
        EXPECT("service_stat (clients)", rc, 0);
}

static void op_stat(struct ctx *c)
{
    shm_channel_stat_t st;
    if (c->cons) {
        int rc = shm_channel_stat(c->cons, &st);
        EXPECT("stat", rc, rc == 0);
        if (bcast)
            bcast_stat(c->cons);
        if (svc)
            svc_stat(c->cons);
    }
    if (c->prod) {
        int rc = shm_channel_stat(c->prod, &st);
        EXPECT("stat", rc, rc == 0);
        if (bcast)
            bcast_stat(c->prod);
        if (svc)
            svc_stat(c->prod);
    }
    if (memcmp(c->map, "\0\0\0\0\0\0\0\0", 8) == 0)
        return; /* open would wait its bounded second for the creator */
    shm_channel_t *ob;
    int rc = shm_channel_open(&ob, NAME, SHM_CHANNEL_OBSERVER, SHM_CHANNEL_ALLOW_FOREIGN, 0, 0);
    EXPECT("open observer", rc,
           rc == 0 || rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -EPROTOTYPE ||
               rc == -EBADMSG || rc == -ENOENT);
    if (rc == 0) {
        rc = shm_channel_stat(ob, &st);
        EXPECT("stat (observer)", rc, rc == 0);
        if (st.kind == SHM_CHANNEL_KIND_BROADCAST)
            bcast_stat(ob);
        if (st.kind == SHM_CHANNEL_KIND_SERVICE)
            svc_stat(ob);
        shm_channel_close(ob);
    }
}

/* Header fields worth aiming at: offset and width (spec §3). */
static const struct {
    uint16_t off, width;
} fields[] = {
    {0, 8},   {8, 2},   {10, 2},  {12, 2},  {16, 4},  {24, 8},  {32, 8},  {40, 8},
    {128, 8}, {136, 4}, {140, 4}, {144, 4}, {152, 8}, {256, 8}, {264, 4}, {268, 4},
    {272, 4}, {280, 8}, {384, 4}, {512, 4},
};

static uint64_t get64(const uint8_t *p, size_t avail)
{
    uint64_t v = 0;
    memcpy(&v, p, avail < 8 ? avail : 8);
    return v;
}

/* Write `v` into the live segment: a header field, a position-relative record header, or a
 * data byte. The segment is shared, untrusted memory: any process may do this. */
static void scribble(struct ctx *c, uint8_t sel, uint64_t v)
{
    const size_t nf = sizeof fields / sizeof fields[0];
    if (c->map_len < HDR)
        return;
    if (sel < 128) {
        size_t i = sel % nf;
        uint64_t val = v;
        if (sel & 64) { /* small nudges of the current value: +-1..8, *2 */
            uint64_t cur = 0;
            memcpy(&cur, c->map + fields[i].off, fields[i].width);
            int8_t d = (int8_t)(v & 0xff);
            val = (v >> 8) & 1 ? cur * 2 : cur + (uint64_t)(int64_t)(d % 9);
        }
        memcpy(c->map + fields[i].off, &val, fields[i].width);
        return;
    }
    if (c->map_len <= HDR + 8)
        return;
    if (svc && sel < 192) { /* a word of a client slot: line, request or response head */
        uint64_t stride = get64(c->map + 64, 8), resp = get64(c->map + 104, 8);
        static const uint64_t at[] = {0, 12, 128, 136, 140};
        if (stride == 0 || stride > c->map_len)
            return;
        uint64_t slot = (v >> 32) % ((c->map_len - HDR) / stride + 1);
        uint64_t off = HDR + slot * stride + ((sel & 7) < 5 ? at[sel & 7] : resp + ((sel & 1) ? 8 : 0));
        if (off + 8 <= c->map_len && off >= HDR)
            memcpy(c->map + off, &v, (sel & 16) ? 4 : 8);
        return;
    }
    size_t data_len = c->map_len - HDR;
    uint64_t pos;
    if (sel < 192) { /* the record header at read_pos or write_pos */
        memcpy(&pos, c->map + ((sel & 1) ? 128 : 256), 8);
        pos &= ~(uint64_t)7;
    } else {
        pos = v >> 16;
    }
    size_t off = (size_t)(pos % data_len) & ~(size_t)7;
    if (off + 8 > data_len)
        return;
    memcpy(c->map + HDR + off, &v, 8);
}

/* ---- kind 4: the client is c->cons, the server c->prod ---------------------------- */

static int svc_verdict(int rc)
{
    return rc == -EPIPE || rc == -EOWNERDEAD || rc == -ECONNRESET || rc == -EBADMSG;
}

/* Client: send a request (copy, or in place), never waiting. */
static int svc_send(struct ctx *c, uint64_t len, int in_place)
{
    int rc;
    if (in_place) {
        void *p = NULL;
        rc = shm_channel_reserve(c->cons, len, &p, 0);
        EXPECT("svc reserve", rc, rc == 0 || rc == -EAGAIN || rc == -EMSGSIZE ||
                                      rc == -EOVERFLOW || svc_verdict(rc));
        if (rc == 0) {
            check_in_data("svc reserve", p, len, shm_channel_capacity(c->cons));
            memcpy(p, payload, len);
            rc = shm_channel_commit(c->cons, len);
            EXPECT("svc commit", rc, rc == 0);
        }
        return rc;
    }
    rc = shm_channel_write(c->cons, payload, len, 0);
    EXPECT("svc write", rc, rc == 0 || rc == -EAGAIN || rc == -EMSGSIZE || rc == -EOVERFLOW ||
                                svc_verdict(rc));
    return rc;
}

/* Client: the response, copied or in place, never waiting. */
static int svc_response(struct ctx *c, int view, uint64_t cap)
{
    uint64_t len = 0;
    int rc;
    if (view) {
        const void *p = NULL;
        rc = shm_channel_response(c->cons, &p, &len, 0);
        if (rc == 0)
            check_in_data("svc response", p, len, shm_channel_capacity(c->cons));
    } else {
        rc = shm_channel_read(c->cons, buf, cap, &len, 0);
        if (rc == 0 && len > cap)
            EXPECT("svc read (length)", rc, 0);
    }
    EXPECT("svc response", rc, rc == 0 || rc == -EAGAIN || rc == -EINVAL || rc == -EMSGSIZE ||
                                   svc_verdict(rc));
    if (rc == 0 && len > shm_channel_max_payload(c->cons))
        EXPECT("svc response (length)", rc, 0);
    return rc;
}

static shm_channel_request_id_t svc_ids[8];
static int svc_nids;

/* Server: the next request, copied or in place. */
static int svc_receive(struct ctx *c, int view, uint64_t cap)
{
    uint64_t len = 0;
    shm_channel_request_id_t id;
    int rc;
    if (view) {
        const void *p = NULL;
        rc = shm_channel_receive_peek(c->prod, &p, &len, &id, 0);
        if (rc == 0)
            check_in_data("svc receive_peek", p, len, shm_channel_capacity(c->prod));
    } else {
        rc = shm_channel_receive(c->prod, buf, cap, &len, &id, 0);
        if (rc == 0 && len > cap)
            EXPECT("svc receive (length)", rc, 0);
    }
    EXPECT("svc receive", rc, rc == 0 || rc == -EAGAIN || rc == -EMSGSIZE);
    if ((rc == 0 || rc == -EMSGSIZE) && id.client >= SHM_CHANNEL_SERVICE_MAX_CLIENTS)
        EXPECT("svc receive (id)", rc, 0);
    if (rc == 0)
        svc_ids[svc_nids++ % 8] = id;
    return rc;
}

/* Server: answer held request k one way or another. */
static void svc_answer(struct ctx *c, unsigned k, unsigned how, uint64_t len)
{
    shm_channel_request_id_t *id = &svc_ids[k % 8];
    int rc;
    switch (how % 5) {
    case 0:
        rc = shm_channel_respond(c->prod, id, payload, len);
        break;
    case 1: {
        void *p = NULL;
        rc = shm_channel_respond_reserve(c->prod, id, len, &p);
        if (rc == 0) {
            check_in_data("svc respond_reserve", p, len, shm_channel_capacity(c->prod));
            memcpy(p, payload, len);
            rc = (how & 8) ? shm_channel_abort(c->prod) : shm_channel_respond_commit(c->prod, id, len / 2);
            EXPECT("svc respond_commit", rc, rc == 0);
        }
        break;
    }
    case 2:
        rc = shm_channel_drop(c->prod, id);
        break;
    case 3:
        rc = shm_channel_receive_release(c->prod, id);
        break;
    default: {
        uint32_t dead[8];
        rc = shm_channel_reap(c->prod, dead, 8);
        EXPECT("svc reap", rc, rc >= 0 && rc <= 8);
        for (int i = 0; i < rc; i++)
            if (dead[i] >= SHM_CHANNEL_SERVICE_MAX_CLIENTS)
                EXPECT("svc reap (index)", rc, 0);
        return;
    }
    }
    EXPECT("svc answer", rc, rc == 0 || rc == -ESTALE || rc == -EINVAL || rc == -EMSGSIZE ||
                                 rc == -EBUSY);
}

static void svc_round_trip(struct ctx *c, uint64_t len)
{
    uint64_t got = 0;
    int rc = shm_channel_request(c->cons, payload, len, buf, BUF, &got, 0);
    EXPECT("svc request", rc, rc == 0 || rc == -ETIMEDOUT || rc == -EMSGSIZE ||
                                  rc == -EOVERFLOW || svc_verdict(rc));
}

static void svc_default_script(struct ctx *c)
{
    for (uint64_t i = 0; i < 256; i++) {
        if (c->cons)
            svc_send(c, i * 37 % 5000, (int)(i & 1));
        if (c->prod)
            for (int k = 0; k < 3; k++)
                if (svc_receive(c, (int)((i + (uint64_t)k) % 3 == 0), i % 4 ? BUF : 3) != 0)
                    break;
        if (c->prod)
            svc_answer(c, (unsigned)i, (unsigned)(i * 7), i * 53 % 5000);
        if (c->cons)
            svc_response(c, (int)(i % 3 == 0), i % 5 ? BUF : 2);
        if (c->cons && i % 16 == 0)
            svc_round_trip(c, i);
        if (i % 64 == 0)
            op_stat(c);
    }
}

static void default_script(struct ctx *c)
{
    if (svc) {
        svc_default_script(c);
        return;
    }
    /* peek first: it shows where the message lies (check_in_data) */
    for (int i = 0; i < 64 && c->cons && op_peek(c, i & 1) == 0; i++)
        ;
    for (int i = 0; i < 64 && c->cons && op_read(c, BUF) == 0; i++)
        ;
    for (int i = 0; i < 16 && c->cons && op_read_batch(c, BUF, 7) > 0; i++)
        ;
    op_stat(c);
    for (uint64_t i = 0; i < 512 && c->prod; i++) {
        int rc = (i % 3 == 0)   ? op_write(c, i * 37 % 700)
                 : (i % 3 == 1) ? op_write_batch(c, i * 13, (uint32_t)(i % 5) + 1)
                                : op_reserve(c, i * 29 % 600, (int)(i % 256), i % 7 == 0);
        if (rc < 0 && rc != -EMSGSIZE)
            break;
    }
    op_stat(c);
    for (int i = 0; i < 600 && c->cons && op_read(c, BUF) == 0; i++)
        ;
}

static int open_ok(int rc)
{
    return rc == 0 || rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -EPROTOTYPE ||
           rc == -EBADMSG || rc == -ENOENT || (svc && rc == -EUSERS);
}

/* Open the reading (consumer / subscriber) or writing (producer / publisher) side. */
static int open_side(shm_channel_t **ch, int writer)
{
    uint32_t role = bcast ? (writer ? SHM_CHANNEL_PUBLISHER : SHM_CHANNEL_SUBSCRIBER)
                    : svc ? (writer ? SHM_CHANNEL_SERVER : SHM_CHANNEL_CLIENT)
                          : (writer ? SHM_CHANNEL_PRODUCER : SHM_CHANNEL_CONSUMER);
    uint32_t flags = SHM_CHANNEL_ALLOW_FOREIGN;
    if (bcast && !writer)
        flags |= SHM_CHANNEL_FROM_OLDEST; /* every held message, not just the newest */
    int rc = bcast ? shm_channel_open_broadcast(ch, NAME, role, flags, NULL, 0)
             : svc ? shm_channel_open_service(ch, NAME, role, flags, NULL, 0)
                   : shm_channel_open(ch, NAME, role, flags, 0, 0);
    if (rc)
        *ch = NULL;
    if (rc == 0 && bcast) { /* where the slots start: after the subscriber table */
        shm_channel_broadcast_stat_t bs;
        shm_channel_broadcast_stat(*ch, &bs);
        data_off = 4096 + (((uint64_t)bs.max_subscribers * 128 + 4095) & ~4095ull);
    }
    return rc;
}

/* One operation per script step: an opcode byte and up to 9 argument bytes. */
static void run_script(struct ctx *c, const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t op = s[i++];
        size_t avail = n - i;
        uint64_t a = get64(s + i, avail);
        uint8_t b = avail > 8 ? s[i + 8] : 0;
        uint64_t len = a % (BUF / 2);
        if (svc && op % 11 <= 7) { /* the service calls; stat, scribble, reopen as below */
            switch (op % 11) {
            case 0:
            case 1:
                if (c->cons)
                    svc_send(c, len % 70000, op % 11);
                break;
            case 2:
            case 3:
                if (c->cons)
                    svc_response(c, op % 11 == 3, b ? len : BUF);
                break;
            case 4:
            case 5:
                if (c->prod)
                    svc_receive(c, op % 11 == 5, b ? len : BUF);
                break;
            case 6:
                if (c->prod)
                    svc_answer(c, b, (unsigned)(a >> 56), len % 70000);
                break;
            case 7:
                if (c->cons)
                    svc_round_trip(c, len % 70000);
                break;
            }
            i += avail > 9 ? 9 : avail;
            continue;
        }
        switch (op % 11) {
        case 0:
            if (c->cons && bcast && (b & 6) == 6)
                op_latest(c, 0);
            else if (c->cons)
                op_read(c, b ? len : BUF);
            break;
        case 1:
        case 2:
            if (c->cons && bcast && (b & 6) == 6 && !c->peeked)
                op_latest(c, 1);
            else if (c->cons)
                op_peek(c, op % 11 == 1);
            break;
        case 3:
            if (c->cons && c->peeked) {
                int rc = shm_channel_release(c->cons);
                EXPECT("release", rc, release_ok(rc));
                c->peeked = 0;
            }
            break;
        case 4:
            if (c->cons)
                op_read_batch(c, b ? len : BUF, (uint32_t)(a >> 40) % 65);
            break;
        case 5:
            if (c->prod)
                op_write(c, len % 70000);
            break;
        case 6:
            if (c->prod)
                op_write_batch(c, len % 4096, (uint32_t)b % 17);
            break;
        case 7:
            if (c->prod)
                op_reserve(c, len % 70000, b, (a >> 60) == 0);
            break;
        case 8:
            op_stat(c);
            break;
        case 9: /* scribble: selector b, value a */
            scribble(c, b, a);
            break;
        case 10: /* the consumer or producer closes and comes back */
            if (memcmp(c->map, "\0\0\0\0\0\0\0\0", 8) == 0)
                break; /* open would wait its bounded second for the creator */
            if (b & 1) {
                shm_channel_close(c->cons);
                c->cons = NULL;
                c->peeked = 0;
                int rc = open_side(&c->cons, 0);
                EXPECT("reopen consumer", rc, open_ok(rc));
                refresh_maps();
            } else {
                shm_channel_close(c->prod);
                c->prod = NULL;
                int rc = open_side(&c->prod, 1);
                EXPECT("reopen producer", rc, open_ok(rc));
                refresh_maps();
            }
            break;
        }
        i += op % 11 == 9 ? 9 : (avail > 9 ? 9 : avail);
    }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t zero[8];
    if (size < HDR || memcmp(data, zero, 8) == 0)
        return 0;
    size_t img = size;
    uint64_t seg = get64(data + 40, 8);
    if (seg >= HDR && seg < size)
        img = (size_t)seg;

    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, NAME);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || fallocate(fd, 0, 0, (off_t)img) != 0 ||
        pwrite(fd, data, img, 0) != (ssize_t)img) {
        perror("fuzz_segment: segment file");
        abort();
    }
    struct ctx c = {0};
    c.map_len = img;
    void *m = mmap(NULL, img, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        perror("fuzz_segment: mmap");
        abort();
    }
    c.map = m;
    close(fd);

    /* The kind field picks the roles: kind 2 is opened as subscriber and publisher. */
    bcast = (data[12] | data[13] << 8) == SHM_CHANNEL_KIND_BROADCAST;
    svc = (data[12] | data[13] << 8) == SHM_CHANNEL_KIND_SERVICE;
    svc_nids = 0;
    memset(svc_ids, 0, sizeof svc_ids);
    data_off = HDR;
    int rc = open_side(&c.cons, 0);
    EXPECT("open consumer", rc, open_ok(rc));
    rc = open_side(&c.prod, 1);
    EXPECT("open producer", rc, open_ok(rc));
    refresh_maps();
    op_stat(&c);

    if (img < size)
        run_script(&c, data + img, size - img);
    else
        default_script(&c);

    shm_channel_close(c.prod);
    shm_channel_close(c.cons);
    munmap(c.map, c.map_len);
    unlink(path);
    return 0;
}
