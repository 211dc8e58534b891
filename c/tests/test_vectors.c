/* Every golden vector in spec/vectors/ through the checker procedure of
 * spec/vectors/README.md: copy NAME.bin into the segment directory (mode 0600), open it as
 * consumer (flags 0, capacity 0), expect the `open` verdict, then non-blocking reads: every
 * `msg` in order, then the `end` verdict. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"

#ifndef CT_VECTORS_DIR
#error "CT_VECTORS_DIR must name spec/vectors"
#endif

TestSuite(vectors, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

#define MAX_MSGS 64
#define MAX_PAYLOAD 65536

struct expect {
    int open_rc;         /* 0 or -errno */
    int nmsgs;
    uint8_t *msg[MAX_MSGS];
    uint64_t len[MAX_MSGS];
    int end_rc;
    int has_end;
};

static void parse_expect(const char *path, struct expect *e)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "open %s", path);
    memset(e, 0, sizeof *e);
    e->open_rc = 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0 || line[0] == '#')
            continue;
        if (strncmp(line, "open ", 5) == 0) {
            cr_assert_eq(e->open_rc, 1, "%s: two open lines", path);
            e->open_rc = ct_errno_named(line + 5);
        } else if (strncmp(line, "msg ", 4) == 0) {
            cr_assert_lt(e->nmsgs, MAX_MSGS, "%s: too many messages", path);
            cr_assert(!e->has_end, "%s: msg after end", path);
            static uint8_t hex[MAX_PAYLOAD];
            uint64_t len = ct_unhex(line + 4, hex, sizeof hex);
            uint8_t *m = malloc(len + 1);
            memcpy(m, hex, len);
            e->msg[e->nmsgs] = m;
            e->len[e->nmsgs++] = len;
        } else if (strncmp(line, "end ", 4) == 0) {
            cr_assert(!e->has_end, "%s: two end lines", path);
            e->end_rc = ct_errno_named(line + 4);
            e->has_end = 1;
        } else {
            cr_assert_fail("%s: unknown line \"%s\"", path, line);
        }
    }
    free(line);
    fclose(f);
    cr_assert_neq(e->open_rc, 1, "%s: no open line", path);
    if (e->open_rc == 0)
        cr_assert(e->has_end, "%s: open ok needs an end line", path);
    else
        cr_assert(!e->has_end && e->nmsgs == 0, "%s: a failed open has nothing else", path);
}

/* The checker procedure for one vector. Returns nothing; failures name the vector. */
static void check_vector(const char *vname)
{
    char path[20000];
    struct expect e;
    snprintf(path, sizeof path, "%s/%s.expect", CT_VECTORS_DIR, vname);
    parse_expect(path, &e);

    char seg[64];
    ct_name(seg, "vec");
    snprintf(path, sizeof path, "%s/%s.bin", CT_VECTORS_DIR, vname);
    ct_copy_file(path, ct_path(seg));

    shm_channel_t *ch = NULL;
    int rc = shm_channel_open(&ch, seg, SHM_CHANNEL_CONSUMER, 0, 0, 0);
    cr_expect_eq(rc, e.open_rc, "%s: open returned %d (%s), expected %d", vname, rc,
                 shm_channel_strerror(rc), e.open_rc);
    if (rc == 0) {
        static uint8_t buf[MAX_PAYLOAD];
        uint64_t len;
        for (int i = 0; i < e.nmsgs; i++) {
            rc = shm_channel_read(ch, buf, sizeof buf, &len, 0);
            cr_expect_eq(rc, 0, "%s: message %d: %d (%s)", vname, i, rc, shm_channel_strerror(rc));
            if (rc)
                break;
            cr_expect_eq(len, e.len[i], "%s: message %d has %lu bytes, expected %lu", vname, i,
                         (unsigned long)len, (unsigned long)e.len[i]);
            cr_expect(len == e.len[i] && memcmp(buf, e.msg[i], len) == 0,
                      "%s: message %d differs", vname, i);
        }
        if (rc == 0) {
            rc = shm_channel_read(ch, buf, sizeof buf, &len, 0);
            cr_expect_eq(rc, e.end_rc, "%s: end: %d (%s), expected %d", vname, rc,
                         shm_channel_strerror(rc), e.end_rc);
        }
        shm_channel_close(ch);
    } else {
        cr_expect_null(ch);
    }
    /* A drained end-of-stream copy was removed by the close; anything else is still here. */
    int urc = shm_channel_unlink(seg, SHM_CHANNEL_FORCE);
    cr_expect(urc == 0 || urc == -ENOENT);
    cr_expect(!ct_exists(seg));
    for (int i = 0; i < e.nmsgs; i++)
        free(e.msg[i]);
}

Test(vectors, every_vector_gives_its_verdict)
{
    static char names[128][CT_VECTOR_NAME];
    int n = ct_vector_names(CT_VECTORS_DIR, names, 128);
    static const char *required[] = {
        "empty", "one_message", "zero_length", "wrapped_padding", "full_ring", "end_of_stream",
        "producer_died", "bad_magic", "unknown_major", "wrong_kind", "capacity_not_pow2",
        "file_short", "record_past_write_pos", "position_diff_exceeds_capacity",
        "bad_record_type", "padding_wrong_length", "header_not_ready", "handshake_membarrier",
        "handshake_unknown"};
    for (size_t r = 0; r < sizeof required / sizeof required[0]; r++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= strcmp(names[i], required[r]) == 0;
        cr_expect(found, "vector %s is missing", required[r]);
    }
    for (int i = 0; i < n; i++)
        check_vector(names[i]);
}

/* The same segment images, opened by a producer: a conforming producer refuses the same
 * invalid headers, and attaches to every valid one. */
Test(vectors, producer_refuses_the_same_headers)
{
    static const struct {
        const char *name;
        int rc;
    } cases[] = {{"bad_magic", -EPROTO},         {"unknown_major", -EPROTONOSUPPORT},
                 {"wrong_kind", -EPROTOTYPE},    {"capacity_not_pow2", -EBADMSG},
                 {"file_short", -EBADMSG},       {"position_diff_exceeds_capacity", -EBADMSG},
                 {"position_misaligned", -EBADMSG}, {"empty", 0},
                 {"full_ring", 0},               {"producer_died", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4200], seg[64];
        ct_name(seg, "vecp");
        snprintf(path, sizeof path, "%s/%s.bin", CT_VECTORS_DIR, cases[i].name);
        ct_copy_file(path, ct_path(seg));
        shm_channel_t *ch = NULL;
        int rc = shm_channel_open(&ch, seg, SHM_CHANNEL_PRODUCER, 0, 0, 0);
        cr_expect_eq(rc, cases[i].rc, "%s: %d (%s)", cases[i].name, rc, shm_channel_strerror(rc));
        if (rc == 0 && strcmp(cases[i].name, "full_ring") == 0)
            cr_expect_eq(shm_channel_write(ch, NULL, 0, 0), -EPIPE,
                         "full_ring is full and its consumer_state is 2 (closed)");
        if (rc == 0 && strcmp(cases[i].name, "producer_died") == 0) {
            /* The new producer continues at write_pos: the dead one's unpublished record
             * is overwritten, and a consumer sees the old messages then the new one. */
            cr_expect_eq(shm_channel_write(ch, "new", 3, 0), 0);
            shm_channel_t *c = NULL;
            cr_assert_eq(shm_channel_open(&c, seg, SHM_CHANNEL_CONSUMER, 0, 0, 0), 0);
            uint8_t buf[64];
            uint64_t len;
            cr_expect_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
            cr_expect_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
            cr_expect_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), 0);
            cr_expect(len == 3 && memcmp(buf, "new", 3) == 0);
            cr_expect_eq(shm_channel_read(c, buf, sizeof buf, &len, 0), -EAGAIN, "producer alive");
            shm_channel_close(c);
        }
        shm_channel_close(ch);
        shm_channel_unlink(seg, SHM_CHANNEL_FORCE);
    }
}
