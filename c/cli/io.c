/* Talking to channels from a shell: send, recv, call, record, replay. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CREATE_OPTS                                                                        \
    {"create", 'c', OPT_FLAG, "create the channel if it does not exist"},                  \
        {"broadcast", 'b', OPT_FLAG, "with --create: a broadcast channel, not a stream"},  \
        {"capacity", 0, OPT_U64, "with --create: stream ring bytes (a power of two)"},     \
        {"depth", 0, OPT_U64, "with --create --broadcast: messages kept"},                 \
        {"max-payload", 0, OPT_U64, "with --create --broadcast: largest message"},         \
        {"max-subscribers", 0, OPT_U64, "with --create --broadcast: subscriber entries"}

const struct opt_spec opts_send[] = {
    {"frames", 0, OPT_FLAG, "stdin holds u32-LE length-prefixed frames"},
    {"file", 0, OPT_FLAG, "each FILE argument (\"-\": stdin) is one message"},
    {"count", 'n', OPT_U64, "stop after N messages"},
    {"rate", 'r', OPT_DOUBLE, "at most N messages per second"},
    CREATE_OPTS,
    {0}};
const struct opt_spec opts_recv[] = {
    {"count", 'n', OPT_U64, "stop after N messages"},
    {"format", 'F', OPT_STR, "lines (default), raw, frames, hex or json"},
    {"follow", 0, OPT_FLAG, "broadcast: wait for new messages until the publisher closes"},
    {"timeout", 't', OPT_DOUBLE, "give up (exit 4) when no message came for N seconds"},
    {"create", 'c', OPT_FLAG, "create the stream if it does not exist"},
    {"capacity", 0, OPT_U64, "with --create: ring bytes (a power of two)"},
    {0}};
const struct opt_spec opts_call[] = {
    {"timeout", 't', OPT_DOUBLE, "give up (exit 4) after N seconds"}, {0}};
const struct opt_spec opts_record[] = {
    {"count", 'n', OPT_U64, "stop after N messages"},
    {"timeout", 't', OPT_DOUBLE, "stop (exit 4) when no message came for N seconds"},
    {"follow", 0, OPT_FLAG, "broadcast: start at the newest message, not the oldest held"},
    {"create", 'c', OPT_FLAG, "create the stream if it does not exist"},
    {"capacity", 0, OPT_U64, "with --create: ring bytes (a power of two)"},
    {0}};
const struct opt_spec opts_replay[] = {
    {"fast", 0, OPT_FLAG, "do not keep the recorded pace"},
    {"count", 'n', OPT_U64, "stop after N messages"},
    CREATE_OPTS,
    {0}};

/* Why a role could not be taken on a channel of a kind this build cannot reach. */
static int kind_failure(const char *cmd, const char *name, int rc)
{
    if (rc == -EPROTOTYPE) {
        struct chan_snap s;
        shm_channel_t *ch;
        int orc = shm_channel_open(&ch, name, SHM_CHANNEL_OBSERVER, SHM_CHANNEL_ALLOW_FOREIGN, 0,
                                   0);
        if (orc == 0) {
            shm_channel_stat(ch, &s.st);
            shm_channel_close(ch);
            const struct kind_ops *k = cli_kind_ops(s.st.kind);
            if (k && k->not_yet)
                return cli_fail(cmd, name, k->not_yet, 0);
            char what[160];
            snprintf(what, sizeof what, "a %s channel: %s works on streams and broadcast "
                     "channels%s", k ? k->name : "unknown", cmd,
                     s.st.kind == 4 ? " (a service: shm_channel call)" : "");
            return cli_fail(cmd, name, what, 0);
        }
    }
    return cli_fail(cmd, name, "open", rc);
}

/* Open the writing side: the stream's producer or the broadcast publisher. */
static int open_writer(const char *cmd, const struct cli_args *a, const char *name,
                       shm_channel_t **ch)
{
    uint32_t flags = opt_given(a, "create") ? SHM_CHANNEL_CREATE : 0;
    int rc;
    if (opt_given(a, "broadcast")) {
        if (opt_given(a, "capacity"))
            return cli_usage_error(cmd, "--capacity is for streams; a broadcast channel has "
                                        "--depth and --max-payload");
        shm_channel_broadcast_config_t cfg = {opt_u64(a, "max-payload", 0),
                                              (uint32_t)opt_u64(a, "depth", 0),
                                              (uint32_t)opt_u64(a, "max-subscribers", 0), NULL,
                                              {0}};
        rc = shm_channel_open_broadcast(ch, name, SHM_CHANNEL_PUBLISHER, flags, &cfg, 0);
    } else {
        if (opt_given(a, "depth") || opt_given(a, "max-payload") ||
            opt_given(a, "max-subscribers"))
            return cli_usage_error(cmd, "--depth, --max-payload, --max-subscribers go with "
                                        "--broadcast");
        rc = shm_channel_open(ch, name, SHM_CHANNEL_PRODUCER, flags, opt_u64(a, "capacity", 0),
                              0);
        if (rc == -EPROTOTYPE && !opt_given(a, "capacity")) /* a broadcast channel */
            rc = shm_channel_open_broadcast(ch, name, SHM_CHANNEL_PUBLISHER, 0, NULL, 0);
    }
    return rc ? kind_failure(cmd, name, rc) : 0;
}

/* Open the reading side: the stream's consumer, or a subscriber (from the oldest message
 * held unless `newest`). *bcast says which. */
static int open_reader(const char *cmd, const struct cli_args *a, const char *name,
                       shm_channel_t **ch, int newest, int *bcast)
{
    uint32_t flags = opt_declared(a, "create") && opt_given(a, "create") ? SHM_CHANNEL_CREATE : 0;
    uint64_t cap = opt_declared(a, "capacity") ? opt_u64(a, "capacity", 0) : 0;
    *bcast = 0;
    int rc = shm_channel_open(ch, name, SHM_CHANNEL_CONSUMER, flags, cap, 0);
    if (rc == -EPROTOTYPE && !cap) {
        *bcast = 1;
        rc = shm_channel_open_broadcast(ch, name, SHM_CHANNEL_SUBSCRIBER,
                                        newest ? 0 : SHM_CHANNEL_FROM_OLDEST, NULL, 0);
    }
    return rc ? kind_failure(cmd, name, rc) : 0;
}

/* Write one message, waiting (in slices, so a signal stops us) for room. */
static int put(shm_channel_t *ch, const void *p, uint64_t len)
{
    for (;;) {
        int rc = shm_channel_write(ch, p, len, 200 * 1000000LL);
        if (rc != -ETIMEDOUT && rc != -EINTR)
            return rc;
        if (cli_stop)
            return -EINTR;
    }
}

static int write_failed(const char *cmd, const char *name, uint64_t n, uint64_t len,
                        shm_channel_t *ch, int rc)
{
    char what[160];
    if (rc == -EMSGSIZE)
        snprintf(what, sizeof what, "message %" PRIu64 " has %" PRIu64
                 " bytes, more than the channel's max_payload %" PRIu64, n + 1, len,
                 shm_channel_max_payload(ch));
    else if (rc == -EOWNERDEAD)
        snprintf(what, sizeof what, "the consumer died (after %" PRIu64 " messages)", n);
    else if (rc == -EPIPE)
        snprintf(what, sizeof what, "the consumer closed (after %" PRIu64 " messages)", n);
    else
        snprintf(what, sizeof what, "write (after %" PRIu64 " messages)", n);
    return cli_fail(cmd, name, what, rc == -EMSGSIZE || rc == -EPIPE || rc == -EOWNERDEAD ? 0 : rc);
}

/* Read exactly n bytes; returns n, or fewer at end of input (0: clean end), -1 on error. */
static size_t read_full(FILE *f, void *buf, size_t n)
{
    return fread(buf, 1, n, f);
}

static int slurp_file(const char *path, char **buf, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return -errno;
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (!b) {
            if (f != stdin)
                fclose(f);
            return -ENOMEM;
        }
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(b, cap);
        if (!nb)
            free(b);
        b = nb;
    }
    int err = ferror(f) ? -EIO : 0;
    if (f != stdin)
        fclose(f);
    if (err) {
        free(b);
        return err;
    }
    *buf = b;
    *len = n;
    return 0;
}

/* Pace: before message i, wait until t0 + i / rate. */
static void pace(uint64_t t0, uint64_t i, double rate)
{
    if (rate <= 0)
        return;
    uint64_t due = t0 + (uint64_t)((double)i * 1e9 / rate);
    uint64_t now = cli_now_ns();
    if (due > now)
        cli_sleep_ns(due - now);
}

int cmd_send(const struct cli_args *a)
{
    const char *name = a->pos[0];
    int files = opt_given(a, "file");
    if (files && opt_given(a, "frames"))
        return cli_usage_error("send", "--file and --frames are two different inputs");
    if (!files && a->npos > 1)
        return cli_usage_error("send", "FILE arguments go with --file");
    uint64_t count = opt_u64(a, "count", UINT64_MAX);
    double rate = opt_double(a, "rate", 0);
    shm_channel_t *ch;
    int rc = open_writer("send", a, name, &ch);
    if (rc)
        return rc;
    cli_catch_signals();
    uint64_t n = 0, t0 = cli_now_ns();
    int status = CLI_OK;
    char *buf = NULL;
    size_t cap = 0;
    if (files) {
        int nfiles = a->npos > 1 ? a->npos - 1 : 1;
        for (int i = 0; i < nfiles && n < count && !cli_stop; i++) {
            const char *path = a->npos > 1 ? a->pos[i + 1] : "-";
            size_t len = 0;
            char *data = NULL;
            if ((rc = slurp_file(path, &data, &len)) != 0) {
                status = cli_fail_file("send", path, rc);
                break;
            }
            pace(t0, n, rate);
            rc = put(ch, data, len);
            free(data);
            if (rc) {
                status = cli_stop ? CLI_OK : write_failed("send", name, n, len, ch, rc);
                break;
            }
            n++;
        }
    } else if (opt_given(a, "frames")) {
        while (n < count && !cli_stop) {
            unsigned char hdr[4];
            size_t got = read_full(stdin, hdr, 4);
            if (got == 0)
                break;
            uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
                           (uint32_t)hdr[3] << 24;
            if (got == 4 && len > cap) {
                char *nb = realloc(buf, len);
                if (!nb) {
                    status = cli_fail("send", name, "frame", -ENOMEM);
                    break;
                }
                buf = nb;
                cap = len;
            }
            if (got < 4 || read_full(stdin, buf, len) < len) {
                fprintf(stderr, "shm_channel send %s: stdin ends inside frame %" PRIu64
                        " (a u32 little-endian length, then that many bytes)\n", name, n + 1);
                status = CLI_FAIL;
                break;
            }
            pace(t0, n, rate);
            if ((rc = put(ch, buf, len)) != 0) {
                status = cli_stop ? CLI_OK : write_failed("send", name, n, len, ch, rc);
                break;
            }
            n++;
        }
    } else {
        ssize_t len;
        while (n < count && !cli_stop && (len = getline(&buf, &cap, stdin)) >= 0) {
            if (len > 0 && buf[len - 1] == '\n')
                len--;
            pace(t0, n, rate);
            if ((rc = put(ch, buf, (uint64_t)len)) != 0) {
                status = cli_stop ? CLI_OK : write_failed("send", name, n, (uint64_t)len, ch, rc);
                break;
            }
            n++;
        }
    }
    free(buf);
    shm_channel_close(ch);
    return status;
}

/* --- recv ----------------------------------------------------------------------------- */
enum fmt { FMT_LINES, FMT_RAW, FMT_FRAMES, FMT_HEX, FMT_JSON };

static int printable(const unsigned char *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n') || p[i] >= 0x7f)
            return 0;
    return 1;
}

static void emit(enum fmt f, const unsigned char *p, uint64_t len, uint64_t n, int has_seq,
                 uint64_t seq, uint64_t missed)
{
    switch (f) {
    case FMT_LINES:
        fwrite(p, 1, len, stdout);
        fputc('\n', stdout);
        break;
    case FMT_RAW:
        fwrite(p, 1, len, stdout);
        break;
    case FMT_FRAMES: {
        unsigned char h[4] = {(unsigned char)len, (unsigned char)(len >> 8),
                              (unsigned char)(len >> 16), (unsigned char)(len >> 24)};
        fwrite(h, 1, 4, stdout);
        fwrite(p, 1, len, stdout);
        break;
    }
    case FMT_HEX:
        for (uint64_t i = 0; i < len; i++)
            printf("%02x", p[i]);
        fputc('\n', stdout);
        break;
    case FMT_JSON: {
        struct json j;
        json_init(&j, stdout);
        json_obj_begin(&j, NULL);
        json_u64(&j, "n", n);
        if (has_seq)
            json_u64(&j, "seq", seq);
        json_u64(&j, "len", len);
        json_u64(&j, "missed", missed);
        json_hex(&j, "hex", p, len);
        if (printable(p, len))
            json_strn(&j, "text", p, len);
        json_obj_end(&j);
        json_end(&j);
        break;
    }
    }
}

/* The next message: 0, or -EAGAIN (broadcast without follow: nothing more held), -EPIPE,
 * -EOWNERDEAD, -ETIMEDOUT (after timeout_s with nothing), -EINTR (signal), other -errno. */
static int next_message(shm_channel_t *ch, int bcast, int follow, double timeout_s, void *buf,
                        uint64_t cap, uint64_t *len, uint64_t *missed)
{
    uint64_t start = cli_now_ns();
    for (;;) {
        int64_t slice = (bcast && !follow) ? 0 : 200 * 1000000LL;
        int rc = bcast ? shm_channel_recv(ch, buf, cap, len, missed, slice)
                       : shm_channel_read(ch, buf, cap, len, slice);
        if (rc == 0 || (rc != -ETIMEDOUT && rc != -EINTR && !(rc == -EAGAIN && follow)))
            return rc;
        if (cli_stop)
            return -EINTR;
        if (timeout_s > 0 && (double)(cli_now_ns() - start) >= timeout_s * 1e9)
            return -ETIMEDOUT;
    }
}

static int read_failed(const char *cmd, const char *name, int bcast, int rc)
{
    if (rc == -EOWNERDEAD)
        return cli_fail(cmd, name, bcast ? "the publisher died" : "the producer died", 0);
    if (rc == -ETIMEDOUT) {
        fprintf(stderr, "shm_channel %s %s: no message within --timeout\n", cmd, name);
        return CLI_TIMEOUT;
    }
    return cli_fail(cmd, name, "read", rc);
}

int cmd_recv(const struct cli_args *a)
{
    const char *name = a->pos[0];
    const char *fs = opt_str(a, "format", "lines");
    enum fmt f;
    if (!strcmp(fs, "lines"))
        f = FMT_LINES;
    else if (!strcmp(fs, "raw"))
        f = FMT_RAW;
    else if (!strcmp(fs, "frames"))
        f = FMT_FRAMES;
    else if (!strcmp(fs, "hex"))
        f = FMT_HEX;
    else if (!strcmp(fs, "json"))
        f = FMT_JSON;
    else
        return cli_usage_error("recv", "--format: lines, raw, frames, hex or json, not \"%s\"",
                               fs);
    uint64_t count = opt_u64(a, "count", UINT64_MAX);
    int follow = opt_given(a, "follow");
    shm_channel_t *ch;
    int bcast;
    int rc = open_reader("recv", a, name, &ch, follow, &bcast);
    if (rc)
        return rc;
    cli_catch_signals();
    uint64_t cap = shm_channel_max_payload(ch);
    unsigned char *buf = malloc(cap ? cap : 1);
    int status = CLI_OK;
    for (uint64_t n = 0; n < count && buf;) {
        uint64_t len = 0, missed = 0;
        rc = next_message(ch, bcast, follow, opt_double(a, "timeout", 0), buf, cap, &len,
                          &missed);
        if (rc == -EPIPE || rc == -EINTR || rc == -EAGAIN)
            break; /* end-of-stream, a signal, or (broadcast) nothing more held */
        if (rc) {
            status = read_failed("recv", name, bcast, rc);
            break;
        }
        n++;
        uint64_t seq = 0;
        shm_channel_sub_stat_t ss;
        if (bcast && shm_channel_sub_stat(ch, -1, &ss) == 0)
            seq = ss.next_seq - 1;
        emit(f, buf, len, n, bcast, seq, missed);
        if (f != FMT_RAW && f != FMT_FRAMES)
            fflush(stdout); /* a pipeline sees each message as it comes */
        if (ferror(stdout)) {
            status = CLI_FAIL;
            break;
        }
    }
    if (!buf)
        status = cli_fail("recv", name, "buffer", -ENOMEM);
    free(buf);
    shm_channel_close(ch);
    return status;
}

/* --- call (service, kind 4) ----------------------------------------------------------- */
int cmd_call(const struct cli_args *a)
{
    const char *name = a->pos[0];
#ifdef CLI_HAVE_SERVICE
    shm_channel_t *ch;
    int rc = shm_channel_open_service(&ch, name, SHM_CHANNEL_CLIENT, 0, NULL, 0);
    if (rc)
        return cli_fail("call", name, "open", rc);
    char *req = NULL;
    size_t len = 0;
    if ((rc = slurp_file("-", &req, &len)) != 0) {
        shm_channel_close(ch);
        return cli_fail_file("call", "stdin", rc);
    }
    cli_catch_signals();
    double timeout = opt_double(a, "timeout", 0);
    uint64_t cap = shm_channel_max_payload(ch), got = 0;
    char *resp = malloc(cap ? cap : 1);
    int status = CLI_OK;
    rc = resp ? shm_channel_request(ch, req, len, resp, cap, &got,
                                    timeout > 0 ? (int64_t)(timeout * 1e9) : -1)
              : -ENOMEM;
    if (rc == 0)
        fwrite(resp, 1, got, stdout);
    else if (rc == -ETIMEDOUT && timeout > 0) {
        fprintf(stderr, "shm_channel call %s: no response within --timeout\n", name);
        status = CLI_TIMEOUT;
    } else if (rc == -EMSGSIZE && got == 0)
        status = cli_fail("call", name, "the request is larger than the service's max_request",
                          0);
    else
        status = cli_fail("call", name, "request", rc);
    free(req);
    free(resp);
    shm_channel_close(ch);
    return status;
#else
    const struct kind_ops *k = cli_kind_by_name("service");
    return cli_fail("call", name, k->not_yet, 0);
#endif
}

/* --- record / replay ------------------------------------------------------------------ */
/* File format (docs/cli.md), little-endian:
 *   header, 32 bytes: "SHMCREC\0" | u32 version (1) | u32 kind the recording came from |
 *                     u64 CLOCK_REALTIME ns at the start | u64 max_payload of the channel
 *   records: u64 ns since the start | u32 payload length | u32 messages missed just before
 *            (broadcast) | payload bytes                                                   */
#define REC_MAGIC "SHMCREC"
#define REC_VERSION 1

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int cmd_record(const struct cli_args *a)
{
    const char *name = a->pos[0], *path = a->pos[1];
    uint64_t count = opt_u64(a, "count", UINT64_MAX);
    shm_channel_t *ch;
    int bcast;
    int rc = open_reader("record", a, name, &ch, opt_given(a, "follow"), &bcast);
    if (rc)
        return rc;
    FILE *out = strcmp(path, "-") ? fopen(path, "wb") : stdout;
    if (!out) {
        rc = -errno;
        shm_channel_close(ch);
        return cli_fail_file("record", path, rc);
    }
    cli_catch_signals();
    uint64_t cap = shm_channel_max_payload(ch);
    unsigned char hdr[32] = REC_MAGIC;
    put_le(hdr + 8, REC_VERSION, 4);
    put_le(hdr + 12, bcast ? SHM_CHANNEL_KIND_BROADCAST : SHM_CHANNEL_KIND_STREAM, 4);
    put_le(hdr + 16, cli_realtime_ns(), 8);
    put_le(hdr + 24, cap, 8);
    fwrite(hdr, 1, sizeof hdr, out);
    unsigned char *buf = malloc(cap ? cap : 1);
    uint64_t t0 = cli_now_ns(), n = 0;
    int status = buf ? CLI_OK : cli_fail("record", name, "buffer", -ENOMEM);
    while (buf && n < count) {
        uint64_t len = 0, missed = 0;
        rc = next_message(ch, bcast, 1, opt_double(a, "timeout", 0), buf, cap, &len, &missed);
        if (rc == -EPIPE || rc == -EINTR)
            break;
        if (rc) {
            status = read_failed("record", name, bcast, rc);
            break;
        }
        unsigned char rh[16];
        put_le(rh, cli_now_ns() - t0, 8);
        put_le(rh + 8, len, 4);
        put_le(rh + 12, missed > UINT32_MAX ? UINT32_MAX : missed, 4);
        fwrite(rh, 1, sizeof rh, out);
        fwrite(buf, 1, len, out);
        n++;
    }
    free(buf);
    shm_channel_close(ch);
    if ((out != stdout && fclose(out) != 0) || (out == stdout && fflush(out) != 0)) {
        if (status == CLI_OK)
            status = cli_fail_file("record", path, -errno);
    }
    fprintf(stderr, "shm_channel record %s: %" PRIu64 " messages to %s\n", name, n, path);
    return status;
}

int cmd_replay(const struct cli_args *a)
{
    const char *path = a->pos[0], *name = a->pos[1];
    FILE *in = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!in)
        return cli_fail_file("replay", path, -errno);
    unsigned char hdr[32];
    if (fread(hdr, 1, sizeof hdr, in) != sizeof hdr || memcmp(hdr, REC_MAGIC, 8)) {
        fclose(in);
        return cli_fail("replay", path, "not a shm_channel recording (no SHMCREC header)", 0);
    }
    if (get_le(hdr + 8, 4) != REC_VERSION) {
        fclose(in);
        fprintf(stderr, "shm_channel replay %s: recording version %" PRIu64
                " (this tool reads version %d)\n", path, get_le(hdr + 8, 4), REC_VERSION);
        return CLI_FAIL;
    }
    shm_channel_t *ch;
    int rc = open_writer("replay", a, name, &ch);
    if (rc) {
        fclose(in);
        return rc;
    }
    cli_catch_signals();
    uint64_t count = opt_u64(a, "count", UINT64_MAX), n = 0, t0 = cli_now_ns();
    int fast = opt_given(a, "fast"), status = CLI_OK;
    unsigned char *buf = NULL;
    uint64_t cap = 0;
    while (n < count && !cli_stop) {
        unsigned char rh[16];
        size_t got = fread(rh, 1, sizeof rh, in);
        if (got == 0)
            break;
        uint64_t t = get_le(rh, 8), len = get_le(rh + 8, 4);
        if (got == sizeof rh && len > cap) {
            unsigned char *nb = realloc(buf, len);
            if (!nb) {
                status = cli_fail("replay", name, "buffer", -ENOMEM);
                break;
            }
            buf = nb;
            cap = len;
        }
        if (got < sizeof rh || fread(buf, 1, len, in) != len) {
            fprintf(stderr, "shm_channel replay %s: truncated record %" PRIu64 " in %s\n", name,
                    n + 1, path);
            status = CLI_FAIL;
            break;
        }
        if (!fast) {
            uint64_t now = cli_now_ns();
            if (t0 + t > now)
                cli_sleep_ns(t0 + t - now);
            if (cli_stop)
                break;
        }
        if ((rc = put(ch, buf, len)) != 0) {
            status = cli_stop ? CLI_OK : write_failed("replay", name, n, len, ch, rc);
            break;
        }
        n++;
    }
    free(buf);
    fclose(in);
    shm_channel_close(ch);
    return status;
}
